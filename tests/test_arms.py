"""Arm diversity analysis (analysis/arms.py, report/arms.py) on hand-made loss matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis import arms


def test_pair_gain_hand_case():
    # a = [1, 3] (mean 2), b = [2, 2] (mean 2); oracle [1, 2] -> 1.5; gain 0.5
    assert arms.pair_gain(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)
    # a dominates b: no gain
    assert arms.pair_gain(np.array([1.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    with pytest.raises(ValueError, match="one length"):
        arms.pair_gain(np.ones(2), np.ones(3))


def test_router_and_within_domain_gains_hand_cases():
    xy = np.array(["x", "x", "y", "y"])
    # members that each win one domain outright: all of the oracle gain is routing
    a, b = np.array([1.0, 1.0, 3.0, 3.0]), np.array([3.0, 3.0, 1.0, 1.0])
    assert arms.router_gain(a, b, xy) == pytest.approx(1.0) == arms.pair_gain(a, b)
    # members equal on every domain's mean: no routing gain, the oracle gain (0.5) is all within domains
    a, b = np.array([1.0, 2.0, 3.0, 2.0]), np.array([2.0, 1.0, 2.0, 3.0])
    assert arms.router_gain(a, b, xy) == pytest.approx(0.0) and arms.pair_gain(a, b) == pytest.approx(0.5)
    # mixed: means a 2.75, b 2.125; router takes a on x (1.5 < 2.25) and b on y (2 < 4): loss 1.75 -> 0.375;
    # oracle [1, 1.5, 1, 3] = 1.625 -> 0.5; within 0.125 = half of x's own gain (1.5 - 1.25) plus half of y's (0)
    a, b = np.array([1.0, 2.0, 4.0, 4.0]), np.array([3.0, 1.5, 1.0, 3.0])
    assert arms.router_gain(a, b, xy) == pytest.approx(0.375)
    within = arms.pair_gain(a, b) - arms.router_gain(a, b, xy)
    assert within == pytest.approx(0.125)
    assert within == pytest.approx(0.5 * arms.pair_gain(a[:2], b[:2]) + 0.5 * arms.pair_gain(a[2:], b[2:]))
    assert arms.router_gain(a, b, np.array(["x"] * 4)) == 0.0  # one domain: the router is the better member


MODELS = pd.DataFrame({
    "model": ["f-s0", "g-s0", "f-s1", "g-s1", "f-same-s1", "g-same-s1", "f-seed2-s1"],
    "family": ["f", "g", "f", "g", "f-same", "g-same", "f-seed2"],
    "arm": ["main", "main", "main", "main", "same_data", "same_data", "seed"],
    "base_family": ["f", "g", "f", "g", "f", "g", "f"],
    "size_index": [0, 0, 1, 1, 1, 1, 1],
})  # no replicates column: the seed model retrains main's f at size 1
# 4 texts: two of domain x, two of domain y
L = np.array([
    [4.0, 4.0, 4.0, 4.0],   # f-s0
    [5.0, 5.0, 3.0, 3.0],   # g-s0
    [1.0, 1.0, 3.0, 3.0],   # f-s1
    [3.0, 3.0, 1.0, 1.0],   # g-s1
    [2.0, 2.0, 2.0, 2.0],   # f-same-s1
    [2.0, 2.0, 1.0, 3.0],   # g-same-s1
    [1.0, 2.0, 3.0, 2.0],   # f-seed2-s1
])
DOMAINS = np.array(["x", "x", "y", "y"])
ONES = np.ones((400, 4), dtype=np.int64)  # resamples that keep every text: only the seeds vary


def test_slots_and_units_put_a_seed_with_the_model_it_retrains():
    slots = arms.replica_slots(MODELS).set_index("model")
    assert slots.loc["f-seed2-s1", ["slot_arm", "family", "replica"]].tolist() == ["main", "f", 1]
    assert slots.loc["f-s1", "replica"] == 0 and slots.loc["f-same-s1", "slot_arm"] == "same_data"
    units = arms.comparison_units(MODELS).set_index(["arm", "size_index"])
    assert units.loc[("main", 1), "combos"] == [(2, 3), (6, 3)]  # f's two replicas against g's one
    assert units.loc[("seed(main)", 1), "combos"] == [(2, 6)]
    assert units.loc[("seed(main)", 1), "draw"] == "pairs" and ("seed(same_data)", 1) not in units.index
    coverage = arms.seed_coverage(MODELS).set_index(["slot_arm", "base_family", "size_index"])["n_replicas"]
    assert coverage.to_dict() == {("main", "f", 0): 1, ("main", "f", 1): 2, ("main", "g", 0): 1, ("main", "g", 1): 1,
                                  ("same_data", "f", 1): 1, ("same_data", "g", 1): 1}
    sized = MODELS.assign(params=[100, 150, 200, 260, 200, 240, 200])
    matched = arms.comparison_units(sized, max_params_ratio=1.25)
    assert set(matched["arm"]) == {"same_data", "seed(main)"}  # main: 1.5 and 1.3 apart; same_data 1.2


def test_equal_size_pair_gains_hand_values():
    gains = arms.equal_size_pair_gains(L, MODELS, DOMAINS).set_index(["arm", "size_index", "domain"])
    # main s1: f = [1,1,3,3], g = [3,3,1,1]: means 2, 2; oracle 1 -> gain 1, all of it routing
    assert gains.loc[("main", 1, "all"), ["gain", "router_gain", "within_gain"]].tolist() == pytest.approx([1, 1, 0])
    assert gains.loc[("main", 1, "x"), "gain"] == pytest.approx(0.0)
    assert gains.loc[("main", 1, "all"), "rel_gain"] == pytest.approx(0.5)
    # main s0: f = 4s (mean 4), g = [5,5,3,3] (mean 4); oracle [4,4,3,3] = 3.5 -> 0.5; router: f on x, g on y -> 0.5
    assert gains.loc[("main", 0, "all"), ["gain", "router_gain"]].tolist() == pytest.approx([0.5, 0.5])
    # same_data s1: [2,2,2,2] vs [2,2,1,3]: oracle [2,2,1,2] = 1.75 -> 0.25, within y (domain means 2 and 2)
    assert gains.loc[("same_data", 1, "all"), ["gain", "router_gain", "within_gain"]].tolist() == pytest.approx(
        [0.25, 0, 0.25])
    assert gains.loc[("same_data", 1, "y"), ["gain", "router_gain", "within_gain"]].tolist() == pytest.approx(
        [0.5, 0, 0.5])
    # seed(main) s1: f [1,1,3,3] vs f-seed2 [1,2,3,2]: means 2, 2; oracle [1,1,3,2] = 1.75 -> 0.25
    seed = gains.loc[("seed(main)", 1, "all")]
    assert seed["gain"] == pytest.approx(0.25) and (seed["family_a"], seed["family_b"]) == ("f", "f-seed2")
    assert (gains["n_texts"].loc[:, :, "x"] == 2).all()


def test_summary_compares_arms_at_their_common_sizes():
    gains = arms.equal_size_pair_gains(L, MODELS, DOMAINS)
    summary = arms.arm_gain_summary(gains)
    overall = summary[(summary["size_index"] == "all") & (summary["domain"] == "all")].set_index("arm")
    # size 0 exists only in main, so every arm is summarised at size 1 alone
    assert overall.loc["main", "mean_gain"] == pytest.approx(1.0)
    assert overall.loc["seed(main)", "mean_gain"] == pytest.approx(0.25)
    assert set(overall["n_pairs"]) == {1}
    every = arms.arm_gain_summary(gains, common_sizes=False)
    main = every[(every["arm"] == "main") & (every["size_index"] == "all") & (every["domain"] == "all")]
    assert main["mean_gain"].item() == pytest.approx(0.75)


def test_seed_resampling_widens_the_interval_when_replicas_disagree():
    table = arms.arm_gain_intervals(L, MODELS, DOMAINS, ONES).set_index(["gain", "domain", "quantity"])
    # main s1 with f's own model: gain 1; with f-seed2 [1,2,3,2] against g [3,3,1,1]: oracle [1,2,1,1] = 1.25 -> 0.75
    main = table.loc[("oracle", "all", "main")]
    assert main["estimate"] == pytest.approx((1.0 + 0.75) / 2)  # expected over the replicas
    assert (main["lo"], main["hi"]) == pytest.approx((0.75, 1.0))  # every resample holds the texts: seeds only
    assert main["seeded"] == "f" and table.loc[("oracle", "all", "same_data"), "seeded"] == ""
    # f-seed2 vs g: router takes f-seed2 on x (1.5) and g on y (1): 1.25 -> all 0.75 is routing
    router = table.loc[("router", "all", "main")]
    assert (router["estimate"], router["lo"], router["hi"]) == pytest.approx((0.875, 0.75, 1.0))
    same = table.loc[("oracle", "all", "same_data")]  # no seeds: with every text kept, no spread
    assert (same["estimate"], same["lo"], same["hi"]) == pytest.approx((0.25, 0.25, 0.25))
    assert table.loc[("oracle", "all", "main - same_data"), "estimate"] == pytest.approx(0.875 - 0.25)
    assert ("router", "x", "main") not in table.index  # per domain only the oracle (= within) gain


def test_seed_resampling_collapses_when_replicas_are_identical():
    same = L.copy()
    same[6] = same[2]  # f-seed2 retrains f exactly
    table = arms.arm_gain_intervals(same, MODELS, DOMAINS, ONES).set_index(["gain", "domain", "quantity"])
    for gain, value in (("oracle", 1.0), ("router", 1.0), ("within", 0.0)):
        row = table.loc[(gain, "all", "main")]
        assert (row["estimate"], row["lo"], row["hi"]) == pytest.approx((value, value, value))
    assert table.loc[("oracle", "all", "seed(main)"), ["estimate", "lo", "hi"]].tolist() == pytest.approx([0, 0, 0])


def _brute_force(counts_row: np.ndarray, mask: np.ndarray, a: int, b: int) -> float:
    """Oracle gain of rows a, b over the texts of ``mask`` repeated as often as the resample drew them."""
    keep = np.repeat(np.arange(L.shape[1])[mask], counts_row[mask])
    return arms.pair_gain(L[a, keep], L[b, keep])


def test_each_resample_is_a_brute_force_gain_of_one_replica():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(6, 4))
    counts[:, [0, 2]] += 1  # every resample keeps a text of each domain
    for k, row in enumerate(counts):
        one = arms.arm_gain_intervals(L, MODELS, DOMAINS, row[None, :], seed=k).set_index(["gain", "domain", "quantity"])
        for domain, mask in (("all", np.ones(4, bool)), ("x", DOMAINS == "x"), ("y", DOMAINS == "y")):
            main = one.loc[("oracle", domain, "main")]
            assert main["lo"] == main["hi"]
            assert min(abs(main["lo"] - _brute_force(row, mask, a, 3)) for a in (2, 6)) < 1e-12
            same = _brute_force(row, mask, 4, 5)
            assert one.loc[("oracle", domain, "same_data"), "lo"] == pytest.approx(same)
            assert one.loc[("oracle", domain, "seed(main)"), "lo"] == pytest.approx(_brute_force(row, mask, 2, 6))
            assert one.loc[("oracle", domain, "main - same_data"), "lo"] == pytest.approx(main["lo"] - same)
    with pytest.raises(ValueError, match="no text of domain 'x'"):
        arms.arm_gain_intervals(L, MODELS, DOMAINS, np.array([[0, 0, 1, 1]]))


def test_replica_draws_share_a_slot_across_units():
    models = pd.concat([MODELS, pd.DataFrame({"model": ["h-s1"], "family": ["h"], "arm": ["main"],
                                              "base_family": ["h"], "size_index": [1]})], ignore_index=True)
    units = arms.comparison_units(models)
    units = units[units["arm"] == "main"].reset_index(drop=True)  # s0 (f, g); s1 (f, g), (f, h), (g, h)
    draws = arms.replica_draws(units, 300, seed=1)
    at = units.set_index(["size_index", "family_a", "family_b"]).index
    fg, fh = at.get_loc((1, "f", "g")), at.get_loc((1, "f", "h"))
    # f's replica index is the combo index // 1 (g and h have one replica): the same in both units of a resample
    assert (draws[:, fg] == draws[:, fh]).all() and set(draws[:, fg]) == {0, 1}
    assert (draws[:, at.get_loc((1, "g", "h"))] == 0).all()


def test_contrast_verdicts_wait_for_the_seeds_of_every_family():
    intervals = arms.arm_gain_intervals(L, MODELS, DOMAINS, ONES)
    verdicts = arms.contrast_verdicts(intervals, arms.seed_coverage(MODELS), [1]).set_index(["contrast", "gain"])
    assert verdicts.loc[("main - seed(main)", "oracle"), "verdict"] == "needs seeds"
    assert verdicts.loc[("main - seed(main)", "oracle"), "missing"] == "g"
    assert verdicts.loc[("same_data - seed(same_data)", "within"), "missing"] == "f, g"
    # main - same_data: 0.875 [0.75, 1.0] - 0.25 excludes 0
    assert verdicts.loc[("main - same_data", "oracle"), "verdict"] == "above 0"
    seeded = pd.concat([MODELS, pd.DataFrame({"model": ["g-seed2-s1"], "family": ["g-seed2"], "arm": ["seed"],
                                              "base_family": ["g"], "size_index": [1]})], ignore_index=True)
    L2 = np.vstack([L, [[3.0, 3.0, 1.0, 1.0]]])  # g-seed2 = g: a seed pair with no gain
    intervals = arms.arm_gain_intervals(L2, seeded, DOMAINS, ONES)
    verdicts = arms.contrast_verdicts(intervals, arms.seed_coverage(seeded), [1]).set_index(["contrast", "gain"])
    # seed(main): (f, f-seed2) 0.25 and (g, g-seed2) 0 -> 0.125; main 0.875 with spread [0.75, 1]
    assert verdicts.loc[("main - seed(main)", "oracle"), "verdict"] == "above 0"
    assert verdicts.loc[("main - seed(main)", "oracle"), "estimate"] == pytest.approx(0.875 - 0.125)


LOSSES_FLIP = np.vstack([L, [[4.0, 4.0, 0.5, 0.5]]])  # f-seed3-s1: wins y where f's own model wins x
MODELS_FLIP = pd.concat([MODELS, pd.DataFrame({"model": ["f-seed3-s1"], "family": ["f-seed3"], "arm": ["seed"],
                                               "base_family": ["f"], "size_index": [1], "replicates": ["main"]})],
                        ignore_index=True)


def test_winner_seed_spread_marks_a_winner_a_reseed_flips():
    cells, winners = arms.winner_seed_spread(LOSSES_FLIP, MODELS_FLIP, DOMAINS)
    winners = winners.set_index(["size_index", "domain"])
    # s1: f's replicas [1,1,3,3], [1,2,3,2] (f wins x, g wins y) and [4,4,.5,.5] (g wins x, f wins y)
    assert winners.loc[(1, "x"), ["family", "win_share", "flipped", "other_winners"]].tolist() == ["f", 1.0, True, "g"]
    assert winners.loc[(1, "x"), "kept_share"] == pytest.approx(2 / 3) and winners.loc[(1, "x"), "n_combos"] == 3
    assert not winners.loc[(0, "x"), "flipped"] and winners.loc[(0, "x"), "n_combos"] == 1
    cell = cells.set_index(["size_index", "domain", "family"]).loc[(1, "y", "f")]
    assert (cell["win_share"], cell["win_share_min"], cell["win_share_max"]) == (0.0, 0.0, 1.0)
    assert cell["n_replicas"] == 3


def test_domain_wins_split_ties_and_name_the_winner():
    wins = arms.domain_wins(L[[4, 5]], np.array(["f", "g"]), DOMAINS).set_index(["family", "domain"])
    # domain x: both 2.0 on both texts -> ties split 0.5 each; domain y: g wins text 3 (1 < 2), f wins text 4
    assert wins.loc[("f", "x"), "win_share"] == pytest.approx(0.5)
    assert wins.loc[("g", "y"), "win_share"] == pytest.approx(0.5)
    wins = arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS)
    winners = arms.domain_winners(wins).set_index("domain")
    assert winners.loc["x", "family"] == "f" and winners.loc["y", "family"] == "g"
    assert winners["win_share"].tolist() == [1.0, 1.0]


def test_winners_by_size_and_coverage():
    wins = pd.concat([arms.domain_wins(L[[0, 1]], np.array(["f", "g"]), DOMAINS).assign(size_index=0),
                      arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS).assign(size_index=1)])
    winners = arms.winners_by_size(wins).set_index(["size_index", "domain"])
    assert winners["family"].to_dict() == {(0, "x"): "f", (0, "y"): "g", (1, "x"): "f", (1, "y"): "g"}
    assert arms.winners_by_size(pd.DataFrame()).empty
    coverage = arms.arm_coverage(MODELS, ["f-s0", "g-s0", "f-s1", "f-same-s1"]).set_index("arm")
    assert coverage.loc["main", ["n_models", "n_scored"]].tolist() == [4, 3]
    assert coverage.loc["main", "missing"] == ["g-s1"] and coverage.loc["seed", "missing"] == ["f-seed2-s1"]


def _frames(losses: np.ndarray, models: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """arms_frames' frames from a hand-made matrix, every resample keeping every text."""
    from mmlaw_utils.report import arms as report

    models = models.assign(params=1000)
    gains = arms.equal_size_pair_gains(losses, models, DOMAINS)
    main = models.index[(models["arm"] == "main") & (models["size_index"] == 1)].to_numpy()
    wins = arms.domain_wins(losses[main], models.loc[main, "family"].to_numpy(), DOMAINS).assign(size_index=1)
    intervals = pd.concat([arms.arm_gain_intervals(losses, models, DOMAINS, ONES, max_params_ratio=r).assign(selection=n)
                           for n, r in report.SELECTIONS.items()], ignore_index=True)
    seeds = arms.seed_coverage(models)
    verdicts = pd.concat([arms.contrast_verdicts(intervals[intervals["selection"] == n], seeds, [1]).assign(selection=n)
                          for n in report.SELECTIONS], ignore_index=True)
    cells, spread = arms.winner_seed_spread(losses, models, DOMAINS)
    return {"gains": gains, "summary": arms.arm_gain_summary(gains), "every_size": arms.arm_gain_summary(
        gains, common_sizes=False), "wins": wins, "winners": arms.winners_by_size(wins), "intervals": intervals,
        "verdicts": verdicts, "seeds": seeds, "winner_cells": cells, "winner_spread": spread,
        "coverage": arms.arm_coverage(models, models["model"].tolist())}


def test_report_markdown_gives_three_gains_verdicts_and_winner_spread():
    from mmlaw_utils.report import arms as report

    text = report.summary_markdown(_frames(LOSSES_FLIP, MODELS_FLIP), {"f": "code_heavy", "g": "balanced"}, [1])
    # main s1 over f's three replicas against g: oracle 1, 0.75 and (f3 [4,4,.5,.5] vs g: min [3,3,.5,.5]) 0.25,
    # all of it routing (the better member per domain is as good as the per-text best)
    assert "| main | 0.67 [0.25, 1.00] | 0.67 [0.25, 1.00] | 0.00 [0.00, 0.00] | 1 | f |" in text
    assert "| same_data | 0.25 [0.25, 0.25] | 0.00 [0.00, 0.00] | 0.25 [0.25, 0.25] | 1 | none |" in text
    assert "**main - seed(main)**" in text and "**No verdict yet**" in text and "g have none scored" in text
    assert "**same_data - seed(same_data)**: no verdict: needs seeds of f, g" in text
    assert "main: f (3 replicas); not yet: g; same_data: no family; not yet: f, g" in text
    assert "The row *all* is not an average of the domain rows" in text
    assert "| x | f 1.00 | f 1.00 [0.00, 1.00] **flips: g** |" in text and "Winners a reseed flips: 2 of 2 at size index 1" in text
    assert "| f | code_heavy | x |" in text and "Partial pool" not in text
    assert "**Size-matched sensitivity**" in text


def test_report_figure_splits_all_into_routing_and_within():
    from mmlaw_utils.report import arms as report

    frames = _frames(L, MODELS)
    fig = report.gain_figure(frames["intervals"], frames["every_size"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all", "x", "y"]
    hatched = [p for p in ax.patches if p.get_hatch() == "//" and np.isfinite(p.get_height())]
    # main's "all" bar (0.875) is all routing (within 0 with either replica of f); same_data's (0.25) all within
    main = [p for p in hatched if p.get_height() == pytest.approx(0.875)]
    assert len(main) == 1 and main[0].get_y() == pytest.approx(0.0)
    same = [p for p in hatched if p.get_y() == pytest.approx(0.25)]
    assert len(same) == 1 and same[0].get_height() == pytest.approx(0.0)
    assert "not an average" in " ".join(t.get_text() for t in ax.texts)
    assert len(fig.axes) == 2
