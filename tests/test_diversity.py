"""Pair gains over the better member, complementarity, family heatmap and gain by relation."""

from __future__ import annotations

import numpy as np
import pytest

from mmlaw_utils.analysis import diversity


def _matrix():
    # model 0 beats 1 everywhere (gain 0); 0 and 2 split the texts
    L = np.array([
        [1.0, 1.0, 1.0, 1.0],
        [2.0, 2.0, 2.0, 2.0],
        [3.0, 3.0, 0.0, 0.0],
    ])
    return L, np.array([10, 20, 40]), np.array(["a", "a", "b"])


def test_gain_matrix_hand_values():
    L, _, _ = _matrix()
    gain = diversity.pair_gain_matrix(L)
    # singles: 1.0, 2.0, 1.5; pairs: {0,1}=1.0, {0,2}=0.5, {1,2}=1.0
    assert gain[0, 1] == 0.0 and gain[0, 2] == pytest.approx(0.5) and gain[1, 2] == pytest.approx(0.5)
    assert np.allclose(gain, gain.T) and np.all(np.diag(gain) == 0)


def test_pair_table_hand_values():
    L, params, fam = _matrix()
    table = diversity.pair_diversity_table(L, params, fam).set_index(["i", "j"])
    row = table.loc[(0, 2)]
    assert not row["same_family"] and row["size_ratio"] == 4.0 and row["params"] == 50
    assert row["better"] == 0 and row["rel_gain"] == pytest.approx(0.5)
    assert row["weaker_win_share"] == pytest.approx(0.5)
    assert table.loc[(0, 1), "weaker_win_share"] == 0.0 and table.loc[(0, 1), "same_family"]
    assert table.loc[(1, 2), "better"] == 2  # 1.5 < 2.0


def test_family_matrix_counts_each_pair_once():
    L, params, fam = _matrix()
    table = diversity.pair_diversity_table(L, params, fam)
    heat = diversity.family_gain_matrix(table)
    assert heat.loc["a", "a"] == 0.0
    assert heat.loc["a", "b"] == pytest.approx(0.5) and heat.loc["b", "a"] == pytest.approx(0.5)
    assert np.isnan(heat.loc["b", "b"])  # no within-b pair


def test_gain_by_relation_and_regression_on_planted_effect():
    rng = np.random.default_rng(0)
    K, N = 12, 400
    fam = np.repeat(["a", "b", "c"], 4)
    shared = {f: rng.normal(0, 0.3, N) for f in "abc"}
    L = np.stack([100 * np.exp(shared[fam[k]] + rng.normal(0, 0.02, N)) for k in range(K)])
    params = np.tile([1, 2, 4, 8], 3) * 10**8
    table = diversity.pair_diversity_table(L, params, fam)
    rel = diversity.gain_by_relation(table).set_index("relation")
    # family-shared difficulty: cross-family pairs complement each other far more
    assert rel.loc["cross_family", "mean_gain"] > 5 * rel.loc["same_family", "mean_gain"]
    assert rel.loc["same_family", "n_pairs"] == 3 * 6 and rel.loc["cross_family", "n_pairs"] == 66 - 18
    reg = diversity.gain_regression(table).set_index("term")
    assert reg.loc["cross_family", "coef"] > 0
    # regression against numpy's own least squares on the same design
    X = np.column_stack([np.ones(len(table)), np.log10(table["size_ratio"]), (~table["same_family"]).astype(float),
                         table["weaker_win_share"]])
    coef = np.linalg.lstsq(X, table["rel_gain"].to_numpy(), rcond=None)[0]
    assert np.allclose(reg["coef"].to_numpy(), coef)


def test_plot_diversity_draws_three_panels():
    from mmlaw_utils.analysis.oracle import pair_win_shares
    from mmlaw_utils.report.figures import plot_diversity

    L, params, fam = _matrix()
    table = diversity.pair_diversity_table(L, params, fam)
    fig = plot_diversity(table, pair_win_shares(L))
    assert len(fig.axes) >= 3


def test_win_share_heatmap_is_labelled_with_the_models():
    L, params, fam = _matrix()
    table = diversity.pair_diversity_table(L, params, fam)
    from mmlaw_utils.analysis.oracle import pair_win_shares

    names = [f"models/pool/m{k}" for k in range(L.shape[0])]
    order = np.arange(L.shape[0])[::-1]
    from mmlaw_utils.report.figures import plot_diversity

    fig = plot_diversity(table, pair_win_shares(L), order, names)
    heat = [ax for ax in fig.axes if ax.get_title() == "pair win shares"][0]
    labels = [t.get_text() for t in heat.get_yticklabels()]
    assert labels == [f"m{k}" for k in order]
    family_axis = [ax for ax in fig.axes if ax.get_title().startswith("mean oracle gain")][0]
    assert {t.get_text() for t in family_axis.get_xticklabels()} == set(np.unique(fam))
