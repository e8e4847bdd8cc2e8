"""Profile-likelihood intervals for the parameters of eq. 7, L(P) = A * P^-alpha + L_inf (§3.5).

Under Gaussian errors with unknown variance, the profile likelihood-ratio interval of one
parameter theta at confidence ``level`` is {theta : n * ln(SSE(theta) / SSE_min) <= chi2_1(level)},
where SSE(theta) is the least-squares residual sum of squares (nats^2) with theta held fixed and
the other two parameters free within the fit's own bounds (A >= 0, L_inf within its bounds,
alpha within its bounds), n is the number of Pareto points and P is in the fit's unit (billions
by default). For fixed alpha the problem is linear in (A, L_inf) and solved exactly; for fixed
A or L_inf the remaining parameter is solved exactly for each alpha and alpha is minimised on a
grid refined by Brent's method.

The interval is the hull of the accepted set, located on a scan over the parameter's whole range
(bound to bound; up to a wide cap where a parameter has no upper bound) and refined by root
finding between the scan points that straddle its ends. An end that reaches a bound, or the cap,
is reported as such: that parameter is not identified by the data at this level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import chi2

from mmlaw_utils.analysis.fit import ScalingFit, _inner_solve

PROFILE_PARAMETERS = ("A", "alpha", "L_inf")
_ALPHA_GRID = 160
_SCAN_POINTS = 160
_A_SPAN = 1e6  # the A scan covers [0, A_hat * _A_SPAN]; beyond it the interval counts as unbounded


@dataclass(frozen=True)
class ProfileInterval:
    """Profile-likelihood interval of one parameter (its unit: nats for A and L_inf, none for alpha)."""

    parameter: str
    estimate: float
    lo: float
    hi: float
    level: float
    lo_at_bound: bool
    hi_at_bound: bool

    @property
    def reaches_bound(self) -> bool:
        """True when either end is a bound of the parameter (or the scan's cap)."""
        return self.lo_at_bound or self.hi_at_bound


def likelihood_threshold(level: float) -> float:
    """chi2 quantile with one degree of freedom at ``level`` (3.841 at 0.95)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(chi2.ppf(level, df=1))


def _sse_alpha_fixed(alphas: np.ndarray, p: np.ndarray, y: np.ndarray, c_lo: float, c_hi: float) -> np.ndarray:
    """Exact SSE (nats^2) at each fixed alpha, with A >= 0 and L_inf in [c_lo, c_hi] solved exactly."""
    u = p / math.exp(np.log(p).mean())  # unit-free P; SSE does not depend on the unit at fixed alpha
    return _inner_solve(u[None, :] ** (-np.asarray(alphas)[:, None]), y, c_lo, c_hi)[2]


def _sse_given_alpha(kind: str, value: float, alphas: np.ndarray, p: np.ndarray, y: np.ndarray,
                     c_lo: float, c_hi: float) -> np.ndarray:
    """SSE at each alpha with ``kind`` ("A" or "L_inf") fixed at ``value`` and the other one solved exactly."""
    x = p[None, :] ** (-np.asarray(alphas, dtype=np.float64)[:, None])  # P in the fit's unit
    if kind == "L_inf":
        target = y - value
        with np.errstate(over="ignore", invalid="ignore"):
            xx = np.einsum("ij,ij->i", x, x)
            a = np.where(xx > 0, np.maximum((x @ target) / xx, 0.0), 0.0)
            resid = target[None, :] - a[:, None] * x
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            shifted = y[None, :] - value * x
            c = np.clip(shifted.mean(axis=1), c_lo, c_hi)
            resid = shifted - c[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        sse = np.einsum("ij,ij->i", resid, resid)
    return np.where(np.isfinite(sse), sse, np.inf)


def profile_sse(parameter: str, values: np.ndarray, params: np.ndarray, losses: np.ndarray,
                alpha_bounds: tuple[float, float], L_inf_bounds: tuple[float, float]) -> np.ndarray:
    """Profile SSE (nats^2) of ``parameter`` at each of ``values``: the other two minimised within the bounds."""
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    a_lo, a_hi = alpha_bounds
    c_lo, c_hi = L_inf_bounds
    if parameter == "alpha":
        return _sse_alpha_fixed(values, p, y, c_lo, c_hi)
    if parameter not in ("A", "L_inf"):
        raise ValueError(f"unknown parameter {parameter!r}; expected one of {PROFILE_PARAMETERS}")
    grid = np.geomspace(a_lo, a_hi, _ALPHA_GRID)
    out = np.empty(values.size)
    for index, value in enumerate(values):
        sse_grid = _sse_given_alpha(parameter, value, grid, p, y, c_lo, c_hi)
        k = int(np.argmin(sse_grid))
        left, right = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
        refined = minimize_scalar(
            lambda alpha: float(_sse_given_alpha(parameter, value, np.array([alpha]), p, y, c_lo, c_hi)[0]),
            bounds=(left, right), method="bounded", options={"xatol": 1e-10 * right},
        )
        out[index] = min(float(sse_grid[k]), float(refined.fun))
    return out


def _scan_range(parameter: str, fit: ScalingFit, y: np.ndarray) -> tuple[np.ndarray, bool, bool]:
    """Scan values of ``parameter`` and whether each end of the scan is a real bound (True) or a cap (False)."""
    if parameter == "alpha":
        lo, hi = fit.alpha_bounds
        values = np.geomspace(lo, hi, _SCAN_POINTS)
        return np.union1d(values, [fit.alpha]), True, True
    if parameter == "L_inf":
        lo, hi = fit.L_inf_bounds
        spread = float(y.max() - y.min()) or 1.0
        top = hi if math.isfinite(hi) else float(y.max()) + spread
        bottom = lo if math.isfinite(lo) else float(y.min()) - 10 * spread - abs(float(y.min()))
        values = np.linspace(bottom, top, _SCAN_POINTS)
        return np.union1d(values, [fit.L_inf]), math.isfinite(lo), math.isfinite(hi)
    top = max(fit.A, 1e-12) * _A_SPAN
    values = np.r_[0.0, np.geomspace(top / _A_SPAN**2, top, _SCAN_POINTS)]
    return np.union1d(values, [fit.A]), True, False


def profile_interval(fit: ScalingFit, params: np.ndarray, losses: np.ndarray, parameter: str,
                     level: float = 0.95) -> ProfileInterval:
    """Profile-likelihood interval of ``parameter`` ("A", "alpha" or "L_inf") of ``fit`` on its points.

    ``params`` must be in the fit's unit (billions by default) and ``losses`` in nats: the same
    Pareto points the fit was made on.
    """
    p = np.asarray(params, dtype=np.float64).ravel()
    y = np.asarray(losses, dtype=np.float64).ravel()
    if p.size != fit.n_points or y.size != p.size:
        raise ValueError(f"profile of {parameter}: fit has {fit.n_points} points, got {p.size} params and {y.size} losses")
    n = p.size
    threshold = likelihood_threshold(level)
    values, lo_is_bound, hi_is_bound = _scan_range(parameter, fit, y)
    bounds = dict(alpha_bounds=fit.alpha_bounds, L_inf_bounds=fit.L_inf_bounds)
    sse = profile_sse(parameter, values, p, y, **bounds)
    sse_fit = float(fit.rmse) ** 2 * n
    sse_min = min(sse_fit, float(sse.min()))
    if sse_min <= 0:  # an exact fit: every other value is infinitely less likely
        estimate = float(getattr(fit, parameter))
        return ProfileInterval(parameter, estimate, estimate, estimate, level, False, False)

    def excess(value: float) -> float:
        return n * math.log(float(profile_sse(parameter, np.array([value]), p, y, **bounds)[0]) / sse_min) - threshold

    inside = np.flatnonzero(n * np.log(sse / sse_min) <= threshold)
    estimate = float(getattr(fit, parameter))
    if inside.size == 0:  # numerically the estimate itself sits on the threshold
        return ProfileInterval(parameter, estimate, estimate, estimate, level, False, False)
    first, last = int(inside[0]), int(inside[-1])
    lo = values[0] if first == 0 else brentq(excess, values[first - 1], values[first], xtol=1e-12 * max(1.0, abs(values[first])))
    hi = values[-1] if last == values.size - 1 else brentq(excess, values[last], values[last + 1], xtol=1e-12 * max(1.0, abs(values[last])))
    lo_at_bound = first == 0
    hi_at_bound = last == values.size - 1
    if hi_at_bound and not hi_is_bound:
        hi = math.inf  # accepted up to the cap: no finite upper end
    if lo_at_bound and not lo_is_bound:
        lo = -math.inf
    return ProfileInterval(parameter, estimate, float(lo), float(hi), level, lo_at_bound, hi_at_bound)


def profile_intervals(fit: ScalingFit, params: np.ndarray, losses: np.ndarray,
                      level: float = 0.95) -> dict[str, ProfileInterval]:
    """Profile intervals of A, alpha and L_inf of ``fit`` (see :func:`profile_interval`)."""
    return {name: profile_interval(fit, params, losses, name, level) for name in PROFILE_PARAMETERS}


def profile_path(fit: ScalingFit, params: np.ndarray, losses: np.ndarray, level: float = 0.95,
                 n_alpha: int = _ALPHA_GRID) -> pd.DataFrame:
    """Laws (A, alpha, L_inf) along the alpha profile that the level accepts: A for P in the fit's unit, L_inf nats."""
    p = np.asarray(params, dtype=np.float64).ravel()
    y = np.asarray(losses, dtype=np.float64).ravel()
    alphas = np.union1d(np.geomspace(*fit.alpha_bounds, n_alpha), [fit.alpha])
    p0 = math.exp(np.log(p).mean())
    a_u, c, sse = _inner_solve((p / p0)[None, :] ** (-alphas[:, None]), y, *fit.L_inf_bounds)
    sse_min = min(float(sse.min()), float(fit.rmse) ** 2 * p.size)
    with np.errstate(divide="ignore"):
        accepted = p.size * np.log(np.maximum(sse, 1e-300) / max(sse_min, 1e-300)) <= likelihood_threshold(level)
    return pd.DataFrame({"A": a_u[accepted] * p0 ** alphas[accepted], "alpha": alphas[accepted], "L_inf": c[accepted]})
