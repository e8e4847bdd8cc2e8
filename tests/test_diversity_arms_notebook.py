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
    for name in ("arms_pair_gains.csv", "arms_summary.csv", "arms_gains.csv", "arms_verdicts.csv", "domain_wins.csv",
                 "arms_winner_seeds.csv", "arms.md"):
        assert (data_dir / name).stat().st_size > 0, name
    assert (figures_dir / "arms_gain.png").is_file() and (figures_dir / "arms_gain.pdf").is_file()
    text = (data_dir / "arms.md").read_text()
    assert "| quantity | oracle | router | within |" in text and "nats per text" in text
    assert "**Seeds (model-level uncertainty).**" in text


def _slot(scored: pd.DataFrame) -> pd.Series:
    """(arm retrained or own arm, base family, size index) of each scored pool row; seeds without replicates: main."""
    replicates = scored["replicates"].fillna("main") if "replicates" in scored.columns else "main"
    arm = scored["arm"].where(scored["arm"] != "seed", replicates)
    return pd.Series(list(zip(arm, scored["base_family"], scored["size_index"])), index=scored.index)


def test_pair_gains_match_an_independent_computation(arms_run):
    data_dir, _ = arms_run
    gains = pd.read_csv(data_dir / "arms_pair_gains.csv")
    pool = load_pool(load_profile("minipool").pool)
    losses = _losses_by_model()
    scored = pool[pool["model"].isin(losses)].assign(slot=lambda f: _slot(f))
    texts = pd.read_json(REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl", lines=True).set_index("text_id")
    n_rows = 1 + texts["domain"].nunique()
    # main, same_data: every pair of families at a size; seed(X): every pair of replicas of one model of X
    own = scored[scored["arm"] != "seed"]
    expected = sum(k * (k - 1) // 2 for k in own.groupby(["arm", "size_index"])["family"].nunique())
    expected += sum(r * (r - 1) // 2 for r in scored.groupby("slot").size())
    assert len(gains) == expected * n_rows
    for row in gains[gains["domain"].isin(["all", "code"])].itertuples():
        at = scored[scored["size_index"] == row.size_index]
        if row.arm.startswith("seed("):
            at = at[[s[0] == row.arm[5:-1] for s in at["slot"]]]
        else:
            at = at[at["arm"] == row.arm]
        a = at.loc[at["family"] == row.family_a, "model"].item()
        b = at.loc[at["family"] == row.family_b, "model"].item()
        la, lb = losses[a], losses[b].loc[losses[a].index]
        domain = texts.loc[la.index, "domain"].to_numpy()
        if row.domain != "all":
            keep = domain == row.domain
            la, lb, domain = la[keep], lb[keep], domain[keep]
        gain = min(la.mean(), lb.mean()) - np.minimum(la.to_numpy(), lb.to_numpy()).mean()
        routed = sum((domain == d).sum() * min(la[domain == d].mean(), lb[domain == d].mean()) for d in set(domain))
        assert row.gain == pytest.approx(gain, rel=1e-5, abs=1e-6), (row.arm, row.size_index, row.family_a, row.family_b)
        assert row.router_gain == pytest.approx(min(la.mean(), lb.mean()) - routed / len(la), rel=1e-5, abs=1e-6)
        assert row.n_texts == len(la)


def test_domain_wins_and_their_seed_spread_are_shares(arms_run):
    data_dir, _ = arms_run
    wins = pd.read_csv(data_dir / "domain_wins.csv")
    if wins.empty:
        pytest.skip("no size index with every main-arm family scored yet")
    assert np.allclose(wins.groupby(["size_index", "domain"])["win_share"].sum(), 1.0)
    spread = pd.read_csv(data_dir / "arms_winner_seeds.csv")
    merged = spread.merge(wins, on=["size_index", "domain", "family"], suffixes=("", "_own"))
    assert len(merged) == len(wins) and np.allclose(merged["win_share"], merged["win_share_own"])
    assert (spread["win_share_min"] <= spread["win_share"] + 1e-12).all()
    assert (spread["win_share"] <= spread["win_share_max"] + 1e-12).all()
    assert (spread.groupby(["size_index", "domain"])["winner"].sum() == 1).all()
    summary = pd.read_csv(data_dir / "arms_summary.csv")
    assert set(summary["sizes"]) == {"shared", "own"}
    assert set(summary["arm"]) <= {"main", "same_data", "seed(main)", "seed(same_data)"}
    json.dumps(summary.to_dict())  # plain values only


def test_three_gains_add_up_and_arms_without_seeds_match_the_summary(arms_run):
    data_dir, _ = arms_run
    gains = pd.read_csv(data_dir / "arms_gains.csv", keep_default_na=False, na_values=[""])
    gains["seeded"] = gains["seeded"].fillna("")
    overall = gains[gains["domain"] == "all"].set_index(["selection", "quantity", "gain"])["estimate"]
    for selection, quantity in {(s, q) for s, q, _ in overall.index}:
        oracle, router, within = (overall[(selection, quantity, g)] for g in ("oracle", "router", "within"))
        assert oracle == pytest.approx(router + within, rel=1e-5, abs=1e-5)
    summary = pd.read_csv(data_dir / "arms_summary.csv")
    shared = summary[(summary["sizes"] == "shared") & (summary["size_index"] == "all")].set_index(["domain", "arm"])
    oracle = gains[(gains["selection"] == "all_pairs") & (gains["gain"] == "oracle")].set_index(["domain", "quantity"])
    for (domain, arm), row in shared.iterrows():
        if oracle.loc[(domain, arm), "seeded"] == "":  # no seeds: the estimate is the arm's own models' mean
            assert oracle.loc[(domain, arm), "estimate"] == pytest.approx(row["mean_gain"], rel=1e-5)
    arms_rows = oracle[oracle["kind"] == "arm"]
    assert (arms_rows["lo"] <= arms_rows["hi"]).all()
    if ("all", "main - same_data") in oracle.index:
        difference = oracle.loc[("all", "main"), "estimate"] - oracle.loc[("all", "same_data"), "estimate"]
        assert oracle.loc[("all", "main - same_data"), "estimate"] == pytest.approx(difference, rel=1e-5, abs=1e-4)
    verdicts = pd.read_csv(data_dir / "arms_verdicts.csv", keep_default_na=False)
    scored = set(_losses_by_model())
    same_data_seeds = {m for m in scored if "-same-seed" in m}
    architecture = verdicts[verdicts["contrast"] == "same_data - seed(same_data)"]
    if len(same_data_seeds) < 15:  # 5 families x 3 sizes: until all are scored there is no verdict
        assert set(architecture["verdict"]) == {"needs seeds"}
