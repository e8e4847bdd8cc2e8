"""Notebook 08_real_pool (profile real's stages 02, 03, 08) on a small fake loss matrix with domains."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.pool import load_pool
from mmlaw_utils.scoring.cache import cache_path, write_cache
from mmlaw_utils.scoring.realmodels import packaged_model

NOTEBOOKS = REPO_ROOT / "notebooks"
DOMAINS = ["code"] * 8 + ["fiction"] * 8 + ["religious"] * 8
P_MEASURED = [134_515_008, 268_098_176, 494_032_768, 1_543_714_304]


def _fake_run(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Caches for the four pool models on 24 texts of three domains (the coder models win code); the text file.

    The caches carry profile real's text-set fingerprint and scoring settings (assembly refuses others),
    while their 24 made-up texts are labelled by the fake text file the notebook is pointed at.
    """
    pool = load_pool(REPO_ROOT / "configs" / "pools" / "real.yaml")
    fingerprint = json.loads((REPO_ROOT / "data" / "texts" / "mixed_real.manifest.json").read_text())["dataset_fingerprint"]
    rng = np.random.default_rng(11)
    n = len(DOMAINS)
    is_code = np.array([d == "code" for d in DOMAINS])
    base = rng.uniform(200, 400, size=n)
    L = np.stack([
        base * 1.30 + rng.normal(0, 15, n),
        base * 1.20 + rng.normal(0, 15, n),
        base * np.where(is_code, 0.8, 1.25) + rng.normal(0, 15, n),
        base * np.where(is_code, 0.6, 1.0) + rng.normal(0, 15, n),
    ])
    n_bytes = rng.integers(600, 1500, size=n)
    text_ids = [f"{d}-{i:03d}" for i, d in enumerate(DOMAINS)]
    sources = [f"{'python_stdlib' if d == 'code' else 'shakespeare' if d == 'fiction' else 'mine'}:doc{i % 3}"
               for i, d in enumerate(DOMAINS)]
    with open(root / "texts.jsonl", "w") as handle:
        for t, d, s in zip(text_ids, DOMAINS, sources):
            handle.write(json.dumps({"text_id": t, "text": f"text {t}", "domain": d, "source": s}) + "\n")
    scoring = load_profile("real").scoring
    for row, model, revision, params in zip(L, pool["model"], pool["revision"], P_MEASURED):
        frame = pd.DataFrame({"text_id": text_ids, "nll": row, "n_tokens": n_bytes // 4, "n_bytes": n_bytes})
        provenance = {"model": model, "model_revision": revision, "dataset_fingerprint": fingerprint, "complete": True,
                      "params_total": params, "params_nonembed": params // 2, "head_tied": True,
                      "gguf_quantization": "Q4_K_M", "model_variant": f"{model} variant", "dtype": scoring["dtype"],
                      "device": "cpu", "max_length": scoring["max_length"], "context_tokens": scoring["max_length"] // 2,
                      "document_prefix": packaged_model(model).document_prefix}
        write_cache(cache_path(root / "data" / "scores", model, fingerprint), frame, provenance)
    return L, n_bytes, list(pool["model"])


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    import papermill
    from jupyter_client.kernelspec import KernelSpecManager

    root = tmp_path_factory.mktemp("real_pool")
    L, n_bytes, models = _fake_run(root)
    readme_before = (REPO_ROOT / "README.md").read_text()
    os.environ.setdefault("MPLBACKEND", "Agg")
    kernel = "mmlaw" if "mmlaw" in KernelSpecManager().find_kernel_specs() else "python3"
    # 10_granularity needs segment losses; tests/test_granularity.py runs it
    stages = [s for s in load_profile("real").stages if s not in ("scores", "10_granularity")]
    assert stages[-1] == "08_real_pool"
    for stage in stages:
        extra = {"dataset": str(root / "texts.jsonl"), "figures_dir": str(root / "fig")} if stage == "08_real_pool" else {}
        papermill.execute_notebook(str(NOTEBOOKS / f"{stage}.ipynb"), str(root / f"{stage}.ipynb"), kernel_name=kernel,
                                   parameters={"profile": "real", "data_dir": str(root / "data"), **extra},
                                   cwd=str(NOTEBOOKS), progress_bar=False)
    assert (REPO_ROOT / "README.md").read_text() == readme_before  # a run in another folder leaves the README alone
    return root, L, n_bytes, models


def test_every_subset_oracle_matches_a_direct_computation(real_run):
    root, L, n_bytes, _ = real_run
    subsets = pd.read_csv(root / "data" / "real_subsets.csv")
    assert len(subsets) == 15 and (subsets["size"] >= 2).sum() == 11
    full = subsets[subsets["size"] == 4].iloc[0]
    assert full["loss"] == pytest.approx(L.min(axis=0).mean(), abs=1e-6)
    assert full["bits_per_byte"] == pytest.approx(L.min(axis=0).sum() / n_bytes.sum() / math.log(2), abs=1e-6)
    assert full["params"] == sum(P_MEASURED)
    qwen_pair = subsets[subsets["models"] == "Qwen2.5-Coder-0.5B-Instruct + Qwen2.5-Coder-1.5B-Instruct"].iloc[0]
    assert qwen_pair["group"] == "same_family"
    assert qwen_pair["loss"] == pytest.approx(L[2:].min(axis=0).mean(), abs=1e-6)


def test_domains_family_pairs_mixture_and_report(real_run):
    root, L, _, _ = real_run
    domains = pd.read_csv(root / "data" / "real_domains.csv")
    code = domains[domains["domain"] == "code"].set_index("model")["win_share"]
    assert code.sum() == pytest.approx(1.0) and code.idxmax() == "Qwen2.5-Coder-1.5B-Instruct"
    summary = pd.read_csv(root / "data" / "real_domain_summary.csv").set_index("domain")
    assert summary.loc["code", "pretraining_exposure"] == "likely: python_stdlib"
    assert summary.loc["fiction", "pretraining_exposure"] == "likely: shakespeare"
    assert pd.isna(summary.loc["religious", "pretraining_exposure"])  # "mine" is not a flagged source
    pairs = pd.read_csv(root / "data" / "real_family_pairs.csv")
    assert len(pairs) == 1 and pairs.loc[0, "n_cross_within_budget"] == 5  # all cross pairs cost less than the Qwen pair
    mixture = pd.read_csv(root / "data" / "real_mixture.csv")
    assert len(mixture) == 11 and (mixture["mix_minus_oracle"] >= -1e-9).all()
    report = (root / "data" / "real_pool.md").read_text()
    assert "instruct" in report.lower() and "quantised" in report and "*code* (likely: python_stdlib)" in report
    # the committed prefix-sensitivity table of profile real is read by default, and every cache's prefix shown
    assert "**Scoring prefix per model.**" in report and "| Qwen2.5-Coder-0.5B-Instruct | newline | `\\n` |" in report
    for stem in ("real_pool_frontier", "real_pool_domains"):
        assert (root / "fig" / f"{stem}.png").stat().st_size > 0
