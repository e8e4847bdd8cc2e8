"""The equal-budget gain: at each parameter budget P, the best ensemble against the best reference with <= P.

Both sides are Pareto staircases: S(P) = min loss over configurations with total parameters <= P
(eq. 5; raw counts). ``gain`` = S_reference(P) - S_ensemble(P) in nats per text (> 0: the ensemble
is better at equal budget). ``reference_params_to_match`` is the smallest budget at which the
reference reaches the ensemble's loss S_ensemble(P) (inf when no reference configuration in the
pool does), and ``params_saved`` = that minus the parameters the best ensemble actually uses.
Comparisons: ``pairs_vs_single`` (every pair against single models) and ``cross_vs_same``
(cross-family pairs against same-family pairs). Intervals: percentiles over bootstrap resamples
of the texts (or of whole source documents), with the budgets held fixed.

As curves (issue 20): the *vertical* comparison is the gain over the whole ln P range, summarised
as the share of that range where a sup-t simultaneous band (over all budgets at once) lies above 0
(ensemble better), below 0 (worse) or covers 0 (tied); a worse step where the ensemble reaches the
reference's loss once it may spend the pool's cheapest model more is an *extra-model cost*, counted
apart. The *horizontal* comparison is ln(parameters the reference needs / parameters the ensemble
needs) at evenly spaced loss targets that both staircases reach, with its own sup-t band.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.bootstrap import resample_counts, weighted_pair_means
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.oracle import _as_loss_matrix, pair_index, pair_oracle_losses

COMPARISONS = ("pairs_vs_single", "cross_vs_same")
BUDGET_COLUMNS = ["comparison", "budget_params", "reference_loss", "ensemble_loss", "gain", "gain_lo", "gain_hi",
                  "gain_band_lo", "gain_band_hi", "log_width", "extra_model_cost", "ensemble_params",
                  "reference_params_to_match", "match_lo", "match_hi", "params_saved", "level", "n_resamples"]
HORIZONTAL_COLUMNS = ["comparison", "target_loss", "reference_params", "ensemble_params", "log_ratio", "log_ratio_band_lo",
                      "log_ratio_band_hi", "level", "n_resamples"]
SUMMARY_COLUMNS = ["comparison", "axis", "range_lo", "range_hi", "n_points", "share_better", "share_worse",
                   "share_tied", "share_extra_model_cost", "median", "band_critical_value", "level", "n_resamples"]
N_TARGETS = 200


def staircase(params: np.ndarray, losses: np.ndarray, budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best loss (nats) with total parameters <= each budget, and the parameters of that best point (NaN: none fits)."""
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    order = np.lexsort((y, p))
    p_sorted, y_sorted = p[order], y[order]
    running = np.minimum.accumulate(y_sorted)
    # params of the running best: the cheapest point reaching each running minimum (ties keep the first)
    improves = np.r_[True, y_sorted[1:] < running[:-1]]
    best_at = np.maximum.accumulate(np.where(improves, np.arange(y_sorted.size), 0))
    index = np.searchsorted(p_sorted, np.asarray(budgets, dtype=np.float64), side="right") - 1
    valid = index >= 0
    loss = np.where(valid, running[np.clip(index, 0, None)], np.nan)
    used = np.where(valid, p_sorted[best_at[np.clip(index, 0, None)]], np.nan)
    return loss, used


def params_to_match(params: np.ndarray, losses: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Smallest total parameters with loss <= each target (nats); inf when no point reaches it, NaN for NaN targets."""
    p = np.asarray(params, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    order = np.argsort(y, kind="mergesort")
    cheapest = np.minimum.accumulate(p[order])  # cheapest point among the k lowest losses
    reached = np.searchsorted(y[order], t, side="right") - 1
    out = np.where(reached >= 0, cheapest[np.clip(reached, 0, None)] if y.size else np.inf, np.inf)
    return np.where(np.isnan(t), np.nan, out)


def budget_grid(*point_sets: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Budgets (raw params) where a staircase steps: the Pareto points of every set, from where all sets have one."""
    budgets, starts = [], []
    for params, losses in point_sets:
        p = np.asarray(params, dtype=np.float64)
        budgets.append(p[pareto_front(p, losses)])
        starts.append(p.min())
    grid = np.unique(np.concatenate(budgets))
    return grid[grid >= max(starts)]


def compare_at_budgets(reference: tuple[np.ndarray, np.ndarray], ensemble: tuple[np.ndarray, np.ndarray],
                       budgets: np.ndarray) -> dict[str, np.ndarray]:
    """Both staircases at ``budgets``: reference and ensemble loss, gain, ensemble params, reference params to match."""
    ref_loss, _ = staircase(*reference, budgets)
    ens_loss, ens_params = staircase(*ensemble, budgets)
    match = params_to_match(*reference, ens_loss)
    return {"reference_loss": ref_loss, "ensemble_loss": ens_loss, "gain": ref_loss - ens_loss,
            "ensemble_params": ens_params, "reference_params_to_match": match}


def order_quantile(values: np.ndarray, q: float) -> np.ndarray:
    """Per column, the ceil(q * B)-th smallest of B rows (an order statistic: inf stays inf, nothing interpolated)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64), axis=0)
    index = min(max(math.ceil(q * ordered.shape[0]) - 1, 0), ordered.shape[0] - 1)
    return ordered[index]


def _comparison_sets(singles: np.ndarray, pairs: np.ndarray, params: np.ndarray, same: np.ndarray,
                     pair_params: np.ndarray) -> dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    return {
        "pairs_vs_single": ((params, singles), (pair_params, pairs)),
        "cross_vs_same": ((pair_params[same], pairs[same]), (pair_params[~same], pairs[~same])),
    }


def sup_t_band(point: np.ndarray, draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Simultaneous band point -/+ c * sd over all columns: c the ``level`` quantile of max_j |draw - point| / sd.

    ``draws`` B x J (NaN entries ignored); columns with sd 0 get a zero-width band. Returns (lo, hi, c).
    """
    values = np.asarray(draws, dtype=np.float64)
    center = np.asarray(point, dtype=np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.full(center.shape, np.nan)
        spread = np.where(sd > 0, np.abs(values - center[None, :]) / np.where(sd > 0, sd, 1.0), 0.0)
        worst = np.nanmax(np.where(np.isfinite(spread), spread, np.nan), axis=1) if spread.size else np.zeros(0)
    worst = worst[np.isfinite(worst)]
    if worst.size == 0:
        return np.full(center.shape, np.nan), np.full(center.shape, np.nan), math.nan
    critical = float(np.quantile(worst, level))
    sd = np.where(np.isfinite(sd), sd, 0.0)
    return center - critical * sd, center + critical * sd, critical


def log_widths(budgets: np.ndarray) -> np.ndarray:
    """Width in ln P of each staircase step [budget_k, budget_k+1) (the last budget: 0)."""
    b = np.asarray(budgets, dtype=np.float64)
    return np.r_[np.diff(np.log(b)), 0.0] if b.size else b


def loss_targets(reference: tuple[np.ndarray, np.ndarray], ensemble: tuple[np.ndarray, np.ndarray],
                 n_targets: int = N_TARGETS) -> np.ndarray:
    """Evenly spaced loss targets (nats) that both staircases reach, up to the loss of the dearer cheapest point."""
    top = min(np.asarray(side[1])[np.argmin(side[0])] for side in (reference, ensemble))
    bottom = max(np.min(side[1]) for side in (reference, ensemble))
    if not bottom < top:
        return np.zeros(0)
    return np.linspace(bottom, top, n_targets)


def horizontal_ratio(reference: tuple[np.ndarray, np.ndarray], ensemble: tuple[np.ndarray, np.ndarray],
                     targets: np.ndarray) -> np.ndarray:
    """ln(parameters the reference needs / parameters the ensemble needs) to reach each loss target (> 0: ensemble cheaper)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(params_to_match(*reference, targets)) - np.log(params_to_match(*ensemble, targets))
    return np.where(np.isfinite(ratio), ratio, np.nan)


def _shares(lo: np.ndarray, hi: np.ndarray, weights: np.ndarray, extra: np.ndarray | None = None) -> dict[str, float]:
    """Weighted shares of a range where a band is above 0, below 0 (less extra-model-cost steps), or covers 0."""
    total = float(weights.sum())
    if total <= 0:
        return {"share_better": math.nan, "share_worse": math.nan, "share_tied": math.nan,
                "share_extra_model_cost": math.nan}
    better, worse = lo > 0, hi < 0
    extra = np.zeros_like(better) if extra is None else np.asarray(extra, dtype=bool) & worse
    return {"share_better": float(weights[better].sum() / total),
            "share_worse": float(weights[worse & ~extra].sum() / total),
            "share_tied": float(weights[~better & ~worse].sum() / total),
            "share_extra_model_cost": float(weights[extra].sum() / total)}


def extra_model_cost(reference_loss: np.ndarray, budgets: np.ndarray, ensemble: tuple[np.ndarray, np.ndarray],
                     cheapest_params: float) -> np.ndarray:
    """Budgets where the ensemble reaches the reference's loss once it may spend the pool's cheapest model more."""
    need = params_to_match(*ensemble, reference_loss)
    return np.asarray(need <= np.asarray(budgets, dtype=np.float64) + cheapest_params)


def equal_budget_analysis(L: np.ndarray, params: np.ndarray, families: np.ndarray, *, n_bootstrap: int = 1000,
                          seed: int = 0, level: float = 0.95, clusters: np.ndarray | None = None,
                          chunk_size: int = 250, n_targets: int = N_TARGETS) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Equal-budget comparisons as curves (module doc): (per-budget table, horizontal curve, summary).

    ``L`` K x N nats, ``params`` raw counts; ``clusters`` (one label per text) resamples source
    documents instead of texts. Per budget: the vertical gain with pointwise percentile and sup-t
    simultaneous bands; horizontal: ln(reference params / ensemble params) at each loss target with
    a sup-t band; summary: per comparison and axis, the shares of the ln P (vertical) or loss-target
    (horizontal) range where the ensemble is better, worse or tied under the simultaneous band, and
    where it is behind only by the cost of the pool's cheapest model (``share_extra_model_cost``).
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    p = np.asarray(params, dtype=np.float64)
    index = pair_index(families)
    if len(p) != n_models or index.i.size != n_models * (n_models - 1) // 2:
        raise ValueError(f"params and families need one entry per model ({n_models})")
    same = index.same_family
    pair_params = p[index.i] + p[index.j]
    full = pair_oracle_losses(array)
    sets = _comparison_sets(np.diag(full), full[index.i, index.j], p, same, pair_params)
    sets = {name: s for name, s in sets.items() if s[0][0].size and s[1][0].size}
    grids = {name: budget_grid(*s) for name, s in sets.items()}
    targets = {name: loss_targets(*s, n_targets=n_targets) for name, s in sets.items()}
    point = {name: compare_at_budgets(*sets[name], grids[name]) for name in sets}
    ratio = {name: horizontal_ratio(*sets[name], targets[name]) for name in sets}
    draws: dict[str, dict[str, list[np.ndarray]]] = {name: {"gain": [], "match": [], "ratio": []} for name in sets}
    for start in range(0, n_bootstrap, chunk_size):
        size = min(chunk_size, n_bootstrap - start)
        singles_b, pairs_b = weighted_pair_means(array, resample_counts(n_texts, size, seed, start, clusters))
        for offset in range(size):
            resampled = _comparison_sets(singles_b[offset], pairs_b[offset], p, same, pair_params)
            for name in sets:
                values = compare_at_budgets(*resampled[name], grids[name])
                draws[name]["gain"].append(values["gain"])
                draws[name]["match"].append(values["reference_params_to_match"])
                draws[name]["ratio"].append(horizontal_ratio(*resampled[name], targets[name]))
    q = [(1 - level) / 2, (1 + level) / 2]
    parts, curves, summary = [], [], []
    for name in sets:
        frame = pd.DataFrame({"comparison": name, "budget_params": grids[name], **point[name]})
        curve = pd.DataFrame({"comparison": name, "target_loss": targets[name],
                              "reference_params": params_to_match(*sets[name][0], targets[name]),
                              "ensemble_params": params_to_match(*sets[name][1], targets[name]),
                              "log_ratio": ratio[name]})
        critical = {"vertical": math.nan, "horizontal": math.nan}
        if n_bootstrap > 0:
            gain = np.stack(draws[name]["gain"])
            match = np.stack(draws[name]["match"])
            match = np.where(np.isnan(match), np.inf, match)
            frame["gain_lo"], frame["gain_hi"] = np.quantile(gain, q, axis=0)
            frame["match_lo"], frame["match_hi"] = (order_quantile(match, level_q) for level_q in q)
            frame["gain_band_lo"], frame["gain_band_hi"], critical["vertical"] = sup_t_band(
                frame["gain"].to_numpy(), gain, level)
            if len(curve):
                curve["log_ratio_band_lo"], curve["log_ratio_band_hi"], critical["horizontal"] = sup_t_band(
                    curve["log_ratio"].to_numpy(), np.stack(draws[name]["ratio"]), level)
        for column in ("gain_lo", "gain_hi", "match_lo", "match_hi", "gain_band_lo", "gain_band_hi"):
            if column not in frame:
                frame[column] = np.nan
        for column in ("log_ratio_band_lo", "log_ratio_band_hi"):
            if column not in curve:
                curve[column] = np.nan
        frame["log_width"] = log_widths(grids[name])
        frame["extra_model_cost"] = extra_model_cost(frame["reference_loss"].to_numpy(), grids[name], sets[name][1],
                                                     float(p.min())) & (frame["gain"].to_numpy() < 0)
        frame["params_saved"] = frame["reference_params_to_match"] - frame["ensemble_params"]
        for table in (frame, curve):
            table["level"] = level
            table["n_resamples"] = n_bootstrap
        vertical = _shares(frame["gain_band_lo"].to_numpy(), frame["gain_band_hi"].to_numpy(), frame["log_width"].to_numpy(),
                           frame["extra_model_cost"].to_numpy())
        summary.append({"comparison": name, "axis": "vertical", "range_lo": float(grids[name].min()),
                        "range_hi": float(grids[name].max()), "n_points": int(len(frame)), **vertical,
                        "median": float(np.median(frame["gain"])), "band_critical_value": critical["vertical"]})
        finite = curve["log_ratio"].notna().to_numpy()
        # a dearer ensemble that costs at most the pool's cheapest model more than the reference: padding's price
        curve_extra = (curve["ensemble_params"] <= curve["reference_params"] + float(p.min())).to_numpy()
        horizontal = _shares(curve["log_ratio_band_lo"].to_numpy()[finite], curve["log_ratio_band_hi"].to_numpy()[finite],
                             np.ones(int(finite.sum())), curve_extra[finite])
        summary.append({"comparison": name, "axis": "horizontal",
                        "range_lo": float(targets[name].min()) if targets[name].size else math.nan,
                        "range_hi": float(targets[name].max()) if targets[name].size else math.nan,
                        "n_points": int(finite.sum()), **horizontal,
                        "median": float(np.exp(np.median(curve["log_ratio"][finite]))) if finite.any() else math.nan,
                        "band_critical_value": critical["horizontal"]})
        parts.append(frame)
        curves.append(curve)
    summary_frame = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    summary_frame["level"] = level
    summary_frame["n_resamples"] = n_bootstrap
    if not parts:  # a pool with no pair or no single model to compare: empty tables, not an error
        return (pd.DataFrame(columns=BUDGET_COLUMNS), pd.DataFrame(columns=HORIZONTAL_COLUMNS),
                pd.DataFrame(columns=SUMMARY_COLUMNS))
    return (pd.concat(parts, ignore_index=True)[BUDGET_COLUMNS], pd.concat(curves, ignore_index=True)[HORIZONTAL_COLUMNS],
            summary_frame)


def equal_budget_table(L: np.ndarray, params: np.ndarray, families: np.ndarray, **kwargs: Any) -> pd.DataFrame:
    """The per-budget table of :func:`equal_budget_analysis` (same keyword arguments)."""
    return equal_budget_analysis(L, params, families, **kwargs)[0]
