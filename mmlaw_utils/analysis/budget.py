"""The equal-budget gain: at each parameter budget P, the best ensemble against the best reference with <= P.

Both sides are Pareto staircases: S(P) = min loss over configurations with total parameters <= P
(eq. 5; raw counts). ``gain`` = S_reference(P) - S_ensemble(P) in nats per text (> 0: the ensemble
is better at equal budget). ``reference_params_to_match`` is the smallest budget at which the
reference reaches the ensemble's loss S_ensemble(P) (inf when no reference configuration in the
pool does), and ``params_saved`` = that minus the parameters the best ensemble actually uses.
Comparisons: ``pairs_vs_single`` (every pair against single models) and ``cross_vs_same``
(cross-family pairs against same-family pairs). Intervals: percentiles over bootstrap resamples
of the texts (or of whole source documents), with the budgets held fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.bootstrap import resample_counts, weighted_pair_means
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.oracle import _as_loss_matrix, pair_index, pair_oracle_losses

COMPARISONS = ("pairs_vs_single", "cross_vs_same")
BUDGET_COLUMNS = ["comparison", "budget_params", "reference_loss", "ensemble_loss", "gain", "gain_lo", "gain_hi",
                  "ensemble_params", "reference_params_to_match", "match_lo", "match_hi", "params_saved", "level",
                  "n_resamples"]


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
    out = np.full(np.shape(targets), np.inf)
    for index, target in enumerate(np.asarray(targets, dtype=np.float64)):
        if math.isnan(target):
            out[index] = np.nan
            continue
        reach = y <= target
        if reach.any():
            out[index] = p[reach].min()
    return out


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


def equal_budget_table(L: np.ndarray, params: np.ndarray, families: np.ndarray, *, n_bootstrap: int = 1000,
                       seed: int = 0, level: float = 0.95, clusters: np.ndarray | None = None,
                       chunk_size: int = 250) -> pd.DataFrame:
    """Equal-budget gain and parameters to match, with percentile intervals over resamples (see module doc).

    ``L`` K x N nats, ``params`` raw counts; ``clusters`` (one label per text) resamples source
    documents instead of texts. One row per (comparison, budget).
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
    point = {name: compare_at_budgets(*sets[name], grids[name]) for name in sets}
    draws: dict[str, dict[str, list[np.ndarray]]] = {name: {"gain": [], "match": []} for name in sets}
    for start in range(0, n_bootstrap, chunk_size):
        size = min(chunk_size, n_bootstrap - start)
        singles_b, pairs_b = weighted_pair_means(array, resample_counts(n_texts, size, seed, start, clusters))
        for offset in range(size):
            resampled = _comparison_sets(singles_b[offset], pairs_b[offset], p, same, pair_params)
            for name in sets:
                values = compare_at_budgets(*resampled[name], grids[name])
                draws[name]["gain"].append(values["gain"])
                draws[name]["match"].append(values["reference_params_to_match"])
    q = [(1 - level) / 2, (1 + level) / 2]
    parts = []
    for name in sets:
        frame = pd.DataFrame({"comparison": name, "budget_params": grids[name], **point[name]})
        if n_bootstrap > 0:
            gain = np.stack(draws[name]["gain"])
            match = np.stack(draws[name]["match"])
            match = np.where(np.isnan(match), np.inf, match)
            frame["gain_lo"], frame["gain_hi"] = np.quantile(gain, q, axis=0)
            frame["match_lo"], frame["match_hi"] = (order_quantile(match, level_q) for level_q in q)
        else:
            frame["gain_lo"] = frame["gain_hi"] = frame["match_lo"] = frame["match_hi"] = np.nan
        frame["params_saved"] = frame["reference_params_to_match"] - frame["ensemble_params"]
        frame["level"] = level
        frame["n_resamples"] = n_bootstrap
        parts.append(frame)
    if not parts:  # a pool with no pair or no single model to compare: an empty table, not an error
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    return pd.concat(parts, ignore_index=True)[BUDGET_COLUMNS]
