"""Scaling-law fits L(P) = A * P^-alpha + L_inf (paper eqs. 6-7, §3.5), in the loss domain.

P is in billions of parameters by default (the paper's eqs. 8-10 use billions); losses in nats
per text. The fit is nonlinear least squares on the losses themselves, made robust to
initialisation by variable projection: for a fixed alpha the model is linear in (A, L_inf),
so the residual sum of squares profiled over alpha is a 1-D function. It is scanned on a grid,
refined by bounded scalar minimisation (Brent), and finally all three parameters are polished
jointly by a small Levenberg-Marquardt loop. Standard errors come from the Jacobian at the optimum.
Internally P is divided by its geometric mean so that the result is invariant to the unit of P
except for A, which scales by c^alpha when P is multiplied by c.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

DEFAULT_ALPHA_BOUNDS = (1e-3, 5.0)
DEFAULT_L_INF_BOUNDS = (0.0, math.inf)
MIN_POINTS = 4
_GRID_SIZE = 64
_BOUND_RTOL = 1e-6
_LAW_FLOATS = ("A", "alpha", "L_inf", "A_se", "alpha_se", "L_inf_se", "r2", "rmse")


class FitStatus(StrEnum):
    """Outcome of a fit of eq. 7; the values are the words written to fits.json, Table 1 and the CSVs."""

    OK = "ok"
    ALPHA_AT_BOUND = "alpha_at_bound"
    L_INF_AT_BOUND = "L_inf_at_bound"
    A_AT_ZERO = "A_at_zero"
    GRID_EDGE = "grid_edge"  # profile minimum at the edge of the alpha grid
    NOT_CONVERGED = "not_converged"  # the joint polish did not converge
    SE_UNAVAILABLE = "se_unavailable"  # singular Jacobian: no standard errors
    TOO_FEW_POINTS = "too_few_points"  # fewer than MIN_POINTS points or 3 distinct params: nothing fitted
    FAILED = "failed"  # the points cannot be fitted (status text "failed: <reason>")


@dataclass(frozen=True)
class ScalingFit:
    """Fitted L = A * P^-alpha + L_inf (P in the caller's unit, usually billions; L in nats).

    ``status`` is "ok", a comma-joined list of ``FitStatus`` flags of a fit that was made
    ("alpha_at_bound,grid_edge"), "too_few_points", or "failed: <reason>" (the last two with
    NaN parameters); ``flags`` parses it.
    """

    A: float
    alpha: float
    L_inf: float
    A_se: float
    alpha_se: float
    L_inf_se: float
    r2: float
    rmse: float
    n_points: int
    status: str
    alpha_at_bound: bool = False
    L_inf_at_bound: bool = False
    A_at_zero: bool = False
    grid_edge: bool = False
    converged: bool = True
    alpha_bounds: tuple[float, float] = DEFAULT_ALPHA_BOUNDS
    L_inf_bounds: tuple[float, float] = DEFAULT_L_INF_BOUNDS

    @property
    def ok(self) -> bool:
        """True when no flag is raised."""
        return self.status == FitStatus.OK

    @property
    def flags(self) -> tuple[FitStatus, ...]:
        """The ``FitStatus`` members of ``status`` (a failure's reason dropped)."""
        if self.status.startswith(FitStatus.FAILED):
            return (FitStatus.FAILED,)
        return tuple(FitStatus(word) for word in self.status.split(","))

    @property
    def fitted(self) -> bool:
        """True when parameters were estimated (status neither too_few_points nor failed)."""
        return not {FitStatus.TOO_FEW_POINTS, FitStatus.FAILED} & set(self.flags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (infinite bounds as None)."""
        out = asdict(self)
        for key in ("alpha_bounds", "L_inf_bounds"):
            out[key] = [None if not math.isfinite(v) else float(v) for v in out[key]]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScalingFit":
        """Inverse of ``to_dict``; unknown keys are ignored, None or missing floats (JSON null) read as NaN."""
        known = {f.name: f for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values.setdefault("n_points", 0)
        for key, default in (("alpha_bounds", DEFAULT_ALPHA_BOUNDS), ("L_inf_bounds", DEFAULT_L_INF_BOUNDS)):
            if key in values:
                lo, hi = values[key]
                values[key] = (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))
            else:
                values[key] = default
        for key in _LAW_FLOATS:
            value = values.get(key)
            values[key] = float("nan") if value is None else float(value)
        return cls(**values)


LawParams = ScalingFit | Mapping[str, Any] | tuple[Any, Any, Any]


def law_params(fit: LawParams) -> tuple[Any, Any, Any]:
    """(A, alpha, L_inf) of a ScalingFit, of anything indexable by those names (dict, table row), or of a tuple."""
    if isinstance(fit, ScalingFit):
        return fit.A, fit.alpha, fit.L_inf
    if isinstance(fit, tuple):
        return fit
    return fit["A"], fit["alpha"], fit["L_inf"]


def predict(fit: LawParams, params_b: np.ndarray | float) -> np.ndarray:
    """Eq. 7, L(P) = A * P^-alpha + L_inf, in nats at ``params_b`` (the fit's unit of P, usually billions).

    The only place eq. 7 is evaluated. ``fit`` may hold arrays (one law per row) that broadcast
    against ``params_b``.
    """
    A, alpha, L_inf = law_params(fit)
    p = np.asarray(params_b, dtype=np.float64)
    return A * p ** (-alpha) + L_inf


def _inner_solve(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares y ~ A x + c with A >= 0, lo <= c <= hi, for each row of x (G x n). Returns A, c, SSE.

    The problem is a convex quadratic in (A, c) on a box, so the optimum is the unconstrained
    one when feasible, otherwise the best of the clipped 1-D optima on the box's edges.
    """
    y_mean = y.mean()
    x_mean = x.mean(axis=1)
    xc = x - x_mean[:, None]
    sxx = np.einsum("ij,ij->i", xc, xc)
    sxy = xc @ (y - y_mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = np.where(sxx > 0, sxy / sxx, 0.0)
    c_free = y_mean - a_free * x_mean
    x2 = np.einsum("ij,ij->i", x, x)
    xy = x @ y
    xsum = x.sum(axis=1)

    candidates_a = [a_free, np.zeros_like(a_free)]
    candidates_c = [c_free, np.full_like(a_free, min(max(y_mean, lo), hi))]
    feasible = [(a_free >= 0) & (c_free >= lo) & (c_free <= hi), np.ones_like(a_free, dtype=bool)]
    for c_edge in (lo, hi):
        if math.isfinite(c_edge):
            with np.errstate(divide="ignore", invalid="ignore"):
                a_edge = np.where(x2 > 0, (xy - c_edge * xsum) / x2, 0.0)
            candidates_a.append(np.maximum(a_edge, 0.0))
            candidates_c.append(np.full_like(a_free, c_edge))
            feasible.append(np.ones_like(a_free, dtype=bool))
    a_all = np.stack(candidates_a)
    c_all = np.stack(candidates_c)
    resid = y[None, None, :] - (a_all[:, :, None] * x[None, :, :] + c_all[:, :, None])
    sse = np.einsum("kgn,kgn->kg", resid, resid)
    sse = np.where(np.stack(feasible), sse, np.inf)
    best = np.argmin(sse, axis=0)
    cols = np.arange(x.shape[0])
    return a_all[best, cols], c_all[best, cols], sse[best, cols]


def _inner_solve_one(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, float, float]:
    """Scalar-alpha version of ``_inner_solve`` (same candidates), fast for 1-D minimisation: A, c, SSE."""
    y_mean = float(y.mean())
    x_mean = float(x.mean())
    xc = x - x_mean
    sxx = float(xc @ xc)
    a = float(xc @ y) / sxx if sxx > 0 else 0.0
    c = y_mean - a * x_mean
    if a >= 0 and lo <= c <= hi:
        r = y - a * x - c
        return a, c, float(r @ r)
    best = (math.inf, 0.0, 0.0)
    x2 = float(x @ x)
    candidates = [(0.0, min(max(y_mean, lo), hi))]
    for c_edge in (lo, hi):
        if math.isfinite(c_edge):
            candidates.append((max(float(x @ (y - c_edge)) / x2, 0.0) if x2 > 0 else 0.0, c_edge))
    for a, c in candidates:
        r = y - a * x - c
        sse = float(r @ r)
        if sse < best[0]:
            best = (sse, a, c)
    return best[1], best[2], best[0]


def _profile_sse(alpha: float, u: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Residual sum of squares at ``alpha`` with (A, L_inf) solved exactly (variable projection)."""
    return _inner_solve_one(u ** (-alpha), y, lo, hi)[2]


def _check_inputs(params_b: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(params_b, dtype=np.float64).ravel()
    y = np.asarray(losses, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"params_b and losses differ in length: {p.size} vs {y.size}")
    if p.size < MIN_POINTS:
        raise ValueError(
            f"fit_scaling_law needs at least {MIN_POINTS} points to fit 3 parameters with a residual; got {p.size}"
        )
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise ValueError("params_b and losses must be finite")
    if (p <= 0).any():
        raise ValueError("params_b must be positive")
    if np.unique(p).size < 3:
        raise ValueError(f"need at least 3 distinct parameter counts to identify A, alpha, L_inf; got {np.unique(p).size}")
    return p, y


def fit_scaling_law(
    params_b: np.ndarray,
    losses: np.ndarray,
    *,
    alpha_bounds: tuple[float, float] = DEFAULT_ALPHA_BOUNDS,
    L_inf_bounds: tuple[float, float] = DEFAULT_L_INF_BOUNDS,
    grid_size: int = _GRID_SIZE,
    polish: bool = True,
) -> ScalingFit:
    """Fit L = A * P^-alpha + L_inf to (params_b, losses) by NLS in the loss domain (§3.5).

    ``params_b``: total parameters (billions by default; any positive unit works, only A
    depends on it). ``losses``: oracle losses in nats. Constraints: A >= 0,
    ``alpha_bounds``, ``L_inf_bounds``. Raises ValueError for fewer than 4 points.
    """
    p, y = _check_inputs(params_b, losses)
    a_lo, a_hi = float(alpha_bounds[0]), float(alpha_bounds[1])
    c_lo, c_hi = float(L_inf_bounds[0]), float(L_inf_bounds[1])
    if not (0 < a_lo < a_hi < math.inf):
        raise ValueError(f"alpha_bounds must satisfy 0 < lo < hi < inf, got {alpha_bounds}")
    if not c_lo < c_hi:
        raise ValueError(f"L_inf_bounds must satisfy lo < hi, got {L_inf_bounds}")
    p0 = float(np.exp(np.log(p).mean()))  # geometric mean: u = P / p0 is unit-free
    u = p / p0

    # 1) variable projection: profile SSE on a log-spaced alpha grid
    grid = np.geomspace(a_lo, a_hi, grid_size)
    _, _, sse_grid = _inner_solve(u[None, :] ** (-grid[:, None]), y, c_lo, c_hi)
    k = int(np.argmin(sse_grid))
    grid_edge = k in (0, grid_size - 1)
    # 2) bounded scalar minimisation of the profile between the neighbours of the best grid point
    left, right = grid[max(k - 1, 0)], grid[min(k + 1, grid_size - 1)]
    refined = minimize_scalar(
        _profile_sse, bounds=(left, right), args=(u, y, c_lo, c_hi), method="bounded",
        options={"xatol": 1e-10 * right},
    )
    alpha = float(refined.x) if refined.fun <= sse_grid[k] else float(grid[k])
    a_u, c, sse = _inner_solve_one(u ** (-alpha), y, c_lo, c_hi)

    # 3) polish all three jointly (A in the u-unit); keep it only if it does not get worse
    converged = True
    theta = np.array([a_u, alpha, c])
    lower = np.array([0.0, a_lo, c_lo])
    upper = np.array([np.inf, a_hi, c_hi])
    if polish:
        theta, sse, converged = _polish(theta, sse, u, y, lower, upper)
    a_u, alpha, c = (float(v) for v in theta)
    # snap values within rounding of a bound onto it, so flags and reported values agree
    if _at_bound(c, c_lo, c_hi):
        c = c_lo if abs(c - c_lo) <= abs(c - c_hi) else c_hi
    if _at_bound(alpha, a_lo, a_hi):
        alpha = a_lo if abs(alpha - a_lo) <= abs(alpha - a_hi) else a_hi
    theta = np.array([a_u, alpha, c])

    # standard errors from the Jacobian (u-unit), mapped to the caller's unit by the delta method
    jac = _jacobian(theta, u, y)
    n = y.size
    se = np.full(3, np.nan)
    se_ok = False
    if n > 3:
        sigma2 = sse / (n - 3)
        try:
            cov_u = sigma2 * np.linalg.inv(jac.T @ jac)
            scale = p0**alpha
            # A = a_u * p0^alpha  =>  dA = p0^alpha da_u + A ln(p0) dalpha
            transform = np.array([[scale, a_u * scale * math.log(p0), 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            cov = transform @ cov_u @ transform.T
            diag = np.diag(cov)
            if np.all(np.isfinite(diag)) and np.all(diag >= 0):
                se, se_ok = np.sqrt(diag), True
        except np.linalg.LinAlgError:
            pass
    a_value = a_u * p0**alpha
    sst = float(((y - y.mean()) ** 2).sum())
    alpha_at_bound = _at_bound(alpha, a_lo, a_hi)
    l_inf_at_bound = _at_bound(c, c_lo, c_hi)
    a_at_zero = a_u <= 0.0
    flags = [
        flag
        for flag, raised in (
            (FitStatus.ALPHA_AT_BOUND, alpha_at_bound),
            (FitStatus.L_INF_AT_BOUND, l_inf_at_bound),
            (FitStatus.A_AT_ZERO, a_at_zero),
            (FitStatus.GRID_EDGE, grid_edge),
            (FitStatus.NOT_CONVERGED, not converged),
            (FitStatus.SE_UNAVAILABLE, not se_ok),
        )
        if raised
    ]
    return ScalingFit(
        A=float(a_value),
        alpha=alpha,
        L_inf=c,
        A_se=float(se[0]),
        alpha_se=float(se[1]),
        L_inf_se=float(se[2]),
        r2=float(1.0 - sse / sst) if sst > 0 else float("nan"),
        rmse=float(math.sqrt(sse / n)),
        n_points=int(n),
        status=",".join(flags) if flags else str(FitStatus.OK),
        alpha_at_bound=alpha_at_bound,
        L_inf_at_bound=l_inf_at_bound,
        A_at_zero=a_at_zero,
        grid_edge=grid_edge,
        converged=converged,
        alpha_bounds=(a_lo, a_hi),
        L_inf_bounds=(c_lo, c_hi),
    )


def failed_fit(n_points: int, status: str, *, alpha_bounds: tuple[float, float] = DEFAULT_ALPHA_BOUNDS,
               L_inf_bounds: tuple[float, float] = DEFAULT_L_INF_BOUNDS) -> ScalingFit:
    """A fit with NaN parameters and ``status`` ("too_few_points" or "failed: <reason>")."""
    nan = float("nan")
    return ScalingFit(A=nan, alpha=nan, L_inf=nan, A_se=nan, alpha_se=nan, L_inf_se=nan, r2=nan, rmse=nan,
                      n_points=int(n_points), status=str(status), converged=False,
                      alpha_bounds=tuple(alpha_bounds), L_inf_bounds=tuple(L_inf_bounds))


def fit_points(params_b: np.ndarray, losses: np.ndarray, **fit_kwargs: Any) -> ScalingFit:
    """Fit eq. 7 to these points (P in billions by default, L in nats); never raises.

    Fewer than ``MIN_POINTS`` points or 3 distinct params give status "too_few_points"; any
    other reason the points cannot be fitted gives "failed: <reason>"; both with NaN parameters.
    ``fit_kwargs`` go to ``fit_scaling_law``.
    """
    p = np.asarray(params_b, dtype=np.float64).ravel()
    bounds = {key: fit_kwargs[key] for key in ("alpha_bounds", "L_inf_bounds") if key in fit_kwargs}
    if p.size < MIN_POINTS or np.unique(p).size < 3:
        return failed_fit(p.size, FitStatus.TOO_FEW_POINTS, **bounds)
    try:
        return fit_scaling_law(p, losses, **fit_kwargs)
    except (ValueError, np.linalg.LinAlgError) as error:
        return failed_fit(p.size, f"{FitStatus.FAILED}: {error}", **bounds)


def _polish(
    theta: np.ndarray, sse: float, u: np.ndarray, y: np.ndarray, lower: np.ndarray, upper: np.ndarray,
    max_iter: int = 100,
) -> tuple[np.ndarray, float, bool]:
    """Joint Levenberg-Marquardt polish of (A_u, alpha, L_inf) from the variable-projection solution.

    Parameters on a bound stay fixed there; a step is taken only when it lowers the SSE and
    stays inside the bounds, so the result is never worse than the start. Returns
    (theta, sse, converged).
    """
    free = np.array([lo < v < hi and not _at_bound(v, lo, hi) for v, lo, hi in zip(theta, lower, upper)])
    if not free.any():
        return theta, sse, True
    theta = theta.copy()
    damping = 1e-3
    for _ in range(max_iter):
        resid = _residuals(theta, u, y)
        jac = _jacobian(theta, u, y)[:, free]
        grad = jac.T @ resid
        hess = jac.T @ jac
        scale = np.diag(hess).copy()
        scale[scale <= 0] = 1.0
        improved = False
        for _ in range(12):  # raise the damping until a step lowers the SSE
            try:
                step = np.linalg.solve(hess + damping * np.diag(scale), -grad)
            except np.linalg.LinAlgError:
                damping *= 10.0
                continue
            trial = theta.copy()
            trial[free] += step
            if np.all(trial >= lower) and np.all(trial <= upper):
                r_trial = _residuals(trial, u, y)
                sse_trial = float(r_trial @ r_trial)
                if sse_trial < sse:
                    gain = sse - sse_trial
                    theta, sse, improved = trial, sse_trial, True
                    damping = max(damping / 10.0, 1e-12)
                    break
            damping *= 10.0
        # converged: no decrease at any tried damping, or a negligible relative one
        if not improved or gain <= 1e-13 * sse:
            return theta, sse, True
    return theta, sse, False


def _at_bound(value: float, lo: float, hi: float) -> bool:
    tol = _BOUND_RTOL * max(1.0, abs(value))
    return (math.isfinite(lo) and value - lo <= tol) or (math.isfinite(hi) and hi - value <= tol)


def _residuals(theta: np.ndarray, u: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, alpha, c = theta
    return a * u ** (-alpha) + c - y


def _jacobian(theta: np.ndarray, u: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, alpha, _ = theta
    power = u ** (-alpha)
    return np.column_stack([power, -a * power * np.log(u), np.ones_like(u)])
