"""Which diversity drives collaboration gains: cross-family oracle gains at equal size in the miniature pool's arms.

Arms (configs/pools/minipool.yaml): ``main`` (families differ in architecture, tokenizer and data),
``same_data`` (the same architectures and tokenizers, one shared mixture: architecture + tokenizer
diversity only) and ``seed`` (one family retrained with other seeds: the noise floor). Within an arm, at
each size index every pair of families is compared at equal size (equal budget: both members have the
same recipe and about the same parameters). The pair's oracle gain over its better member is

    gain = min(mean_t L_a(t), mean_t L_b(t)) - mean_t min(L_a(t), L_b(t))     (nats per text, >= 0),

over all held-out texts and over each domain's texts. Numbers and frames only; report/arms.py draws them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

ALL_TEXTS = "all"


def pair_gain(loss_a: np.ndarray, loss_b: np.ndarray) -> float:
    """Oracle gain of a pair over its better member (nats per text) from two per-text loss vectors."""
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"per-text losses must be two non-empty vectors of one length, got {a.shape} and {b.shape}")
    return float(min(a.mean(), b.mean()) - np.minimum(a, b).mean())


def arm_members(models: pd.DataFrame) -> pd.DataFrame:
    """Rows (model, arm, family, size_index, row) of each arm's comparison; the seed arm includes the seed
    family's main-arm models at the seed sizes (its first seed).

    ``models``: one row per loss-matrix row with ``family``, ``arm``, ``base_family``, ``size_index`` (and
    optionally ``params``, kept); the row number in the loss matrix is the frame's position.
    """
    frame = models.reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    members = [frame]
    seeds = frame[frame["arm"] == "seed"]
    for base in seeds["base_family"].unique():
        sizes = set(seeds.loc[seeds["base_family"] == base, "size_index"])
        first = frame[(frame["arm"] == "main") & (frame["family"] == base) & frame["size_index"].isin(sizes)]
        members.append(first.assign(arm="seed"))
    columns = ["model", "arm", "family", "size_index", "row"] + (["params"] if "params" in frame.columns else [])
    return pd.concat(members, ignore_index=True)[columns]


def equal_size_pair_gains(L: np.ndarray, models: pd.DataFrame, domains: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (arm, size index, family pair, domain): the pair's oracle gain (nats per text).

    ``L``: K x N per-text losses (rows in ``models`` order); ``domains``: the N texts' domains (None: only
    ``all``). Columns: arm, size_index, family_a, family_b, domain, n_texts, gain, rel_gain (gain over
    the better member's mean loss) and params_ratio (larger over smaller member's parameters, >= 1: how far
    "equal size" is from equal budget; NaN without a ``params`` column).
    """
    array = np.asarray(L, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != len(models):
        raise ValueError(f"L has shape {array.shape}; expected {len(models)} rows (one per model)")
    labels = np.full(array.shape[1], ALL_TEXTS, dtype=object) if domains is None else np.asarray(domains, dtype=object)
    if labels.shape != (array.shape[1],):
        raise ValueError(f"{labels.shape[0]} domain labels for {array.shape[1]} texts")
    masks = {ALL_TEXTS: np.ones(array.shape[1], dtype=bool)}
    if domains is not None:
        masks.update({str(d): labels == d for d in sorted(set(labels))})
    rows = []
    for pair in equal_size_pairs(models).itertuples():
        for domain, mask in masks.items():
            la, lb = array[pair.row_a, mask], array[pair.row_b, mask]
            gain = pair_gain(la, lb)
            rows.append({"arm": pair.arm, "size_index": pair.size_index, "family_a": pair.family_a,
                         "family_b": pair.family_b, "domain": domain, "n_texts": int(mask.sum()), "gain": gain,
                         "rel_gain": gain / min(la.mean(), lb.mean()), "params_ratio": pair.params_ratio})
    return pd.DataFrame(rows)


def equal_size_pairs(models: pd.DataFrame) -> pd.DataFrame:
    """Every family pair of each arm at each size index: arm, size_index, family_a, family_b, row_a, row_b (loss-matrix
    rows) and params_ratio (larger over smaller member's parameters; NaN without a ``params`` column)."""
    rows = []
    for (arm, size), group in arm_members(models).groupby(["arm", "size_index"], sort=True):
        group = group.sort_values("family")
        for a, b in itertools.combinations(group.itertuples(), 2):
            ratio = max(a.params, b.params) / min(a.params, b.params) if "params" in group.columns else np.nan
            rows.append({"arm": arm, "size_index": int(size), "family_a": a.family, "family_b": b.family,
                         "row_a": int(a.row), "row_b": int(b.row), "params_ratio": float(ratio)})
    return pd.DataFrame(rows, columns=["arm", "size_index", "family_a", "family_b", "row_a", "row_b", "params_ratio"])


def shared_sizes(pairs: pd.DataFrame) -> list[int]:
    """Size indexes at which every arm of ``pairs`` (column ``arm``, ``size_index``) has a pair."""
    if pairs.empty:
        return []
    return sorted(set.intersection(*(set(g["size_index"]) for _, g in pairs.groupby("arm"))))


def arm_gain_summary(gains: pd.DataFrame, common_sizes: bool = True) -> pd.DataFrame:
    """Mean, min and max pair gain per arm and domain (and per size index), over family pairs.

    ``common_sizes`` keeps only the size indexes every arm has, so arms are compared at the same sizes.
    Returns columns arm, size_index ("all" for the mean over sizes), domain, n_pairs, mean_gain,
    min_gain, max_gain, mean_rel_gain, max_params_ratio (when ``gains`` has params_ratio).
    """
    frame = gains[gains["size_index"].isin(shared_sizes(gains))] if common_sizes else gains
    stats = dict(n_pairs=("gain", "size"), mean_gain=("gain", "mean"), min_gain=("gain", "min"),
                 max_gain=("gain", "max"), mean_rel_gain=("rel_gain", "mean"))
    if "params_ratio" in frame.columns:
        stats["max_params_ratio"] = ("params_ratio", "max")
    per_size = frame.groupby(["arm", "size_index", "domain"]).agg(**stats).reset_index()
    overall = frame.groupby(["arm", "domain"]).agg(**stats).reset_index().assign(size_index="all")
    per_size["size_index"] = per_size["size_index"].astype(object)
    return pd.concat([per_size, overall[per_size.columns]], ignore_index=True)


# Differences between arms: main - same_data is what different data adds to architecture + tokenizer
# diversity; same_data - seed is what architecture + tokenizer add to retraining noise.
ARM_CONTRASTS: tuple[tuple[str, str], ...] = (("main", "same_data"), ("same_data", "seed"), ("main", "seed"))


def arm_gain_intervals(L: np.ndarray, models: pd.DataFrame, domains: np.ndarray, counts: np.ndarray,
                       level: float = 0.95, contrasts: tuple[tuple[str, str], ...] = ARM_CONTRASTS) -> pd.DataFrame:
    """Each arm's mean equal-size pair gain and the differences between arms (nats per text), over all texts and
    per domain, at the sizes every arm has, with percentile intervals over resampled texts.

    ``counts``: (B, N) text counts of the resamples (e.g. ``bootstrap.stratified_cluster_counts``); every
    resample recomputes each model's mean, each pair's oracle mean and so which member is the better one.
    Returns rows domain, quantity (an arm, or "a - b"), kind ("arm" or "contrast"), n_pairs, estimate, lo, hi,
    level, n_resamples.
    """
    array = np.asarray(L, dtype=np.float64)
    weights = np.asarray(counts, dtype=np.float64)
    labels = np.asarray(domains, dtype=object)
    if array.ndim != 2 or array.shape[0] != len(models) or labels.shape != (array.shape[1],):
        raise ValueError(f"L has shape {array.shape}; expected {len(models)} rows and one domain per text")
    if weights.ndim != 2 or weights.shape[1] != array.shape[1]:
        raise ValueError(f"counts must be (B, {array.shape[1]}), got {weights.shape}")
    pairs = equal_size_pairs(models)
    pairs = pairs[pairs["size_index"].isin(shared_sizes(pairs))].reset_index(drop=True)
    arm_names = list(dict.fromkeys(pairs["arm"]))
    rows_used = np.unique(pairs[["row_a", "row_b"]].to_numpy())
    position = {row: k for k, row in enumerate(rows_used)}
    a_pos = pairs["row_a"].map(position).to_numpy()
    b_pos = pairs["row_b"].map(position).to_numpy()
    minima = np.minimum(array[pairs["row_a"]], array[pairs["row_b"]])  # (P, N)
    full = np.ones((1, array.shape[1]))
    masks = {ALL_TEXTS: np.ones(array.shape[1], dtype=bool)} | {str(d): labels == d for d in sorted(set(labels))}
    alpha = (1 - level) / 2
    out = []
    for domain, mask in masks.items():
        w = np.vstack([full, weights])[:, mask]  # row 0: the texts as they are
        totals = w.sum(axis=1)
        if (totals <= 0).any():
            raise ValueError(f"a resample holds no text of domain {domain!r}; resample within domains")
        means = w @ array[rows_used][:, mask].T / totals[:, None]  # (B+1, models used)
        pair_gains = np.minimum(means[:, a_pos], means[:, b_pos]) - w @ minima[:, mask].T / totals[:, None]
        by_arm = {arm: pair_gains[:, (pairs["arm"] == arm).to_numpy()].mean(axis=1) for arm in arm_names}
        values = [(arm, "arm", int((pairs["arm"] == arm).sum()), by_arm[arm]) for arm in arm_names]
        values += [(f"{a} - {b}", "contrast", np.nan, by_arm[a] - by_arm[b]) for a, b in contrasts
                   if a in by_arm and b in by_arm]
        for quantity, kind, n_pairs, series in values:
            lo, hi = np.quantile(series[1:], [alpha, 1 - alpha]) if len(series) > 1 else (np.nan, np.nan)
            out.append({"domain": domain, "quantity": quantity, "kind": kind, "n_pairs": n_pairs,
                        "estimate": float(series[0]), "lo": float(lo), "hi": float(hi), "level": level,
                        "n_resamples": len(series) - 1})
    return pd.DataFrame(out)


def domain_wins(L: np.ndarray, families: np.ndarray, domains: np.ndarray) -> pd.DataFrame:
    """Per family and domain: share of the domain's texts the family wins (lowest loss; ties split) and
    its mean loss (nats per text), among the K models given (one per family, e.g. one size of an arm)."""
    array = np.asarray(L, dtype=np.float64)
    fam = np.asarray(families).astype(str)
    labels = np.asarray(domains, dtype=object)
    if array.shape != (len(fam), len(labels)):
        raise ValueError(f"L has shape {array.shape}; expected ({len(fam)}, {len(labels)})")
    best = array.min(axis=0)
    winners = array == best[None, :]
    credit = winners / winners.sum(axis=0, keepdims=True)  # ties split the text
    rows = []
    for domain in sorted(set(labels)):
        mask = labels == domain
        for k, family in enumerate(fam):
            rows.append({"family": family, "domain": str(domain), "n_texts": int(mask.sum()),
                         "win_share": float(credit[k, mask].mean()), "mean_loss": float(array[k, mask].mean())})
    return pd.DataFrame(rows)


def domain_winners(wins: pd.DataFrame) -> pd.DataFrame:
    """For each domain, the family with the largest win share (and its share)."""
    top = wins.sort_values(["domain", "win_share", "family"], ascending=[True, False, True]).groupby("domain").head(1)
    return top[["domain", "family", "win_share"]].reset_index(drop=True)


def winners_by_size(wins: pd.DataFrame) -> pd.DataFrame:
    """``domain_winners`` at each size index of ``wins`` (a ``size_index`` column): size_index, domain, family,
    win_share."""
    if wins.empty:
        return pd.DataFrame(columns=["size_index", "domain", "family", "win_share"])
    frames = [domain_winners(group).assign(size_index=size) for size, group in wins.groupby("size_index", sort=True)]
    return pd.concat(frames, ignore_index=True)[["size_index", "domain", "family", "win_share"]]


def arm_coverage(pool: pd.DataFrame, scored: list[str] | set[str]) -> pd.DataFrame:
    """Per arm of ``pool`` (columns model, arm), in pool order: models in the pool, models scored, missing ids."""
    have = set(scored)
    rows = []
    for arm, group in pool.groupby("arm", sort=False):
        missing = [m for m in group["model"] if m not in have]
        rows.append({"arm": arm, "n_models": len(group), "n_scored": len(group) - len(missing), "missing": missing})
    return pd.DataFrame(rows)
