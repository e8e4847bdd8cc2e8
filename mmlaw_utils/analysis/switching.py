"""Fixed-share switching mixture over models (Herbster & Warmuth 1998): the realizable counterpart of a segment oracle.

A minimum over models of *segment* losses is not a probability model: it never pays for choosing. The
fixed-share mixture is one. Within a text, segment s (in text order) is predicted by mixing the models'
segment probabilities with the current weights w (one per model, summing to 1):

    loss_s = -log sum_m w_m exp(-nll_m(s))                               (nats)

then the weights are updated causally: the Bayesian posterior w'_m ∝ w_m exp(-nll_m(s)), and a share
``alpha`` of the mass is spread uniformly, w_m <- (1 - alpha) w'_m + alpha / K. Every text starts from the
prior (uniform unless given). ``alpha = 0`` is the Bayesian mixture over whole texts (the chain rule makes
the product of the segment predictions the text-level mixture of ``analysis/mixture.py``); one segment per
text is the text-level mixture for every alpha. For every text, sum_s min_m nll_m(s) <= loss, and with a
uniform prior loss <= min_m nll_m(text) + log K at alpha = 0.

Segments are columns of a models x segments matrix; text t owns columns ``starts[t] .. starts[t] +
lengths[t] - 1`` in text order. Work is vectorised over texts (longest first, so the texts still running
at segment position j are a prefix) and over a grid of switching rates; segment likelihoods are taken relative to
each segment's best model (text-level segments are hundreds of nats: exp(-nll) underflows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# switching rates tried by fit_switching_rate: 0 (the Bayesian mixture) and a log grid, then refined
DEFAULT_ALPHA_GRID = np.r_[0.0, np.logspace(-5, np.log10(0.5), 11)]
_REFINE_POINTS = 5


def _check_segments(losses: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    array = np.asarray(losses, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(f"losses must be a 2-D models x segments array, got shape {array.shape}")
    s = np.asarray(starts, dtype=np.int64)
    n = np.asarray(lengths, dtype=np.int64)
    if s.ndim != 1 or s.shape != n.shape:
        raise ValueError(f"starts and lengths need one entry per text, got shapes {s.shape} and {n.shape}")
    if n.size and ((n < 1).any() or (s < 0).any() or (s + n > array.shape[1]).any()):
        bad = int(np.flatnonzero((n < 1) | (s < 0) | (s + n > array.shape[1]))[0])
        raise ValueError(f"text {bad}: segments {s[bad]}..{s[bad] + n[bad] - 1} are empty or outside the "
                         f"{array.shape[1]} segment columns")
    if not np.isfinite(array).all():
        row, col = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"non-finite segment loss for model row {row}, segment column {col}")
    return array, s, n


def _check_alphas(alphas: float | Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all() or (a < 0).any() or (a >= 1).any():
        raise ValueError(f"switching rates must lie in [0, 1), got {a.tolist()}")
    return a


def switching_losses(losses: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                     alphas: float | Sequence[float] | np.ndarray, prior: Sequence[float] | np.ndarray | None = None
                     ) -> np.ndarray:
    """Per-text loss (nats) of the fixed-share mixture of the rows of ``losses``: shape (len(alphas), N texts).

    ``losses`` models x segments (nats); text t is columns ``starts[t]:starts[t]+lengths[t]`` in order;
    ``prior`` the weights every text starts from (uniform when None).
    """
    array, s, n = _check_segments(losses, starts, lengths)
    a = _check_alphas(alphas)
    k = array.shape[0]
    prior_w = np.full(k, 1.0 / k)
    if prior is not None:
        w = np.asarray(prior, dtype=np.float64)
        if w.shape != (k,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"prior needs {k} finite non-negative weights, not all zero; got {w.tolist()}")
        prior_w = w / w.sum()
    keep = (1.0 - a)[:, None, None]
    share = (a / k)[:, None, None]
    order = np.argsort(-n, kind="stable")  # longest first: the texts still running are a prefix
    s_sorted, n_sorted = s[order], n[order]
    by_segment = np.ascontiguousarray(array.T)  # segments x models: one gather per position
    # weights stay normalised probabilities (the forward algorithm with scaling); segment likelihoods are taken
    # relative to the segment's best model, so they lie in (0, 1] and one of them is 1
    weights = np.broadcast_to(prior_w, (a.size, n.size, k)).copy()
    total = np.zeros((a.size, n.size))
    tiny = np.finfo(np.float64).tiny
    n_active = n.size
    for j in range(int(n_sorted.max()) if n.size else 0):
        while n_active and n_sorted[n_active - 1] <= j:
            n_active -= 1
        seg = by_segment[s_sorted[:n_active] + j]  # (active texts, models)
        best = seg.min(axis=1)
        likelihood = np.exp(best[:, None] - seg)
        joint = weights[:, :n_active] * likelihood[None]
        mix = joint.sum(axis=2)
        # mix >= the best model's weight, which underflows only after > 700 nats of evidence against it
        mix = np.maximum(mix, tiny)
        total[:, :n_active] += best[None] - np.log(mix)
        # Bayesian posterior, then share alpha of the mass uniformly
        weights[:, :n_active] = joint * (keep / mix[:, :, None]) + share
    out = np.empty_like(total)
    out[:, order] = total
    return out


def fit_switching_rate(losses: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                       grid: Sequence[float] | np.ndarray = DEFAULT_ALPHA_GRID,
                       prior: Sequence[float] | np.ndarray | None = None) -> tuple[float, float]:
    """The switching rate minimising the mean per-text loss of the given texts, and that loss (nats per text).

    Searches ``grid``, then a finer log grid between the best point's neighbours.
    """
    alphas = np.unique(_check_alphas(grid))
    mean = switching_losses(losses, starts, lengths, alphas, prior).mean(axis=1)
    best = int(np.argmin(mean))
    lo = alphas[best - 1] if best > 0 else alphas[best]
    hi = alphas[best + 1] if best + 1 < alphas.size else alphas[best]
    if hi > lo:
        floor = lo if lo > 0 else min(hi * 1e-2, alphas[alphas > 0].min() * 1e-1)
        fine = np.unique(np.r_[lo, np.geomspace(floor, hi, _REFINE_POINTS)])
        fine_mean = switching_losses(losses, starts, lengths, fine, prior).mean(axis=1)
        alphas, mean = np.r_[alphas, fine], np.r_[mean, fine_mean]
        best = int(np.argmin(mean))
    return float(alphas[best]), float(mean[best])


def document_split(clusters: Sequence[object] | np.ndarray, seed: int = 0,
                   strata: Sequence[object] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded half/half split of texts by source document: (fit text indices, evaluation text indices), sorted.

    Every text of a document lands on the same side (no leakage between halves). With ``strata`` (one
    label per text, e.g. its domain) each stratum's documents are halved separately.
    """
    labels = np.asarray(clusters).astype(str)
    groups = np.zeros(labels.size, dtype=object) if strata is None else np.asarray(strata).astype(str)
    if groups.shape != labels.shape:
        raise ValueError(f"strata needs one label per text ({labels.size}), got shape {groups.shape}")
    rng = np.random.default_rng(seed)
    fit = np.zeros(labels.size, dtype=bool)
    for stratum in sorted(set(groups.tolist())):
        documents = np.unique(labels[groups == stratum])
        chosen = rng.permutation(documents)[: documents.size // 2]
        fit |= (groups == stratum) & np.isin(labels, chosen)
    if fit.all() or not fit.any():
        raise ValueError(f"cannot split {labels.size} texts of {np.unique(labels).size} source document(s) into "
                         "two non-empty halves: need at least two documents")
    return np.flatnonzero(fit), np.flatnonzero(~fit)
