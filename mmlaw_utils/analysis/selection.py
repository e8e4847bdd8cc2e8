"""Numbers for one chosen subset of models (the explorer's selection; paper §2.3, eqs. 3-5, §6.1).

For a subset S of the pool: its total parameters (eq. 5, raw count), oracle loss (eq. 4, nats per
text), its best member alone and the oracle's gain over it, the realizable Bayesian mixture's loss
(``mixture``), each member's win share overall and per domain, the texts ordered by the oracle's
gain over the best member (segment winners: ``granularity.segment_winners``).
Every number is computed by the owners of the ideas (``oracle``, ``mixture``); this module only
gathers them for one subset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.mixture import fit_mixture_weights, mixture_loss, split_texts
from mmlaw_utils.analysis.oracle import _as_loss_matrix, _subset_rows, per_text_oracle, win_shares


@dataclass(frozen=True)
class SelectionNumbers:
    """Summary of one subset: P (raw count) and losses in nats per text."""

    members: tuple[int, ...]
    params: int
    oracle_loss: float
    best_member: int
    best_member_loss: float
    gain: float  # best member's loss - oracle loss (nats per text, >= 0)
    mixture_uniform: float  # uniform-weight mixture over all texts


@dataclass(frozen=True)
class HeldoutMixture:
    """The mixture with fitted weights (§6.1): EM on one half of the texts, losses on the other (nats per text)."""

    members: tuple[int, ...]
    best_member: float
    oracle: float
    mixture_fitted: float
    weights: tuple[float, ...]


def selection_numbers(L: np.ndarray, params: Sequence[int] | np.ndarray, subset: Sequence[int]) -> SelectionNumbers:
    """Total P, oracle loss, best member, gain and uniform-mixture loss (nats per text) of ``subset`` (row indices)."""
    array = _as_loss_matrix(L)
    rows = _subset_rows(subset, array.shape[0])
    means = array[rows].mean(axis=1)
    best = int(np.argmin(means))
    oracle = float(per_text_oracle(array, rows).mean())
    return SelectionNumbers(
        members=tuple(int(r) for r in rows),
        params=int(np.asarray(params, dtype=np.int64)[rows].sum()),
        oracle_loss=oracle,
        best_member=int(rows[best]),
        best_member_loss=float(means[best]),
        gain=float(means[best]) - oracle,
        mixture_uniform=float(mixture_loss(array, rows)),
    )


def heldout_mixture(L: np.ndarray, subset: Sequence[int], *, seed: int = 0) -> HeldoutMixture:
    """Best member, oracle and EM-fitted mixture of ``subset`` on the held-out half of ``split_texts(N, seed)``.

    The same split and fit as ``mixture.subset_mixture_losses``, so the numbers equal that table's
    ``best_single``, ``oracle`` and ``mix_fitted`` (EM can take a second on K=71 x N=10,000: the
    explorer runs it after showing the other numbers).
    """
    array = _as_loss_matrix(L)
    rows = _subset_rows(subset, array.shape[0])
    fit_idx, eval_idx = split_texts(array.shape[1], seed)
    held_out = array[:, eval_idx]
    weights = fit_mixture_weights(array, rows, fit_idx)
    return HeldoutMixture(
        members=tuple(int(r) for r in rows),
        best_member=float(held_out[rows].mean(axis=1).min()),
        oracle=float(held_out[rows].min(axis=0).mean()),
        mixture_fitted=float(mixture_loss(held_out, rows, weights)),
        weights=tuple(float(x) for x in weights),
    )


def win_share_table(L: np.ndarray, subset: Sequence[int], domains: Sequence[str] | None = None) -> pd.DataFrame:
    """Share of texts each member wins in the subset's oracle (ties split), column ``all`` and one per domain.

    Rows are the members in ``subset`` order (index: row index of ``L``); each column sums to 1.
    """
    array = _as_loss_matrix(L)
    rows = _subset_rows(subset, array.shape[0])
    table = {"all": win_shares(array, rows)}
    if domains is not None:
        labels = np.asarray(domains, dtype=object)
        if labels.shape != (array.shape[1],):
            raise ValueError(f"domains has {labels.size} labels for {array.shape[1]} texts")
        for domain in sorted({str(d) for d in labels}):
            table[domain] = win_shares(array[:, labels == domain], rows)
    return pd.DataFrame(table, index=pd.Index(rows, name="row"))


def text_gains(L: np.ndarray, subset: Sequence[int]) -> pd.DataFrame:
    """Per text: the best member's loss, the oracle's loss, gain = their difference (nats), the winning row.

    The best member is the one with the lowest mean loss; rows are texts (``text`` = column index of
    ``L``), sorted by gain, largest first (ties: text order). Winner ties go to the first member.
    """
    array = _as_loss_matrix(L)
    rows = _subset_rows(subset, array.shape[0])
    block = array[rows]
    best = int(rows[np.argmin(block.mean(axis=1))])
    oracle = block.min(axis=0)
    frame = pd.DataFrame({
        "text": np.arange(array.shape[1]),
        "best_member_nll": array[best],
        "oracle_nll": oracle,
        "gain": array[best] - oracle,
        "winner": rows[np.argmin(block, axis=0)],
    })
    return frame.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)

