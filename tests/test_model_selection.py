"""Model comparison of eq. 7, eq. 7 without a floor and the log-linear law: fits, AICc, leave-one-out error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmlaw_utils.analysis.model_selection import aicc, compare_forms, fit_log_linear, fit_no_floor, loo_rmse

PARAMS_B = np.geomspace(0.01, 50.0, 12)


def test_aicc_hand_computed():
    # n = 10, SSE = 20, two law parameters + variance: k = 3
    expected = 10 * math.log(2.0) + 6 + 2 * 3 * 4 / 6
    assert aicc(20.0, 10, 2) == pytest.approx(expected)
    assert aicc(20.0, 5, 3) == math.inf  # n <= k + 1: AICc undefined


def test_no_floor_and_log_linear_recover_exact_laws():
    A, alpha = fit_no_floor(PARAMS_B, 7.0 * PARAMS_B**-0.3)
    assert (A, alpha) == pytest.approx((7.0, 0.3), rel=1e-7)
    a, b = fit_log_linear(PARAMS_B, 20.0 - 1.5 * np.log(PARAMS_B))
    assert (a, b) == pytest.approx((20.0, 1.5), rel=1e-10)


def test_loo_rmse_of_the_log_linear_law_by_hand():
    rng = np.random.default_rng(2)
    y = 20.0 - 1.5 * np.log(PARAMS_B) + rng.normal(0, 0.3, PARAMS_B.size)
    errors = []
    for i in range(PARAMS_B.size):
        keep = np.arange(PARAMS_B.size) != i
        slope, intercept = np.polyfit(np.log(PARAMS_B[keep]), y[keep], 1)
        errors.append(intercept + slope * np.log(PARAMS_B[i]) - y[i])
    assert loo_rmse("log_linear", PARAMS_B, y) == pytest.approx(np.sqrt(np.mean(np.square(errors))))


def test_a_clear_floor_supports_eq7():
    rng = np.random.default_rng(0)
    p = np.geomspace(0.01, 100.0, 30)
    y = 900.0 * p**-0.5 + 1600.0 + rng.normal(0, 5.0, p.size)
    table = compare_forms(p, y, "g").set_index("form")
    assert table.loc["eq7", "delta_aicc"] == 0.0 and table["supported"].tolist() == [True, False, False]
    assert table.loc["log_linear", "delta_aicc"] > 10 and table.loc["eq7_no_floor", "delta_aicc"] > 10
    assert table.loc["eq7", "loo_rmse"] < table.loc["log_linear", "loo_rmse"]
    assert table["akaike_weight"].sum() == pytest.approx(1.0)


def test_a_straight_line_in_log_p_supports_the_two_parameter_law():
    rng = np.random.default_rng(1)
    p = np.geomspace(0.01, 100.0, 30)
    y = 2000.0 - 40.0 * np.log(p) + rng.normal(0, 5.0, p.size)
    table = compare_forms(p, y, "g").set_index("form")
    assert table.loc["log_linear", "supported"]
    assert not table.loc["eq7", "supported"]
