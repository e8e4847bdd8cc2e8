"""Bootstrap confidence intervals over texts for the three scaling laws (§3.2-3.5).

Each resample draws N texts with replacement (multinomial counts over the N columns of L),
recomputes every single-model and pair oracle mean as a count-weighted mean, re-extracts the
three Pareto frontiers and refits the three laws. The intervals therefore carry the
uncertainty of a finite evaluation set. Resample r uses its own generator spawned from
``seed``, so it is identical whatever ``n_bootstrap`` or ``chunk_size`` is.

The weighted means are matrix products: for each model i, ``min(L_i, L_j>i) @ counts``
(blocked over texts), so a chunk of resamples costs one GEMM per block of texts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.fit import fit_points, predict
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.oracle import DEFAULT_BLOCK_TEXTS, _as_loss_matrix, pair_index, pair_minimum_sums

FIT_COLUMNS = ("A", "alpha", "L_inf")


def bootstrap_counts(n_texts: int, n_bootstrap: int, seed: int, start: int = 0) -> np.ndarray:
    """Multinomial text counts of resamples ``start .. start+n_bootstrap-1``: (n_bootstrap, n_texts) int64."""
    if n_texts < 2:
        warnings.warn(f"bootstrap over {n_texts} text(s): every resample is the same text set, so the intervals "
                      "have zero width and say nothing about uncertainty", stacklevel=2)
    children = np.random.SeedSequence(seed).spawn(start + n_bootstrap)[start:]
    # N uniform draws with replacement, counted: a multinomial(N, 1/N) vector, but O(N) fast
    return np.stack(
        [np.bincount(np.random.default_rng(child).integers(0, n_texts, n_texts), minlength=n_texts) for child in children]
    ).astype(np.int64)


def cluster_bootstrap_counts(clusters: np.ndarray, n_bootstrap: int, seed: int, start: int = 0) -> np.ndarray:
    """Text counts of resamples that draw whole clusters (source documents) with replacement: (n_bootstrap, N) int64.

    ``clusters`` holds one label per text. Each resample draws as many clusters as there are,
    with replacement; a text counts once per draw of its cluster. With one text per cluster this
    is the text bootstrap (other draws, same law).
    """
    _, cluster_of_text = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    n_clusters = int(cluster_of_text.max()) + 1 if cluster_of_text.size else 0
    children = np.random.SeedSequence(seed).spawn(start + n_bootstrap)[start:]
    drawn = [np.bincount(np.random.default_rng(child).integers(0, n_clusters, n_clusters), minlength=n_clusters)
             for child in children]
    return np.stack([counts[cluster_of_text] for counts in drawn]).astype(np.int64)


def stratified_cluster_counts(clusters: np.ndarray, strata: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Text counts of resamples that redraw each stratum's clusters within the stratum: (n_bootstrap, N) int64.

    ``clusters`` and ``strata`` hold one label per text (a cluster lies in one stratum, e.g. a source
    document in one domain). Each stratum draws as many of its clusters as it has, with replacement, so
    every resample keeps the strata's composition (e.g. texts per domain in expectation and clusters per domain exactly).
    """
    labels = np.asarray(strata).astype(str)
    groups = np.asarray(clusters).astype(str)
    if labels.shape != groups.shape or labels.ndim != 1:
        raise ValueError(f"clusters and strata need one label per text, got shapes {groups.shape} and {labels.shape}")
    counts = np.zeros((n_bootstrap, labels.size), dtype=np.int64)
    for k, stratum in enumerate(sorted(set(labels))):
        mask = labels == stratum
        counts[:, mask] = cluster_bootstrap_counts(groups[mask], n_bootstrap, seed=[seed, k])  # type: ignore[arg-type]
    return counts


def resample_counts(n_texts: int, n_bootstrap: int, seed: int, start: int = 0,
                    clusters: np.ndarray | None = None) -> np.ndarray:
    """Text counts of resamples ``start ..``: by text, or by cluster when ``clusters`` (one label per text) is given."""
    if clusters is None:
        return bootstrap_counts(n_texts, n_bootstrap, seed, start)
    if np.shape(clusters) != (n_texts,):
        raise ValueError(f"clusters needs one label per text ({n_texts}), got shape {np.shape(clusters)}")
    return cluster_bootstrap_counts(clusters, n_bootstrap, seed, start)


def weighted_pair_means(
    L: np.ndarray, counts: np.ndarray, *, block_texts: int = DEFAULT_BLOCK_TEXTS
) -> tuple[np.ndarray, np.ndarray]:
    """Count-weighted single and pair oracle means (nats) for each resample.

    ``counts`` is (B, N). Returns (singles (B, K), pairs (B, K(K-1)/2) in ``oracle.pair_index`` order).
    """
    array = _as_loss_matrix(L)
    n_texts = array.shape[1]
    weights = np.asarray(counts, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != n_texts:
        raise ValueError(f"counts must be (B, {n_texts}), got {weights.shape}")
    totals = weights.sum(axis=1)
    if (totals <= 0).any():
        raise ValueError("every resample needs a positive total count")
    singles, pairs = pair_minimum_sums(array, weights, block_texts=block_texts)
    return (singles / totals).T, (pairs / totals).T


def _fit_row(params_b: np.ndarray, losses: np.ndarray, fit_kwargs: dict) -> dict:
    front = pareto_front(params_b, losses)
    fit = fit_points(params_b[front], losses[front], **fit_kwargs)
    return {"n_frontier": int(front.size), "A": fit.A, "alpha": fit.alpha, "L_inf": fit.L_inf, "r2": fit.r2,
            "rmse": fit.rmse, "status": fit.status}


def bootstrap_group_fits(
    L: np.ndarray,
    params: np.ndarray,
    families: np.ndarray,
    n_bootstrap: int = 1000,
    seed: int = 0,
    params_unit: float = 1e9,
    *,
    chunk_size: int = 250,
    fit_kwargs: dict | None = None,
    progress: bool = False,
    clusters: np.ndarray | None = None,
) -> pd.DataFrame:
    """Refit the three laws on ``n_bootstrap`` text resamples of ``L`` (K x N, nats).

    ``clusters`` (one label per text, e.g. its source document) resamples whole clusters instead of texts.

    ``params`` are raw parameter counts; fits use ``params / params_unit`` (billions by default).
    Returns one row per (resample, group): ``resample``, ``group``, ``A``, ``alpha``, ``L_inf``,
    ``r2``, ``rmse``, ``n_frontier``, ``status`` (NaN fit values with status "too_few_points" when a
    frontier has fewer than 4 points; see ``fit.fit_points``).
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    p = np.asarray(params, dtype=np.float64)
    fam = np.asarray(families).astype(str)
    if p.shape != (n_models,) or fam.shape != (n_models,):
        raise ValueError(f"params and families need one entry per model ({n_models})")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    fit_kwargs = dict(fit_kwargs or {})
    index = pair_index(fam)
    same = index.same_family
    group_params = {
        SINGLE: p / params_unit,
        SAME_FAMILY: (p[index.i[same]] + p[index.j[same]]) / params_unit,
        CROSS_FAMILY: (p[index.i[~same]] + p[index.j[~same]]) / params_unit,
    }
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_bootstrap, desc="bootstrap resamples" if clusters is None else "cluster bootstrap resamples")
    records = []
    for start in range(0, n_bootstrap, chunk_size):
        size = min(chunk_size, n_bootstrap - start)
        singles, pairs = weighted_pair_means(array, resample_counts(n_texts, size, seed, start, clusters))
        for offset in range(size):
            losses = {
                SINGLE: singles[offset],
                SAME_FAMILY: pairs[offset][same],
                CROSS_FAMILY: pairs[offset][~same],
            }
            for group in GROUPS:
                row = _fit_row(group_params[group], losses[group], fit_kwargs)
                records.append({"resample": start + offset, "group": group, **row})
        if bar is not None:
            bar.update(size)
    if bar is not None:
        bar.close()
    return pd.DataFrame.from_records(
        records, columns=["resample", "group", *FIT_COLUMNS, "r2", "rmse", "n_frontier", "status"]
    )


def bootstrap_ci(boot: pd.DataFrame, level: float = 0.95, columns=FIT_COLUMNS) -> pd.DataFrame:
    """Percentile intervals per group: ``<col>_lo``, ``<col>_hi``, ``<col>_median`` and ``n_ok`` (finite fits)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    out = []
    for group in [g for g in GROUPS if g in set(boot["group"])] + sorted(set(boot["group"]) - set(GROUPS)):
        sub = boot[boot["group"] == group]
        ok = sub[list(columns)].notna().all(axis=1)
        row: dict = {"group": group, "n_ok": int(ok.sum()), "n_resamples": int(len(sub))}
        for col in columns:
            values = sub.loc[ok, col].to_numpy(dtype=np.float64)
            lo, med, hi = np.quantile(values, q) if values.size else (np.nan, np.nan, np.nan)
            row.update({f"{col}_lo": lo, f"{col}_median": med, f"{col}_hi": hi})
        out.append(row)
    return pd.DataFrame(out)


def prediction_band(
    boot: pd.DataFrame, group: str, params_b: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band (lo, hi) of the fitted loss (nats) of ``group`` at ``params_b``."""
    sub = boot[(boot["group"] == group)].dropna(subset=list(FIT_COLUMNS))
    if sub.empty:
        raise ValueError(f"no successful bootstrap fits for group {group!r}")
    p = np.asarray(params_b, dtype=np.float64)
    laws = tuple(sub[name].to_numpy()[:, None] for name in FIT_COLUMNS)  # one law per row
    curves = predict(laws, p[None, :])
    lo, hi = np.quantile(curves, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi
