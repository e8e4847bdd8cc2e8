"""Which law do the Pareto points support? Eq. 7 with a floor, without one (L_inf = 0), or log-linear.

Forms (P in the fit's unit, billions by default; losses in nats per text):

- ``eq7``: L = A * P^-alpha + L_inf (A >= 0, alpha and L_inf within the fit's bounds), 3 parameters;
- ``eq7_no_floor``: L = A * P^-alpha (A >= 0, alpha within bounds), 2 parameters;
- ``log_linear``: L = a - b * ln P (ordinary least squares), 2 parameters.

Criteria: AICc under Gaussian errors with unknown variance, AIC = n ln(SSE / n) + 2k with k the
form's parameters plus one for the variance, AICc = AIC + 2k(k+1) / (n - k - 1); a parameter held
at its bound still counts. ΔAICc <= 2 is read as "not distinguishable". Leave-one-point-out
error: each Pareto point is predicted by the form fitted to the others; ``loo_rmse`` in nats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from mmlaw_utils.analysis.fit import DEFAULT_ALPHA_BOUNDS, MIN_POINTS, fit_scaling_law, predict

FORMS = ("eq7", "eq7_no_floor", "log_linear")
N_PARAMS = {"eq7": 3, "eq7_no_floor": 2, "log_linear": 2}
DELTA_AICC_TIE = 2.0
COMPARISON_COLUMNS = ["group", "form", "n_points", "n_params", "parameters", "sse", "rmse", "aicc", "delta_aicc",
                      "akaike_weight", "loo_rmse", "within_2_aicc", "best_loo", "supported"]
_GRID = 128

Predictor = Callable[[np.ndarray], np.ndarray]


def fit_no_floor(params: np.ndarray, losses: np.ndarray,
                 alpha_bounds: tuple[float, float] = DEFAULT_ALPHA_BOUNDS) -> tuple[float, float]:
    """Least squares L = A * P^-alpha with A >= 0 and alpha in ``alpha_bounds``: (A, alpha), A in nats."""
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    u = p / math.exp(np.log(p).mean())  # unit-free P keeps the powers finite

    def solve(alpha: float) -> tuple[float, float]:
        x = u ** (-alpha)
        a = max(float(x @ y) / float(x @ x), 0.0)
        r = y - a * x
        return a, float(r @ r)

    grid = np.geomspace(alpha_bounds[0], alpha_bounds[1], _GRID)
    sse = np.array([solve(a)[1] for a in grid])
    k = int(np.argmin(sse))
    left, right = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    refined = minimize_scalar(lambda a: solve(a)[1], bounds=(left, right), method="bounded",
                              options={"xatol": 1e-10 * right})
    alpha = float(refined.x) if refined.fun <= sse[k] else float(grid[k])
    a_u = solve(alpha)[0]
    return a_u * math.exp(np.log(p).mean()) ** alpha, alpha


def fit_log_linear(params: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """Ordinary least squares L = a - b * ln P: (a, b) in nats."""
    x = np.log(np.asarray(params, dtype=np.float64))
    y = np.asarray(losses, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(-slope)


def fit_form(form: str, params: np.ndarray, losses: np.ndarray) -> tuple[dict[str, float], Predictor]:
    """Fit one form to (params, losses): its parameters and a predictor of the loss (nats) at new P."""
    if form == "eq7":
        fit = fit_scaling_law(params, losses)
        return {"A": fit.A, "alpha": fit.alpha, "L_inf": fit.L_inf}, lambda p: predict(fit, p)
    if form == "eq7_no_floor":
        A, alpha = fit_no_floor(params, losses)
        return {"A": A, "alpha": alpha}, lambda p: predict((A, alpha, 0.0), p)
    if form == "log_linear":
        a, b = fit_log_linear(params, losses)
        return {"a": a, "b": b}, lambda p: a - b * np.log(np.asarray(p, dtype=np.float64))
    raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")


def aicc(sse: float, n_points: int, n_params: int) -> float:
    """AICc with Gaussian errors: n ln(SSE/n) + 2k + 2k(k+1)/(n-k-1), k = n_params + 1 (variance); inf if n <= k + 1."""
    k = n_params + 1
    if n_points <= k + 1:
        return math.inf
    if sse <= 0:
        return -math.inf
    return n_points * math.log(sse / n_points) + 2 * k + 2 * k * (k + 1) / (n_points - k - 1)


def loo_rmse(form: str, params: np.ndarray, losses: np.ndarray) -> float:
    """RMSE (nats) of predicting each point from the form fitted to all the others; NaN if too few points."""
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    need = MIN_POINTS + 1 if form == "eq7" else N_PARAMS[form] + 2
    if p.size < need:
        return math.nan
    errors = []
    for index in range(p.size):
        keep = np.arange(p.size) != index
        try:
            _, predict = fit_form(form, p[keep], y[keep])
        except ValueError:
            return math.nan
        errors.append(float(predict(p[index : index + 1])[0]) - y[index])
    return float(np.sqrt(np.mean(np.square(errors))))


def compare_forms(params: np.ndarray, losses: np.ndarray, group: str = "") -> pd.DataFrame:
    """One row per form on one frontier: parameters, SSE, AICc, ΔAICc, Akaike weight, LOO RMSE, and support.

    ``supported`` marks the form(s) the data support: within 2 AICc of the best, and (when more than
    one is) the one with the smallest leave-one-point-out error among them as well.
    """
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    rows = []
    for form in FORMS:
        try:
            values, predict = fit_form(form, p, y)
        except ValueError as error:
            rows.append({"group": group, "form": form, "n_points": int(p.size), "n_params": N_PARAMS[form],
                         "parameters": f"failed: {error}", "sse": math.nan, "rmse": math.nan, "aicc": math.inf,
                         "loo_rmse": math.nan})
            continue
        resid = predict(p) - y
        sse = float(resid @ resid)
        rows.append({"group": group, "form": form, "n_points": int(p.size), "n_params": N_PARAMS[form],
                     "parameters": ", ".join(f"{k}={v:.6g}" for k, v in values.items()),
                     "sse": sse, "rmse": math.sqrt(sse / p.size), "aicc": aicc(sse, p.size, N_PARAMS[form]),
                     "loo_rmse": loo_rmse(form, p, y)})
    frame = pd.DataFrame(rows)
    finite = np.isfinite(frame["aicc"])
    best = frame.loc[finite, "aicc"].min() if finite.any() else math.nan
    frame["delta_aicc"] = frame["aicc"] - best
    weights = np.where(np.isfinite(frame["delta_aicc"]), np.exp(-0.5 * frame["delta_aicc"].fillna(np.inf)), 0.0)
    frame["akaike_weight"] = weights / weights.sum() if weights.sum() > 0 else math.nan
    frame["within_2_aicc"] = frame["delta_aicc"] <= DELTA_AICC_TIE
    loo = frame["loo_rmse"]
    frame["best_loo"] = loo == loo.min() if loo.notna().any() else False
    close = frame[frame["within_2_aicc"]]
    if len(close) > 1 and close["loo_rmse"].notna().any():
        frame["supported"] = frame.index == close["loo_rmse"].idxmin()
    else:
        frame["supported"] = frame["within_2_aicc"]
    return frame[COMPARISON_COLUMNS]


def compare_frontiers(fronts: Mapping[str, pd.DataFrame], params_unit: float) -> pd.DataFrame:
    """``compare_forms`` on every frontier (P in units of ``params_unit``, loss in nats); no rows when none is given."""
    parts = [compare_forms(front["params"].to_numpy(dtype=float) / params_unit, front["loss"].to_numpy(dtype=float),
                           group) for group, front in fronts.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COMPARISON_COLUMNS)


def support_sentence(comparison: pd.DataFrame) -> str:
    """One sentence per frontier on which form the data support (from :func:`compare_forms` rows)."""
    best = comparison.sort_values("aicc").iloc[0]
    close = comparison[comparison["within_2_aicc"] & (comparison["form"] != best["form"])]
    text = f"lowest AICc: {best['form']}"
    if len(close):
        text += " (within 2 AICc: " + ", ".join(close["form"]) + ")"
    loo = comparison.dropna(subset=["loo_rmse"])
    if len(loo):
        text += f"; smallest leave-one-out error: {loo.sort_values('loo_rmse').iloc[0]['form']}"
    supported = comparison.loc[comparison["supported"], "form"].tolist()
    return text + "; supported: " + (", ".join(supported) if supported else "none")
