"""Arm diversity analysis (analysis/arms.py) on hand-made loss matrices."""

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


MODELS = pd.DataFrame({
    "model": ["f-s0", "g-s0", "f-s1", "g-s1", "f-same-s1", "g-same-s1", "f-seed2-s1"],
    "family": ["f", "g", "f", "g", "f-same", "g-same", "f-seed2"],
    "arm": ["main", "main", "main", "main", "same_data", "same_data", "seed"],
    "base_family": ["f", "g", "f", "g", "f", "g", "f"],
    "size_index": [0, 0, 1, 1, 1, 1, 1],
})
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


def test_arm_members_adds_the_first_seed_to_the_seed_arm():
    members = arms.arm_members(MODELS)
    seed = members[members["arm"] == "seed"].sort_values("family")
    assert seed["family"].tolist() == ["f", "f-seed2"] and seed["row"].tolist() == [2, 6]


def test_equal_size_pair_gains_hand_values():
    gains = arms.equal_size_pair_gains(L, MODELS, DOMAINS).set_index(["arm", "size_index", "domain"])
    # main s1: f = [1,1,3,3], g = [3,3,1,1]: means 2, 2; oracle 1 -> gain 1; per domain: f wins x fully -> 0
    assert gains.loc[("main", 1, "all"), "gain"] == pytest.approx(1.0)
    assert gains.loc[("main", 1, "x"), "gain"] == pytest.approx(0.0)
    assert gains.loc[("main", 1, "all"), "rel_gain"] == pytest.approx(0.5)
    # main s0: f = 4s (mean 4), g = [5,5,3,3] (mean 4); oracle [4,4,3,3] = 3.5 -> 0.5; domain y: min(4,3) - 3 = 0
    assert gains.loc[("main", 0, "all"), "gain"] == pytest.approx(0.5)
    assert gains.loc[("main", 0, "y"), "gain"] == pytest.approx(0.0)
    # same_data s1: [2,2,2,2] vs [2,2,1,3]: means 2, 2; oracle [2,2,1,2] = 1.75 -> 0.25
    assert gains.loc[("same_data", 1, "all"), "gain"] == pytest.approx(0.25)
    # seed s1: f [1,1,3,3] vs f-seed2 [1,2,3,2]: means 2, 2; oracle [1,1,3,2] = 1.75 -> 0.25
    assert gains.loc[("seed", 1, "all"), "gain"] == pytest.approx(0.25)
    assert (gains["n_texts"].loc[:, :, "x"] == 2).all()


def test_summary_compares_arms_at_their_common_sizes():
    gains = arms.equal_size_pair_gains(L, MODELS, DOMAINS)
    summary = arms.arm_gain_summary(gains)
    overall = summary[(summary["size_index"] == "all") & (summary["domain"] == "all")].set_index("arm")
    # size 0 exists only in main, so every arm is summarised at size 1 alone
    assert overall.loc["main", "mean_gain"] == pytest.approx(1.0)
    assert overall.loc["seed", "mean_gain"] == pytest.approx(0.25)
    assert set(overall["n_pairs"]) == {1}
    every = arms.arm_gain_summary(gains, common_sizes=False)
    main = every[(every["arm"] == "main") & (every["size_index"] == "all") & (every["domain"] == "all")]
    assert main["mean_gain"].item() == pytest.approx(0.75)


def test_domain_wins_split_ties_and_name_the_winner():
    wins = arms.domain_wins(L[[4, 5]], np.array(["f", "g"]), DOMAINS).set_index(["family", "domain"])
    # domain x: both 2.0 on both texts -> ties split 0.5 each; domain y: g wins text 3 (1 < 2), f wins text 4
    assert wins.loc[("f", "x"), "win_share"] == pytest.approx(0.5)
    assert wins.loc[("g", "y"), "win_share"] == pytest.approx(0.5)
    wins = arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS)
    winners = arms.domain_winners(wins).set_index("domain")
    assert winners.loc["x", "family"] == "f" and winners.loc["y", "family"] == "g"
    assert winners["win_share"].tolist() == [1.0, 1.0]
    assert wins.groupby("domain")["win_share"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_params_ratio_measures_how_far_equal_size_is_from_equal_budget():
    models = MODELS.assign(params=[100, 150, 200, 250, 200, 300, 220])
    gains = arms.equal_size_pair_gains(L, models, DOMAINS).set_index(["arm", "size_index", "domain"])
    assert gains.loc[("main", 0, "all"), "params_ratio"] == pytest.approx(1.5)
    assert gains.loc[("main", 1, "x"), "params_ratio"] == pytest.approx(1.25)  # same for every domain of a pair
    assert gains.loc[("seed", 1, "all"), "params_ratio"] == pytest.approx(1.1)  # f-s1 (200) vs f-seed2-s1 (220)
    summary = arms.arm_gain_summary(gains.reset_index(), common_sizes=False).set_index(["arm", "size_index", "domain"])
    assert summary.loc[("main", "all", "all"), "max_params_ratio"] == pytest.approx(1.5)
    assert np.isnan(arms.equal_size_pair_gains(L, MODELS, DOMAINS)["params_ratio"]).all()  # no params column


def test_winners_by_size_and_coverage():
    wins = pd.concat([arms.domain_wins(L[[0, 1]], np.array(["f", "g"]), DOMAINS).assign(size_index=0),
                      arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS).assign(size_index=1)])
    winners = arms.winners_by_size(wins).set_index(["size_index", "domain"])
    # s0: x: f 4 < g 5 on both texts; y: g 3 < f 4. s1: x: f 1 < g 3; y: g 1 < f 3
    assert winners["family"].to_dict() == {(0, "x"): "f", (0, "y"): "g", (1, "x"): "f", (1, "y"): "g"}
    assert arms.winners_by_size(pd.DataFrame()).empty
    coverage = arms.arm_coverage(MODELS, ["f-s0", "g-s0", "f-s1", "f-same-s1"]).set_index("arm")
    assert coverage.loc["main", ["n_models", "n_scored"]].tolist() == [4, 3]
    assert coverage.loc["main", "missing"] == ["g-s1"] and coverage.loc["seed", "missing"] == ["f-seed2-s1"]
    assert coverage.loc["same_data", "n_scored"] == 1


def test_report_markdown_and_figure_from_hand_made_frames():
    from mmlaw_utils.report import arms as report

    gains = arms.equal_size_pair_gains(L, MODELS, DOMAINS)
    summary = arms.arm_gain_summary(gains)
    wins = arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS).assign(size_index=1)
    text = report.summary_markdown(summary, wins)
    assert "| domain | main | same_data | seed |" in text
    assert "| all | 1.000 | 0.250 | 0.250 |" in text
    assert "| x | f 1.00 |" in text and "| y | g 1.00 |" in text  # winner and its share at size index 1
    assert "| f |  | x |" in text and "| g |  | y |" in text  # domains each family wins (no mixture given)
    assert "Partial pool" not in text
    fig = report.gain_figure(summary)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["all", "x", "y"]
    assert len(fig.axes[0].patches) == 3 * 3  # 3 arms x 3 domains


def test_report_tables_per_size_mixtures_and_partial_pool():
    from mmlaw_utils.report import arms as report

    gains = arms.equal_size_pair_gains(L, MODELS.assign(params=[100, 150, 200, 250, 200, 300, 220]), DOMAINS)
    every = arms.arm_gain_summary(gains, common_sizes=False)
    # main at s0 0.5, s1 1.0 (hand values above); same_data and seed only at s1
    table = report.size_table(every)
    assert table.index.tolist() == ["main", "same_data", "seed"] and table.columns.tolist() == [0, 1]
    assert table.loc["main", 0] == pytest.approx(0.5) and np.isnan(table.loc["seed", 0])
    wins = arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS).assign(size_index=1)
    coverage = arms.arm_coverage(MODELS, MODELS["model"][:-1].tolist())
    text = report.summary_markdown(arms.arm_gain_summary(gains), wins, every, coverage, {"f": "code_heavy", "g": "balanced"})
    assert "**Partial pool**: models scored per arm: main 4/4, same_data 2/2, seed 0/1." in text
    assert "| main | 0.500 | 1.000 |" in text and "| seed |  | 0.250 |" in text
    assert "| f | code_heavy | x |" in text and "| g | balanced | y |" in text
    # shared size s1: main 250/200 = 1.25, same_data 300/200 = 1.5, seed 220/200 = 1.1 -> largest 1.5
    assert "differ in parameters by up to a factor 1.50" in text
    fig = report.gain_figure(arms.arm_gain_summary(gains), every)
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["0", "1"]
    assert report.family_mixtures(MODELS.assign(mixture=["m", "n", "m", "n", "s", "s", "m"])) == {"f": "m", "g": "n"}


def test_stratified_cluster_counts_redraw_clusters_within_each_stratum():
    from mmlaw_utils.analysis.bootstrap import stratified_cluster_counts

    clusters = np.array(["d1", "d1", "d2", "d3", "d3", "d3", "d4"])
    strata = np.array(["x", "x", "x", "y", "y", "y", "y"])
    counts = stratified_cluster_counts(clusters, strata, 200, seed=3)
    assert counts.shape == (200, 7)
    assert (counts == stratified_cluster_counts(clusters, strata, 200, seed=3)).all()
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 3] == counts[:, 5]).all()  # a cluster moves whole
    # each stratum draws as many clusters as it has: x {d1, d2}, y {d3, d4}
    assert ((counts[:, 0] + counts[:, 2]) == 2).all() and ((counts[:, 3] + counts[:, 6]) == 2).all()
    assert len({tuple(row) for row in counts}) > 1
    with pytest.raises(ValueError, match="one label per text"):
        stratified_cluster_counts(clusters, strata[:-1], 10, seed=0)


def _brute_force_arm_means(counts_row: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Arm means at the shared size (1) over the texts repeated as often as the resample drew them."""
    keep = np.repeat(np.arange(L.shape[1])[mask], counts_row[mask])
    pairs = {"main": [(2, 3)], "same_data": [(4, 5)], "seed": [(2, 6)]}  # rows of MODELS at size index 1
    return {arm: float(np.mean([arms.pair_gain(L[a, keep], L[b, keep]) for a, b in rows])) for arm, rows in pairs.items()}


def test_arm_gain_intervals_match_the_summary_and_a_brute_force_resample():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(5, 4))
    counts[:, [0, 2]] += 1  # every resample keeps a text of each domain
    table = arms.arm_gain_intervals(L, MODELS, DOMAINS, counts).set_index(["domain", "quantity"])
    summary = arms.arm_gain_summary(arms.equal_size_pair_gains(L, MODELS, DOMAINS))
    overall = summary[summary["size_index"] == "all"].set_index(["domain", "arm"])["mean_gain"]
    for (domain, arm), value in overall.items():
        assert table.loc[(domain, arm), "estimate"] == pytest.approx(value)
    assert table.loc[("all", "main - same_data"), "estimate"] == pytest.approx(1.0 - 0.25)
    assert table.loc[("all", "main"), "n_pairs"] == 1 and table.loc[("all", "main"), "kind"] == "arm"
    # one resample at a time: its interval is that resample's value, as a brute-force recomputation gives it
    for row in counts:
        one = arms.arm_gain_intervals(L, MODELS, DOMAINS, row[None, :]).set_index(["domain", "quantity"])
        for domain, mask in (("all", np.ones(4, bool)), ("x", DOMAINS == "x"), ("y", DOMAINS == "y")):
            expected = _brute_force_arm_means(row, mask)
            for arm, value in expected.items():
                assert one.loc[(domain, arm), "lo"] == pytest.approx(value) == one.loc[(domain, arm), "hi"]
            assert one.loc[(domain, "same_data - seed"), "lo"] == pytest.approx(expected["same_data"] - expected["seed"])
    with pytest.raises(ValueError, match="no text of domain 'x'"):
        arms.arm_gain_intervals(L, MODELS, DOMAINS, np.array([[0, 0, 1, 1]]))


def test_report_shows_intervals_differences_and_their_reading():
    from mmlaw_utils.report import arms as report

    rows = [("all", "main", "arm", 1, 1.0, 0.6, 1.4), ("all", "same_data", "arm", 1, 0.25, 0.1, 0.4),
            ("all", "seed", "arm", 1, 0.25, 0.2, 0.3), ("all", "main - same_data", "contrast", np.nan, 0.75, 0.3, 1.2),
            ("all", "same_data - seed", "contrast", np.nan, 0.0, -0.1, 0.1),
            ("x", "main", "arm", 1, 0.0, 0.0, 0.0), ("x", "same_data", "arm", 1, 0.5, 0.4, 0.6),
            ("x", "seed", "arm", 1, 0.1, 0.0, 0.2), ("x", "main - same_data", "contrast", np.nan, -0.5, -0.6, -0.4),
            ("x", "same_data - seed", "contrast", np.nan, 0.4, 0.2, 0.6)]
    intervals = pd.DataFrame(rows, columns=["domain", "quantity", "kind", "n_pairs", "estimate", "lo", "hi"]).assign(
        level=0.95, n_resamples=200)
    table = report.interval_table(intervals)
    assert table.columns.tolist() == ["main", "same_data", "seed", "main - same_data", "same_data - seed"]
    assert table.loc["all", "main - same_data"] == "0.75 [0.30, 1.20]"
    reading = report.contrast_reading(intervals)
    assert reading[0] == ("- **main - same_data** over all texts: 0.75 [0.30, 1.20] nats per text, above 0; per domain "
                          "above 0 in 0 of 1, below 0 in 1 (x).")
    assert "not distinguishable from 0; per domain above 0 in 1 of 1 (x), below 0 in 0." in reading[1]
    gains = arms.equal_size_pair_gains(L, MODELS, DOMAINS)
    summary = arms.arm_gain_summary(gains)
    wins = arms.domain_wins(L[[2, 3]], np.array(["f", "g"]), DOMAINS).assign(size_index=1)
    text = report.summary_markdown(summary, wins, intervals=intervals)
    assert "95% intervals over 200 resamples" in text and "| x | 0.00 [0.00, 0.00] | 0.50 [0.40, 0.60] |" in text
    fig = report.gain_figure(summary, intervals=intervals)
    bars = [c for c in fig.axes[0].containers if c.__class__.__name__ == "BarContainer"]
    assert len(bars) == 3 and all(c.errorbar is not None for c in bars)
    main_all = bars[0].errorbar.lines[2][0].get_segments()[0]  # arm main, domain "all": from lo to hi
    assert main_all[:, 1].tolist() == pytest.approx([0.6, 1.4])
