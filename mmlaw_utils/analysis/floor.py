"""Tests of the loss floor L∞ of eq. 7 that can reject (issue 20, part 3).

- Relative-floor likelihood-ratio test: the paper's fits put L∞ at a share ρ of the loss at the
  largest P of their pool (ρ = L∞ / L(P_max) from eqs. 8-10, P_max from stated assumed sizes).
  On our frontier the null fixes L∞ = ρ × (the frontier's loss at its largest P) and fits A and
  α; LR = n ln(SSE_null / SSE_min) (Gaussian errors, variance profiled out) against χ²₁.
- Curvature test in ln P: OLS of loss on (ln P, ln² P); a floor makes a falling frontier convex
  (positive quadratic term). Outcome "bends toward a floor" (t > 0 significant), "bends the wrong
  way" (t < 0 significant) or "straight".
Losses in nats per text (or any unit: both tests are scale-free in the loss), P in billions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2, t as student_t

from mmlaw_utils.analysis.fit import fit_points, predict
from mmlaw_utils.analysis.groups import CROSS_FAMILY, PAPER_TABLE1, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.padding import PAPER_ASSUMED_SIZES_B
from mmlaw_utils.analysis.profile import profile_sse

CURVATURE_OUTCOMES = ("bends toward a floor", "straight", "bends the wrong way")
FLOOR_COLUMNS = ["variant", "group", "n_points", "rho", "L_inf_null", "L_inf_fit", "alpha_fit", "lr", "lr_p",
                 "lr_rejects", "curvature", "curvature_t", "curvature_p", "curvature_outcome", "level"]


def paper_largest_params_b(sizes_by_family: Mapping[str, Sequence[float]] = PAPER_ASSUMED_SIZES_B) -> dict[str, float]:
    """Largest total P (billions) of each group in a pool of the given family sizes: a single, a same- and a cross-family pair."""
    tops = {family: sorted(sizes, reverse=True) for family, sizes in sizes_by_family.items()}
    single = max(t[0] for t in tops.values())
    same = max(t[0] + t[1] for t in tops.values() if len(t) >= 2)
    firsts = sorted((t[0] for t in tops.values()), reverse=True)
    return {SINGLE: single, SAME_FAMILY: same, CROSS_FAMILY: firsts[0] + firsts[1]}


def paper_relative_floors(sizes_by_family: Mapping[str, Sequence[float]] = PAPER_ASSUMED_SIZES_B) -> dict[str, float]:
    """ρ = L∞ / L(P_max) of each group's published law (eqs. 8-10), P_max from ``paper_largest_params_b``."""
    largest = paper_largest_params_b(sizes_by_family)
    laws = PAPER_TABLE1.set_index("group")
    return {group: float(laws.loc[group, "L_inf"] / predict(laws.loc[group], largest[group])) for group in largest}


def relative_floor_lr(params_b: np.ndarray, losses: np.ndarray, rho: float, level: float = 0.95,
                      fit_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """LR test of L∞ = ρ × (loss at the largest P) on a frontier; NaN LR when eq. 7 cannot be fitted."""
    p = np.asarray(params_b, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    fit = fit_points(p, y, **dict(fit_kwargs or {}))
    null_floor = float(rho * y[np.argmax(p)]) if p.size else math.nan
    out = {"n_points": int(p.size), "rho": float(rho), "L_inf_null": null_floor, "L_inf_fit": fit.L_inf,
           "alpha_fit": fit.alpha, "lr": math.nan, "lr_p": math.nan, "lr_rejects": False}
    if not fit.fitted:
        return out
    sse_min = float(fit.rmse) ** 2 * p.size
    sse_null = float(profile_sse("L_inf", np.array([null_floor]), p, y, alpha_bounds=fit.alpha_bounds,
                                 L_inf_bounds=(-math.inf, math.inf))[0])
    sse_min = min(sse_min, sse_null)
    if sse_min <= 0:
        lr = 0.0 if sse_null <= 0 else math.inf
    else:
        lr = p.size * math.log(sse_null / sse_min)
    out.update(lr=lr, lr_p=float(chi2.sf(lr, df=1)), lr_rejects=bool(lr > chi2.ppf(level, df=1)))
    return out


def curvature_test(params_b: np.ndarray, losses: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Quadratic term of loss on ln P (centred): estimate (nats per ln² P), t, two-sided p and outcome."""
    x = np.log(np.asarray(params_b, dtype=np.float64))
    y = np.asarray(losses, dtype=np.float64)
    nan = {"curvature": math.nan, "curvature_t": math.nan, "curvature_p": math.nan, "curvature_outcome": "too few points"}
    if x.size < 4 or np.unique(x).size < 3:
        return nan
    x = x - x.mean()
    design = np.column_stack([np.ones_like(x), x, x**2])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = x.size - 3
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.inv(design.T @ design)
    se = math.sqrt(cov[2, 2])
    if se == 0:
        t_value = 0.0 if coef[2] == 0 else math.copysign(math.inf, coef[2])
    else:
        t_value = float(coef[2] / se)
    p_value = float(2 * student_t.sf(abs(t_value), dof))
    if p_value < 1 - level:
        outcome = CURVATURE_OUTCOMES[0] if t_value > 0 else CURVATURE_OUTCOMES[2]
    else:
        outcome = CURVATURE_OUTCOMES[1]
    return {"curvature": float(coef[2]), "curvature_t": t_value, "curvature_p": p_value, "curvature_outcome": outcome}


def floor_test_row(variant: str, group: str, params_b: np.ndarray, losses: np.ndarray, rho: float,
                   level: float = 0.95) -> dict[str, Any]:
    """One row of floor_tests.csv: the LR test and the curvature test on one frontier (P in billions)."""
    return {"variant": variant, "group": group, **relative_floor_lr(params_b, losses, rho, level),
            **curvature_test(params_b, losses, level), "level": level}


def _variant_fronts(L: np.ndarray, params: np.ndarray, families: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pareto (raw params, loss) of the three groups of a loss matrix."""
    from mmlaw_utils.analysis.frontier import collaboration_groups

    out = {}
    for group, frame in collaboration_groups(L, params, families).items():
        front = frame[frame["on_frontier"]]
        out[group] = (front["params"].to_numpy(dtype=np.float64), front["loss"].to_numpy(dtype=np.float64))
    return out


def floor_tests_table(L: np.ndarray, params: np.ndarray, families: np.ndarray, *, n_bytes: np.ndarray | None = None,
                      params_nonembed: np.ndarray | None = None, min_params: float = 2e4, params_unit: float = 1e9,
                      level: float = 0.95, rhos: Mapping[str, float] | None = None) -> "pd.DataFrame":
    """Floor tests per group on the main frontiers and the sensitivity variants (one row per variant and group).

    Variants: ``all`` (the main fit), ``min_params`` (models with >= ``min_params`` raw parameters),
    ``nonembed`` (P = non-embedding parameters), ``bits_per_byte`` (loss = nll / (bytes ln 2) per
    text, averaged over texts). ``L`` K x N nats, ``n_bytes`` per text, params raw counts.
    """
    import pandas as pd

    rhos = dict(paper_relative_floors() if rhos is None else rhos)
    array = np.asarray(L, dtype=np.float64)
    p = np.asarray(params, dtype=np.int64)
    fam = np.asarray(families).astype(str)
    variants = {"all": (array, p, fam)}
    keep = p >= min_params
    if keep.sum() >= 2 and not keep.all():
        variants[f"min_params>={min_params:g}"] = (array[keep], p[keep], fam[keep])
    if params_nonembed is not None and np.all(np.asarray(params_nonembed) > 0):
        variants["nonembed"] = (array, np.asarray(params_nonembed, dtype=np.int64), fam)
    if n_bytes is not None and np.all(np.asarray(n_bytes) > 0):
        variants["bits_per_byte"] = (array / (np.asarray(n_bytes, dtype=np.float64)[None, :] * math.log(2)), p, fam)
    rows = []
    for variant, (matrix, sizes, names) in variants.items():
        for group, (front_params, front_losses) in _variant_fronts(matrix, sizes, names).items():
            if group in rhos:
                rows.append(floor_test_row(variant, group, front_params / params_unit, front_losses, rhos[group], level))
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS)
