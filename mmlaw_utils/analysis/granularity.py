"""Where collaboration gains live: the oracle at text, line, sentence, word and common-token granularity (issue 21).

The paper defines its oracle per token in §1 and per text from §2.3 on (eqs. 3-4). A *segmentation* cuts
every text into byte ranges; a model's loss on a segment is the sum of its token losses (nats) that end
inside it, so a model's segment losses sum to its text loss (eq. 1) at every granularity. At granularity
g the oracle of a subset S is, per text, the sum over the text's segments of the per-segment minimum over
S's members; the text-level oracle is g = "text" (one segment per text).

Everything here works on a ``SegmentLosses`` (models x segments, the segments of each text contiguous and
in text order) and reuses the text-level machinery on per-text sums: the single and pair losses per text
feed ``frontier.collaboration_groups``, eq. 7 fits, the four kinds of interval and the claim verdicts of
Table 1; the any-size frontier is ``subsets.subset_frontier`` on the segment matrix itself (its mean per
segment times segments per text). The realizable counterpart is the fixed-share switching mixture of
``analysis/switching.py``, its switching rate fitted on one half of the texts (split by source document)
and reported on the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.bootstrap import FIT_COLUMNS, _fit_row, bootstrap_counts, cluster_bootstrap_counts
from mmlaw_utils.analysis.claims import claims_table
from mmlaw_utils.analysis.fit import fit_points
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.model_selection import compare_forms
from mmlaw_utils.analysis.oracle import pair_index
from mmlaw_utils.analysis.profile import profile_intervals
from mmlaw_utils.analysis.subsets import frontier_of, subset_frontier
from mmlaw_utils.analysis.switching import fit_switching_rate, switching_losses
from mmlaw_utils.analysis.uncertainty import leave_one_model_out, sensitivity_table, uncertainty_table
from mmlaw_utils.scoring.segment_files import SEGMENT_COLUMNS
from mmlaw_utils.scoring.segments import SEGMENTATIONS  # coarse to fine

# below this oracle gain (nats per text, or this fraction of the best single loss) a share of it kept is a
# ratio of near-zero numbers: report nats
MIN_GAIN_FOR_SHARE = 0.01
MIN_RELATIVE_GAIN_FOR_SHARE = 0.005
# above this many models the exact any-size search over segment columns is too slow: singles and pairs only
ANY_SIZE_MAX_MODELS = 12
# pair minima are formed this many partner rows at a time (caps the temporary at rows x segments floats)
_PAIR_ROWS = 8


@dataclass(frozen=True)
class SegmentLosses:
    """One segmentation of a text set: each model's summed NLL (nats) on each segment, texts contiguous, in order."""

    segmentation: str
    model_names: tuple[str, ...]
    text_ids: tuple[str, ...]
    losses: np.ndarray  # models x segments, nats
    lengths: np.ndarray  # segments per text
    byte_start: np.ndarray  # per segment, UTF-8 byte offsets in its text
    byte_end: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        """Column of each text's first segment."""
        return np.r_[0, np.cumsum(self.lengths)[:-1]].astype(np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        """(models, segments)."""
        return self.losses.shape

    @property
    def n_texts(self) -> int:
        """Number of texts."""
        return int(self.lengths.size)

    @property
    def text_of_segment(self) -> np.ndarray:
        """Text index (0 .. N-1) of every segment column."""
        return np.repeat(np.arange(self.n_texts), self.lengths)

    @property
    def n_bytes(self) -> np.ndarray:
        """UTF-8 bytes per text (the segments tile each text)."""
        return per_text_sums(self, (self.byte_end - self.byte_start).astype(np.float64))

    def text_losses(self) -> np.ndarray:
        """Models x texts: each model's summed loss per text (eq. 1), nats."""
        return per_text_sums(self, self.losses)


def per_text_sums(seg: SegmentLosses, values: np.ndarray) -> np.ndarray:
    """Sum of per-segment ``values`` (last axis: segments) over each text's segments: last axis becomes texts."""
    return np.add.reduceat(np.asarray(values, dtype=np.float64), seg.starts, axis=-1)


def _label_codes(column: pd.Series, labels: Sequence[str]) -> np.ndarray:
    """Position of each entry of ``column`` in ``labels`` (-1: not there); fast for categorical columns."""
    index = pd.Index([str(label) for label in labels])
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        lookup = np.r_[index.get_indexer(column.cat.categories.astype(str)), -1]
        return lookup[codes]  # code -1 (missing) picks the trailing -1
    return index.get_indexer(column.astype(str))


def segment_losses_from_frame(frame: pd.DataFrame, segmentation: str, model_names: Sequence[str] | None = None,
                              text_ids: Sequence[str] | None = None) -> SegmentLosses:
    """Check the long-form segment table (model, text_id, segment, byte_start, byte_end, nll) and pivot it.

    ``model_names`` and ``text_ids`` fix the row and text order (default: order of first appearance); rows of
    other models are ignored. Every model must have the same segments (same text, index and byte span) and
    every text at least one; an error names the model and text at fault.
    """
    missing = [c for c in SEGMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"segment table ({segmentation}): missing column(s) {missing}; has {list(frame.columns)}")
    if "segmentation" in frame.columns:
        frame = frame[frame["segmentation"].astype(str) == segmentation]
    models = (list(dict.fromkeys(frame["model"].astype(str))) if model_names is None
              else [str(m) for m in model_names])
    texts = (list(dict.fromkeys(frame["text_id"].astype(str))) if text_ids is None
             else [str(t) for t in text_ids])
    if not models or not texts or frame.empty:
        raise ValueError(f"segment table ({segmentation}): no rows")
    where = f"segment table ({segmentation})"
    model_code = _label_codes(frame["model"], models)
    keep = np.flatnonzero(model_code >= 0)
    model_code = model_code[keep]
    text_code = _label_codes(frame["text_id"], texts)[keep]
    per_model = np.bincount(model_code, minlength=len(models))
    if (per_model == 0).any():
        raise ValueError(f"{where}: no segments of model {models[int(np.flatnonzero(per_model == 0)[0])]!r}")
    if (text_code < 0).any():
        row = keep[np.flatnonzero(text_code < 0)[0]]
        raise ValueError(f"{where}: model {str(frame['model'].iloc[row])!r} has text "
                         f"{str(frame['text_id'].iloc[row])!r}, not in the text set")
    segment = frame["segment"].to_numpy(dtype=np.int64)[keep]
    if segment.size and (segment.min() < 0 or segment.max() >= 2**31):
        raise ValueError(f"{where}: segment indexes must lie in [0, 2^31)")
    # one int64 key (model, text, segment); files written model by model in text order are already sorted
    key = (model_code.astype(np.int64) * len(texts) + text_code) << 31 | segment
    order = None if bool((np.diff(key) > 0).all()) else np.argsort(key, kind="stable")

    def arranged(values: np.ndarray) -> np.ndarray:
        values = values if keep.size == len(frame) else values[keep]
        return values if order is None else values[order]

    columns = {name: arranged(frame[name].to_numpy()) for name in ("byte_start", "byte_end")}
    nll = arranged(frame["nll"].to_numpy(dtype=np.float64))
    if order is not None:
        model_code, text_code, segment = model_code[order], text_code[order], segment[order]
    same = (np.diff(model_code) == 0) & (np.diff(text_code) == 0) & (np.diff(segment) == 0)
    if same.any():
        at = int(np.flatnonzero(same)[0])
        raise ValueError(f"{where}: model {models[model_code[at]]!r} repeats a segment of text {texts[text_code[at]]!r}")
    if not np.isfinite(nll).all():
        at = int(np.flatnonzero(~np.isfinite(nll))[0])
        raise ValueError(f"{where}: non-finite nll for model {models[model_code[at]]!r}, text {texts[text_code[at]]!r}")
    bounds = np.r_[0, np.cumsum(per_model)]
    ref = slice(bounds[0], bounds[1])
    counts = np.bincount(text_code[ref], minlength=len(texts))
    if (counts == 0).any():
        raise ValueError(f"{where}: text {texts[int(np.flatnonzero(counts == 0)[0])]!r} has no segments "
                         f"(model {models[0]!r})")
    keys = np.stack([text_code, segment, columns["byte_start"].astype(np.int64), columns["byte_end"].astype(np.int64)])
    first = np.r_[True, text_code[ref][1:] != text_code[ref][:-1]]
    expected_start = np.where(first, 0, np.r_[0, keys[3, ref][:-1]])
    gaps = (keys[2, ref] != expected_start) | (keys[3, ref] <= keys[2, ref])
    if gaps.any():
        raise ValueError(f"{where}: segments of text {texts[int(text_code[ref][np.flatnonzero(gaps)[0]])]!r} do not "
                         f"tile its bytes (model {models[0]!r})")
    for k in range(1, len(models)):
        own = slice(bounds[k], bounds[k + 1])
        if per_model[k] != per_model[0] or not np.array_equal(keys[:, own], keys[:, ref]):
            n = min(per_model[k], per_model[0])
            differ = np.flatnonzero((keys[:, own][:, :n] != keys[:, ref][:, :n]).any(axis=0))
            at = int(keys[0, bounds[k] + (differ[0] if differ.size else n - 1)])
            raise ValueError(f"{where}: model {models[k]!r} and model {models[0]!r} segment text {texts[at]!r} "
                             "differently")
    return SegmentLosses(segmentation=segmentation, model_names=tuple(models), text_ids=tuple(texts),
                         losses=nll.reshape(len(models), -1), lengths=counts.astype(np.int64),
                         byte_start=keys[2, ref].copy(), byte_end=keys[3, ref].copy())


def text_segments(L: np.ndarray, n_bytes: np.ndarray, model_names: Sequence[str], text_ids: Sequence[str]) -> SegmentLosses:
    """The "text" segmentation of a loss matrix (K x N nats, bytes per text): one segment per text."""
    array = np.asarray(L, dtype=np.float64)
    n = array.shape[1]
    return SegmentLosses("text", tuple(map(str, model_names)), tuple(map(str, text_ids)), array,
                         np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.asarray(n_bytes, dtype=np.int64))


def text_sum_mismatch(seg: SegmentLosses, L: np.ndarray) -> tuple[float, str, str]:
    """Largest relative difference between the segment sums and the text losses ``L`` (K x N nats), with its model and text."""
    sums = seg.text_losses()
    rel = np.abs(sums - L) / np.maximum(np.abs(L), 1e-300)
    k, t = np.unravel_index(int(np.argmax(rel)), rel.shape)
    return float(rel[k, t]), seg.model_names[k], seg.text_ids[t]


# ---------------------------------------------------------------- oracles per text


def subset_text_losses(seg: SegmentLosses, subset: Sequence[int]) -> np.ndarray:
    """Per-text oracle loss (nats) of the models ``subset`` at this granularity: sum over segments of the member minimum."""
    rows = np.asarray(list(subset), dtype=np.int64)
    if rows.size == 0:
        raise ValueError("oracle of an empty subset is undefined")
    return per_text_sums(seg, seg.losses[rows].min(axis=0))


def pair_text_losses(seg: SegmentLosses) -> np.ndarray:
    """Per-text oracle loss (nats) of every pair i < j (``oracle.pair_index`` order): pairs x texts."""
    k = seg.shape[0]
    out = np.empty((k * (k - 1) // 2, seg.n_texts))
    row = 0
    for i in range(k - 1):
        for j0 in range(i + 1, k, _PAIR_ROWS):
            block = np.minimum(seg.losses[i], seg.losses[j0 : min(j0 + _PAIR_ROWS, k)])
            out[row : row + block.shape[0]] = per_text_sums(seg, block)
            row += block.shape[0]
    return out


def pair_loss_matrix(singles: np.ndarray, pairs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """K x K oracle losses (nats per text; weighted mean over texts when ``weights``) from per-text singles and pairs."""
    k = singles.shape[0]
    w = np.ones(singles.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    matrix = np.diag(singles @ w / w.sum())
    i, j = np.triu_indices(k, k=1)
    matrix[i, j] = matrix[j, i] = pairs @ w / w.sum()
    return matrix


def any_size_frontier(seg: SegmentLosses, params: np.ndarray, **search: Any) -> pd.DataFrame:
    """Exact any-size oracle frontier (§2.5) at this granularity, losses in nats per text (``subsets.subset_frontier``)."""
    front = subset_frontier(seg.losses, params, **search)
    per_text = seg.shape[1] / seg.n_texts  # the search reports the mean over segment columns
    return front.assign(loss=front["loss"] * per_text, lower_bound=front["lower_bound"] * per_text,
                        gap=front["gap"] * per_text)


def small_subset_frontier(matrix: np.ndarray, params: np.ndarray) -> pd.DataFrame:
    """Frontier of single models and pairs from a K x K pair loss matrix (nats per text): subset, size, params, loss."""
    k = matrix.shape[0]
    p = np.asarray(params, dtype=np.int64)
    i, j = np.triu_indices(k, k=1)
    points = pd.DataFrame({"subset": [(a,) for a in range(k)] + list(zip(i.tolist(), j.tolist())),
                           "size": [1] * k + [2] * i.size, "params": np.r_[p, p[i] + p[j]],
                           "loss": np.r_[np.diag(matrix), matrix[i, j]]})
    return frontier_of(points)


def win_share_table(seg: SegmentLosses, domains: Sequence[str] | None = None) -> pd.DataFrame:
    """Share of segments and of bytes each model wins in the all-model oracle (ties split), overall and per domain.

    Columns: domain ("all" first), model, segment_share, byte_share, n_segments.
    """
    text_domain = np.full(seg.n_texts, "all", dtype=object) if domains is None else np.asarray(domains, dtype=object)
    if text_domain.shape != (seg.n_texts,):
        raise ValueError(f"domains needs one label per text ({seg.n_texts}), got shape {text_domain.shape}")
    is_min = seg.losses == seg.losses.min(axis=0, keepdims=True)
    tie_split = is_min / is_min.sum(axis=0, keepdims=True)  # as oracle.win_shares: a tie of m models gives each 1/m
    size = (seg.byte_end - seg.byte_start).astype(np.float64)
    names = ["all", *sorted(set(text_domain.tolist()) - {"all"})]
    seg_domain = pd.Index(names).get_indexer(text_domain)[seg.text_of_segment]
    member = np.zeros((seg.shape[1], len(names)))
    member[:, 0] = 1.0
    member[np.arange(seg.shape[1]), seg_domain] = 1.0
    n_segments = member.sum(axis=0)
    segment_share = (tie_split @ member) / n_segments
    byte_share = (tie_split @ (member * size[:, None])) / (size @ member)
    return pd.concat([pd.DataFrame({"domain": domain, "model": list(seg.model_names), "segment_share": segment_share[:, d],
                                    "byte_share": byte_share[:, d], "n_segments": int(n_segments[d])})
                      for d, domain in enumerate(names)], ignore_index=True)


def segment_winners(seg: SegmentLosses, text: int, subset: Sequence[int]) -> pd.DataFrame:
    """One text's segments: byte span, each member's loss (nats) and the member that wins it (ties: first listed)."""
    rows = np.asarray(list(subset), dtype=np.int64)
    cols = np.arange(seg.starts[text], seg.starts[text] + seg.lengths[text])
    block = seg.losses[np.ix_(rows, cols)]
    frame = pd.DataFrame({"byte_start": seg.byte_start[cols], "byte_end": seg.byte_end[cols],
                          "winner": [seg.model_names[r] for r in rows[np.argmin(block, axis=0)]]})
    for r, values in zip(rows, block):
        frame[seg.model_names[r]] = values
    return frame


# ---------------------------------------------------------------- the realizable counterpart


def nats_to_bits_per_byte(nats_per_text: float, n_bytes: np.ndarray) -> float:
    """A mean loss in nats per text over the texts with these byte counts, as bits per byte."""
    b = np.asarray(n_bytes, dtype=np.float64)
    return float(nats_per_text * b.size / b.sum() / math.log(2))


def realizable_summary(seg: SegmentLosses, fit_texts: np.ndarray, eval_texts: np.ndarray,
                       members: Sequence[int] | None = None, pairs: np.ndarray | None = None) -> dict[str, Any]:
    """Oracles and mixtures of the models ``members`` (all when None) on the evaluation texts (nats per text).

    ``pairs``: ``pair_text_losses(seg)`` when already computed (used when ``members`` is None).
    Keys: best_single (the members' best on the evaluation texts) and its model, best_pair (oracle), oracle
    (all members), bayes_mixture (switching rate 0), switching (rate ``alpha`` fitted on ``fit_texts``),
    gain_oracle and gain_switching (over best_single), gap (switching - oracle), kept_share (gain_switching /
    gain_oracle; NaN when gain_oracle is below MIN_GAIN_FOR_SHARE nats per text or MIN_RELATIVE_GAIN_FOR_SHARE of
    best_single), n_fit, n_eval.
    """
    rows = np.arange(seg.shape[0]) if members is None else np.asarray(list(members), dtype=np.int64)
    sub = seg.losses[rows]
    fit_idx, eval_idx = np.asarray(fit_texts), np.asarray(eval_texts)
    starts, lengths = seg.starts, seg.lengths
    alpha, _ = fit_switching_rate(sub, starts[fit_idx], lengths[fit_idx])
    mixtures = switching_losses(sub, starts[eval_idx], lengths[eval_idx], [0.0, alpha]).mean(axis=1)
    singles = per_text_sums(seg, sub)[:, eval_idx].mean(axis=1)
    best = int(np.argmin(singles))
    oracle = float(per_text_sums(seg, sub.min(axis=0))[eval_idx].mean())
    best_pair = float(singles[best])
    if members is None and pairs is not None and rows.size > 1:  # pair_text_losses of the whole pool, given
        best_pair = float(pairs[:, eval_idx].mean(axis=1).min())
    elif rows.size > 1:
        i, j = np.triu_indices(rows.size, k=1)
        best_pair = min(float(per_text_sums(seg, np.minimum(sub[a], sub[b]))[eval_idx].mean()) for a, b in zip(i, j))
    gain_oracle = float(singles[best]) - oracle
    gain_switching = float(singles[best]) - float(mixtures[1])
    return {"n_fit": int(fit_idx.size), "n_eval": int(eval_idx.size), "members": len(rows),
            "best_single_model": seg.model_names[rows[best]], "best_single": float(singles[best]),
            "best_pair": best_pair, "oracle": oracle, "bayes_mixture": float(mixtures[0]),
            "switching": float(mixtures[1]), "alpha": alpha, "gain_oracle": gain_oracle,
            "gain_switching": gain_switching, "gap": float(mixtures[1]) - oracle,
            "kept_share": gain_switching / gain_oracle if gain_is_material(gain_oracle, float(singles[best])) else math.nan}


def gain_is_material(gain: float, best_single: float) -> bool:
    """Whether an oracle gain (nats per text) is large enough for a share of it to mean something."""
    return gain >= max(MIN_GAIN_FOR_SHARE, MIN_RELATIVE_GAIN_FOR_SHARE * abs(best_single))


def point_at_budget(front: pd.DataFrame, budget: float) -> pd.Series | None:
    """The frontier point (row) with the most parameters within ``budget`` (raw count): the lowest loss there."""
    within = front[front["params"] <= budget]
    return None if within.empty else within.sort_values("params", kind="stable").iloc[-1]


def budget_curves(segs: Mapping[str, SegmentLosses], fronts: Mapping[str, pd.DataFrame], budgets: Sequence[float],
                  fit_texts: np.ndarray, eval_texts: np.ndarray, clusters: np.ndarray, *, n_bootstrap: int = 200,
                  seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """At each granularity and budget: the best any-size subset within the budget, its oracle and switching mixture.

    Losses are nats per evaluation text, intervals percentile over ``n_bootstrap`` resamples of the evaluation
    texts' source documents (``clusters``, one per text of the whole set) with the subset held fixed.
    Columns: granularity, budget, subset, size, params, curve (oracle / switching), loss, lo, hi, alpha.
    """
    eval_idx = np.asarray(eval_texts)
    counts = cluster_bootstrap_counts(np.asarray(clusters)[eval_idx], n_bootstrap, seed).astype(np.float64)
    q = [(1 - level) / 2, (1 + level) / 2]
    rows = []
    for g, seg in segs.items():
        for budget in budgets:
            point = point_at_budget(fronts[g], budget)
            if point is None:
                continue
            subset = tuple(int(m) for m in point["subset"])
            members = np.asarray(subset)
            sub = seg.losses[members]
            oracle = per_text_sums(seg, sub.min(axis=0))[eval_idx]
            alpha, _ = fit_switching_rate(sub, seg.starts[fit_texts], seg.lengths[fit_texts])
            mixture = switching_losses(sub, seg.starts[eval_idx], seg.lengths[eval_idx], alpha)[0]
            for curve, values in (("oracle", oracle), ("switching", mixture)):
                draws = counts @ values / counts.sum(axis=1)
                lo, hi = np.quantile(draws, q)
                rows.append({"granularity": g, "budget": float(budget), "subset": subset, "size": len(subset),
                             "params": int(point["params"]),
                             "curve": curve, "loss": float(values.mean()), "lo": float(lo), "hi": float(hi),
                             "alpha": alpha if curve == "switching" else math.nan})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Table 1 at one granularity


def resampled_group_fits(singles: np.ndarray, pairs: np.ndarray, params: np.ndarray, families: np.ndarray,
                         counts: np.ndarray, params_unit: float = 1e9) -> pd.DataFrame:
    """Refit the three laws on each resample (rows of ``counts``, text weights) of per-text single and pair losses.

    Same columns as ``bootstrap.bootstrap_group_fits``: resample, group, A, alpha, L_inf, r2, rmse, n_frontier, status.
    """
    p = np.asarray(params, dtype=np.float64)
    index = pair_index(families)
    same = index.same_family
    pair_params = (p[index.i] + p[index.j]) / params_unit
    w = np.asarray(counts, dtype=np.float64)
    single_means = (w @ singles.T) / w.sum(axis=1, keepdims=True)
    pair_means = (w @ pairs.T) / w.sum(axis=1, keepdims=True)
    records = []
    for r in range(w.shape[0]):
        points = {SINGLE: (p / params_unit, single_means[r]), SAME_FAMILY: (pair_params[same], pair_means[r][same]),
                  CROSS_FAMILY: (pair_params[~same], pair_means[r][~same])}
        for group in GROUPS:
            records.append({"resample": r, "group": group, **_fit_row(*points[group], {})})
    return pd.DataFrame.from_records(records, columns=["resample", "group", *FIT_COLUMNS, "r2", "rmse", "n_frontier",
                                                       "status"])


@dataclass(frozen=True)
class GranularityLaw:
    """Table 1 at one granularity: raw points and frontiers, fits, four kinds of interval, comparison, verdicts."""

    groups: dict[str, pd.DataFrame]
    fits: dict[str, Any]
    uncertainty: pd.DataFrame
    comparison: pd.DataFrame
    sensitivity: pd.DataFrame
    claims: pd.DataFrame
    text_boot: pd.DataFrame


def granularity_law(singles: np.ndarray, pairs: np.ndarray, params: np.ndarray, families: np.ndarray,
                    model_names: Sequence[str], clusters: np.ndarray | None = None, *, n_bootstrap: int = 200,
                    seed: int = 0, params_unit: float = 1e9, level: float = 0.95) -> GranularityLaw:
    """Frontiers, eq. 7 fits and Table 1's verdicts from per-text single (K x N) and pair (pairs x N) losses, nats.

    Intervals: text bootstrap, cluster bootstrap (``clusters``, one source document per text; None: skipped),
    model jackknife and profile likelihood; verdicts by ``claims.claims_table`` (no equal-budget claims).
    """
    matrix = pair_loss_matrix(singles, pairs)
    groups = collaboration_groups(singles, params, families, pair_losses=matrix)
    fronts = {g: frame[frame["on_frontier"]] for g, frame in groups.items()}
    fits = {g: fit_points(f["params"].to_numpy(dtype=float) / params_unit, f["loss"].to_numpy(dtype=float))
            for g, f in fronts.items()}
    n_texts = singles.shape[1]
    text_boot = resampled_group_fits(singles, pairs, params, families, bootstrap_counts(n_texts, n_bootstrap, seed),
                                     params_unit)
    cluster_boot = None if clusters is None else resampled_group_fits(
        singles, pairs, params, families, cluster_bootstrap_counts(clusters, n_bootstrap, seed), params_unit)
    jackknife = leave_one_model_out(singles, params, families, params_unit, pair_losses=matrix)
    fitted = {g: fit for g, fit in fits.items() if fit.fitted}
    profiles = {g: profile_intervals(fit, fronts[g]["params"].to_numpy(dtype=float) / params_unit,
                                     fronts[g]["loss"].to_numpy(dtype=float), level) for g, fit in fitted.items()}
    uncertainty = uncertainty_table(fits, level=level, text_boot=text_boot, cluster_boot=cluster_boot,
                                    jackknife=jackknife, profiles=profiles)
    comparison = pd.concat([compare_forms(fronts[g]["params"].to_numpy(dtype=float) / params_unit,
                                          fronts[g]["loss"].to_numpy(dtype=float), g) for g in fitted],
                           ignore_index=True) if fitted else pd.DataFrame(columns=["group", "form"])
    sensitivity = sensitivity_table(jackknife, fits, profiles, model_names)
    claims = claims_table(fits, uncertainty, comparison if len(comparison) else None, None, sensitivity)
    return GranularityLaw(groups=groups, fits=fits, uncertainty=uncertainty, comparison=comparison,
                          sensitivity=sensitivity, claims=claims, text_boot=text_boot)


def relation_gains(singles: np.ndarray, pairs: np.ndarray, families: np.ndarray) -> pd.DataFrame:
    """Per family relation: pairs, mean and median oracle gain over the better member (nats per text) at one granularity."""
    index = pair_index(families)
    single = singles.mean(axis=1)
    gain = np.minimum(single[index.i], single[index.j]) - pairs.mean(axis=1)
    frame = pd.DataFrame({"relation": index.group, "gain": gain})
    return frame.groupby("relation", sort=False)["gain"].agg(n_pairs="size", mean_gain="mean",
                                                             median_gain="median").reset_index()
