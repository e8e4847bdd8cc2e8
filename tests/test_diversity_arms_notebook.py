"""Notebook 09_diversity_arms run by the pipeline on the miniature pool's committed score caches (every arm)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.pool import load_pool
from mmlaw_utils.scoring.cache import read_cache

CACHES = REPO_ROOT / "data" / "minipool" / "scores"


@pytest.fixture(scope="module")
def arms_run(tmp_path_factory):
    """Stage 09 alone through the pipeline, into a temporary data folder whose scores/ links the committed caches."""
    from mmlaw_utils.pipeline import RunOptions, run_pipeline

    if len(list(CACHES.glob("*.parquet"))) < 2:
        pytest.skip("fewer than two models scored")
    root = tmp_path_factory.mktemp("arms")
    data_dir, figures_dir = root / "data", root / "figures"
    data_dir.mkdir()
    (data_dir / "scores").symlink_to(CACHES)
    run_pipeline(RunOptions(profile="minipool", parameters={"data_dir": str(data_dir), "figures_dir": str(figures_dir)},
                            start="09", stop="09", readme="no"), runs_root=root / "runs")
    return data_dir, figures_dir


def _losses_by_model() -> dict[str, pd.Series]:
    """nll per text id of every committed cache, read straight from the files (no assembly, no analysis code)."""
    out = {}
    for path in CACHES.glob("*.parquet"):
        frame, provenance = read_cache(path)
        out[provenance["model"]] = frame.set_index("text_id")["nll"]
    return out


def test_every_output_is_written(arms_run):
    data_dir, figures_dir = arms_run
    for name in ("arms_pair_gains.csv", "arms_summary.csv", "arms_intervals.csv", "domain_wins.csv", "arms.md"):
        assert (data_dir / name).stat().st_size > 0, name
    assert (figures_dir / "arms_gain.png").is_file() and (figures_dir / "arms_gain.pdf").is_file()
    text = (data_dir / "arms.md").read_text()
    assert "| domain | main |" in text and "nats per text" in text


def test_pair_gains_match_an_independent_computation(arms_run):
    data_dir, _ = arms_run
    gains = pd.read_csv(data_dir / "arms_pair_gains.csv")
    pool = load_pool(load_profile("minipool").pool)
    losses = _losses_by_model()
    scored = pool[pool["model"].isin(losses)]
    texts = pd.read_json(REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl", lines=True).set_index("text_id")
    # every pair of families scored at one size in one arm (seed: plus the main-arm llama), every domain and "all"
    expected_rows = 0
    for (arm, size), group in scored.groupby(["arm", "size_index"]):
        k = group["family"].nunique() + (arm == "seed" and ((scored["arm"] == "main") & (scored["family"] == "llama")
                                                           & (scored["size_index"] == size)).any())
        expected_rows += k * (k - 1) // 2 * (1 + texts["domain"].nunique())
    assert len(gains) == expected_rows
    for row in gains[gains["domain"].isin(["all", "code"])].itertuples():
        members = scored[(scored["size_index"] == row.size_index)
                         & (scored["arm"] == (row.arm if row.arm != "seed" else scored["arm"]))]
        a = members.loc[members["family"] == row.family_a, "model"].item()
        b = members.loc[members["family"] == row.family_b, "model"].item()
        la, lb = losses[a], losses[b].loc[losses[a].index]
        if row.domain != "all":
            keep = texts.loc[la.index, "domain"].to_numpy() == row.domain
            la, lb = la[keep], lb[keep]
        gain = min(la.mean(), lb.mean()) - np.minimum(la.to_numpy(), lb.to_numpy()).mean()
        assert row.gain == pytest.approx(gain, rel=1e-5, abs=1e-6), (row.arm, row.size_index, row.family_a, row.family_b)
        assert row.n_texts == len(la)


def test_domain_wins_are_shares_that_sum_to_one(arms_run):
    data_dir, _ = arms_run
    wins = pd.read_csv(data_dir / "domain_wins.csv")
    if wins.empty:
        pytest.skip("no size index with every main-arm family scored yet")
    sums = wins.groupby(["size_index", "domain"])["win_share"].sum()
    assert np.allclose(sums, 1.0)
    summary = pd.read_csv(data_dir / "arms_summary.csv")
    assert set(summary["sizes"]) == {"shared", "own"} and set(summary["arm"]) <= {"main", "same_data", "seed"}
    json.dumps(summary.to_dict())  # plain values only


def test_interval_estimates_are_the_shared_size_means_and_lie_inside_their_intervals(arms_run):
    data_dir, _ = arms_run
    intervals = pd.read_csv(data_dir / "arms_intervals.csv").set_index(["domain", "quantity"])
    summary = pd.read_csv(data_dir / "arms_summary.csv")
    shared = summary[(summary["sizes"] == "shared") & (summary["size_index"] == "all")].set_index(["domain", "arm"])
    for (domain, arm), row in shared.iterrows():
        assert intervals.loc[(domain, arm), "estimate"] == pytest.approx(row["mean_gain"], rel=1e-5)
    arm_rows = intervals[intervals["kind"] == "arm"]
    assert (arm_rows["lo"] <= arm_rows["estimate"] + 1e-9).all() and (arm_rows["estimate"] <= arm_rows["hi"] + 1e-9).all()
    if ("all", "main - same_data") in intervals.index:
        difference = intervals.loc[("all", "main"), "estimate"] - intervals.loc[("all", "same_data"), "estimate"]
        assert intervals.loc[("all", "main - same_data"), "estimate"] == pytest.approx(difference, rel=1e-5, abs=1e-4)  # csv keeps 6 digits
