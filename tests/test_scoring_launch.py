"""submitit launcher: GPU sizing by hand, and a real LocalExecutor run on two tiny local models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import tiny_models
from mmlaw_utils.scoring import cache, kernel, launch, models


@pytest.mark.parametrize(
    ("params", "dtype", "gpus"),
    [
        (135e6, "auto", 1),
        (7e9, "bfloat16", 1),  # 16.8 GB
        (32e9, "auto", 1),  # 76.8 GB <= 80
        (34e9, "auto", 2),  # 81.6 GB
        (70e9, "auto", 3),  # 168 GB -> 2.1 GPUs
        (70e9, "float32", 5),  # 336 GB -> 4.2 GPUs
    ],
)
def test_gpus_for_params_hand_computed(params, dtype, gpus):
    assert launch.gpus_for_params(params, dtype) == gpus


def test_job_plan_sizes_gpus_and_carries_revision():
    pool = pd.DataFrame({"model": ["a/small", "b/big"], "params_nominal": [1e9, 70e9], "revision": [None, "abc123"]})
    plan = launch.job_plan(pool, {"profile": "p"}, use_gpus=True)
    assert plan["gpus"].tolist() == [1, 3]
    assert plan["settings"][1] == {"profile": "p", "model": "b/big", "revision": "abc123"}
    assert "revision" not in plan["settings"][0]
    assert launch.job_plan(pool, {}, use_gpus=False)["gpus"].tolist() == [0, 0]


def test_local_executor_scores_two_models_in_subprocesses(tiny_model_dirs, tmp_path):
    texts = tiny_models.sample_texts(6, seed=41)
    dataset = tmp_path / "texts.jsonl"
    dataset.write_text("".join(json.dumps({"text_id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    pool = pd.DataFrame({"model": [str(p) for p in tiny_model_dirs.values()], "params_nominal": [1e5, 1e5]})
    settings = {"dataset": str(dataset), "cache_dir": str(tmp_path / "scores"), "device": "cpu", "threads": 1}
    jobs = launch.submit(launch.job_plan(pool, settings, use_gpus=False), executor="local", folder=tmp_path / "logs")
    summaries = [job.result() for job in jobs]  # raises if a job failed
    assert [s["model"] for s in summaries] == pool["model"].tolist()
    assert all(s["computed"] and s["texts"] == 6 for s in summaries)
    for model_dir in tiny_model_dirs.values():
        (path,) = (tmp_path / "scores").glob(f"{cache.model_slug(str(model_dir))}__*.parquet")
        results, provenance = cache.read_cache(path)
        model, tokenizer = models.load_model_and_tokenizer(model_dir, device="cpu")
        direct = kernel.score_texts(model, tokenizer, texts)
        np.testing.assert_allclose(results["nll"], direct["nll"], rtol=1e-6)
        assert provenance["complete"] and provenance["model"] == str(model_dir)
