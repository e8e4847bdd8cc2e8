"""The pipeline as data (mmlaw_utils.pipeline): stage selection, -p parameters, inputs, timings, failures."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from mmlaw_utils import cli, pipeline
from mmlaw_utils.config import FIGURE_STEMS, OUTPUT_FILES, available_profiles, load_profile
from mmlaw_utils.pipeline import (
    DEFAULT_STAGES, STAGES, PipelineError, RunOptions, absolute_paths, check_parameters, missing_inputs,
    notebook_parameters, parse_parameters, profile_stages, select_stages, stage_position,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL = ("scores", "02_loss_matrix", "03_oracle_pairs", "08_real_pool")


@pytest.mark.parametrize("token, expected", [
    ("scores", 0), ("01", 0), ("1", 0), ("01_score_models", 0),
    ("02", 1), ("2", 1), ("02_loss_matrix", 1), ("04", 3), ("04_frontiers", 3), ("06_figures", 5), ("7", 6),
])
def test_stage_position_by_name_or_number(token, expected):
    assert stage_position(DEFAULT_STAGES, token) == expected


@pytest.mark.parametrize("token", ["09", "8", "08_real_pool", "frontiers", "4_frontiers", ""])
def test_stage_position_refuses_stages_outside_the_list(token):
    with pytest.raises(PipelineError, match="unknown stage"):
        stage_position(DEFAULT_STAGES, token)


def test_select_stages_from_to():
    assert select_stages(DEFAULT_STAGES) == list(DEFAULT_STAGES)
    assert select_stages(DEFAULT_STAGES, "05", "06") == ["05_fit_scaling_laws", "06_figures"]
    assert select_stages(DEFAULT_STAGES, stop="06") == list(DEFAULT_STAGES[:6])
    assert select_stages(DEFAULT_STAGES, start="04_frontiers") == list(DEFAULT_STAGES[3:])
    assert select_stages(REAL, "08") == ["08_real_pool"]
    assert select_stages(REAL, "01", "2") == ["scores", "02_loss_matrix"]
    with pytest.raises(PipelineError, match="comes after"):
        select_stages(DEFAULT_STAGES, "06", "05")
    with pytest.raises(PipelineError, match="unknown stage '05'"):
        select_stages(REAL, "05")


def test_profiles_name_known_stages_and_real_has_its_own():
    assert profile_stages(load_profile("real")) == (*REAL, "10_granularity")
    for name in available_profiles():
        assert set(profile_stages(load_profile(name))) <= set(STAGES)
    assert profile_stages(load_profile("synthetic")) == DEFAULT_STAGES
    assert profile_stages(load_profile("minipool")) == (*DEFAULT_STAGES, "09_diversity_arms", "10_granularity")


def test_unknown_stage_in_a_profile_names_the_key(monkeypatch):
    profile = load_profile("real")
    bad = type(profile)(**{**profile.__dict__, "stages": ("scores", "03_oracle_pair")})
    with pytest.raises(PipelineError, match=r"'real'.*'03_oracle_pair'.*'stages'"):
        profile_stages(bad)


def test_stage_outputs_and_inputs_are_registered_and_written_before_read():
    for stage in STAGES.values():
        assert set(stage.inputs) | set(stage.outputs) <= set(OUTPUT_FILES), stage.name
        assert set(stage.figures) <= set(FIGURE_STEMS), stage.name
        assert stage.notebook_path().is_file(), stage.notebook
    written: set[str] = set()
    for name in DEFAULT_STAGES:
        assert set(STAGES[name].inputs) <= written, name
        written |= set(STAGES[name].outputs)
    hint = "name each registered output (figure) in the stage that writes it: mmlaw_utils/pipeline.py STAGES"
    assert sorted(key for stage in STAGES.values() for key in stage.outputs) == sorted(OUTPUT_FILES), hint
    assert sorted(key for stage in STAGES.values() for key in stage.figures) == sorted(FIGURE_STEMS), hint


@pytest.mark.parametrize("text, value", [
    ("True", True), ("False", False), ("None", None), ("200", 200), ("-3", -3), ("1e9", 1e9), ("0.95", 0.95),
    ("cross_family", "cross_family"), ("/tmp/x", "/tmp/x"), ("true", "true"),
])
def test_parameter_values_are_typed_as_papermill_types_them(text, value):
    from papermill.cli import _resolve_type  # the reference: papermill's own -p parsing

    parsed = pipeline.resolve_parameter_value(text)
    assert parsed == value and type(parsed) is type(value)
    assert parsed == _resolve_type(text) and type(parsed) is type(_resolve_type(text))


def test_parse_parameters_last_wins_and_profile_is_reserved():
    assert parse_parameters([("seed", "1"), ("n_bootstrap", "50"), ("seed", "2")]) == {"seed": 2, "n_bootstrap": 50}
    with pytest.raises(PipelineError, match="--profile"):
        parse_parameters([("profile", "synthetic")])


def test_relative_folders_are_made_absolute_against_the_callers_directory(tmp_path):
    given = {"data_dir": "scratch/data", "figures_dir": "/abs/fig", "n_bootstrap": 5, "cache_dir": None}
    assert absolute_paths(given, cwd=tmp_path) == {
        "data_dir": str(tmp_path / "scratch" / "data"), "figures_dir": "/abs/fig", "n_bootstrap": 5, "cache_dir": None}


def _assigned_names(source: str) -> list[str]:
    return [target.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for target in node.targets]


@pytest.mark.parametrize("notebook", sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_papermill_sees_every_name_of_the_parameters_cell(notebook):
    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assert notebook_parameters(notebook) == tuple(_assigned_names(cell.source))


def test_check_parameters_lists_each_notebooks_parameters():
    declared = {"04_frontiers": ("profile", "data_dir", "params_unit"),
                "05_fit_scaling_laws": ("profile", "data_dir", "n_bootstrap", "seed")}
    check_parameters({"n_bootstrap": 5, "params_unit": 1.0}, declared)
    with pytest.raises(PipelineError) as error:
        check_parameters({"n_bootsrap": 5, "seed": 1}, declared)
    message = str(error.value)
    assert "['n_bootsrap']" in message and "05_fit_scaling_laws: profile, data_dir, n_bootstrap, seed" in message
    assert "04_frontiers: profile, data_dir, params_unit" in message


def test_a_typo_in_a_parameter_fails_before_any_stage_runs(monkeypatch, tmp_path, capsys):
    ran = []
    monkeypatch.setattr(pipeline, "execute_notebook", lambda *args, **kwargs: ran.append(args))
    monkeypatch.setattr(pipeline, "scores_stage", lambda *args, **kwargs: ran.append(args))
    monkeypatch.setattr(pipeline, "RUNS_DIR", tmp_path)
    code = cli.main(["run", "--profile", "synthetic", "--no-readme", "-p", "n_bootsrap", "5",
                     "-p", "data_dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 1 and ran == [] and not list(tmp_path.iterdir())
    assert "unknown parameter(s) ['n_bootsrap']" in err and "n_bootstrap" in err.split("05_fit_scaling_laws:")[1]


def test_a_parameter_of_an_unselected_notebook_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pipeline, "RUNS_DIR", tmp_path)
    code = cli.main(["run", "--profile", "synthetic", "--from", "02", "--to", "04", "-p", "n_bootstrap", "5"])
    assert code == 1 and "['n_bootstrap']" in capsys.readouterr().err


def test_missing_inputs_of_a_partial_run_are_named(tmp_path):
    def output(key: str) -> Path:
        return tmp_path / OUTPUT_FILES[key]

    assert missing_inputs(DEFAULT_STAGES, list(DEFAULT_STAGES[1:]), output) == []
    missing = missing_inputs(DEFAULT_STAGES, ["05_fit_scaling_laws", "06_figures"], output)
    assert missing == [f"{output(key)} (input of 05_fit_scaling_laws; written by {stage}: run --from {stage})"
                       for key, stage in (("loss_matrix", "02_loss_matrix"), ("models", "02_loss_matrix"),
                                          ("frontiers", "04_frontiers"))]
    for key in ("loss_matrix", "models", "frontiers"):
        output(key).write_bytes(b"")
    assert missing_inputs(DEFAULT_STAGES, ["05_fit_scaling_laws", "06_figures"], output) == []


def test_readme_is_regenerated_only_for_the_default_profile_after_06():
    everything = list(DEFAULT_STAGES)
    assert pipeline.readme_wanted(RunOptions(profile="minipool"), everything, overridden=False)
    assert not pipeline.readme_wanted(RunOptions(profile="minipool"), everything[:5], overridden=False)
    assert not pipeline.readme_wanted(RunOptions(profile="minipool"), everything, overridden=True)
    assert not pipeline.readme_wanted(RunOptions(profile="synthetic"), everything, overridden=False)
    assert not pipeline.readme_wanted(RunOptions(profile="minipool", readme="no"), everything, overridden=False)
    assert pipeline.readme_wanted(RunOptions(profile="synthetic", readme="yes"), ["03_oracle_pairs"], overridden=True)


def test_timings_rows_are_whole_seconds(tmp_path):
    timings = pipeline.Timings(tmp_path / "runs" / "timings.tsv")
    timings.record("02_loss_matrix", 3.6)
    timings.record("total", 0.2)
    assert timings.path.read_text() == "stage\tseconds\n02_loss_matrix\t4\ntotal\t0\n"


def test_a_failing_notebook_names_the_stage_and_the_executed_notebook(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "99_broken.ipynb"
    nbformat.write(notebook, source)
    executed = tmp_path / "runs" / "99_broken.ipynb"
    executed.parent.mkdir()
    with pytest.raises(PipelineError, match=r"stage '99_broken' FAILED \(PapermillExecutionError\).*99_broken\.ipynb"):
        pipeline.execute_notebook("99_broken", source, executed, {"profile": "x"})
    assert "broken on purpose" in executed.read_text()


def test_a_failing_scores_stage_is_named(monkeypatch, tmp_path):
    import mmlaw_utils.scoring.synthetic as synthetic

    def broken(*args, **kwargs):
        raise ValueError("generator settings are broken")

    monkeypatch.setattr(synthetic, "generate_for_profile", broken)
    options = RunOptions(profile="synthetic", parameters={"data_dir": str(tmp_path / "data")}, stop="scores", readme="no")
    with pytest.raises(PipelineError, match="stage 'scores' FAILED: generator settings are broken"):
        pipeline.run_pipeline(options, runs_root=tmp_path / "runs")
    assert (tmp_path / "runs" / "synthetic" / "timings.tsv").read_text() == "stage\tseconds\n"


def test_scores_stage_runs_notebook_01_once_with_the_stale_models(monkeypatch, tmp_path):
    import mmlaw_utils.scoring.run as scoring_run

    calls = []
    monkeypatch.setattr(scoring_run, "stale_models", lambda profile, **overrides: ["models/a", "models/b"])
    monkeypatch.setattr(pipeline, "execute_notebook", lambda *args: calls.append(args))
    declared = notebook_parameters(STAGES["scores"].notebook_path())
    profile = load_profile("minipool")
    pipeline.scores_stage(profile, {"n_texts": 5, "seed": 1}, False, tmp_path, declared)
    pipeline.scores_stage(profile, {"models": "models/c"}, False, tmp_path, declared)
    (stage, notebook, output, given), (_, _, _, given_one) = calls
    assert stage == "scores" and notebook.name == "01_score_models.ipynb" and output == tmp_path / notebook.name
    assert given == {"n_texts": 5, "profile": "minipool", "models": ["models/a", "models/b"], "force": False}
    assert given_one["models"] == ["models/c"]
    calls.clear()
    monkeypatch.setattr(scoring_run, "stale_models", lambda profile, **overrides: [])
    pipeline.scores_stage(profile, {}, False, tmp_path, declared)
    assert calls == []


def test_published_notebooks_hold_no_time_progress_bar_widget_or_checkout_path(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["papermill"] = {"start_time": "2026-12-05T13:00:00", "duration": 3.2}
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"f00d": {}}}}
    cell = nbformat.v4.new_code_cell("print(paths)", execution_count=1)
    cell.metadata["papermill"] = {"duration": 0.5}
    cell.metadata["execution"] = {"iopub.execute_input": "2026-12-05T13:00:01"}
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"written: {REPO_ROOT}/figures/x.png\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="100%|####| 10/10 [00:01<00:00, 9.9it/s]\n"),
                    nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json":
                                                                 {"model_id": "f00d"}, "text/plain": "HBox()"}),
                    nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)]
    injected = nbformat.v4.new_code_cell("profile = 'x'", metadata={"tags": ["injected-parameters"]})
    notebook.cells = [nbformat.v4.new_markdown_cell("# §1"), injected, cell]
    executed, published = tmp_path / "runs" / "x.ipynb", tmp_path / "data" / "notebooks" / "x.ipynb"
    executed.parent.mkdir()
    nbformat.write(notebook, executed)
    pipeline.publish_notebook(executed, published)
    text = published.read_text()
    clean = nbformat.read(published, as_version=4)
    assert "papermill" not in text and "2026-12-05" not in text and "it/s" not in text and "f00d" not in text
    assert str(REPO_ROOT) not in text and [o.get("text", o.get("data", {}).get("text/plain")) for o in clean.cells[2].outputs] \
        == ["written: figures/x.png\n", "42"]
    assert clean.cells[1].id == "injected-parameters"
    pipeline.publish_notebook(executed, tmp_path / "again.ipynb")
    assert (tmp_path / "again.ipynb").read_bytes() == published.read_bytes()
