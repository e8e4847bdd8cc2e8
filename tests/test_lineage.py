"""Lineage between stages and one writer per data folder (issue 19, cases 1-3 and 8).

The pipeline runs here with a stand-in for papermill that writes each stage's outputs from its parameters,
so every case runs in seconds; the real notebooks run through the pipeline in tests/test_notebooks.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmlaw_utils import cli, pipeline
from mmlaw_utils.config import OUTPUT_FILES, load_profile, require
from mmlaw_utils.lineage import LINEAGE_FILE, LineageError, record_outputs, stale_reasons, verify_input
from mmlaw_utils.pipeline import STAGES, PipelineError, RunOptions, run_pipeline


class Interrupted(Exception):
    """A stage stopped half-way (Ctrl-C) by the stand-in notebook."""


@pytest.fixture
def fake_notebooks(monkeypatch):
    """papermill replaced: a stage writes each output as text naming the stage and its parameters; ``interrupt``
    names a stage that writes its first output and then stops."""
    state = {"interrupt": None, "ran": []}

    def execute(stage, notebook, output, parameters):
        data_dir = Path(parameters["data_dir"])
        state["ran"].append(stage)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("executed")
        for index, key in enumerate(STAGES[stage].outputs):
            target = data_dir / OUTPUT_FILES[key]
            if key == "models":
                table = pa.table({"cache_file": pa.array([], pa.string())})
                pq.write_table(table.replace_schema_metadata({"seed": str(parameters.get("seed"))}), target)
            else:
                target.write_text(f"{stage} {sorted((k, str(v)) for k, v in parameters.items() if k != 'data_dir')}")
            if state["interrupt"] == stage and index == 0:
                raise Interrupted(stage)

    monkeypatch.setattr(pipeline, "execute_notebook", execute)
    return state


def _run(data_dir: Path, runs: Path, profile: str = "synthetic", start: str = "02", stop: str = "06", **parameters):
    options = RunOptions(profile=profile, parameters={"data_dir": str(data_dir), **parameters}, start=start, stop=stop,
                         readme="no")
    run_pipeline(options, runs_root=runs)


def test_each_output_records_its_stage_inputs_and_parameters(fake_notebooks, tmp_path):
    data = tmp_path / "data"
    _run(data, tmp_path / "runs", n_bootstrap=20, seed=2)
    lineage = json.loads((data / LINEAGE_FILE).read_text())
    assert lineage["profile"] == "synthetic"
    bootstrap = lineage["outputs"]["bootstrap.parquet"]
    assert bootstrap["stage"] == "05_fit_scaling_laws"
    assert bootstrap["parameters"]["n_bootstrap"] == 20 and bootstrap["parameters"]["seed"] == 2
    assert bootstrap["parameters"]["level"] == 0.95  # the notebook's default, read from its parameters cell
    assert set(bootstrap["inputs"]) >= {"loss_matrix.parquet", "models.parquet", "frontiers.parquet"}
    assert bootstrap["context"]["profile"] == "synthetic" and bootstrap["context"]["n_texts"] == 300
    assert "data_dir" not in bootstrap["parameters"]  # no machine-specific path in the record


def test_case_1_a_second_run_on_the_same_folder_stops_with_a_clear_message(fake_notebooks, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    with pipeline.run_lock(data):
        code = cli.main(["run", "--profile", "synthetic", "--from", "02", "--to", "05", "--no-readme",
                         "-p", "data_dir", str(data), "-p", "n_bootstrap", "20"])
    err = capsys.readouterr().err
    assert code == 1 and fake_notebooks["ran"] == []
    assert f"data folder {data} is in use by another run" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    _run(data, tmp_path / "runs", stop="05")  # the lock is released with its holder
    assert fake_notebooks["ran"][-1] == "05_fit_scaling_laws"


def test_case_1_outputs_of_two_runs_of_one_stage_are_not_read_together(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "frontiers.parquet").write_text("front")
    for name, n_bootstrap in (("fits.json", 10000), ("bootstrap.parquet", 20)):
        (data / name).write_text(name)
        record_outputs(data, "05_fit_scaling_laws", [data / name], [data / "frontiers.parquet"],
                       {"n_bootstrap": n_bootstrap}, tmp_path)
    reasons = stale_reasons(data, ["fits.json", "bootstrap.parquet"], {}, tmp_path)
    assert reasons == {"bootstrap.parquet": "bootstrap.parquet and fits.json come from two different runs of stage "
                                            "05_fit_scaling_laws (parameters ['n_bootstrap'] differ); "
                                            "stage 05_fit_scaling_laws rebuilds them"}


def test_case_2_an_interrupted_stage_05_then_from_06_is_refused(fake_notebooks, tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    _run(data, runs, seed=1)
    _run(data, runs, stop="04", params_unit=1e6)  # new frontiers: 05's outputs still describe the old ones
    fake_notebooks["ran"].clear()
    with pytest.raises(PipelineError) as caught:
        _run(data, runs, start="06", stop="06")
    message = str(caught.value)
    assert fake_notebooks["ran"] == []
    assert "run --from 05_fit_scaling_laws" in message
    assert "bootstrap.parquet was computed from frontiers.parquet, which has changed since" in message
    assert "model_jackknife.csv" in message and "stage 05_fit_scaling_laws rebuilds it" in message
    fake_notebooks["interrupt"] = "05_fit_scaling_laws"
    with pytest.raises(Interrupted):
        _run(data, runs, start="05", seed=2)  # Ctrl-C after fits.json
    with pytest.raises(PipelineError, match="fits.json has no lineage record .*stage 05_fit_scaling_laws rebuilds it"):
        _run(data, runs, start="06", stop="06")
    fake_notebooks["interrupt"] = None
    _run(data, runs, start="05", stop="06", seed=2)  # rebuilding 05 makes 06 runnable again
    assert fake_notebooks["ran"][-2:] == ["05_fit_scaling_laws", "06_figures"]


def test_case_2_a_stale_loss_matrix_is_refused_when_a_notebook_reads_it(fake_notebooks, tmp_path):
    from mmlaw_utils.scoring.assemble import load_loss_matrix

    data = tmp_path / "data"
    _run(data, tmp_path / "runs", stop="03")
    (data / "pairs.parquet").write_text("hand-edited")
    with pytest.raises(LineageError, match=r"pairs.parquet changed after stage 03_oracle_pairs recorded it.*--from 03"):
        require(data / "pairs.parquet", "03_oracle_pairs")
    (data / "loss_matrix.parquet").write_text("rewritten by hand")
    with pytest.raises(LineageError, match="loss_matrix.parquet changed after stage 02_loss_matrix"):
        load_loss_matrix(data)
    verify_input(tmp_path / "elsewhere" / "pairs.parquet", "03_oracle_pairs", tmp_path)  # no lineage: no check


def test_case_2_rescored_caches_make_the_loss_matrix_stale(fake_notebooks, tmp_path):
    data = tmp_path / "data"
    (data / "scores").mkdir(parents=True)
    cache = data / "scores" / "m.parquet"
    cache.write_text("scores of m")
    _run(data, tmp_path / "runs", stop="02")
    lineage = json.loads((data / LINEAGE_FILE).read_text())
    # the stand-in's models.parquet lists no cache: record the one cache as 02 would have read it
    record_outputs(data, "02_loss_matrix", [data / "loss_matrix.parquet", data / "models.parquet"],
                   [cache], lineage["outputs"]["models.parquet"]["parameters"], tmp_path,
                   lineage["outputs"]["models.parquet"]["context"])
    _run(data, tmp_path / "runs", start="03", stop="03")
    cache.write_text("scores of m, rescored")
    with pytest.raises(PipelineError, match=r"run --from 02_loss_matrix.*\n  loss_matrix.parquet was computed from "
                                            r"scores/m.parquet, which has changed since"):
        _run(data, tmp_path / "runs", start="04", stop="04")


def test_case_3_a_second_profile_cannot_share_a_data_folder(fake_notebooks, tmp_path, capsys):
    data = tmp_path / "data"
    _run(data, tmp_path / "runs", stop="03")
    code = cli.main(["run", "--profile", "minipool", "--from", "03", "--to", "03", "--no-readme",
                     "-p", "data_dir", str(data)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"data folder {data} belongs to profile 'synthetic'" in err and "give profile 'minipool' its own data_dir" in err


def test_case_3_outputs_computed_under_other_profile_settings_are_stale(fake_notebooks, tmp_path, monkeypatch):
    data = tmp_path / "data"
    _run(data, tmp_path / "runs", stop="03")
    changed = dataclasses.replace(load_profile("synthetic"), n_texts=200)
    monkeypatch.setattr(pipeline, "load_profile", lambda name: changed)
    with pytest.raises(PipelineError, match=r"loss_matrix.parquet was computed under other profile settings \(n_texts\)"):
        _run(data, tmp_path / "runs", start="04", stop="04")


def test_case_8_each_data_folder_has_its_own_run_folder(fake_notebooks, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "RUNS_DIR", tmp_path / "runs")
    for name in ("one", "two"):
        options = RunOptions(profile="synthetic", parameters={"data_dir": str(tmp_path / name)}, start="02",
                             stop="03", readme="no")
        run_pipeline(options)
    for name in ("one", "two"):
        timings = (tmp_path / name / "runs" / "timings.tsv").read_text().splitlines()
        assert [row.split("\t")[0] for row in timings] == ["stage", "02_loss_matrix", "03_oracle_pairs", "total"]
        assert (tmp_path / name / "runs" / "03_oracle_pairs.ipynb").is_file()
    assert not (tmp_path / "runs").exists()
    assert pipeline.run_folder("minipool", tmp_path, overridden=False, runs_root=None) == tmp_path / "runs" / "minipool"


def test_a_rerun_that_reproduces_its_outputs_leaves_the_lineage_unchanged(fake_notebooks, tmp_path):
    data = tmp_path / "data"
    _run(data, tmp_path / "runs", stop="05", seed=3)
    first = (data / LINEAGE_FILE).read_bytes()
    _run(data, tmp_path / "runs", stop="05", seed=3)
    assert (data / LINEAGE_FILE).read_bytes() == first
    assert b"Z\"" not in first and "time" not in first.decode()  # no wall-clock time kept


@pytest.mark.parametrize("profile", ["synthetic", "minipool"])
def test_committed_outputs_are_fresh_by_their_lineage(profile):
    """A fresh clone can run --from any stage: every committed output matches its record (rerun the profile after
    changing an input or a stage's code, and commit lineage.json with the outputs)."""
    from mmlaw_utils.config import REPO_ROOT, resolve_run_paths
    from mmlaw_utils.pipeline import output_makers, profile_context, profile_stages

    spec = load_profile(profile)
    paths = resolve_run_paths(profile)
    names = [OUTPUT_FILES[key] for stage in profile_stages(spec) for key in STAGES[stage].outputs
             if paths.output(key).exists()]
    assert len(names) >= 20
    assert stale_reasons(paths.data_dir, names, output_makers(), REPO_ROOT, context=profile_context(spec)) == {}
    assert json.loads((paths.data_dir / LINEAGE_FILE).read_text())["profile"] == profile


def test_stage_09_reads_the_pool_caches_and_stage_10_the_segment_files(tmp_path):
    import shutil

    from mmlaw_utils.config import resolve_run_paths

    profile = load_profile("minipool")
    committed = sorted(profile.cache_dir.glob("*.parquet"))
    paths = resolve_run_paths("minipool", data_dir=tmp_path)
    paths.cache_dir.mkdir()
    for path in committed[:3]:
        shutil.copy(path, paths.cache_dir / path.name)
    stray = paths.cache_dir / "not-a-pool-model__151ce250a2b3.parquet"
    shutil.copy(committed[0], stray)
    inputs = pipeline.stage_input_files("09_diversity_arms", paths, profile)
    assert {p.name for p in inputs if p.parent == paths.cache_dir} == {p.name for p in committed[:3]}
    word = tmp_path / "segments" / "word"
    word.mkdir(parents=True)
    (word / "m__151ce250a2b3.parquet").write_bytes(b"x")
    (tmp_path / "segments" / "tokens").mkdir()
    (tmp_path / "segments" / "tokens" / "m__151ce250a2b3.parquet").write_bytes(b"x")  # raw material, not read by 10
    assert [p for p in pipeline.stage_input_files("10_granularity", paths, profile) if "segments" in p.parts] == \
        [word / "m__151ce250a2b3.parquet"]
