"""Does the law forecast? Fit eq. 7 below a budget, predict the frontier above it (paper §1, §4.5).

For each frontier (single models, same-family pairs, cross-family pairs, ensembles of any size)
the points with total params <= a cutoff budget are fitted with eq. 7 and the fitted law predicts
the frontier points above the cutoff. Errors are in nats per text (and relative). A naive
baseline, "no further improvement" (the loss of the last fitted point), is scored alongside.

Intervals: bootstrap over texts (``bootstrap.bootstrap_counts``); each resample re-scores every
single and pair (so their frontiers are re-extracted) and re-scores a fixed candidate family for
the any-size frontier (the full-data exact frontier plus beam-search subsets: re-solving the
MIP per resample is too slow), then refits and re-forecasts at the same cutoff budget.

The markdown summary of notebook 07 is ``report.beyond_pairs``; figure 6 is ``report.figures.plot_forecast``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.bootstrap import bootstrap_counts, weighted_pair_means
from mmlaw_utils.analysis.fit import MIN_POINTS, FitStatus, fit_points, predict
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.groups import ANY_SIZE, CROSS_FAMILY, GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.oracle import _as_loss_matrix, pair_index, pair_oracle_losses

FORECAST_GROUPS = (*GROUPS, ANY_SIZE)
ERROR_COLUMNS = ("mae", "mre", "bias", "last_error", "naive_mae")


def cutoff_budget(params: np.ndarray, fit_fraction: float = 0.6, min_fit: int = MIN_POINTS) -> int | None:
    """Cutoff budget (raw params): ``fit_fraction`` of the way along the frontier's log-params range,
    moved up if needed so that at least ``min_fit`` points are fitted; None when fewer than
    ``min_fit`` + 1 points leave nothing to forecast."""
    p = np.sort(np.asarray(params, dtype=np.float64))
    if p.size < min_fit + 1:
        return None
    if not 0 < fit_fraction < 1:
        raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
    cut = math.exp(math.log(p[0]) + fit_fraction * (math.log(p[-1]) - math.log(p[0])))
    cut = max(cut, p[min_fit - 1])
    if (p > cut).sum() == 0:
        cut = p[-2]
    return int(math.floor(cut))


def forecast_errors(params: np.ndarray, losses: np.ndarray, cutoff: int, params_unit: float = 1e9) -> dict:
    """Fit eq. 7 to points with params <= ``cutoff``; errors of its predictions above (nats per text).

    Returns n_fit, n_test, A, alpha, L_inf, status, mae (mean |pred - obs|), mre (mean relative
    |error|), bias (mean pred - obs: > 0 means the law is too pessimistic), last_error (at the
    largest budget) and naive_mae (predicting the last fitted loss). NaN errors when < 4 fit points.
    """
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    fit_mask = p <= cutoff
    test_mask = ~fit_mask
    out: dict = {"n_fit": int(fit_mask.sum()), "n_test": int(test_mask.sum())}
    nan_row = {k: math.nan for k in ("A", "alpha", "L_inf", *ERROR_COLUMNS)}
    if out["n_test"] < 1:
        return {**out, **nan_row, "status": str(FitStatus.TOO_FEW_POINTS)}
    fit = fit_points(p[fit_mask] / params_unit, y[fit_mask])
    if not fit.fitted:
        return {**out, **nan_row, "status": fit.status}
    pred = predict(fit, p[test_mask] / params_unit)
    err = pred - y[test_mask]
    last_fit = y[fit_mask][np.argmax(p[fit_mask])]
    order = np.argsort(p[test_mask])
    return {
        **out, "A": fit.A, "alpha": fit.alpha, "L_inf": fit.L_inf, "status": fit.status,
        "mae": float(np.abs(err).mean()), "mre": float(np.abs(err / y[test_mask]).mean()),
        "bias": float(err.mean()), "last_error": float(err[order[-1]]),
        "naive_mae": float(np.abs(last_fit - y[test_mask]).mean()),
    }


def no_forecast(n_points: int) -> dict:
    """The row of a frontier with too few points to fit and test: every number NaN, status ``too_few_points``."""
    nan_row = {k: math.nan for k in ("A", "alpha", "L_inf")}
    return {"n_fit": int(n_points), "n_test": 0, **nan_row, "status": str(FitStatus.TOO_FEW_POINTS),
            **{k: math.nan for k in ERROR_COLUMNS}}


def _front(params: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = pareto_front(params, losses)
    return np.asarray(params)[keep], np.asarray(losses)[keep]


def group_frontiers(singles: np.ndarray, pairs: np.ndarray, params: np.ndarray, families: np.ndarray,
                    any_size: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Frontier (params, losses) per forecast group from single losses (K,), pair losses (K(K-1)/2,
    ``oracle.pair_index`` order) and optional any-size candidates (params, losses)."""
    p = np.asarray(params, dtype=np.int64)
    index = pair_index(families)
    out = {SINGLE: _front(p, singles)}
    for name, mask in ((SAME_FAMILY, index.same_family), (CROSS_FAMILY, index.cross_family)):
        if mask.any():
            out[name] = _front(p[index.i][mask] + p[index.j][mask], pairs[mask])
    if any_size is not None:
        out[ANY_SIZE] = _front(*any_size)
    return out


def loss_matrix_frontiers(L: np.ndarray, params: np.ndarray, families: np.ndarray,
                          any_size: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``group_frontiers`` of the full loss matrix ``L`` (K x N, nats): its single and pair oracle losses."""
    pair_matrix = pair_oracle_losses(L)
    index = pair_index(families)
    return group_frontiers(np.diag(pair_matrix), pair_matrix[index.i, index.j], params, families, any_size)


def _candidate_minima(L: np.ndarray, subsets: Sequence[Sequence[int]]) -> np.ndarray:
    return np.stack([L[list(s)].min(axis=0) for s in subsets]) if len(subsets) else np.zeros((0, L.shape[1]))


def forecast_table(L: np.ndarray, params: np.ndarray, families: np.ndarray,
                   any_size_subsets: Sequence[Sequence[int]] | None = None, *, fit_fraction: float = 0.6,
                   n_bootstrap: int = 200, seed: int = 0, params_unit: float = 1e9, level: float = 0.95) -> pd.DataFrame:
    """Forecast errors per group on the full data, with bootstrap percentile intervals over texts.

    Columns: group, cutoff (raw params), n_points, n_fit, n_test, A, alpha, L_inf, status, the
    error columns (nats; mre as a fraction) and, per error column, ``<col>_lo`` / ``<col>_hi``
    and ``n_boot_ok`` (resamples whose fit succeeded).
    """
    array = _as_loss_matrix(L)
    p = np.asarray(params, dtype=np.int64)
    # one entry per distinct subset: repeated candidates would be kept twice by pareto_front's tie rule
    subsets = list(dict.fromkeys(tuple(sorted(int(m) for m in s)) for s in (any_size_subsets or [])))
    cand_params = np.array([p[list(s)].sum() for s in subsets], dtype=np.int64)
    minima = _candidate_minima(array, subsets)
    any_full = (cand_params, minima.mean(axis=1)) if subsets else None
    fronts = loss_matrix_frontiers(array, p, families, any_full)
    rows = {}
    cutoffs = {}
    for group, (fp, fl) in fronts.items():
        cutoffs[group] = cutoff_budget(fp, fit_fraction)
        base = {"group": group, "cutoff": cutoffs[group], "n_points": int(fp.size)}
        rows[group] = {**base, **(forecast_errors(fp, fl, cutoffs[group], params_unit) if cutoffs[group] is not None
                                  else no_forecast(fp.size))}
    boot: dict[str, list[dict]] = {g: [] for g in fronts}
    if n_bootstrap > 0:
        counts = bootstrap_counts(array.shape[1], n_bootstrap, seed)
        singles_b, pairs_b = weighted_pair_means(array, counts)
        cand_b = (minima @ counts.T / counts.sum(axis=1)).T if subsets else None
        for r in range(n_bootstrap):
            any_r = (cand_params, cand_b[r]) if subsets else None
            fr = group_frontiers(singles_b[r], pairs_b[r], p, families, any_r)
            for group, (fp, fl) in fr.items():
                if cutoffs.get(group) is not None:
                    boot[group].append(forecast_errors(fp, fl, cutoffs[group], params_unit))
    q = [(1 - level) / 2, (1 + level) / 2]
    out = []
    for group in [g for g in FORECAST_GROUPS if g in rows]:
        row = rows[group]
        res = pd.DataFrame(boot[group]) if boot[group] else pd.DataFrame(columns=list(ERROR_COLUMNS))
        ok = res.dropna(subset=["mae"]) if not res.empty else res
        row["n_boot_ok"] = int(len(ok))
        for col in ERROR_COLUMNS:
            lo, hi = np.quantile(ok[col], q) if len(ok) else (math.nan, math.nan)
            row[f"{col}_lo"], row[f"{col}_hi"] = float(lo), float(hi)
        out.append(row)
    return pd.DataFrame(out)


def forecast_bands(L: np.ndarray, params: np.ndarray, families: np.ndarray, table: pd.DataFrame,
                   grid: dict[str, np.ndarray], *, n_bootstrap: int = 200, seed: int = 0, params_unit: float = 1e9,
                   level: float = 0.95) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pointwise percentile band (nats) of the law fitted below each group's cutoff, over text resamples.

    ``grid`` maps a group to raw parameter counts; each resample recomputes the pair frontiers, fits
    eq. 7 to the points at or below the cutoff and evaluates it on the grid. Groups without a cutoff,
    and any-size subsets (not resampled here), get no band.
    """
    array = _as_loss_matrix(L)
    p = np.asarray(params, dtype=np.int64)
    cutoffs = table.set_index("group")["cutoff"].to_dict()
    curves: dict[str, list[np.ndarray]] = {g: [] for g in grid if g != ANY_SIZE}
    if n_bootstrap < 1 or not curves:
        return {}
    singles_b, pairs_b = weighted_pair_means(array, bootstrap_counts(array.shape[1], n_bootstrap, seed))
    for r in range(n_bootstrap):
        fronts = group_frontiers(singles_b[r], pairs_b[r], p, families)
        for group in curves:
            cut = cutoffs.get(group)
            if group not in fronts or cut is None or (isinstance(cut, float) and math.isnan(cut)):
                continue
            fp, fl = fronts[group]
            below = fp <= cut
            fit = fit_points(fp[below] / params_unit, fl[below])
            if fit.fitted:
                curves[group].append(predict(fit, np.asarray(grid[group], dtype=np.float64) / params_unit))
    q = [(1 - level) / 2, (1 + level) / 2]
    return {g: tuple(np.quantile(np.stack(c), q, axis=0)) for g, c in curves.items() if len(c) >= 2}
