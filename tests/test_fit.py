"""Scaling-law fits (eqs. 6-10): recovery of the paper's laws, noisy recovery, unit invariance, flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlaw_utils.analysis.fit import FitStatus, ScalingFit, fit_points, fit_scaling_law, predict

# The paper's eqs. 8-10 (P in billions): (A, alpha, L_inf)
PAPER_LAWS = {
    "single": (886.1545, 0.3578, 1765.0285),
    "same_family": (979.6996, 0.8500, 1780.0938),
    "cross_family": (948.0984, 0.5516, 1625.5834),
}


def law(params_b, A, alpha, L_inf):
    return A * np.asarray(params_b, dtype=float) ** (-alpha) + L_inf


@pytest.mark.parametrize("group", sorted(PAPER_LAWS))
@pytest.mark.parametrize("n_points", [5, 12, 32])
def test_recovers_the_papers_laws_from_points_on_them(group, n_points):
    A, alpha, L_inf = PAPER_LAWS[group]
    params_b = np.geomspace(0.1, 150.0, n_points)
    fit = fit_scaling_law(params_b, law(params_b, A, alpha, L_inf))
    assert fit.A == pytest.approx(A, rel=1e-6)
    assert fit.alpha == pytest.approx(alpha, rel=1e-6)
    assert fit.L_inf == pytest.approx(L_inf, rel=1e-7)
    assert fit.status == "ok" and fit.ok
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.rmse < 1e-6
    assert fit.n_points == n_points


def test_recovers_the_papers_laws_from_irregular_points():
    rng = np.random.default_rng(11)
    for A, alpha, L_inf in PAPER_LAWS.values():
        params_b = np.sort(np.exp(rng.uniform(np.log(0.1), np.log(150.0), size=9)))
        fit = fit_scaling_law(params_b, law(params_b, A, alpha, L_inf))
        np.testing.assert_allclose([fit.A, fit.alpha, fit.L_inf], [A, alpha, L_inf], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_parameters_from_noisy_data_within_standard_errors(seed):
    rng = np.random.default_rng(seed)
    A, alpha, L_inf = 950.0, 0.55, 1620.0
    params_b = np.exp(rng.uniform(np.log(0.1), np.log(150.0), size=60))
    losses = law(params_b, A, alpha, L_inf) + rng.normal(0.0, 4.0, size=60)
    fit = fit_scaling_law(params_b, losses)
    assert fit.status == "ok"
    for estimate, se, truth in ((fit.A, fit.A_se, A), (fit.alpha, fit.alpha_se, alpha), (fit.L_inf, fit.L_inf_se, L_inf)):
        assert 0 < se < 0.05 * abs(truth)
        assert abs(estimate - truth) < 4 * se
    assert fit.rmse == pytest.approx(4.0, rel=0.3)


def test_standard_errors_match_the_spread_over_noise_draws():
    """The Jacobian SEs should describe the actual scatter of the estimates (independent check)."""
    A, alpha, L_inf = 900.0, 0.4, 1700.0
    params_b = np.geomspace(0.1, 150.0, 25)
    rng = np.random.default_rng(7)
    fits = [fit_scaling_law(params_b, law(params_b, A, alpha, L_inf) + rng.normal(0, 3.0, 25)) for _ in range(150)]
    spread = np.std([f.alpha for f in fits])
    typical_se = np.median([f.alpha_se for f in fits])
    assert typical_se == pytest.approx(spread, rel=0.3)


@settings(max_examples=40, deadline=None)
@given(
    alpha=st.floats(0.15, 1.5),
    A=st.floats(50.0, 5000.0),
    L_inf=st.floats(100.0, 3000.0),
    unit=st.sampled_from([1e-3, 1.0, 1e3, 1e9]),
    seed=st.integers(0, 2**16),
)
def test_fit_is_invariant_to_the_unit_of_P_except_A(alpha, A, L_inf, unit, seed):
    rng = np.random.default_rng(seed)
    params_b = np.geomspace(0.1, 150.0, 10)
    losses = law(params_b, A, alpha, L_inf) * (1 + rng.normal(0, 1e-3, 10))
    base = fit_scaling_law(params_b, losses)
    scaled = fit_scaling_law(params_b * unit, losses)
    assert scaled.alpha == pytest.approx(base.alpha, rel=1e-6, abs=1e-9)
    assert scaled.L_inf == pytest.approx(base.L_inf, rel=1e-6, abs=1e-6)
    # L = A P^-alpha = A unit^alpha (unit P)^-alpha
    assert scaled.A == pytest.approx(base.A * unit**base.alpha, rel=1e-5)
    assert scaled.status == base.status
    np.testing.assert_allclose(predict(scaled, params_b * unit), predict(base, params_b), rtol=1e-7)
    if base.alpha_se == base.alpha_se:  # SEs of alpha and L_inf do not depend on the unit either
        assert scaled.alpha_se == pytest.approx(base.alpha_se, rel=1e-4)
        assert scaled.L_inf_se == pytest.approx(base.L_inf_se, rel=1e-4)


def test_fewer_than_four_points_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 4 points"):
        fit_scaling_law([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="distinct parameter counts"):
        fit_scaling_law([1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        fit_scaling_law([0.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="differ in length"):
        fit_scaling_law([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0])


def test_flags_alpha_at_bound():
    params_b = np.geomspace(0.1, 150.0, 10)
    fit = fit_scaling_law(params_b, law(params_b, 900.0, 2.0, 1700.0), alpha_bounds=(0.05, 1.0))
    assert fit.alpha == pytest.approx(1.0)
    assert fit.alpha_at_bound and "alpha_at_bound" in fit.status and not fit.ok
    assert fit.grid_edge


def test_flags_L_inf_at_bound():
    params_b = np.geomspace(0.1, 150.0, 10)
    # a true floor below the default lower bound 0
    fit = fit_scaling_law(params_b, law(params_b, 900.0, 0.2, -300.0))
    assert fit.L_inf == 0.0
    assert fit.L_inf_at_bound and "L_inf_at_bound" in fit.status
    assert not fit.alpha_at_bound
    # and an upper bound on L_inf
    fit = fit_scaling_law(params_b, law(params_b, 900.0, 0.5, 1700.0), L_inf_bounds=(0.0, 1500.0))
    assert fit.L_inf == 1500.0 and fit.L_inf_at_bound


def test_rising_losses_give_A_at_zero_flag():
    # A * P^-alpha with A >= 0 can only fall with P: the constrained optimum is A = 0, L_inf = mean
    params_b = np.geomspace(0.1, 150.0, 6)
    losses = 1700.0 + 10.0 * np.log(params_b)
    fit = fit_scaling_law(params_b, losses)
    assert fit.A == 0.0 and fit.A_at_zero and "A_at_zero" in fit.status
    assert fit.L_inf == pytest.approx(losses.mean())


def test_robust_to_extreme_exponents():
    params_b = np.geomspace(0.1, 150.0, 12)
    for alpha in (0.02, 0.1, 2.5, 4.0):
        fit = fit_scaling_law(params_b, law(params_b, 500.0, alpha, 1000.0))
        assert fit.alpha == pytest.approx(alpha, rel=1e-5)
        assert fit.A == pytest.approx(500.0, rel=1e-4)


def test_predict_and_dict_round_trip():
    params_b = np.geomspace(0.1, 150.0, 8)
    fit = fit_scaling_law(params_b, law(params_b, *PAPER_LAWS["single"]))
    assert predict(fit, 1.0) == pytest.approx(886.1545 + 1765.0285)
    np.testing.assert_allclose(predict(fit, params_b), law(params_b, *PAPER_LAWS["single"]), rtol=1e-9)
    again = ScalingFit.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert again == fit
    assert json.loads(json.dumps(fit.to_dict()))["L_inf_bounds"] == [0.0, None]
    # JSON null for a missing SE reads back as NaN; extra keys are ignored
    raw = {**fit.to_dict(), "A_se": None, "params_unit": 1e9}
    assert np.isnan(ScalingFit.from_dict(raw).A_se)


def test_predict_is_eq7_for_fits_rows_and_arrays():
    assert predict((3.0, 0.5, 10.0), 1.0) == pytest.approx(13.0)
    np.testing.assert_allclose(predict({"A": 8.0, "alpha": 0.5, "L_inf": 1.0}, np.array([4.0, 16.0])), [5.0, 3.0])
    row = pd.Series({"A": 8.0, "alpha": 0.5, "L_inf": 1.0, "status": "ok"})
    np.testing.assert_allclose(predict(row, [4.0]), [5.0])
    # one law per row broadcast against a grid: 2 laws x 2 points
    laws = (np.array([[8.0], [2.0]]), np.array([[0.5], [1.0]]), np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(predict(laws, np.array([[4.0, 16.0]])), [[5.0, 3.0], [0.5, 0.125]])


def test_fit_points_never_raises_and_says_why():
    few = fit_points([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert few.status == FitStatus.TOO_FEW_POINTS == "too_few_points" and few.n_points == 3 and np.isnan(few.alpha)
    assert few.flags == (FitStatus.TOO_FEW_POINTS,) and not few.fitted
    two_sizes = fit_points([1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 2.0, 2.0])
    assert two_sizes.status == "too_few_points"
    bad = fit_points([0.0, 1.0, 2.0, 3.0], [4.0, 3.0, 2.0, 1.0])
    assert bad.status.startswith("failed: ") and "positive" in bad.status and bad.flags == (FitStatus.FAILED,)
    assert np.isnan([bad.A, bad.alpha, bad.L_inf, bad.r2]).all()
    params_b = np.geomspace(0.1, 100, 12)
    good = fit_points(params_b, law(params_b, *PAPER_LAWS["single"]))
    assert good == fit_scaling_law(params_b, law(params_b, *PAPER_LAWS["single"])) and good.fitted


def test_status_flags_parse_into_the_enum():
    params_b = np.geomspace(0.1, 100, 12)
    fit = fit_scaling_law(params_b, law(params_b, 900.0, 0.2, -300.0))
    assert FitStatus.L_INF_AT_BOUND in fit.flags and fit.fitted and not fit.ok
    assert fit.status == ",".join(fit.flags)
