"""Pareto-optimal frontiers (paper §3.4) and the three collaboration groups (§3.3).

A point (params, loss) is *dominated* when another point has params <= and loss <=, with at
least one of the two strictly smaller. Tie rule: exact duplicates (same params and the same
loss, bit for bit) do not dominate each other, so all copies of a non-dominated duplicate are
kept. Points with equal loss and larger params are dominated (e.g. all pairs that contain a
model winning on every text tie in loss; only the cheapest of them stays on the frontier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.groups import CROSS_FAMILY, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.oracle import _as_loss_matrix, pair_index, pair_oracle_losses


def pareto_front(params: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated (params, loss) points, sorted by params then loss; O(n log n).

    ``params`` in any positive unit (raw counts or billions), ``losses`` in nats.
    """
    p = np.asarray(params, dtype=np.float64).ravel()
    y = np.asarray(losses, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"params and losses differ in length: {p.shape[0]} vs {y.shape[0]}")
    if p.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not (np.isfinite(p).all() and np.isfinite(y).all()):
        raise ValueError("params and losses must be finite")
    order = np.lexsort((y, p))  # by params, then loss
    p_sorted, y_sorted = p[order], y[order]
    # groups of equal params: their minimum loss, and the best loss of all strictly cheaper points
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    group_min = y_sorted[starts]  # sorted by loss within a group, so the first is the minimum
    best_cheaper = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]
    group_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, p_sorted.size]))
    # kept: minimal loss within its params group, and strictly better than every cheaper point
    keep = (y_sorted == group_min[group_of]) & (y_sorted < best_cheaper[group_of])
    return order[keep].astype(np.int64)


def is_dominated(params: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Boolean mask of dominated points (complement of ``pareto_front``)."""
    mask = np.ones(np.asarray(params).size, dtype=bool)
    mask[pareto_front(params, losses)] = False
    return mask


def _group_frame(members: list[tuple[int, ...]], params: np.ndarray, loss: np.ndarray,
                 families: list[tuple[str, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "members": pd.Series(members, dtype=object),
            "families": pd.Series(families, dtype=object),
            "params": np.asarray(params, dtype=np.int64),
            "loss": np.asarray(loss, dtype=np.float64),
        }
    )
    on_frontier = np.zeros(len(frame), dtype=bool)
    on_frontier[pareto_front(frame["params"].to_numpy(), frame["loss"].to_numpy())] = True
    frame["on_frontier"] = on_frontier
    return frame


def as_param_counts(params: np.ndarray, n_models: int) -> np.ndarray:
    """Whole positive parameter counts (int64), one per model (raw counts, not billions)."""
    p = np.asarray(params)
    if p.shape != (n_models,):
        raise ValueError(f"params needs one entry per model ({n_models}), got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.integer):
        if not np.all(np.isfinite(p)) or np.any(p != np.round(p)):
            raise ValueError("params must be whole parameter counts (raw counts, not billions)")
    p = p.astype(np.int64)
    if (p <= 0).any():
        raise ValueError(f"params must be positive; model row(s) {np.flatnonzero(p <= 0).tolist()} are not")
    return p


def collaboration_groups(
    L: np.ndarray,
    params: np.ndarray,
    families: np.ndarray,
    *,
    pair_losses: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """Raw points and frontiers of §3.3-3.4: keys "single", "same_family", "cross_family".

    Each frame has one row per raw point: ``members`` (tuple of model row indices),
    ``families`` (their families), ``params`` (total raw parameter count, eq. 5), ``loss``
    (oracle loss, nats, eq. 4) and ``on_frontier``. ``pair_losses`` (K x K from
    ``pair_oracle_losses``) is computed when not given. Row counts are the paper's "raw points".
    """
    array = _as_loss_matrix(L)
    n_models = array.shape[0]
    p = as_param_counts(params, n_models)
    fam = np.asarray(families).astype(str)
    if fam.shape != (n_models,):
        raise ValueError(f"families needs one entry per model ({n_models}), got shape {fam.shape}")
    losses = pair_oracle_losses(array) if pair_losses is None else np.asarray(pair_losses, dtype=np.float64)
    if losses.shape != (n_models, n_models):
        raise ValueError(f"pair_losses must be {n_models} x {n_models}, got {losses.shape}")
    index = pair_index(fam)
    out = {
        SINGLE: _group_frame(
            [(i,) for i in range(n_models)], p, np.diag(losses), [(f,) for f in fam]
        )
    }
    for name, mask in ((SAME_FAMILY, index.same_family), (CROSS_FAMILY, index.cross_family)):
        r, c = index.i[mask], index.j[mask]
        out[name] = _group_frame(
            list(zip(r.tolist(), c.tolist())),
            p[r] + p[c],
            losses[r, c],
            list(zip(fam[r].tolist(), fam[c].tolist())),
        )
    return out


def group_counts(groups: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per group: raw points and Pareto points (the first two columns of the paper's Table 1)."""
    return pd.DataFrame(
        {
            "group": list(groups),
            "raw_points": [len(frame) for frame in groups.values()],
            "pareto_points": [int(frame["on_frontier"].sum()) for frame in groups.values()],
        }
    )
