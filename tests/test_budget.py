"""Equal-budget gain: staircases, parameters to match and the table, against brute-force loops."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mmlaw_utils.analysis.budget import (
    equal_budget_analysis,
    equal_budget_table,
    extra_model_cost,
    horizontal_ratio,
    log_widths,
    loss_targets,
    order_quantile,
    params_to_match,
    staircase,
    sup_t_band,
)
from test_bootstrap import synthetic_pool


def test_staircase_hand_computed():
    params = np.array([10, 20, 20, 40, 50])
    losses = np.array([5.0, 6.0, 4.0, 4.0, 3.0])
    loss, used = staircase(params, losses, np.array([5, 10, 25, 45, 60]))
    np.testing.assert_array_equal(loss, [np.nan, 5.0, 4.0, 4.0, 3.0])
    np.testing.assert_array_equal(used, [np.nan, 10, 20, 20, 50])  # the tie at 40 keeps the cheaper point


def test_params_to_match_hand_computed():
    params = np.array([10, 20, 40])
    losses = np.array([5.0, 4.0, 3.0])
    got = params_to_match(params, losses, np.array([4.5, 4.0, 2.0, np.nan]))
    np.testing.assert_array_equal(got, [20, 20, np.inf, np.nan])


def test_order_quantile_keeps_inf():
    values = np.array([[1.0], [np.inf], [2.0], [3.0]])
    assert order_quantile(values, 0.5)[0] == 2.0 and order_quantile(values, 0.99)[0] == math.inf


def test_equal_budget_table_matches_brute_force():
    L, params, families = synthetic_pool(k=9, n=80)
    table = equal_budget_table(L, params, families, n_bootstrap=20, seed=2)
    mean = L.mean(axis=1)
    pairs = {(i, j): np.minimum(L[i], L[j]).mean() for i, j in itertools.combinations(range(9), 2)}
    for row in table[table["comparison"] == "pairs_vs_single"].itertuples():
        single = [mean[i] for i in range(9) if params[i] <= row.budget_params]
        ensemble = [loss for (i, j), loss in pairs.items() if params[i] + params[j] <= row.budget_params]
        assert row.reference_loss == pytest.approx(min(single), rel=1e-12)
        assert row.ensemble_loss == pytest.approx(min(ensemble), rel=1e-12)
        assert row.gain == pytest.approx(min(single) - min(ensemble), abs=1e-9)
        reach = [params[i] for i in range(9) if mean[i] <= row.ensemble_loss + 1e-9]
        assert row.reference_params_to_match == (min(reach) if reach else math.inf)
        assert row.gain_lo <= row.gain_hi and row.match_lo <= row.match_hi
    cross = table[table["comparison"] == "cross_vs_same"]
    assert len(cross) > 0 and (cross["budget_params"].diff().dropna() > 0).all()
    assert set(table["n_resamples"]) == {20}


def test_sup_t_band_covers_the_pointwise_intervals_and_every_curve_at_its_level():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 30)) * np.linspace(0.5, 2.0, 30)
    point = np.zeros(30)
    lo, hi, critical = sup_t_band(point, draws, 0.95)
    pointwise_lo, pointwise_hi = np.quantile(draws, [0.025, 0.975], axis=0)
    assert np.all(lo <= pointwise_lo) and np.all(hi >= pointwise_hi)
    assert critical > 1.96  # wider than one normal interval: 30 columns at once
    inside = ((draws >= lo) & (draws <= hi)).all(axis=1).mean()
    assert inside >= 0.95 and inside < 0.97
    # a column that never varies gets a zero-width band; it does not break the others
    lo2, hi2, _ = sup_t_band(np.r_[point, 1.0], np.column_stack([draws, np.ones(4000)]), 0.95)
    assert lo2[-1] == hi2[-1] == 1.0 and np.allclose(lo2[:-1], lo)


def test_horizontal_ratio_targets_and_widths_by_hand():
    reference = (np.array([1.0, 2.0, 4.0]), np.array([10.0, 8.0, 6.0]))
    ensemble = (np.array([3.0, 5.0]), np.array([8.0, 5.0]))
    # both reach every loss between the better of the two worst-best (6) and the cheaper first point (8)
    np.testing.assert_allclose(loss_targets(reference, ensemble, n_targets=3), [6.0, 7.0, 8.0])
    np.testing.assert_allclose(horizontal_ratio(reference, ensemble, np.array([8.0, 6.0, 4.0])),
                               [math.log(2 / 3), math.log(4 / 5), np.nan])
    np.testing.assert_allclose(log_widths(np.array([1.0, math.e, math.e**3])), [1.0, 2.0, 0.0])
    # at budget 4 the reference reaches 6; the ensemble reaches 6 at 5 params: within 4 + cheapest (1)
    assert extra_model_cost(np.array([6.0, 6.0]), np.array([4.0, 3.0]), ensemble, 1.0).tolist() == [True, False]


def test_equal_budget_summary_shares_come_from_the_simultaneous_band():
    L, params, families = synthetic_pool(k=9, n=80)
    budget, horizontal, summary = equal_budget_analysis(L, params, families, n_bootstrap=60, seed=1)
    assert budget.equals(equal_budget_table(L, params, families, n_bootstrap=60, seed=1))
    shares = summary[["share_better", "share_worse", "share_tied", "share_extra_model_cost"]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)
    for name, rows in budget.groupby("comparison"):
        # simultaneous bands hold the pointwise ones (same resamples)
        assert (rows["gain_band_lo"] <= rows["gain_lo"] + 1e-9).all() and (rows["gain_band_hi"] >= rows["gain_hi"] - 1e-9).all()
        weights = rows["log_width"] / rows["log_width"].sum()
        vertical = summary[(summary["comparison"] == name) & (summary["axis"] == "vertical")].iloc[0]
        assert vertical["share_better"] == pytest.approx(weights[rows["gain_band_lo"] > 0].sum())
        assert vertical["range_hi"] == rows["budget_params"].max()
        curve = horizontal[horizontal["comparison"] == name]
        ref_need = params_to_match(*_singles(L, params), curve["target_loss"]) if name == "pairs_vs_single" else None
        if ref_need is not None:
            np.testing.assert_array_equal(curve["reference_params"], ref_need)
    assert set(summary["axis"]) == {"vertical", "horizontal"}


def _singles(L, params):
    return np.asarray(params, dtype=float), L.mean(axis=1)
