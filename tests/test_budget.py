"""Equal-budget gain: staircases, parameters to match and the table, against brute-force loops."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mmlaw_utils.analysis.budget import equal_budget_table, order_quantile, params_to_match, staircase
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
