"""Profile-likelihood intervals (eq. 7) against an independent brute-force grid over (A, alpha, L_inf)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from mmlaw_utils.analysis.fit import fit_scaling_law
from mmlaw_utils.analysis.profile import likelihood_threshold, profile_interval, profile_sse

PARAMS_B = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0])
NOISE = np.array([0.05, -0.08, 0.10, -0.03, 0.02, -0.09, 0.06, -0.02])


def brute_force_intervals(p, y, alphas, a_values, c_values, level):
    """Projections on each axis of the grid points with n * ln(SSE / SSE_min) <= chi2_1(level)."""
    n = y.size
    sse = np.empty((alphas.size, a_values.size, c_values.size))
    for index, alpha in enumerate(alphas):
        pred = a_values[:, None, None] * p[None, None, :] ** (-alpha) + c_values[None, :, None]
        sse[index] = ((y[None, None, :] - pred) ** 2).sum(axis=2)
    accepted = n * np.log(sse / sse.min()) <= chi2.ppf(level, 1)
    out = {}
    for name, axis, values in (("alpha", (1, 2), alphas), ("A", (0, 2), a_values), ("L_inf", (0, 1), c_values)):
        hit = values[accepted.any(axis=axis)]
        out[name] = (hit.min(), hit.max())
    return out


def test_threshold_is_the_chi2_quantile():
    assert likelihood_threshold(0.95) == pytest.approx(3.841458820694124)
    assert likelihood_threshold(0.5) == pytest.approx(0.454936423119572)


@pytest.mark.parametrize("level", [0.5, 0.95])
def test_profile_intervals_match_a_brute_force_grid(level):
    y = 3.0 * PARAMS_B ** -0.4 + 2.0 + NOISE
    fit = fit_scaling_law(PARAMS_B, y)
    assert fit.ok
    alphas = np.linspace(0.05, 1.5, 241)
    a_values = np.linspace(0.5, 8.0, 241)
    c_values = np.linspace(-2.0, 4.0, 241)  # beyond the fit's bound on purpose: the grid must stay >= 0 itself
    c_values = c_values[c_values >= 0.0]
    reference = brute_force_intervals(PARAMS_B, y, alphas, a_values, c_values, level)
    steps = {"alpha": alphas[1] - alphas[0], "A": a_values[1] - a_values[0], "L_inf": c_values[1] - c_values[0]}
    for name, (lo, hi) in reference.items():
        interval = profile_interval(fit, PARAMS_B, y, name, level)
        # every grid range is wider than the interval, so the grid does not clip it
        assert lo > {"alpha": alphas, "A": a_values, "L_inf": c_values}[name][0]
        assert interval.lo <= interval.estimate <= interval.hi
        # the grid misses the continuous optimum by a little, so its accepted set is a little smaller
        assert interval.lo == pytest.approx(lo, abs=2 * steps[name])
        assert interval.hi == pytest.approx(hi, abs=2 * steps[name])
        assert not interval.reaches_bound


def test_a_floor_that_reaches_its_bound_is_flagged_like_the_grid_shows():
    y = 5.0 * PARAMS_B ** -0.15 + NOISE  # no floor at all: L_inf = 0 is as good as any small value
    fit = fit_scaling_law(PARAMS_B, y)
    interval = profile_interval(fit, PARAMS_B, y, "L_inf", 0.95)
    assert interval.lo == 0.0 and interval.lo_at_bound and interval.reaches_bound
    reference = brute_force_intervals(PARAMS_B, y, np.linspace(0.01, 0.6, 181), np.linspace(0.5, 8.0, 181),
                                      np.linspace(0.0, 4.0, 181), 0.95)
    assert reference["L_inf"][0] == 0.0
    assert interval.hi == pytest.approx(reference["L_inf"][1], abs=2 * 4.0 / 180)


def test_profile_sse_at_the_estimate_is_the_fits_sse():
    y = 3.0 * PARAMS_B ** -0.4 + 2.0 + NOISE
    fit = fit_scaling_law(PARAMS_B, y)
    sse = fit.rmse**2 * PARAMS_B.size
    for name in ("A", "alpha", "L_inf"):
        got = profile_sse(name, np.array([getattr(fit, name)]), PARAMS_B, y, fit.alpha_bounds, fit.L_inf_bounds)[0]
        assert got == pytest.approx(sse, rel=1e-6)
