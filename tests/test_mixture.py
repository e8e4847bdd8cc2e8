"""Sequence-level Bayesian mixture: definition, the oracle sandwich bound, EM weights, gain kept."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize_scalar

from mmlaw_utils.analysis import mixture

losses = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)),
                elements=st.floats(0.0, 2000.0, allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(L=losses, data=st.data())
def test_mixture_is_sandwiched_between_oracle_and_oracle_plus_log_inverse_min_weight(L, data):
    k = L.shape[0]
    raw = data.draw(arrays(np.float64, k, elements=st.floats(0.01, 1.0)))
    w = raw / raw.sum()
    per = mixture.mixture_loss(L, list(range(k)), raw, per_text=True)
    best = L.min(axis=0)
    slack = 1e-9 * np.maximum(1.0, best)
    assert np.all(per >= best - slack)
    assert np.all(per <= best + math.log(1.0 / w.min()) + slack)
    # uniform by default: the upper bound is log k
    uni = mixture.mixture_loss(L, list(range(k)), per_text=True)
    assert np.all(uni <= best + math.log(k) + slack)


def test_mixture_hand_values():
    L = np.array([[1.0, 3.0], [2.0, 1.0]])
    # text 0: -log(0.5 e^-1 + 0.5 e^-2); text 1: -log(0.5 e^-3 + 0.5 e^-1)
    t0 = -math.log(0.5 * math.exp(-1) + 0.5 * math.exp(-2))
    t1 = -math.log(0.5 * math.exp(-3) + 0.5 * math.exp(-1))
    assert mixture.mixture_loss(L, [0, 1], per_text=True) == pytest.approx([t0, t1], rel=1e-14)
    assert mixture.mixture_loss(L, [0, 1]) == pytest.approx((t0 + t1) / 2, rel=1e-14)
    # a weight of 1 on one model gives that model's loss; identical models give their common loss
    assert mixture.mixture_loss(L, [0, 1], [1.0, 0.0]) == pytest.approx(2.0)
    assert mixture.mixture_loss(np.array([[7.0, 9.0], [7.0, 9.0]]), [0, 1]) == pytest.approx(8.0)
    # no underflow at realistic text losses (thousands of nats)
    big = L * 1000.0
    assert np.isfinite(mixture.mixture_loss(big, [0, 1], per_text=True)).all()


def test_bad_weights_are_rejected():
    L = np.ones((2, 3))
    with pytest.raises(ValueError, match="one entry per subset member"):
        mixture.mixture_loss(L, [0, 1], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        mixture.mixture_loss(L, [0, 1], [1.0, -1.0])


def test_em_weights_match_direct_maximum_likelihood_for_a_pair():
    rng = np.random.default_rng(0)
    L = rng.normal(5.0, 1.5, size=(2, 400))
    w = mixture.fit_mixture_weights(L, [0, 1])

    def mean_loss(a):
        return mixture.mixture_loss(L, [0, 1], [a, 1 - a])

    best = minimize_scalar(mean_loss, bounds=(1e-9, 1 - 1e-9), method="bounded", options={"xatol": 1e-10})
    assert w[0] == pytest.approx(best.x, abs=1e-5)
    assert mean_loss(w[0]) <= best.fun + 1e-10


def test_em_puts_all_weight_on_a_model_that_is_better_everywhere():
    L = np.array([[10.0, 11.0, 12.0], [30.0, 31.0, 32.0]])
    w = mixture.fit_mixture_weights(L, [0, 1])
    assert w[0] == pytest.approx(1.0, abs=1e-6)


def test_split_texts_is_a_seeded_partition():
    a, b = mixture.split_texts(11, seed=3)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(11))
    assert len(a) == 5 and len(b) == 6
    assert np.array_equal(a, mixture.split_texts(11, seed=3)[0])


def test_pair_table_and_gain_kept():
    rng = np.random.default_rng(1)
    K, N = 6, 300
    fam = np.array(["a", "a", "a", "b", "b", "b"])
    shared = {"a": rng.normal(0, 0.2, N), "b": rng.normal(0, 0.2, N)}
    L = np.stack([200.0 * (1 + 0.1 * i) * np.exp(shared[fam[i]] + rng.normal(0, 0.05, N)) for i in range(K)])
    params = (np.arange(K) % 3 + 1) * 10**8
    table = mixture.pair_mixture_table(L, params, fam, seed=0)
    _, ev = mixture.split_texts(N, 0)
    row = table[table["members"] == (1, 4)].iloc[0]
    assert row["group"] == "cross_family"
    assert row["oracle"] == pytest.approx(L[[1, 4]][:, ev].min(axis=0).mean())
    assert row["mix_uniform"] == pytest.approx(mixture.mixture_loss(L[:, ev], [1, 4]))
    # sandwich per pair, on means: oracle <= mixture <= oracle + log 2
    pairs = table[table["group"] != "single"]
    assert (pairs["mix_uniform"] >= pairs["oracle"] - 1e-9).all()
    assert (pairs["mix_uniform"] <= pairs["oracle"] + math.log(2) + 1e-9).all()
    kept = mixture.gain_kept(table).set_index("group")
    for group in ("same_family", "cross_family"):
        sub = pairs[pairs["group"] == group]
        expect = (sub["best_single"] - sub["mix_fitted"]).sum() / (sub["best_single"] - sub["oracle"]).sum()
        assert kept.loc[group, "kept_fitted_all"] == pytest.approx(expect)
        assert kept.loc[group, "max_gap"] == pytest.approx((sub["mix_fitted"] - sub["oracle"]).max())
    # fitted weights: the gap to the oracle is bounded by log(1 / w_min) of each pair
    w_min = np.minimum(pairs["weight_first"], 1 - pairs["weight_first"])
    with np.errstate(divide="ignore"):
        assert (pairs["mix_fitted"] - pairs["oracle"] <= -np.log(w_min) + 1e-9).all()
    fronts = mixture.mixture_frontiers(table)
    assert set(fronts) == {"single", "same_family", "cross_family"}


def test_figure4_plots_mixture_minus_oracle_on_a_symlog_axis():
    rng = np.random.default_rng(2)
    fam = np.array(["a", "a", "b", "b"])
    L = rng.gamma(20.0, 10.0, size=(4, 200))
    table = mixture.pair_mixture_table(L, np.array([1, 2, 3, 4]) * 10**6, fam, seed=0)
    from mmlaw_utils.report.figures import plot_mixture_vs_oracle

    fig = plot_mixture_vs_oracle(table)
    pairs = table[table["group"] == "cross_family"]
    ax = fig.axes[1]
    assert ax.get_yscale() == "symlog" and "millions" in ax.get_xlabel()
    offsets = ax.collections[0].get_offsets()  # fitted-weight gaps of the cross-family pairs
    np.testing.assert_allclose(np.sort(offsets[:, 1]), np.sort(pairs["mix_fitted"] - pairs["oracle"]))
    assert (offsets[:, 1] >= -1e-9).all()


def test_gain_kept_gives_nats_not_a_share_where_the_oracle_gain_is_near_zero():
    # hand-made pair means (nats per text): same_family gains 0.002 and 0.004 over the better member, its
    # mixtures lose 0.01 and 0.02; cross_family gains 2 and 4, mixtures keep 1 and 3
    table = pd.DataFrame({
        "members": [(0, 1), (0, 2), (3, 4), (3, 5)], "group": ["same_family"] * 2 + ["cross_family"] * 2,
        "params": [2.0, 3.0, 2.0, 3.0], "best_single": [10.0, 10.0, 10.0, 10.0],
        "oracle": [9.998, 9.996, 8.0, 6.0], "mix_uniform": [10.01, 10.02, 9.0, 7.0],
        "mix_fitted": [10.01, 10.02, 9.0, 7.0], "weight_first": 0.5})
    kept = mixture.gain_kept(table).set_index("group")
    assert np.isnan(kept.loc["same_family", "kept_uniform_all"])  # -0.03 / 0.006 = -5 would say nothing
    assert kept.loc["same_family", "oracle_gain_all"] == pytest.approx(0.003)
    assert kept.loc["same_family", "uniform_gain_all"] == pytest.approx(-0.015)
    assert kept.loc["cross_family", "kept_uniform_all"] == pytest.approx(4.0 / 6.0)
    assert kept.loc["cross_family", "fitted_gain_all"] == pytest.approx(2.0)
    assert mixture.gain_kept(table, min_gain=0.001).loc[0, "kept_uniform_all"] == pytest.approx(-0.03 / 0.006)
