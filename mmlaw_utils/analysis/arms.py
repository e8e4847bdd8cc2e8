"""Which diversity drives collaboration gains: cross-family oracle gains at equal size in the miniature pool's arms.

Arms (configs/pools/minipool.yaml): ``main`` (families differ in architecture, tokenizer and data),
``same_data`` (the same architectures and tokenizers, one shared mixture: architecture + tokenizer
diversity only) and ``seed`` (models of main or same_data retrained with other seeds; pool column
``replicates`` names the arm retrained, missing meaning ``main``). A *slot* is one model of a replicated arm
(arm, base family, size index); its *replicas* are that model and its seed retrainings. Within main and
same_data, at each size index every pair of families is compared at equal size; the seed arm ``seed(X)``
pairs two replicas of one slot of arm X (the retraining noise floor of X). For a pair (a, b) over texts T:

    oracle = min(mean_T L_a, mean_T L_b) - mean_T min(L_a, L_b)                 (nats per text, >= 0)
    router = min(mean_T L_a, mean_T L_b) - sum_d n_d/N min(mean_d L_a, mean_d L_b)  (better member per domain d)
    within = oracle - router = sum_d n_d/N oracle_d                             (text-weighted per-domain gains)

so the gain over all texts is the between-domain routing gain plus the average within-domain gain, and stands
above every domain's gain when the members win different domains. Intervals resample source documents
(within domains) and, per resample, which replica stands in for each slot (model-level uncertainty).
Numbers and frames only; report/arms.py draws them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

ALL_TEXTS = "all"
SEED_ARM = "seed"
GAINS = ("oracle", "router", "within")
SIZE_MATCH_RATIO = 1.25  # size-matched sensitivity: members within this factor in parameters


def pair_gain(loss_a: np.ndarray, loss_b: np.ndarray) -> float:
    """Oracle gain of a pair over its better member (nats per text) from two per-text loss vectors."""
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"per-text losses must be two non-empty vectors of one length, got {a.shape} and {b.shape}")
    return float(min(a.mean(), b.mean()) - np.minimum(a, b).mean())


def router_gain(loss_a: np.ndarray, loss_b: np.ndarray, domains: np.ndarray) -> float:
    """Gain of a per-domain router (the better member of each domain on all its texts) over the pair's better
    member (nats per text, >= 0)."""
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    labels = np.asarray(domains, dtype=object)
    if a.shape != b.shape or labels.shape != a.shape or a.size == 0:
        raise ValueError(f"losses and domains must be non-empty vectors of one length, got {a.shape}, {b.shape}, "
                         f"{labels.shape}")
    routed = sum((labels == d).sum() * min(a[labels == d].mean(), b[labels == d].mean()) for d in set(labels))
    return float(min(a.mean(), b.mean()) - routed / a.size)


def seed_arm_label(replicates: str) -> str:
    """Name of the seed arm that retrains arm ``replicates`` (e.g. ``seed(main)``)."""
    return f"{SEED_ARM}({replicates})"


def replica_slots(models: pd.DataFrame) -> pd.DataFrame:
    """One row per model, with its slot: row (loss-matrix row), model, arm, slot_arm (the arm whose model it is or
    retrains), base_family, size_index, family (the slot's family name in its arm), replica (0: the arm's own
    model, then seeds by model id), params when given. Seed rows without ``replicates`` retrain ``main``."""
    frame = models.reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    if "base_family" not in frame.columns:
        frame["base_family"] = frame["family"]
    is_seed = (frame["arm"] == SEED_ARM).to_numpy()
    replicates = frame["replicates"] if "replicates" in frame.columns else pd.Series(np.nan, index=frame.index)
    replicates = replicates.where(replicates.notna() & (replicates.astype(str) != ""), "main").astype(str)
    frame["slot_arm"] = np.where(is_seed, replicates, frame["arm"].astype(str))
    own = frame[~is_seed].groupby(["slot_arm", "base_family"])["family"].first()
    frame["family"] = [own.get((a, b), b) if s else f
                       for a, b, f, s in zip(frame["slot_arm"], frame["base_family"], frame["family"], is_seed)]
    frame = frame.assign(_seed=is_seed).sort_values(["slot_arm", "base_family", "size_index", "_seed", "model"])
    frame["replica"] = frame.groupby(["slot_arm", "base_family", "size_index"]).cumcount()
    columns = ["row", "model", "arm", "slot_arm", "base_family", "size_index", "family", "replica"]
    return frame[columns + (["params"] if "params" in frame.columns else [])].sort_values("row").reset_index(drop=True)


def seed_coverage(models: pd.DataFrame) -> pd.DataFrame:
    """Per replicated arm, base family and size index: n_replicas (1: no seed scored) and the replicas' model ids."""
    slots = replica_slots(models)
    return (slots.sort_values("replica").groupby(["slot_arm", "base_family", "size_index"])
            .agg(family=("family", "first"), n_replicas=("row", "size"), models=("model", list)).reset_index())


def comparison_units(models: pd.DataFrame, max_params_ratio: float | None = None) -> pd.DataFrame:
    """The units each arm averages over, one row each: arm, size_index, family_a, family_b, params_ratio (larger over
    smaller member's parameters, NaN without ``params``), combos (every (row_a, row_b) of replicas) and the draw
    of a resample: ``slots`` (one replica per slot, shared by every unit) or ``pairs`` (one replica pair).

    main, same_data (and any other non-seed arm): one unit per pair of families at a size, its combos every pairing
    of the two slots' replicas. seed(X): one unit per slot of X with two or more replicas, its combos every pair of
    replicas. ``max_params_ratio`` keeps only units whose members are within that factor in parameters.
    """
    slots = replica_slots(models)
    has_params = "params" in slots.columns
    rows = []
    for (arm, size), group in slots.groupby(["slot_arm", "size_index"], sort=True):
        by_slot = {fam: g.sort_values("replica") for fam, g in group.groupby("base_family", sort=True)}
        for (fa, ga), (fb, gb) in itertools.combinations(by_slot.items(), 2):
            ratio = (max(ga["params"].iloc[0], gb["params"].iloc[0]) / min(ga["params"].iloc[0], gb["params"].iloc[0])
                     if has_params else np.nan)
            rows.append({"arm": arm, "size_index": int(size), "family_a": ga["family"].iloc[0],
                         "family_b": gb["family"].iloc[0], "params_ratio": float(ratio), "draw": "slots",
                         "slot_a": (arm, fa, int(size)), "slot_b": (arm, fb, int(size)),
                         "combos": [(int(a), int(b)) for a in ga["row"] for b in gb["row"]]})
        for fam, g in by_slot.items():
            if len(g) < 2:
                continue
            ratio = g["params"].max() / g["params"].min() if has_params else np.nan
            rows.append({"arm": seed_arm_label(arm), "size_index": int(size), "family_a": g["family"].iloc[0],
                         "family_b": g["family"].iloc[0], "params_ratio": float(ratio), "draw": "pairs",
                         "slot_a": (arm, fam, int(size)), "slot_b": (arm, fam, int(size)),
                         "combos": [(int(a), int(b)) for a, b in itertools.combinations(g["row"], 2)]})
    units = pd.DataFrame(rows, columns=["arm", "size_index", "family_a", "family_b", "params_ratio", "draw", "slot_a",
                                        "slot_b", "combos"])
    if max_params_ratio is not None:
        units = units[units["params_ratio"] <= max_params_ratio]
    return units.reset_index(drop=True)


def equal_size_pairs(models: pd.DataFrame) -> pd.DataFrame:
    """Every pair compared at equal size, as scored: the arm's own models of each family pair of main and same_data
    (first replica of each slot), and every replica pair of each seed arm's slots. Columns arm, size_index,
    family_a, family_b (seed arms: the replicas' own family names), row_a, row_b, params_ratio."""
    names = models.reset_index(drop=True)["family"].astype(str).to_numpy()
    rows = []
    for unit in comparison_units(models).itertuples():
        combos = unit.combos if unit.draw == "pairs" else unit.combos[:1]
        for a, b in combos:
            fam_a, fam_b = (names[a], names[b]) if unit.draw == "pairs" else (unit.family_a, unit.family_b)
            rows.append({"arm": unit.arm, "size_index": unit.size_index, "family_a": fam_a, "family_b": fam_b,
                         "row_a": a, "row_b": b, "params_ratio": unit.params_ratio})
    return pd.DataFrame(rows, columns=["arm", "size_index", "family_a", "family_b", "row_a", "row_b", "params_ratio"])


def equal_size_pair_gains(L: np.ndarray, models: pd.DataFrame, domains: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (arm, size index, pair, domain) of ``equal_size_pairs``: the pair's gains (nats per text).

    ``L``: K x N per-text losses (rows in ``models`` order); ``domains``: the N texts' domains (None: only
    ``all``). Columns: arm, size_index, family_a, family_b, domain, n_texts, gain (oracle), router_gain and
    within_gain (over all texts: routing by domain and the rest; in one domain 0 and the oracle gain), rel_gain
    (gain over the better member's mean loss) and params_ratio (larger over smaller member's parameters, >= 1;
    NaN without a ``params`` column).
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
            routed = router_gain(la, lb, labels[mask])
            rows.append({"arm": pair.arm, "size_index": pair.size_index, "family_a": pair.family_a,
                         "family_b": pair.family_b, "domain": domain, "n_texts": int(mask.sum()), "gain": gain,
                         "router_gain": routed, "within_gain": gain - routed,
                         "rel_gain": gain / min(la.mean(), lb.mean()), "params_ratio": pair.params_ratio})
    return pd.DataFrame(rows)


def shared_sizes(pairs: pd.DataFrame) -> list[int]:
    """Size indexes at which every arm of ``pairs`` (column ``arm``, ``size_index``) has a pair."""
    if pairs.empty:
        return []
    return sorted(set.intersection(*(set(g["size_index"]) for _, g in pairs.groupby("arm"))))


def arm_gain_summary(gains: pd.DataFrame, common_sizes: bool = True) -> pd.DataFrame:
    """Mean, min and max pair gain per arm and domain (and per size index), over the pairs as scored.

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


# Differences between arms: main - same_data is what different data add to architecture + tokenizer diversity;
# same_data - seed(same_data) what architecture + tokenizer add to retraining noise on one mixture;
# main - seed(main) what every difference between families adds to retraining noise.
ARM_CONTRASTS: tuple[tuple[str, str], ...] = (("main", "same_data"), ("same_data", seed_arm_label("same_data")),
                                              ("main", seed_arm_label("main")))


def replica_draws(units: pd.DataFrame, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, units) index into each unit's combos: per resample one uniform replica per slot, shared by
    every unit holding that slot (``slots`` units), or one uniform replica pair (``pairs`` units)."""
    rng = np.random.default_rng(seed)
    sizes = {}
    for unit in units.itertuples():
        if unit.draw == "slots":
            n_b = len({b for _, b in unit.combos})
            sizes[unit.slot_a] = len(unit.combos) // n_b
            sizes[unit.slot_b] = n_b
    slot_ids = sorted(sizes)
    choice = {s: rng.integers(0, sizes[s], n_resamples) for s in slot_ids}
    out = np.zeros((n_resamples, len(units)), dtype=np.int64)
    for u, unit in enumerate(units.itertuples()):
        if unit.draw == "slots":
            out[:, u] = choice[unit.slot_a] * sizes[unit.slot_b] + choice[unit.slot_b]
        else:
            out[:, u] = rng.integers(0, len(unit.combos), n_resamples)
    return out


def _combo_gains(array: np.ndarray, weights: np.ndarray, combos: np.ndarray,
                 masks: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """(B, C) gains of every combo under every text weighting: keys (gain, domain); per domain only the oracle."""
    rows_used, inverse = np.unique(combos, return_inverse=True)
    a_pos, b_pos = inverse.reshape(combos.shape).T
    minima = np.minimum(array[combos[:, 0]], array[combos[:, 1]])  # (C, N)
    total_model = total_min = total_routed = total_n = 0.0
    out = {}
    for domain, mask in masks.items():
        w = weights[:, mask]
        n = w.sum(axis=1)[:, None]
        if (n <= 0).any():
            raise ValueError(f"a resample holds no text of domain {domain!r}; resample within domains")
        model_sum = w @ array[rows_used][:, mask].T  # (B, models used)
        min_sum = w @ minima[:, mask].T  # (B, C)
        better = np.minimum(model_sum[:, a_pos], model_sum[:, b_pos])
        out[("oracle", domain)] = (better - min_sum) / n
        total_model, total_min, total_n = total_model + model_sum, total_min + min_sum, total_n + n
        total_routed = total_routed + better
    better = np.minimum(total_model[:, a_pos], total_model[:, b_pos])
    out[("oracle", ALL_TEXTS)] = (better - total_min) / total_n
    out[("router", ALL_TEXTS)] = (better - total_routed) / total_n
    out[("within", ALL_TEXTS)] = (total_routed - total_min) / total_n
    return out


def seeded_families(units: pd.DataFrame, models: pd.DataFrame) -> str:
    """Comma-separated families of ``units`` whose slots have two or more replicas (seed-resampled); "" for none."""
    coverage = seed_coverage(models).set_index(["slot_arm", "base_family", "size_index"])["n_replicas"]
    seeded = {slot[1] for unit in units.itertuples() for slot in (unit.slot_a, unit.slot_b)
              if coverage.get(slot, 1) > 1}
    return ", ".join(sorted(seeded))


def arm_gain_intervals(L: np.ndarray, models: pd.DataFrame, domains: np.ndarray, counts: np.ndarray,
                       level: float = 0.95, contrasts: tuple[tuple[str, str], ...] = ARM_CONTRASTS, *,
                       seed: int = 0, max_params_ratio: float | None = None) -> pd.DataFrame:
    """Each arm's mean oracle, router and within-domain gain and the differences between arms (nats per text), at
    the sizes every arm has, with percentile intervals that resample texts and seeds.

    The estimate is the mean over units of each unit's mean over its replica combos (the expected gain over
    retraining). Resample b weights texts by ``counts[b]`` (e.g. ``bootstrap.stratified_cluster_counts``) and
    takes one replica per slot (``replica_draws`` with ``seed``); every resample recomputes each model's mean and so
    which member is better. Rows: gain, domain (per domain the oracle gain only: there router = 0, within = oracle),
    quantity (an arm, or "a - b"), kind ("arm" or "contrast"), n_pairs, estimate, lo, hi, level, n_resamples,
    seeded (families whose replicas were resampled).
    """
    array = np.asarray(L, dtype=np.float64)
    weights = np.asarray(counts, dtype=np.float64)
    labels = np.asarray(domains, dtype=object)
    if array.ndim != 2 or array.shape[0] != len(models) or labels.shape != (array.shape[1],):
        raise ValueError(f"L has shape {array.shape}; expected {len(models)} rows and one domain per text")
    if weights.ndim != 2 or weights.shape[1] != array.shape[1]:
        raise ValueError(f"counts must be (B, {array.shape[1]}), got {weights.shape}")
    units = comparison_units(models)
    units = units[units["size_index"].isin(shared_sizes(units))]
    if max_params_ratio is not None:
        units = units[units["params_ratio"] <= max_params_ratio]
    units = units.reset_index(drop=True)
    columns = ["gain", "domain", "quantity", "kind", "n_pairs", "estimate", "lo", "hi", "level", "n_resamples", "seeded"]
    if units.empty:
        return pd.DataFrame(columns=columns)
    combos = np.array([c for unit in units["combos"] for c in unit], dtype=np.int64)
    offsets = np.cumsum([0] + [len(c) for c in units["combos"]])
    draws = offsets[:-1][None, :] + replica_draws(units, len(weights), seed)  # (B, U) into combos
    per_domain = {str(d): labels == d for d in sorted(set(labels))}
    by_combo = _combo_gains(array, np.vstack([np.ones((1, array.shape[1])), weights]), combos, per_domain)
    arm_names = list(dict.fromkeys(units["arm"]))
    alpha = (1 - level) / 2
    out = []
    seeded = {arm: seeded_families(units[units["arm"] == arm], models) for arm in arm_names}
    pairs = [(a, b) for a, b in contrasts if a in arm_names and b in arm_names]
    seeded |= {f"{a} - {b}": seeded_families(units[units["arm"].isin([a, b])], models) for a, b in pairs}
    keys = [(gain, ALL_TEXTS) for gain in GAINS] + [("oracle", d) for d in per_domain]
    out = []
    for gain, domain in keys:
        values = by_combo[(gain, domain)]
        expected = np.array([values[0, offsets[u]:offsets[u + 1]].mean() for u in range(len(units))])
        drawn = np.take_along_axis(values[1:], draws, axis=1)  # (B, U)
        per_unit = np.vstack([expected[None, :], drawn])
        by_arm = {arm: per_unit[:, (units["arm"] == arm).to_numpy()].mean(axis=1) for arm in arm_names}
        series = [(arm, "arm", int((units["arm"] == arm).sum()), by_arm[arm]) for arm in arm_names]
        series += [(f"{a} - {b}", "contrast", np.nan, by_arm[a] - by_arm[b]) for a, b in pairs]
        for quantity, kind, n_pairs, values_b in series:
            lo, hi = np.quantile(values_b[1:], [alpha, 1 - alpha]) if len(values_b) > 1 else (np.nan, np.nan)
            out.append({"gain": gain, "domain": domain, "quantity": quantity, "kind": kind, "n_pairs": n_pairs,
                        "estimate": float(values_b[0]), "lo": float(lo), "hi": float(hi), "level": level,
                        "n_resamples": len(values_b) - 1, "seeded": seeded[quantity]})
    return pd.DataFrame(out, columns=columns)


def missing_seeds(side: str, coverage: pd.DataFrame, sizes: list[int]) -> list[str]:
    """Families of arm X without a seed replica at every one of ``sizes`` when ``side`` is seed(X) (``coverage``:
    ``seed_coverage``); [] for an arm that is not a seed arm, ["every X family"] when X has no slot there."""
    if not side.startswith(f"{SEED_ARM}("):
        return []
    arm = side[len(SEED_ARM) + 1:-1]
    at = coverage[(coverage["slot_arm"] == arm) & coverage["size_index"].isin(sizes)]
    if at.empty:
        return [f"every {arm} family"]
    seeded = at.groupby("base_family")["n_replicas"].min() > 1
    return sorted(seeded.index[~seeded.to_numpy()])


def contrast_verdicts(intervals: pd.DataFrame, coverage: pd.DataFrame, sizes: list[int],
                      contrasts: tuple[tuple[str, str], ...] = ARM_CONTRASTS) -> pd.DataFrame:
    """Per contrast and gain, over all texts: estimate, lo, hi and a verdict: "above 0", "below 0", "not
    distinguishable from 0", or "needs seeds" when a side is seed(X) and some family of X lacks a seed replica at
    one of ``sizes`` (``missing`` names them); a contrast with an arm not scored and no seed missing: "arm not
    scored". ``coverage``: ``seed_coverage`` of the scored models."""
    overall = intervals[intervals["domain"] == ALL_TEXTS].set_index(["quantity", "gain"])
    rows = []
    for a, b in contrasts:
        quantity = f"{a} - {b}"
        missing = missing_seeds(a, coverage, sizes) + missing_seeds(b, coverage, sizes)
        for gain in GAINS:
            found = (quantity, gain) in overall.index
            r = overall.loc[(quantity, gain)] if found else None
            if missing:
                verdict = "needs seeds"
            elif r is None:
                verdict = "arm not scored"
            else:
                verdict = "above 0" if r.lo > 0 else "below 0" if r.hi < 0 else "not distinguishable from 0"
            rows.append({"contrast": quantity, "gain": gain, "estimate": r.estimate if found else np.nan,
                         "lo": r.lo if found else np.nan, "hi": r.hi if found else np.nan, "verdict": verdict,
                         "missing": ", ".join(missing), "seeded": r.seeded if found else ""})
    return pd.DataFrame(rows, columns=["contrast", "gain", "estimate", "lo", "hi", "verdict", "missing", "seeded"])


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


def winner_seed_spread(L: np.ndarray, models: pd.DataFrame, domains: np.ndarray, arm: str = "main",
                       max_combos: int = 729, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Domain wins of ``arm``'s families at each size where all are scored, under every combination of their
    seed replicas (a random ``max_combos`` of them when there are more).

    Returns (cells, winners). cells: size_index, domain, family, win_share (the arm's own models), win_share_min,
    win_share_max (over combinations), n_replicas, n_combos. winners: size_index, domain, family (winner with the
    arm's own models), win_share, kept_share (share of combinations it still wins), flipped (a reseed makes another
    family the winner), other_winners, n_combos.
    """
    array = np.asarray(L, dtype=np.float64)
    labels = np.asarray(domains, dtype=object)
    slots = replica_slots(models)
    slots = slots[slots["slot_arm"] == arm]
    n_families = slots["base_family"].nunique()
    domain_names = sorted(set(labels))
    onehot = np.stack([labels == d for d in domain_names]).astype(np.float64)  # (D, N)
    rng = np.random.default_rng(seed)
    cells, winners = [], []
    for size, group in slots.groupby("size_index", sort=True):
        if group["base_family"].nunique() < n_families:
            continue
        by_family = [g.sort_values("replica") for _, g in group.groupby("base_family", sort=True)]
        families = [g["family"].iloc[0] for g in by_family]
        replicas = [g["row"].to_numpy() for g in by_family]
        n_total = int(np.prod([len(r) for r in replicas]))
        if n_total <= max_combos:
            picks = np.array(list(itertools.product(*[range(len(r)) for r in replicas])), dtype=np.int64)
        else:  # the arm's own models first, then random combinations
            picks = np.vstack([np.zeros((1, len(replicas)), dtype=np.int64),
                               np.stack([rng.integers(0, len(r), max_combos - 1) for r in replicas], axis=1)])
        rows = np.stack([r[picks[:, k]] for k, r in enumerate(replicas)], axis=1)  # (C, F)
        losses = array[rows]  # (C, F, N)
        won = losses == losses.min(axis=1, keepdims=True)
        credit = won / won.sum(axis=1, keepdims=True)
        shares = credit @ onehot.T / onehot.sum(axis=1)  # (C, F, D)
        best = shares.argmax(axis=1)  # (C, D): ties to the first family alphabetically, as domain_winners
        for d, domain in enumerate(domain_names):
            for f, family in enumerate(families):
                cells.append({"size_index": int(size), "domain": domain, "family": family,
                              "win_share": float(shares[0, f, d]), "win_share_min": float(shares[:, f, d].min()),
                              "win_share_max": float(shares[:, f, d].max()), "n_replicas": len(replicas[f]),
                              "n_combos": len(picks)})
            top = best[0, d]
            others = sorted({families[k] for k in best[:, d] if k != top})
            winners.append({"size_index": int(size), "domain": domain, "family": families[top],
                            "win_share": float(shares[0, top, d]), "kept_share": float((best[:, d] == top).mean()),
                            "flipped": bool(others), "other_winners": ", ".join(others), "n_combos": len(picks)})
    return (pd.DataFrame(cells, columns=["size_index", "domain", "family", "win_share", "win_share_min",
                                         "win_share_max", "n_replicas", "n_combos"]),
            pd.DataFrame(winners, columns=["size_index", "domain", "family", "win_share", "kept_share", "flipped",
                                           "other_winners", "n_combos"]))


def arm_coverage(pool: pd.DataFrame, scored: list[str] | set[str]) -> pd.DataFrame:
    """Per arm of ``pool`` (columns model, arm), in pool order: models in the pool, models scored, missing ids."""
    have = set(scored)
    rows = []
    for arm, group in pool.groupby("arm", sort=False):
        missing = [m for m in group["model"] if m not in have]
        rows.append({"arm": arm, "n_models": len(group), "n_scored": len(group) - len(missing), "missing": missing})
    return pd.DataFrame(rows)
