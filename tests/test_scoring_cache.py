"""Per-model score caches: provenance, reuse, mismatch errors, locking, resume after kill -9, --stale."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tiny_models
from mmlaw_utils.scoring import cache, kernel, models
from mmlaw_utils import cli
from mmlaw_utils.scoring import run as scoring_run
from mmlaw_utils.config import Profile

CONTRACT_KEYS = {
    "model", "model_revision", "model_hash", "tokenizer", "dtype", "device", "max_length", "window_policy",
    "prefix_policy", "dataset", "dataset_fingerprint", "n_texts", "complete", "params_total", "params_nonembed",
    "package_version", "created_utc",
}


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    """14 texts of varied length as a local jsonl text set."""
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    with open(path, "w") as handle:
        for i, text in enumerate(tiny_models.sample_texts(14, seed=31, max_sentences=8)):
            handle.write(json.dumps({"text_id": f"doc{i:02d}", "text": text}) + "\n")
    return path


def request(model_dir: Path, text_file: Path, cache_dir: Path, **kwargs) -> scoring_run.ScoreRequest:
    """A small-chunk CPU request (4 texts per chunk, several batches per chunk)."""
    base = dict(model=str(model_dir), dataset=str(text_file), cache_dir=cache_dir, chunk_texts=4, batch_tokens=128, device="cpu")
    return scoring_run.ScoreRequest(**{**base, **kwargs})


def test_cache_matches_kernel_and_has_provenance(tiny_model_dirs, text_file, tmp_path):
    run = scoring_run.score_model(request(tiny_model_dirs["tiny-llama"], text_file, tmp_path), progress=False)
    assert run.computed and run.path.is_file() and run.path.parent == tmp_path
    results, provenance = cache.read_cache(run.path)
    texts = pd.read_json(text_file, lines=True, dtype={"text_id": str})
    assert results["text_id"].tolist() == texts["text_id"].tolist()  # dataset order
    model, tokenizer = models.load_model_and_tokenizer(tiny_model_dirs["tiny-llama"], device="cpu")
    direct = kernel.score_texts(model, tokenizer, texts["text"].tolist(), text_ids=texts["text_id"].tolist())
    np.testing.assert_allclose(results["nll"], direct["nll"], rtol=1e-6)
    assert (results["n_tokens"].to_numpy() == direct["n_tokens"].to_numpy()).all()
    assert CONTRACT_KEYS <= set(provenance)
    assert provenance["complete"] is True and provenance["n_texts"] == 14
    assert provenance["params_total"] == models.count_parameters(model)["params_total"]
    assert provenance["model_hash"] == models.hash_model_files(tiny_model_dirs["tiny-llama"])
    assert provenance["prefix_policy"].startswith("bos:") and provenance["max_length"] == 64
    assert not cache.partial_dir(run.path).exists()


def test_complete_matching_cache_is_reused_without_loading(tiny_model_dirs, text_file, tmp_path, monkeypatch):
    first = scoring_run.score_model(request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path), progress=False)
    stamp = first.path.stat().st_mtime_ns

    def no_loading(_request):
        raise AssertionError("model loaded although a matching cache exists")

    monkeypatch.setattr(scoring_run, "load_for_scoring", no_loading)
    again = scoring_run.score_model(request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path, dtype="float32"), progress=False)
    assert not again.computed and first.path.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.results, first.results)


def test_provenance_mismatch_is_an_error_unless_forced(tiny_model_dirs, text_file, tmp_path):
    first = scoring_run.score_model(request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path), progress=False)
    with pytest.raises(ValueError, match=r"does not match.*max_length: cache has 64, requested 32.*--force"):
        scoring_run.score_model(request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path, max_length=32), progress=False)
    with pytest.raises(ValueError, match=r"dtype: cache has 'float32', requested 'bfloat16'"):
        scoring_run.score_model(request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path, dtype="bfloat16"), progress=False)
    forced = scoring_run.score_model(
        request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path, max_length=32), force=True, progress=False
    )
    assert forced.computed and forced.provenance["max_length"] == 32 and forced.path == first.path
    assert (forced.results["nll"] != first.results["nll"]).any()  # shorter windows, other losses
    assert cache.read_cache(first.path)[1]["max_length"] == 32


def test_changed_weights_make_the_cache_stale(tmp_path, text_file):
    model_dir = tiny_models.save_tiny_model(tmp_path / "m", "gpt2", "eos_only", seed=1, max_positions=64)
    req = request(model_dir, text_file, tmp_path / "scores")
    run = scoring_run.score_model(req, progress=False)
    fingerprint = run.provenance["dataset_fingerprint"]
    assert scoring_run.cache_status(run.path, req, fingerprint, scoring_run.requested_model_hash(req))[0] == "ok"
    tiny_models.save_tiny_model(model_dir, "gpt2", "eos_only", seed=2, max_positions=64)  # retrained weights
    status, reasons = scoring_run.cache_status(run.path, req, fingerprint, scoring_run.requested_model_hash(req))
    assert status == "mismatch" and reasons[0].startswith("model_hash")
    with pytest.raises(ValueError, match="model_hash"):
        scoring_run.score_model(req, progress=False)


def test_same_model_twice_is_refused_other_models_proceed(tiny_model_dirs, text_file, tmp_path):
    llama = request(tiny_model_dirs["tiny-llama"], text_file, tmp_path)
    fingerprint = scoring_fingerprint(text_file)
    with cache.CacheLock(cache.cache_path(tmp_path, llama.model, fingerprint), llama.model):
        with pytest.raises(RuntimeError, match=r"already being scored.*tiny-llama"):
            scoring_run.score_model(llama, progress=False)
        other = scoring_run.score_model(request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path), progress=False)
        assert other.computed
    assert scoring_run.score_model(llama, progress=False).computed  # lock released


def scoring_fingerprint(text_file: Path) -> str:
    """Fingerprint of the test text set."""
    from mmlaw_utils.texts import dataset_fingerprint, load_texts

    frame = load_texts(text_file)
    return dataset_fingerprint(frame["text_id"], frame["text"])


KILLER = textwrap.dedent(
    """
    import os, signal, sys, torch
    from pathlib import Path
    torch.set_num_threads(1)
    from mmlaw_utils.scoring import run as scoring_run
    batches = 0
    def on_batch():
        global batches
        batches += 1
        if batches == int(sys.argv[4]):
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of a chunk
    req = scoring_run.ScoreRequest(model=sys.argv[1], dataset=sys.argv[2], cache_dir=Path(sys.argv[3]),
                             chunk_texts=4, batch_tokens=128, device="cpu")
    scoring_run.score_model(req, progress=False, on_batch=on_batch)
    """
)


def test_resume_after_kill_equals_uninterrupted_run(tiny_model_dirs, text_file, tmp_path):
    model_dir = tiny_model_dirs["tiny-llama"]
    fingerprint = scoring_fingerprint(text_file)
    clean_partial = cache.partial_dir(cache.cache_path(tmp_path / "clean", str(model_dir), fingerprint))
    chunks_at_batch = []  # finished chunk files present when each forward batch ends
    clean = scoring_run.score_model(
        request(model_dir, text_file, tmp_path / "clean"), progress=False,
        on_batch=lambda: chunks_at_batch.append(len(list(clean_partial.glob("chunk_*.parquet")))),
    )
    total_batches = len(chunks_at_batch)
    # kill during a batch that is neither a chunk's last nor before the first chunk is written
    kill_at = next(i + 1 for i in range(total_batches - 1) if 1 <= chunks_at_batch[i] == chunks_at_batch[i + 1])
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(model_dir), str(text_file), str(tmp_path / "killed"), str(kill_at)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    path = cache.cache_path(tmp_path / "killed", str(model_dir), fingerprint)
    partial = cache.partial_dir(path)
    finished = cache.read_chunks(partial)
    assert not path.exists() and len(finished) == chunks_at_batch[kill_at - 1] < 4  # 14 texts in 4 chunks
    resumed_batches = []
    resumed = scoring_run.score_model(
        request(model_dir, text_file, tmp_path / "killed"), progress=False, on_batch=lambda: resumed_batches.append(1)
    )
    assert 0 < len(resumed_batches) < total_batches  # finished chunks were not recomputed
    pd.testing.assert_frame_equal(resumed.results, clean.results, check_exact=True)
    strip = lambda p: {k: v for k, v in p.items() if k != "created_utc"}  # noqa: E731
    assert strip(resumed.provenance) == strip(clean.provenance)
    assert not partial.exists()


def test_partial_run_with_other_settings_is_an_error_unless_forced(tiny_model_dirs, text_file, tmp_path):
    req = request(tiny_model_dirs["tiny-gpt2"], text_file, tmp_path)
    path = cache.cache_path(tmp_path, req.model, scoring_fingerprint(text_file))
    cache.write_manifest(cache.partial_dir(path), {"model": req.model, "max_length": 16})
    with pytest.raises(ValueError, match=r"interrupted run.*max_length: cache has 16, requested 64"):
        scoring_run.score_model(req, progress=False)
    assert scoring_run.score_model(req, force=True, progress=False).computed


def test_stale_lists_missing_and_mismatched_models_only(tiny_model_dirs, text_file, tmp_path, monkeypatch, capsys):
    profile = Profile(
        name="tiny", description="", pool=tmp_path / "pool.yaml", dataset=str(text_file), n_texts=10,
        data_dir=tmp_path / "data", figures_dir=tmp_path / "fig",
        scoring={"max_length": None, "batch_tokens": 256, "device": "cpu", "dtype": "auto"},
    )
    (tmp_path / "pool.yaml").write_text("name: tiny\n")
    models = [str(tiny_model_dirs["tiny-llama"]), str(tiny_model_dirs["tiny-gpt2"])]
    monkeypatch.setattr(scoring_run, "load_profile", lambda name: profile)
    monkeypatch.setattr(scoring_run, "_pool_models", lambda path: pd.DataFrame({"model": models, "revision": [None, None]}))
    assert cli.main(["stale", "--profile", "tiny"]) == 0
    assert capsys.readouterr().out.split() == models
    assert cli.main(["score", "--profile", "tiny", "--model", models[0], "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "bits_per_byte" in out and "computed: True" in out
    assert cli.main(["stale", "--profile", "tiny"]) == 0
    assert capsys.readouterr().out.split() == [models[1]]
    profile_32 = Profile(**{**profile.__dict__, "scoring": {**profile.scoring, "max_length": 32}})
    monkeypatch.setattr(scoring_run, "load_profile", lambda name: profile_32)
    assert cli.main(["stale", "--profile", "tiny"]) == 0
    assert capsys.readouterr().out.split() == models  # window setting changed: stale again


def test_cli_errors_are_clear(tmp_path, text_file, capsys):
    missing = tmp_path / "nowhere" / "model"
    code = cli.main(["score", "--model", str(missing), "--dataset", str(text_file), "--cache-dir", str(tmp_path),
                     "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and f"model path {str(missing)!r} does not exist" in err and err.startswith("python -m mmlaw_utils score")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["stale"])
    assert exit_info.value.code == 2 and "--profile" in capsys.readouterr().err


def test_score_from_settings_resolves_paths_against_base_dir(tiny_model_dirs, text_file, tmp_path):
    base = text_file.parent
    run = scoring_run.score_from_settings(
        None, str(tiny_model_dirs["tiny-gpt2"]), progress=False, base_dir=base, dataset=text_file.name,
        data_dir=tmp_path / "out", n_texts=5, device="cpu", max_length=40, context_tokens=8,
    )
    assert run.path.parent == tmp_path / "out" / "scores" and len(run.results) == 5
    assert run.provenance["window_policy"] == "rolling(max_length=40,context_tokens=8)"
    summary = scoring_run.summarize_run(run).iloc[0]
    assert summary["tokens"] == run.results["n_tokens"].sum()
    assert summary["bits_per_byte"] == pytest.approx(
        run.results["nll"].sum() / run.results["n_bytes"].sum() / np.log(2), rel=1e-12
    )
    with pytest.raises(ValueError, match="give a profile, or both dataset and cache_dir"):
        scoring_run.score_from_settings(None, "x/y", dataset=str(text_file))


def test_notebook_01_scores_a_list_of_models_in_one_kernel(tiny_model_dirs, text_file, tmp_path):
    import nbformat
    import papermill

    from mmlaw_utils.pipeline import STAGES, kernel_name

    models = [str(tiny_model_dirs["tiny-llama"]), str(tiny_model_dirs["tiny-gpt2"])]
    executed = tmp_path / "01.ipynb"
    papermill.execute_notebook(
        str(STAGES["scores"].notebook_path()), str(executed), kernel_name=kernel_name(), progress_bar=False,
        parameters={"profile": None, "models": models, "dataset": str(text_file), "cache_dir": str(tmp_path / "nb"),
                    "device": "cpu", "batch_tokens": 128},
        cwd=str(STAGES["scores"].notebook_path().parent))
    for model in models:  # the same caches as scoring each model on its own in this process
        alone = scoring_run.score_model(request(Path(model), text_file, tmp_path / "alone", chunk_texts=128))
        frame, provenance = cache.read_cache(cache.cache_path(tmp_path / "nb", model, alone.provenance["dataset_fingerprint"]))
        assert provenance["model"] == model
        pd.testing.assert_frame_equal(frame, alone.results)
    outputs = [o for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", [])]
    printed = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    # two small CPU models: one worker process each, one line per model in the order they finish
    assert "[1/2] " in printed and "[2/2] " in printed and "2 model(s)" in printed
    assert all(f"] {model}: scored in " in printed for model in models)
    table = next(o["data"]["text/plain"] for o in outputs if "bits_per_byte" in o.get("data", {}).get("text/plain", ""))
    assert [line.split()[0] for line in table.splitlines() if line[:1].isdigit()][:2] == ["0", "1"]


def test_bf16_on_cpu_is_an_explicit_option_recorded_in_provenance(tiny_model_dirs, text_file, tmp_path):
    """``dtype="bfloat16"`` scores on CPU in bf16 (never the default there) and says so; losses stay near fp32."""
    fp32 = scoring_run.score_model(request(tiny_model_dirs["tiny-llama"], text_file, tmp_path / "fp32"), progress=False)
    bf16 = scoring_run.score_model(request(tiny_model_dirs["tiny-llama"], text_file, tmp_path / "bf16", dtype="bfloat16"),
                                   progress=False)
    assert fp32.provenance["dtype"] == "float32" and bf16.provenance["dtype"] == "bfloat16"
    relative = np.abs(bf16.results["nll"].to_numpy() - fp32.results["nll"].to_numpy()) / fp32.results["nll"].to_numpy()
    assert 0 < relative.max() < 2e-2
