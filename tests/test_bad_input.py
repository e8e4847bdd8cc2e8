"""Bad input gets a clear error or a safe outcome, never silent corruption (issue 9, README section 'What bad input gets')."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import tiny_models
from mmlaw_utils import config
from mmlaw_utils.analysis import lossmatrix
from mmlaw_utils.scoring import assemble, cache, kernel
from mmlaw_utils.scoring import models as scoring_models
from mmlaw_utils.scoring import run as scoring_run
from mmlaw_utils.scoring.synthetic import SyntheticSettings, generate, read_pool_file
from mmlaw_utils.texts import load_texts

FP = "cd" * 32
IDS = ["t0", "t1", "t2", "t3"]


def _results(nll, ids=IDS) -> pd.DataFrame:
    return pd.DataFrame({"text_id": ids, "nll": nll, "n_tokens": [3] * len(ids), "n_bytes": [12] * len(ids)})


def _provenance(model: str, **overrides) -> dict:
    return {"model": model, "dataset_fingerprint": FP, "n_texts": len(IDS), "complete": True,
            "params_total": 1000, **overrides}


def _pool(models: list[str], families: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"model": models, "family": families or ["f"] * len(models), "params_nominal": 10})


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    with open(path, "w") as handle:
        for i, text in enumerate(tiny_models.sample_texts(6, seed=5, max_sentences=4)):
            handle.write(json.dumps({"text_id": f"doc{i}", "text": text}) + "\n")
    return path


def _request(model_dir: Path, text_file: Path, cache_dir: Path, **kwargs) -> scoring_run.ScoreRequest:
    base = dict(model=str(model_dir), dataset=str(text_file), cache_dir=cache_dir, batch_tokens=128, device="cpu")
    return scoring_run.ScoreRequest(**{**base, **kwargs})


# ----------------------------------------------------------------- 1. cache identity
def test_models_with_the_same_last_folder_name_get_different_caches():
    assert cache.cache_path("s", "models/famx/small", FP) != cache.cache_path("s", "models/famy/small", FP)
    # one model spelt two ways is one cache; the readable stem stays
    assert cache.cache_path("s", "x", FP) == cache.cache_path("s", "./x", FP) == cache.cache_path("s", "x/", FP)
    assert cache.cache_path("s", "models/famx/small", FP).name.startswith("small-")


def test_assembly_refuses_a_cache_filed_under_another_model(tmp_path):
    # a cache of famx/small copied to where famy/small's cache belongs must not pass as famy's losses
    write = lambda model, holder: cache.write_cache(  # noqa: E731
        cache.cache_path(tmp_path, model, FP), _results([1.0, 2.0, 3.0, 4.0]), _provenance(holder))
    write("models/famx/small", "models/famx/small")
    write("models/famy/small", "models/famx/small")
    with pytest.raises(assemble.StaleCacheError, match=r"'models/famy/small'.*holds model 'models/famx/small'"):
        assemble.assemble_loss_matrix(tmp_path, _pool(["models/famx/small", "models/famy/small"], ["x", "y"]))


# ----------------------------------------------------------------- 2. stale caches at assembly
def _synthetic_profile(tmp_path: Path, n_texts: int) -> config.Profile:
    return config.Profile(
        name="tinysyn", description="", pool=tmp_path / "pool.yaml", dataset="synthetic", n_texts=n_texts,
        data_dir=tmp_path, figures_dir=tmp_path / "fig", synthetic={"n_families": 2, "sizes_b": [0.1, 1.0], "seed": 2},
    )


def test_assembly_refuses_caches_of_another_text_set_and_names_the_command(tmp_path, monkeypatch):
    from mmlaw_utils.scoring import expect as scoring_expect

    generate(SyntheticSettings(n_families=2, sizes_b=(0.1, 1.0), n_texts=30, seed=2), tmp_path)
    pool = read_pool_file(tmp_path / "pool.yaml")
    monkeypatch.setattr(scoring_expect, "load_profile", lambda name: _synthetic_profile(tmp_path, 30))
    expected = scoring_expect.profile_expectation("tinysyn", tmp_path / "scores")
    kwargs = dict(dataset_fingerprint=expected.dataset_fingerprint, check_provenance=expected.check,
                  rescore_hint=expected.rescore_hint)
    assert assemble.assemble_loss_matrix(tmp_path / "scores", pool, **kwargs).shape == (4, 30)
    # the profile's text set is cut from 30 to 25 texts: the 30-text caches are stale, all four listed
    monkeypatch.setattr(scoring_expect, "load_profile", lambda name: _synthetic_profile(tmp_path, 25))
    expected = scoring_expect.profile_expectation("tinysyn", tmp_path / "scores")
    with pytest.raises(assemble.StaleCacheError) as error:
        assemble.assemble_loss_matrix(tmp_path / "scores", pool, dataset_fingerprint=expected.dataset_fingerprint,
                                        check_provenance=expected.check, rescore_hint=expected.rescore_hint)
    message = str(error.value)
    assert all(repr(model) in message for model in pool["model"])
    assert "python -m mmlaw_utils synth --profile tinysyn" in message


def test_assembly_refuses_caches_scored_with_other_settings(tiny_model_dirs, text_file, tmp_path, monkeypatch):
    from mmlaw_utils.scoring import expect as scoring_expect

    model = str(tiny_model_dirs["tiny-gpt2"])
    scoring_run.score_model(_request(model, text_file, tmp_path), progress=False)
    profile = config.Profile(name="tiny", description="", pool=None, dataset=str(text_file), n_texts=None,
                             data_dir=tmp_path, figures_dir=tmp_path, scoring={"max_length": 32, "device": "cpu"})
    monkeypatch.setattr(scoring_expect, "load_profile", lambda name: profile)
    monkeypatch.setattr(scoring_run, "load_profile", lambda name: profile)
    expected = scoring_expect.profile_expectation("tiny", tmp_path)
    with pytest.raises(assemble.StaleCacheError, match=r"max_length: cache has 64, requested 32(.|\n)*--force"):
        assemble.assemble_loss_matrix(tmp_path, _pool([model]), dataset_fingerprint=expected.dataset_fingerprint,
                                        check_provenance=expected.check, rescore_hint=expected.rescore_hint)


# ----------------------------------------------------------------- 3. n_texts
@pytest.mark.parametrize("n_texts", [-2, 0, 2.5, True])
def test_n_texts_below_one_is_refused(text_file, n_texts):
    with pytest.raises(ValueError, match=r"n_texts must be a whole number >= 1"):
        load_texts(text_file, n_texts)


def test_cli_n_texts_negative_is_an_error_before_anything_is_written(text_file, tmp_path, capsys):
    from mmlaw_utils.cli import main

    code = main(["score", "--model", "x/y", "--dataset", str(text_file), "--cache-dir", str(tmp_path / "c"),
                 "--n-texts", "-2", "--no-progress"])
    assert code == 1 and "n_texts must be an integer >= 1, got -2" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_n_texts_beyond_the_text_set_is_refused(text_file):
    with pytest.raises(ValueError, match=r"n_texts=7 but the text set holds only 6"):
        load_texts(text_file, 7)


# ----------------------------------------------------------------- 4 and 6. text files
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_row_without_text_id_is_an_error_naming_the_line(tmp_path):
    path = _write(tmp_path / "t.jsonl", b'{"text_id": "a", "text": "one"}\n{"text": "two"}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl line 2: empty text_id"):
        load_texts(path)
    path = _write(tmp_path / "n.jsonl", b'{"text_id": "a", "text": "one"}\n{"text_id": null, "text": "two"}\n')
    with pytest.raises(ValueError, match=r"n\.jsonl line 2: empty text_id"):
        load_texts(path)


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("nocol.jsonl", b'{"text_id": "a", "body": "x"}\n', r"nocol\.jsonl line 1: no 'text' field"),
        ("nocol.csv", b"text_id,body\na,x\n", r"nocol\.csv: no 'text' column"),
        ("empty.jsonl", b"", r"empty\.jsonl' is empty"),
        ("blank.jsonl", b"\n  \n", r"blank\.jsonl' is empty"),
        ("latin1.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n', r"latin1\.jsonl line 2: not valid UTF-8"),
        ("latin1.csv", b"text\nok\ncaf\xe9\n", r"latin1\.csv line 3: not valid UTF-8"),
        ("surrogate.jsonl", b'{"text": "ok"}\n{"text": "bad \\ud800 here"}\n', r"surrogate\.jsonl line 2: field 'text' is not valid Unicode"),
        ("broken.jsonl", b'{"text": "ok"}\n{"text": \n', r"broken\.jsonl line 2: not valid JSON"),
    ],
)
def test_bad_text_files_name_the_file_and_line(tmp_path, name, data, match):
    with pytest.raises(ValueError, match=match):
        load_texts(_write(tmp_path / name, data))


# ----------------------------------------------------------------- 5. cache validation
def test_negative_nll_and_removed_rows_are_refused(tmp_path):
    path = tmp_path / "m.parquet"
    with pytest.raises(ValueError, match=r"nll below 0 for text\(s\) \['t2'\]"):
        cache.write_cache(path, _results([1.0, 2.0, -3.0, 4.0]), _provenance("m"))
    cache.write_cache(path, _results([1.0, 2.0, 3.0, 4.0]), _provenance("m"))
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 3), path)  # a row removed, provenance kept
    with pytest.raises(ValueError, match=r"m\.parquet'.*3 rows but its provenance says n_texts=4"):
        cache.read_cache(path)


@pytest.mark.parametrize(
    ("column", "values", "match"),
    [("n_tokens", [3, 0, 3, 3], r"n_tokens below 1 for text\(s\) \['t1'\]"),
     ("n_bytes", [12, 12, 12, 0], r"n_bytes below 1 for text\(s\) \['t3'\]"),
     ("text_id", ["t0", "t1", "t1", "t3"], r"duplicate text_id\(s\) \['t1'\]"),
     ("text_id", ["t0", None, "t2", "t3"], r"1 row\(s\) without a text_id")],
)
def test_damaged_cache_rows_are_refused(tmp_path, column, values, match):
    frame = _results([1.0, 2.0, 3.0, 4.0]).assign(**{column: values})
    with pytest.raises(ValueError, match=match):
        cache.write_cache(tmp_path / "m.parquet", frame, _provenance("m"))


def test_stale_notices_a_cache_with_rows_removed(tiny_model_dirs, text_file, tmp_path, monkeypatch, capsys):
    model = str(tiny_model_dirs["tiny-gpt2"])
    profile = config.Profile(name="tiny", description="", pool=tmp_path / "pool.yaml", dataset=str(text_file),
                             n_texts=None, data_dir=tmp_path, figures_dir=tmp_path,
                             scoring={"max_length": None, "batch_tokens": 128, "device": "cpu", "dtype": "auto"})
    monkeypatch.setattr(scoring_run, "load_profile", lambda name: profile)
    monkeypatch.setattr(scoring_run, "_pool_models", lambda path: pd.DataFrame({"model": [model], "revision": [None]}))
    run = scoring_run.score_model(scoring_run.request_from_settings("tiny", model), progress=False)
    assert scoring_run.stale_models("tiny") == []
    results, provenance = cache.read_cache(run.path)
    # rows removed and n_texts edited to match: only a comparison with the text set catches it
    cache.write_cache(run.path, results.iloc[1:], {**provenance, "n_texts": len(results) - 1})
    assert scoring_run.stale_models("tiny") == [model]


def test_stale_checks_the_caches_of_an_overridden_data_dir(tiny_model_dirs, text_file, tmp_path, monkeypatch):
    """A run into another data_dir (-p data_dir) has no caches there yet: its models are stale, whatever the
    profile's own folder holds; so are the models of a run on fewer texts."""
    model = str(tiny_model_dirs["tiny-gpt2"])
    profile = config.Profile(name="tiny", description="", pool=tmp_path / "pool.yaml", dataset=str(text_file),
                             n_texts=None, data_dir=tmp_path / "own", figures_dir=tmp_path,
                             scoring={"max_length": None, "batch_tokens": 128, "device": "cpu", "dtype": "auto"})
    monkeypatch.setattr(scoring_run, "load_profile", lambda name: profile)
    monkeypatch.setattr(scoring_run, "_pool_models", lambda path: pd.DataFrame({"model": [model], "revision": [None]}))
    scoring_run.score_model(scoring_run.request_from_settings("tiny", model), progress=False)
    assert scoring_run.stale_models("tiny") == []
    assert scoring_run.stale_models("tiny", data_dir=tmp_path / "elsewhere") == [model]
    assert scoring_run.stale_models("tiny", n_texts=2) == [model]
    scoring_run.score_from_settings("tiny", model, data_dir=tmp_path / "elsewhere", progress=False)
    assert scoring_run.stale_models("tiny", data_dir=tmp_path / "elsewhere") == []


# ----------------------------------------------------------------- 7. profiles
@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("dataset: x.jsonl\ndata_dir: [unclosed\n", r"bad\.yaml: not valid YAML"),
        ("dataset: x.jsonl\ndata_dir: d\nscoring:\n  max_lenght: 64\n", r"unknown key\(s\) \['scoring\.max_lenght'\]"),
        ("dataset: x.jsonl\ndata_dir: d\nn_texts: ten\n", r"key 'n_texts' must be a whole number"),
        ("dataset: x.jsonl\ndata_dir: d\nscoring: [1, 2]\n", r"key 'scoring' must be a mapping"),
        ("dataset: x.jsonl\ndata_dir: d\nscoring:\n  batch_tokens: 0\n", r"key 'scoring\.batch_tokens' must be a whole number >= 1"),
        ("dataset: x.jsonl\ndata_dir: d\nscoring:\n  dtype: float8\n", r"key 'scoring\.dtype' is 'float8'"),
    ],
)
def test_bad_profiles_name_the_file_and_key(tmp_path, monkeypatch, body, match):
    (tmp_path / "bad.yaml").write_text(body)
    monkeypatch.setattr(config, "PROFILES_DIR", tmp_path)
    with pytest.raises(ValueError, match=match):
        config.load_profile("bad")


# ----------------------------------------------------------------- 8. models and settings
def test_corrupt_weights_name_the_model(tiny_model_dirs, tmp_path):
    import shutil

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dirs["tiny-gpt2"], broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(RuntimeError, match=r"model '.*broken-model' could not be loaded"):
        scoring_models.load_model_and_tokenizer(str(broken), device="cpu")


def test_unreachable_hub_fails_fast_naming_the_model(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: the model cannot be found locally
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"model 'no-org/no-such-model'.*hub is unreachable"):
        scoring_models.load_model_and_tokenizer("no-org/no-such-model", device="cpu")
    assert time.monotonic() - start < 15


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_max_length_beyond_the_context_is_refused_before_any_partial(tiny_model_dirs, text_file, tmp_path, name):
    req = _request(tiny_model_dirs[name], text_file, tmp_path, max_length=100)
    with pytest.raises(ValueError, match=r"max_length 100 exceeds the context of model .*\(64 tokens"):
        scoring_run.score_model(req, progress=False)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.parquet"))


@pytest.mark.parametrize(("key", "value", "low"), [("batch_tokens", 0, 1), ("batch_tokens", -5, 1), ("chunk_texts", 0, 1),
                                                ("context_tokens", 0, 1), ("max_length", 1, 2), ("n_texts", -2, 1)])
def test_scoring_settings_are_checked_before_loading(tiny_model_dirs, text_file, tmp_path, key, value, low):
    with pytest.raises(ValueError, match=rf"'.*tiny-gpt2': {key} must be an integer >= {low}, got {value}"):
        _request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path, **{key: value})


# ----------------------------------------------------------------- 9. damaged partial folders
def _partial_of(tiny_model_dirs, text_file, tmp_path) -> tuple[scoring_run.ScoreRequest, Path]:
    req = _request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path, chunk_texts=2)
    texts = load_texts(text_file)
    from mmlaw_utils.texts import dataset_fingerprint

    path = cache.cache_path(tmp_path, req.model, dataset_fingerprint(texts["text_id"], texts["text"]))
    partial = cache.partial_dir(path)
    partial.mkdir(parents=True)
    return req, partial


def test_damaged_manifest_names_the_file(tiny_model_dirs, text_file, tmp_path):
    req, partial = _partial_of(tiny_model_dirs, text_file, tmp_path)
    (partial / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest.json' of an interrupted run is damaged.*--force"):
        scoring_run.score_model(req, progress=False)
    assert scoring_run.score_model(req, progress=False, force=True).computed


def test_stray_chunk_file_names_the_file(tiny_model_dirs, text_file, tmp_path):
    req, partial = _partial_of(tiny_model_dirs, text_file, tmp_path)
    calls = []

    def crash_after_two_batches() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for a kill: the first chunk is finished, the run is not

    with pytest.raises(KeyboardInterrupt):
        scoring_run.score_model(req, progress=False, on_batch=crash_after_two_batches)
    assert (partial / "manifest.json").is_file()
    (partial / "chunk_abc.parquet").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"stray file '.*chunk_abc\.parquet'"):
        scoring_run.score_model(req, progress=False)


# ----------------------------------------------------------------- 10. the right model is blamed
def test_assembly_blames_the_model_that_lost_a_row():
    long = pd.DataFrame({
        "model": ["a"] * 3 + ["b"] * 4 + ["c"] * 4,
        "text_id": IDS[:3] + IDS + IDS,
        "nll": 1.0, "n_tokens": 1, "n_bytes": 1,
    })
    models = pd.DataFrame({"model": ["a", "b", "c"], "family": "f", "params": 5})
    with pytest.raises(ValueError, match=r"text ids differ for model 'a' \(vs 'b'\): missing \['t3'\]"):
        lossmatrix.LossMatrix(long=long, models=models)


# ----------------------------------------------------------------- 13. leftovers after kills
def test_next_run_removes_temp_files_and_a_finished_partial(tiny_model_dirs, text_file, tmp_path):
    req = _request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path)
    first = scoring_run.score_model(req, progress=False)
    tmp_file = first.path.with_name(f".{first.path.name}.x1y2.tmp")  # a kill during the final write
    tmp_file.write_bytes(b"half")
    partial = cache.partial_dir(first.path)
    partial.mkdir()  # a kill between the final write and removing the chunks
    cache.write_chunk(partial, 0, first.results.iloc[:2])
    again = scoring_run.score_model(req, progress=False)
    assert not again.computed and not tmp_file.exists() and not partial.exists()


# ----------------------------------------------------------------- 14. provenance details
def test_provenance_records_threads_and_a_repo_relative_tokenizer(tmp_path, text_file, monkeypatch):
    root = tmp_path / "repo"
    tiny_models.save_tiny_model(root / "models" / "pool" / "tiny", "gpt2", "eos_only", seed=4, max_positions=64)
    monkeypatch.setattr(scoring_run, "REPO_ROOT", root)
    monkeypatch.chdir(tmp_path)  # the relative id resolves against the repository root, not the cwd
    run = scoring_run.score_model(_request("models/pool/tiny", text_file, tmp_path / "c"), progress=False)
    assert run.provenance["tokenizer"] == "models/pool/tiny"
    assert run.provenance["torch_threads"] == torch.get_num_threads()


@pytest.mark.parametrize(("dtype", "suggests_float32"), [(torch.float32, False), (torch.bfloat16, True)])
def test_nan_hint_suggests_float32_only_to_a_lower_precision_model(tiny_tokenizers, dtype, suggests_float32):
    tokenizer = tiny_tokenizers["bos"]
    model = tiny_models.build_model("llama", tokenizer, seed=9).to(dtype)
    with torch.no_grad():
        model.get_input_embeddings().weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=str(dtype)) as error:
        kernel.score_texts(model, tokenizer, ["The river."])
    assert ("try dtype='float32'" in str(error.value)) is suggests_float32


# ----------------------------------------------------------------- 15. text sets read as written (issue 19)
def _write_lines(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_case_4_a_duplicate_text_id_beyond_the_n_texts_cut_is_an_error(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [json.dumps({"text_id": i, "text": "x", "source": s})
                                               for i, s in (("a", "d1"), ("b", "d2"), ("c", "d3"), ("a", "d4"))])
    with pytest.raises(ValueError, match=r"duplicate text_id 'a' \(.*t.jsonl line 1, .*t.jsonl line 4\)"):
        load_texts(path, n_texts=2)
    from mmlaw_utils.texts import text_field

    with pytest.raises(ValueError, match="duplicate text_id 'a'"):  # the later row's source is never used
        text_field(path, ["a"], "source")


def test_case_5_csv_ids_are_strings_as_written(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text_id,text\n001,first\n1,second\n12345678901234567890,third\nx,None\n", encoding="utf-8")
    frame = load_texts(path)
    assert frame["text_id"].tolist() == ["001", "1", "12345678901234567890", "x"]  # 001 and 1 are two ids
    assert frame["text"].tolist()[-1] == "None"  # a CSV text "None" is text


def test_case_5_json_whole_numbers_are_exact_and_floats_are_refused(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", ['{"text_id": 2, "text": "a"}', '{"text_id": 12345678901234567890, "text": "b"}'])
    assert load_texts(path)["text_id"].tolist() == ["2", "12345678901234567890"]
    for bad in ("1.5", "2.0", "true", "[1]"):
        path = _write_lines(tmp_path / "f.jsonl", ['{"text_id": "a", "text": "a"}', f'{{"text_id": {bad}, "text": "b"}}'])
        with pytest.raises(ValueError, match=rf"f.jsonl line 2: text_id .* write text ids as strings"):
            load_texts(path)


def test_case_7_a_null_source_is_an_error_naming_the_text(tmp_path):
    from mmlaw_utils.texts import text_field

    path = _write_lines(tmp_path / "t.jsonl", ['{"text_id": "a", "text": "x", "source": "doc1"}',
                                               '{"text_id": "b", "text": "y", "source": null}'])
    with pytest.raises(ValueError, match=r"t.jsonl line 2: text 'b' has no source \(null\)"):
        load_texts(path)
    with pytest.raises(ValueError, match=r"t.jsonl line 2: text 'b' has no source"):
        text_field(path, ["a", "b"], "source")


def test_a_duplicate_key_in_one_json_line_names_the_line_and_key(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", ['{"text_id": "a", "text": "x"}', '{"text_id": "b", "text": "y", "text": "z"}'])
    with pytest.raises(ValueError, match=r"t.jsonl line 2: duplicate key 'text'$"):
        load_texts(path)


def test_an_offline_hub_dataset_is_one_line_naming_it(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'org/texts' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match=r"hub dataset 'org/texts' \(split 'train'\) could not be loaded "
                                         r"\(ConnectionError: .*\); the hub needs network access") as caught:
        load_texts("org/texts")
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------- 16. pools: sizes and id spellings (issue 19)
def _pool_file(tmp_path: Path, entries: list[dict]) -> Path:
    import yaml

    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "models": entries}))
    return path


@pytest.mark.parametrize("params_b", [1.0e-12, 1e30, 10**12])
def test_case_9_params_b_that_rounds_to_zero_or_overflows_names_the_model(tmp_path, params_b):
    from mmlaw_utils.pool import PoolError, load_pool

    path = _pool_file(tmp_path, [{"id": "ok", "family": "f", "params_b": 1}, {"id": "tiny", "family": "f", "params_b": params_b}])
    with pytest.raises(PoolError, match=rf"model #2 \('tiny'\): params_b {re.escape(repr(params_b))} is .* parameters; a model has"):
        load_pool(path)


def test_model_id_spellings_are_one_id_in_the_pool(tmp_path):
    from mmlaw_utils.pool import PoolError, load_pool

    assert load_pool(_pool_file(tmp_path, [{"id": "./models/x/", "family": "f", "params_b": 1}]))["model"].tolist() == ["models/x"]
    with pytest.raises(PoolError, match=r"model #2 \('models/x'\): duplicate id \(also model #1\)"):
        load_pool(_pool_file(tmp_path, [{"id": "models/x", "family": "f", "params_b": 1},
                                        {"id": "./models/x", "family": "f", "params_b": 2}]))


# ----------------------------------------------------------------- 17. cache metadata and rows you can verify (issue 19)
def _raw_cache(path: Path, frame: pd.DataFrame, provenance) -> Path:
    """A cache written by hand, bypassing write_cache's checks (as a hand edit would)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({cache.PROVENANCE_KEY: json.dumps(provenance).encode()}), path)
    return path


@pytest.mark.parametrize("key, value, message", [
    ("complete", "false", r"provenance key 'complete' must be true or false, got 'false'"),
    ("params_total", "42k", r"provenance key 'params_total' must be a whole number from 1 to 1e\+15, got '42k'"),
    ("params_total", 10**30, r"provenance key 'params_total' must be a whole number .* got 10{30}"),
    ("params_total", 1.5e9, r"provenance key 'params_total' must be a whole number"),
    ("n_texts", True, r"provenance key 'n_texts' must be a whole number"),
])
def test_malformed_cache_metadata_names_the_file_and_key(tmp_path, key, value, message):
    path = _raw_cache(tmp_path / "c.parquet", _results([1.0, 2.0, 3.0, 4.0]), _provenance("m", **{key: value}))
    with pytest.raises(ValueError, match=rf"score cache '.*c.parquet': {message}"):
        cache.read_cache(path)


def test_provenance_that_is_a_json_list_names_the_file(tmp_path):
    path = _raw_cache(tmp_path / "c.parquet", _results([1.0, 2.0, 3.0, 4.0]), [_provenance("m")])
    with pytest.raises(ValueError, match=r"c.parquet': provenance must be a JSON object, got list"):
        cache.read_cache(path)


def test_case_10_a_fractional_token_count_is_refused_not_truncated(tmp_path):
    frame = _results([1.0, 2.0, 3.0, 4.0]).astype({"n_tokens": "float64"})
    frame.loc[2, "n_tokens"] = 81.7
    path = _raw_cache(tmp_path / "c.parquet", frame, _provenance("m"))
    with pytest.raises(ValueError, match=r"n_tokens is not a whole number for text\(s\) \['t2'\] \(e.g. 81.7\)"):
        cache.read_cache(path)
    frame.loc[2, "n_tokens"] = 81.0  # a whole number stored as a float is fine
    assert cache.read_cache(_raw_cache(tmp_path / "d.parquet", frame, _provenance("m")))[0]["n_tokens"].tolist()[2] == 81


def test_case_10_rows_swapped_between_two_caches_fail_their_checksum(tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    cache.write_cache(first, _results([1.0, 2.0, 3.0, 4.0]), _provenance("a"))
    cache.write_cache(second, _results([4.0, 3.0, 2.0, 1.0]), _provenance("b"))
    rows_a, provenance_a = cache.read_cache(first)
    rows_b, provenance_b = cache.read_cache(second)
    assert provenance_a[cache.ROWS_CHECKSUM] == cache.rows_checksum(_results([1.0, 2.0, 3.0, 4.0]))
    _raw_cache(first, rows_b, provenance_a)  # each file keeps its own provenance
    _raw_cache(second, rows_a, provenance_b)
    for path in (first, second):
        with pytest.raises(ValueError, match=r"rows do not match the checksum in its provenance .*--force"):
            cache.read_cache(path)
    with pytest.raises(ValueError, match="model 'a'.*rows do not match the checksum"):
        cache_dir = tmp_path / "scores"
        cache_dir.mkdir()
        first.rename(cache.cache_path(cache_dir, "a", FP))
        assemble.assemble_loss_matrix(cache_dir, _pool(["a"]))


def test_checksum_covers_every_value_bit_and_every_id():
    base = _results([1.0, 2.0, 3.0, 4.0])
    variants = [_results([1.0, 2.0, 3.0, np.nextafter(4.0, 5.0)]), _results([1.0, 2.0, 3.0, 4.0], ["t0", "t1", "t2", "t4"]),
                base.assign(n_bytes=[12, 12, 12, 13]), base.assign(n_tokens=[3, 3, 3, 4]), base.iloc[::-1]]
    assert len({cache.rows_checksum(base), *(cache.rows_checksum(v) for v in variants)}) == 1 + len(variants)


def test_committed_caches_without_a_checksum_still_read():
    committed = sorted((Path(__file__).resolve().parents[1] / "data" / "synthetic" / "scores").glob("*.parquet"))[0]
    frame, provenance = cache.read_cache(committed)
    assert cache.ROWS_CHECKSUM not in provenance and len(frame) == provenance["n_texts"]


def test_a_complete_cache_in_a_read_only_folder_is_usable(tmp_path, monkeypatch):
    import errno

    from mmlaw_utils import io

    path = cache.cache_path(tmp_path, "m", FP)
    cache.write_cache(path, _results([1.0, 2.0, 3.0, 4.0]), _provenance("m"))

    def read_only(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self.path))

    monkeypatch.setattr(io.ExclusiveLock, "__enter__", read_only)  # root ignores chmod, so the folder is simulated
    with cache.CacheLock(path, "m"):
        assert cache.read_cache(path)[1]["model"] == "m"
    with pytest.raises(RuntimeError, match=r"model 'other': cannot score into read-only folder .* give it a writable"):
        with cache.CacheLock(cache.cache_path(tmp_path, "other", FP), "other"):
            pass


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno

    from mmlaw_utils import cli

    def full(table, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cache, "atomic_write_table", full)
    code = cli.main(["synth", "--profile", "synthetic", "--data-dir", str(tmp_path), "--force"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and ".parquet" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------- 18. notebook parameters (issue 19)
@pytest.mark.parametrize("key, value, expected", [
    ("n_bootstrap", "2.5", "-p n_bootstrap 2.5: must be a whole number >= 1"),
    ("n_bootstrap", "0", "-p n_bootstrap 0: must be a whole number >= 1"),
    ("params_unit", "0", "-p params_unit 0: must be a finite number > 0"),
    ("params_unit", "-1000000000", "-p params_unit -1000000000: must be a finite number > 0"),
    ("params_unit", "abc", "-p params_unit 'abc': must be a finite number > 0"),
    ("seed", "-1", "-p seed -1: must be a whole number >= 0"),
    ("ensemble_group", "same-family", "-p ensemble_group 'same-family': must be one of cross_family, same_family"),
])
def test_case_6_bad_notebook_parameters_stop_the_run_naming_the_key(monkeypatch, tmp_path, capsys, key, value, expected):
    from mmlaw_utils import cli, pipeline

    ran = []
    monkeypatch.setattr(pipeline, "execute_notebook", lambda *args, **kwargs: ran.append(args))
    code = cli.main(["run", "--profile", "synthetic", "--from", "02", "--no-readme", "-p", key, value,
                     "-p", "data_dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 1 and ran == [] and expected in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------- 19. no code run from data (issue 19, cases 12-13)
def test_case_12_only_the_projects_own_source_registries_are_imported(tmp_path, monkeypatch):
    import sys

    from mmlaw_utils.minipool.corpora import SOURCE_REGISTRIES, source_loader

    (tmp_path / "planted_registry.py").write_text("import os\nos.environ['MMLAW_PLANTED_RAN'] = '1'\nSOURCES = {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("MMLAW_PLANTED_RAN", raising=False)
    with pytest.raises(ValueError, match=r"pool key 'source_registry' is 'planted_registry'; allowed: mmlaw_utils.minipool.sources"):
        source_loader("planted_registry")
    assert "MMLAW_PLANTED_RAN" not in __import__("os").environ and "planted_registry" not in sys.modules
    _, names = source_loader(SOURCE_REGISTRIES[0])
    assert names  # the project's registry still loads


def test_case_13_models_and_tokenizers_load_without_remote_code(tiny_model_dirs, monkeypatch):
    import transformers

    seen = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            seen.append((klass.__name__, kwargs.get("trust_remote_code", "absent")))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    scoring_models.load_model_and_tokenizer(str(tiny_model_dirs["tiny-gpt2"]), device="cpu")
    assert {name for name, _ in seen} == {"AutoTokenizer", "AutoModelForCausalLM"}
    assert all(value is False for _, value in seen), seen
