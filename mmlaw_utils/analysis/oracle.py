"""Oracle ensemble losses (paper §2.3, eqs. 3-4) on a models x texts loss matrix.

``L`` is always a 2-D float array of text-level losses in nats (eq. 1), one row per model
and one column per text. The oracle loss of a subset is the mean over texts of the
per-text minimum over the subset's rows. Everything here is pure numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mmlaw_utils.analysis.groups import CROSS_FAMILY, SAME_FAMILY
# Texts per block in the pair loops: K x block float64 temporaries stay ~ K * 32 KiB.
DEFAULT_BLOCK_TEXTS = 4096
# weighted sums put all pair minima of a text block into one buffer of at most this size
_PAIR_BUFFER_BYTES = 32 * 2**20


@dataclass(frozen=True)
class PairIndex:
    """The K(K-1)/2 unordered pairs i < j in row-major order, with which of them share a family."""

    i: np.ndarray
    j: np.ndarray
    same_family: np.ndarray

    @property
    def cross_family(self) -> np.ndarray:
        """Boolean mask of the pairs whose members come from different families."""
        return ~self.same_family

    @property
    def group(self) -> np.ndarray:
        """Per pair its collaboration group: "same_family" or "cross_family"."""
        return np.where(self.same_family, SAME_FAMILY, CROSS_FAMILY)

    def __len__(self) -> int:
        return int(self.i.size)


def pair_index(families: Sequence[str] | np.ndarray) -> PairIndex:
    """Pairs i < j of the models whose families are ``families`` (one entry per model), row-major order."""
    fam = np.asarray(families).astype(str)
    if fam.ndim != 1:
        raise ValueError(f"families must be one label per model, got shape {fam.shape}")
    i, j = np.triu_indices(fam.size, k=1)
    return PairIndex(i=i, j=j, same_family=fam[i] == fam[j])


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


def blocked_text_sums(values: np.ndarray, block_texts: int = DEFAULT_BLOCK_TEXTS) -> np.ndarray:
    """Sum over the last axis (texts) in blocks of ``block_texts``: the canonical summation order (nats).

    A 1-D input gives a length-1 array. Equal per-text values give bit-identical sums whatever
    subset, pair or single they come from.
    """
    m = np.atleast_2d(values)
    total = np.zeros(m.shape[0])
    for start in range(0, m.shape[1], block_texts):
        total += m[:, start : start + block_texts].sum(axis=1)
    return total if np.ndim(values) > 1 else total[:1]


def pair_minimum_sums(
    L: np.ndarray, weights: np.ndarray | None = None, *, block_texts: int = DEFAULT_BLOCK_TEXTS
) -> tuple[np.ndarray, np.ndarray]:
    """Sums over texts of each model's loss and of each pair's per-text minimum (nats), blocked over texts.

    Unweighted: returns singles (K,) and pairs (K(K-1)/2,) in ``pair_index`` order, summed in
    ``blocked_text_sums`` order, so a pair whose member i is <= member j on every text sums to
    exactly the single sum of i. ``weights`` (B, N), e.g. bootstrap counts: returns
    count-weighted sums singles (K, B) and pairs (K(K-1)/2, B); all pair minima of a text block
    go into one buffer (<= ~32 MiB, which caps the block) and one large GEMM, and dominated
    pairs are set to their better member's sum bit for bit, as in the unweighted case.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    if block_texts < 1:
        raise ValueError(f"block_texts must be >= 1, got {block_texts}")
    n_pairs = n_models * (n_models - 1) // 2
    offsets = np.r_[0, np.cumsum(np.arange(n_models - 1, 0, -1))].astype(np.int64)
    if weights is None:
        singles = blocked_text_sums(array, block_texts)
        pairs = np.zeros(n_pairs)
        buffer = np.empty((max(n_models - 1, 1), min(block_texts, n_texts)))
        for start in range(0, n_texts, block_texts):
            block = np.ascontiguousarray(array[:, start : start + block_texts])
            for i in range(n_models - 1):
                minima = buffer[: n_models - 1 - i, : block.shape[1]]
                np.minimum(block[i], block[i + 1 :], out=minima)
                pairs[offsets[i] : offsets[i + 1]] += minima.sum(axis=1)
        return singles, pairs
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != n_texts:
        raise ValueError(f"weights must be (B, {n_texts}), got {w.shape}")
    # a few big products keep BLAS threads busy; many small ones stall on a shared machine
    step = int(max(16, min(block_texts, _PAIR_BUFFER_BYTES // (8 * max(n_pairs, 1)))))
    singles = np.zeros((n_models, w.shape[0]))
    pairs = np.zeros((n_pairs, w.shape[0]))
    buffer = np.empty((n_pairs, min(step, n_texts)))
    for start in range(0, n_texts, step):
        block = np.ascontiguousarray(array[:, start : start + step])
        w_block = np.ascontiguousarray(w[:, start : start + step].T)  # (width, B)
        singles += block @ w_block
        minima = buffer[:, : block.shape[1]]
        for i in range(n_models - 1):
            np.minimum(block[i], block[i + 1 :], out=minima[offsets[i] : offsets[i + 1]])
        pairs += minima @ w_block
    # BLAS rounds rows differently; a pair whose member i is <= j on every text must tie with
    # single i bit for bit, or near-ties would break frontiers at random
    dominance = pair_dominance(array, block_texts=block_texts)
    rows, cols = np.triu_indices(n_models, k=1)
    for index in np.flatnonzero(dominance[rows, cols] | dominance[cols, rows]):
        best = rows[index] if dominance[rows[index], cols[index]] else cols[index]
        pairs[index] = singles[best]
    return singles, pairs


def pair_oracle_losses(
    L: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    block_texts: int = DEFAULT_BLOCK_TEXTS,
) -> np.ndarray:
    """K x K symmetric matrix of pair oracle losses (eq. 4 for S={i, j}); diagonal = single-model losses. Nats.

    ``weights`` (N,) turns every mean into a weighted mean over texts (e.g. bootstrap counts).
    Work is blocked over texts (``pair_minimum_sums``): K=200, N=50,000 needs ~80 MB for L
    itself plus a few MB. A pair whose member i is <= member j on every text gets exactly the
    single loss of i.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    w = _check_weights(weights, n_texts)
    if w is None:
        singles, pairs = pair_minimum_sums(array, block_texts=block_texts)
    else:
        singles, pairs = (sums[:, 0] for sums in pair_minimum_sums(array, w[None, :], block_texts=block_texts))
    total = float(n_texts) if w is None else float(w.sum())
    rows, cols = np.triu_indices(n_models, k=1)
    matrix = np.diag(singles / total)
    matrix[rows, cols] = matrix[cols, rows] = pairs / total
    return matrix


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
