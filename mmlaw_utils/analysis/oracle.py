"""Oracle ensemble losses (paper §2.3, eqs. 3-4) on a models x texts loss matrix.

``L`` is always a 2-D float array of text-level losses in nats (eq. 1), one row per model
and one column per text. The oracle loss of a subset is the mean over texts of the
per-text minimum over the subset's rows. Everything here is pure numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# Texts per block in the pair loops: K x block float64 temporaries stay ~ K * 32 KiB.
DEFAULT_BLOCK_TEXTS = 4096


def _as_loss_matrix(L: np.ndarray, where: str = "L") -> np.ndarray:
    """Check ``L`` is a finite 2-D float array with at least one model and one text; return float64."""
    array = np.asarray(L, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D models x texts array, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{where}: needs at least one model and one text, got shape {array.shape}")
    if not np.isfinite(array).all():
        row, col = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{where}: non-finite loss for model row {row}, text column {col}")
    return array


def _subset_rows(subset: Iterable[int] | int, n_models: int) -> np.ndarray:
    """Model row indices of ``subset`` as a non-empty int array, checked against ``n_models``."""
    rows = np.atleast_1d(np.asarray(list(subset) if not np.isscalar(subset) else [subset]))
    if rows.size == 0:
        raise ValueError("oracle of an empty subset is undefined: give at least one model index")
    if rows.dtype == bool:
        raise TypeError("subset must be model indices, not a boolean mask (use np.flatnonzero(mask))")
    rows = rows.astype(np.int64)
    if rows.min() < -n_models or rows.max() >= n_models:
        raise IndexError(f"subset {rows.tolist()} has an index outside 0..{n_models - 1}")
    return rows


def per_text_oracle(L: np.ndarray, subset: Iterable[int] | int) -> np.ndarray:
    """Per-text oracle loss (eq. 3) of the models ``subset``: shape (N texts,), nats."""
    array = _as_loss_matrix(L)
    return array[_subset_rows(subset, array.shape[0])].min(axis=0)


def oracle_loss(L: np.ndarray, subset: Iterable[int] | int) -> float:
    """Expected oracle loss (eq. 4) of the models ``subset`` (row indices of ``L``), in nats per text."""
    return float(per_text_oracle(L, subset).mean())


def per_text_winners(L: np.ndarray, subset: Iterable[int] | int | None = None) -> np.ndarray:
    """Row index of ``L`` achieving the per-text minimum over ``subset`` (all rows if None), shape (N,).

    Ties go to the model listed first in ``subset`` (lowest row index when ``subset`` is None).
    """
    array = _as_loss_matrix(L)
    rows = np.arange(array.shape[0]) if subset is None else _subset_rows(subset, array.shape[0])
    return rows[np.argmin(array[rows], axis=0)]


def pair_winners(L: np.ndarray, i: int, j: int) -> np.ndarray:
    """Per text, which of models ``i`` and ``j`` the pair oracle picks (ties go to ``i``), shape (N,)."""
    return per_text_winners(L, [i, j])


def win_shares(L: np.ndarray, subset: Iterable[int] | int | None = None) -> np.ndarray:
    """Fraction of texts each model of ``subset`` wins in the subset's oracle; ties split evenly; sums to 1."""
    array = _as_loss_matrix(L)
    rows = np.arange(array.shape[0]) if subset is None else _subset_rows(subset, array.shape[0])
    block = array[rows]
    is_min = block == block.min(axis=0, keepdims=True)
    # a text tied between m models gives each of them 1/m of a win
    return (is_min / is_min.sum(axis=0, keepdims=True)).mean(axis=1)


def _check_weights(weights: np.ndarray | None, n_texts: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_texts,):
        raise ValueError(f"weights must have shape ({n_texts},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return w


def pair_oracle_losses(
    L: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    block_texts: int = DEFAULT_BLOCK_TEXTS,
) -> np.ndarray:
    """K x K symmetric matrix of pair oracle losses (eq. 4 for S={i, j}); diagonal = single-model losses. Nats.

    ``weights`` (N,) turns every mean into a weighted mean over texts (e.g. bootstrap counts).
    Work is blocked over texts so temporaries are K x ``block_texts``: K=200, N=50,000 needs
    ~80 MB for L itself plus a few MB. Within a row, every entry is summed in the same order,
    so a pair whose member i is <= member j on every text gets exactly the single loss of i.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    w = _check_weights(weights, n_texts)
    if block_texts < 1:
        raise ValueError(f"block_texts must be >= 1, got {block_texts}")
    sums = np.zeros((n_models, n_models), dtype=np.float64)
    for start in range(0, n_texts, block_texts):
        block = np.ascontiguousarray(array[:, start : start + block_texts])
        w_block = None if w is None else w[start : start + block_texts]
        diag = block.sum(axis=1) if w_block is None else block @ w_block
        sums[np.arange(n_models), np.arange(n_models)] += diag
        for i in range(n_models - 1):
            minima = np.minimum(block[i], block[i + 1 :])
            sums[i, i + 1 :] += minima.sum(axis=1) if w_block is None else minima @ w_block
    if w is not None:
        # BLAS products may round rows differently: make "i <= j on every text" pairs equal the
        # single loss of i bit for bit, as in the unweighted path (exact ties matter for frontiers)
        dominance = pair_dominance(array, block_texts=block_texts)
        rows, cols = np.nonzero(np.triu(dominance | dominance.T, k=1))
        best = np.where(dominance[rows, cols], rows, cols)
        sums[rows, cols] = sums[best, best]
    total = float(n_texts) if w is None else float(w.sum())
    upper = np.triu(sums, k=1)
    return (upper + upper.T + np.diag(np.diag(sums))) / total


def pair_dominance(L: np.ndarray, *, block_texts: int = DEFAULT_BLOCK_TEXTS) -> np.ndarray:
    """K x K boolean: [i, j] is True when model i's loss is <= model j's on every text (diag True)."""
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    dominance = np.ones((n_models, n_models), dtype=bool)
    for start in range(0, n_texts, block_texts):
        block = np.ascontiguousarray(array[:, start : start + block_texts])
        for i in range(n_models - 1):
            others = block[i + 1 :]
            dominance[i, i + 1 :] &= (block[i] <= others).all(axis=1)
            dominance[i + 1 :, i] &= (others <= block[i]).all(axis=1)
    return dominance


def pair_win_shares(L: np.ndarray, *, block_texts: int = DEFAULT_BLOCK_TEXTS) -> np.ndarray:
    """K x K matrix: entry [i, j] = share of texts model i wins in pair {i, j}; ties count 1/2; diag = 1.

    Off the diagonal ``W + W.T == 1``.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    wins = np.zeros((n_models, n_models), dtype=np.float64)
    for start in range(0, n_texts, block_texts):
        block = np.ascontiguousarray(array[:, start : start + block_texts])
        for i in range(n_models - 1):
            others = block[i + 1 :]
            wins[i, i + 1 :] += (block[i] < others).sum(axis=1) + 0.5 * (block[i] == others).sum(axis=1)
    upper = np.triu(wins, k=1) / n_texts
    shares = upper + (np.triu(1.0 - upper, k=1)).T
    np.fill_diagonal(shares, 1.0)
    return shares


def pair_indices(n_models: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices (i < j) of the K(K-1)/2 unordered pairs, in row-major order."""
    return np.triu_indices(n_models, k=1)


def subsets_oracle_losses(L: np.ndarray, subsets: Sequence[Sequence[int]]) -> np.ndarray:
    """Oracle loss (nats) of each subset in ``subsets`` (model row indices), shape (len(subsets),)."""
    array = _as_loss_matrix(L)
    return np.array([oracle_loss(array, subset) for subset in subsets], dtype=np.float64)


# ---- beyond pairs: public re-exports of mmlaw_utils.analysis.subsets / mmlaw_utils.analysis.mixture (worker BEYOND) ----
# Lazy wrappers, not imports: subsets and mixture import this module, so a module-level import here
# would be circular.


def subset_frontier(L: np.ndarray, params: np.ndarray, max_size: int | None = None, **kwargs):
    """Exact Pareto frontier over all subsets (<= ``max_size`` models); see ``mmlaw_utils.analysis.subsets.subset_frontier``."""
    from mmlaw_utils.analysis.subsets import subset_frontier as _subset_frontier

    return _subset_frontier(L, params, max_size, **kwargs)


def mixture_loss(L: np.ndarray, subset: Sequence[int], weights=None, per_text: bool = False):
    """Sequence-level Bayesian mixture loss (nats); see ``mmlaw_utils.analysis.mixture.mixture_loss``."""
    from mmlaw_utils.analysis.mixture import mixture_loss as _mixture_loss

    return _mixture_loss(L, subset, weights, per_text)
