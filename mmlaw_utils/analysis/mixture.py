"""Realizable ensembles: the sequence-level Bayesian mixture vs the oracle (paper §6.1-§6.2).

The oracle (eq. 3) picks the best model per text with hindsight and is not a probability model.
The mixture p_mix(x) = sum_i w_i p_i(x) *is* one (posterior-weighted model averaging over whole
texts; each p_i scores x under its own tokenizer, eq. 1), with text-level loss

    L_mix(x) = -log sum_i w_i exp(-L_i(x))        (nats),

and for every text  min_i L_i(x) <= L_mix(x) <= min_i L_i(x) + log(1 / w_min):
a realizable system is never more than log(1/w_min) nats per text behind the oracle.
Weights are uniform by default or fitted by EM (maximum likelihood on the simplex, a convex
problem) on one half of the texts and evaluated on the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.groups import GROUPS, PAIR_GROUPS, SINGLE
from mmlaw_utils.analysis.oracle import _as_loss_matrix, _subset_rows, pair_index


def _normalised_weights(weights: Sequence[float] | np.ndarray | None, k: int) -> np.ndarray:
    if weights is None:
        return np.full(k, 1.0 / k)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,):
        raise ValueError(f"weights must have one entry per subset member ({k}), got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def mixture_loss(L: np.ndarray, subset: Sequence[int], weights: Sequence[float] | np.ndarray | None = None,
                 per_text: bool = False) -> float | np.ndarray:
    """Bayesian-mixture loss -log sum_i w_i exp(-L_i(x)) of the models ``subset`` (nats).

    ``weights`` (one per member, normalised to sum 1; uniform when None). Returns the mean over
    texts, or the per-text losses (N,) when ``per_text``. Computed by log-sum-exp (texts are
    hundreds of nats: exp(-L) underflows).
    """
    array = _as_loss_matrix(L)
    rows = _subset_rows(subset, array.shape[0])
    w = _normalised_weights(weights, rows.size)
    with np.errstate(divide="ignore"):
        per = -logsumexp(-array[rows], b=w[:, None], axis=0)
    return per if per_text else float(per.mean())


def fit_mixture_weights(L: np.ndarray, subset: Sequence[int], texts: np.ndarray | None = None, *,
                        max_iter: int = 10_000, tol: float = 1e-12) -> np.ndarray:
    """Maximum-likelihood mixture weights on the texts ``texts`` (column indices; all when None) by EM.

    The log-likelihood sum_t log sum_i w_i exp(-L_it) is concave in w, so the EM fixed point
    is the global optimum. Stops when the mean loss improves by less than ``tol`` nats.
    """
    array = _as_loss_matrix(L)
    rows = _subset_rows(subset, array.shape[0])
    block = array[rows] if texts is None else array[rows][:, np.asarray(texts)]
    return fit_weights_batch(block[None], max_iter=max_iter, tol=tol)[0]


def fit_weights_batch(losses: np.ndarray, *, max_iter: int = 10_000, tol: float = 1e-12) -> np.ndarray:
    """EM for many mixtures at once: ``losses`` (B, k, N) nats -> weights (B, k), each row summing to 1."""
    x = np.asarray(losses, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] < 1:
        raise ValueError(f"losses must be (batch, members, texts), got shape {x.shape}")
    neg = -x
    w = np.full(x.shape[:2], 1.0 / x.shape[1])
    previous = np.full(x.shape[0], np.inf)
    for _ in range(max_iter):
        with np.errstate(divide="ignore"):
            joint = np.log(w)[:, :, None] + neg
        norm = logsumexp(joint, axis=1, keepdims=True)
        loss = -norm[:, 0, :].mean(axis=1)
        w = np.exp(joint - norm).mean(axis=2)
        w /= w.sum(axis=1, keepdims=True)
        if np.all(previous - loss <= tol):
            break
        previous = loss
    return w


def split_texts(n_texts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random half/half split of text columns: (fit indices, evaluation indices), each sorted."""
    if n_texts < 2:
        raise ValueError(f"need at least 2 texts to split, got {n_texts}")
    perm = np.random.default_rng(seed).permutation(n_texts)
    half = n_texts // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def pair_mixture_table(L: np.ndarray, params: np.ndarray, families: np.ndarray, *, seed: int = 0) -> pd.DataFrame:
    """Singles and all pairs, evaluated on a held-out half of the texts (nats per text).

    Weights are fitted on the other half. Columns: members, group, params, best_single (better
    member alone), oracle, mix_uniform, mix_fitted, weight_first (fitted weight of members[0]).
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    fam = np.asarray(families).astype(str)
    p = np.asarray(params, dtype=np.int64)
    fit_idx, eval_idx = split_texts(n_texts, seed)
    ev = array[:, eval_idx]
    single = ev.mean(axis=1)
    index = pair_index(fam)
    rows, cols = index.i, index.j
    w = fit_weights_batch(np.stack([array[rows][:, fit_idx], array[cols][:, fit_idx]], axis=1))
    a, b = ev[rows], ev[cols]
    with np.errstate(divide="ignore"):
        uniform = -logsumexp(np.stack([-a, -b]), b=0.5, axis=0).mean(axis=1)
        fitted = -logsumexp(np.stack([-a, -b]), b=np.stack([w[:, 0], w[:, 1]])[:, :, None], axis=0).mean(axis=1)
    pair = pd.DataFrame({
        "members": pd.Series(list(zip(rows.tolist(), cols.tolist())), dtype=object),
        "group": index.group,
        "params": p[rows] + p[cols],
        "best_single": np.minimum(single[rows], single[cols]),
        "oracle": np.minimum(a, b).mean(axis=1),
        "mix_uniform": uniform,
        "mix_fitted": fitted,
        "weight_first": w[:, 0],
    })
    singles = pd.DataFrame({
        "members": pd.Series([(i,) for i in range(n_models)], dtype=object), "group": SINGLE, "params": p,
        "best_single": single, "oracle": single, "mix_uniform": single, "mix_fitted": single, "weight_first": 1.0,
    })
    return pd.concat([singles, pair], ignore_index=True)


def gain_kept(table: pd.DataFrame, min_gain: float = 0.01) -> pd.DataFrame:
    """Per pair group: how much of the oracle's gain over the better member a mixture keeps.

    Gains are in nats per text (best_single - loss). ``kept_*`` = sum of mixture gains / sum of
    oracle gains over the group's pairs (all pairs, and the pairs on the group's oracle frontier),
    NaN where the mean oracle gain is below ``min_gain`` nats per text (a share of almost nothing);
    ``*_gain_*`` give the mixtures' mean gains in nats per text there and everywhere;
    ``max_gap`` is the largest oracle-to-fitted-mixture gap (bounded by log 2 per text for pairs).
    """
    out = []
    for group in PAIR_GROUPS:
        sub = table[table["group"] == group]
        if sub.empty:
            continue
        on_front = np.zeros(len(sub), dtype=bool)
        on_front[pareto_front(sub["params"].to_numpy(), sub["oracle"].to_numpy())] = True
        row = {"group": group, "n_pairs": len(sub), "n_frontier": int(on_front.sum())}
        for label, mask in (("all", np.ones(len(sub), dtype=bool)), ("frontier", on_front)):
            s = sub[mask]
            g_or = (s["best_single"] - s["oracle"]).sum()
            row[f"oracle_gain_{label}"] = float((s["best_single"] - s["oracle"]).mean())
            for kind in ("uniform", "fitted"):
                g_mix = (s["best_single"] - s[f"mix_{kind}"]).sum()
                row[f"kept_{kind}_{label}"] = float(g_mix / g_or) if g_or >= min_gain * len(s) > 0 else math.nan
            for kind in ("uniform", "fitted"):
                row[f"{kind}_gain_{label}"] = float((s["best_single"] - s[f"mix_{kind}"]).mean())
        row["max_gap"] = float((sub["mix_fitted"] - sub["oracle"]).max())
        out.append(row)
    return pd.DataFrame(out)


def mixture_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with gap_fitted and gap_uniform: mixture loss minus oracle loss, nats per held-out text (>= 0)."""
    return table.assign(gap_fitted=table["mix_fitted"] - table["oracle"], gap_uniform=table["mix_uniform"] - table["oracle"])


def mixture_frontiers(table: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """Per group, the frontier of each loss column ("oracle", "mix_uniform", "mix_fitted") of ``table``."""
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for group in GROUPS:
        sub = table[table["group"] == group].reset_index(drop=True)
        if sub.empty:
            continue
        out[group] = {}
        for column in ("oracle", "mix_uniform", "mix_fitted"):
            keep = pareto_front(sub["params"].to_numpy(), sub[column].to_numpy())
            front = sub.iloc[keep][["members", "params", column]].rename(columns={column: "loss"})
            out[group][column] = front.reset_index(drop=True)
    return out


def subset_mixture_losses(L: np.ndarray, subsets: Sequence[Sequence[int]], params: np.ndarray | None = None, *,
                          seed: int = 0) -> pd.DataFrame:
    """For each subset (e.g. the all-sizes oracle frontier): oracle, uniform and fitted mixture on the held-out half.

    Columns: subset, size, [params (raw total, when ``params`` is given)], best_single, oracle,
    mix_uniform, mix_fitted (nats per held-out text); weights fitted on the other half.
    """
    array = _as_loss_matrix(L)
    fit_idx, eval_idx = split_texts(array.shape[1], seed)
    rows = []
    for subset in subsets:
        members = list(subset)
        w = fit_mixture_weights(array, members, fit_idx)
        ev = array[:, eval_idx]
        rows.append({
            "subset": tuple(members), "size": len(members),
            **({} if params is None else {"params": int(np.asarray(params)[members].sum())}),
            "best_single": float(ev[members].mean(axis=1).min()),
            "oracle": float(ev[members].min(axis=0).mean()),
            "mix_uniform": mixture_loss(ev, members),
            "mix_fitted": mixture_loss(ev, members, w),
        })
    return pd.DataFrame(rows)
