"""Report of the miniature pool's diversity experiment: which diversity (data, architecture + tokenizer, seed)
drives cross-family oracle gains, how much of it is routing between domains, and which domains each family wins.

Notebook 09 (stage ``09_diversity_arms``) and ``python -m mmlaw_utils arms --profile minipool`` read the
profile's score caches of every arm (the models scored so far), compute analysis/arms.py's frames and
write, into the data folder, ``arms_pair_gains.csv`` (every equal-size pair as scored, per domain: oracle, router
and within-domain gains), ``arms_summary.csv`` (mean gain per arm and domain, per size and over sizes: column
``sizes`` is ``shared`` for the sizes all arms have, ``own`` for each arm at all its sizes), ``arms_gains.csv``
(the three gains of each arm and the differences between arms, with intervals that resample source documents
within domains and seed replicas; column ``selection``: ``all_pairs`` or ``size_matched``),
``arms_verdicts.csv`` (each difference's verdict, or the seeds it still needs), ``domain_wins.csv`` (main arm:
each family's win share per domain and size), ``arms_winner_seeds.csv`` (the same shares' spread over seed
replicas, and which winners a reseed flips) and ``arms.md``; and ``arms_gain.png``/``.pdf`` in the figures
folder. Gains are nats per text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmlaw_utils.analysis import arms
from mmlaw_utils.analysis.bootstrap import stratified_cluster_counts
from mmlaw_utils.analysis.lossmatrix import LossMatrix
from mmlaw_utils.analysis.uncertainty import text_clusters
from mmlaw_utils.config import FIGURE_STEMS, RunPaths, load_profile, resolve_run_paths
from mmlaw_utils.io import atomic_write_text
from mmlaw_utils.pool import load_pool
from mmlaw_utils.scoring.assemble import assemble_loss_matrix, find_cache_file
from mmlaw_utils.scoring.expect import profile_expectation
from mmlaw_utils.texts import dataset_fingerprint, load_texts

ARM_ORDER = ("main", "same_data", "seed(main)", "seed(same_data)")
SELECTIONS = {"all_pairs": None, "size_matched": arms.SIZE_MATCH_RATIO}  # max params ratio of a pair


@dataclass(frozen=True)
class _ScoredPool:
    """A profile's text set and the pool models (every arm) that have a score cache on it."""

    texts: pd.DataFrame
    fingerprint: str
    models: pd.DataFrame  # rows of the pool with a cache, pool order
    files: list[Path]  # their caches, same order
    cache_dir: Path


def _scored_pool(profile_name: str, cache_dir: str | Path | None) -> _ScoredPool:
    """The pool models of ``profile_name`` with a score cache in ``cache_dir`` (default the profile's) on its text set."""
    profile = load_profile(profile_name)
    cache_dir = Path(cache_dir) if cache_dir is not None else profile.cache_dir
    texts = load_texts(profile.dataset, profile.n_texts)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    pool = load_pool(profile.pool)
    files: list[Path | None] = []
    for model in pool["model"]:
        try:
            files.append(Path(find_cache_file(cache_dir, model, fingerprint)))
        except FileNotFoundError:
            files.append(None)
    if all(f is None for f in files):
        raise FileNotFoundError(f"no model of {profile.pool} has a score cache in {cache_dir}")
    have = np.array([f is not None for f in files], dtype=bool)
    return _ScoredPool(texts, fingerprint, pool[have].reset_index(drop=True), [f for f in files if f is not None], cache_dir)


def pool_cache_files(profile_name: str, cache_dir: str | Path | None = None) -> list[Path]:
    """The score caches ``scored_loss_matrix`` reads: those of the pool models (every arm) on the profile's text set."""
    try:
        return _scored_pool(profile_name, cache_dir).files
    except FileNotFoundError:
        return []


def scored_loss_matrix(profile_name: str, cache_dir: str | Path | None = None) -> tuple[LossMatrix, pd.DataFrame]:
    """Loss matrix (nats per text) of the pool models of every arm that have a cache on the profile's text set
    (in ``cache_dir``, default the profile's), and its texts' ``domain`` and ``cluster`` (source document, as
    ``uncertainty.text_clusters`` finds it) in loss-matrix order; stale caches are refused as in stage 02."""
    scored = _scored_pool(profile_name, cache_dir)
    expected = profile_expectation(profile_name, scored.cache_dir)
    lm = assemble_loss_matrix(scored.cache_dir, scored.models, dataset_fingerprint=scored.fingerprint,
                              check_provenance=expected.check, rescore_hint=expected.rescore_hint)
    ordered = scored.texts.set_index("text_id").loc[lm.text_ids]
    clusters, _ = text_clusters(lm.text_ids, ordered["source"].tolist() if "source" in ordered.columns else None)
    return lm, pd.DataFrame({"domain": ordered["domain"].to_numpy(), "cluster": clusters}, index=ordered.index)


def main_arm_wins(lm: LossMatrix, domains: np.ndarray) -> pd.DataFrame:
    """Domain win shares among the main arm's families at each size index where every family is scored."""
    models = lm.models.reset_index(drop=True)
    L = lm.to_array()
    main = models[models["arm"] == "main"]
    n_families = main["family"].nunique()
    frames = []
    for size, group in main.groupby("size_index"):
        if group["family"].nunique() == n_families:
            rows = group.index.to_numpy()
            frames.append(arms.domain_wins(L[rows], group["family"].to_numpy(), domains).assign(size_index=int(size)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def family_mixtures(models: pd.DataFrame) -> dict[str, str]:
    """Main-arm family -> the name of its training mixture (pool column ``mixture``; empty without it)."""
    if "mixture" not in models.columns:
        return {}
    main = models[models["arm"] == "main"]
    return {str(f): str(m) for f, m in main.groupby("family")["mixture"].first().items()}


def seed_sizes(pool: pd.DataFrame | None, models: pd.DataFrame) -> list[int]:
    """Size indexes the seed arm is designed for (the pool's seed rows; else those of the scored seed models)."""
    frame = pool if pool is not None and (pool["arm"] == arms.SEED_ARM).any() else models
    return sorted(int(s) for s in frame.loc[frame["arm"] == arms.SEED_ARM, "size_index"].unique())


def arms_frames(lm: LossMatrix, texts: pd.DataFrame, pool: pd.DataFrame | None = None, *, n_bootstrap: int = 1000,
                seed: int = 0, level: float = 0.95) -> dict[str, pd.DataFrame]:
    """Every frame of the experiment: pair ``gains``; ``summary`` (arms at their shared sizes); ``every_size``
    (each arm at all its sizes); ``intervals`` (three gains per arm and their differences, all pairs and
    size-matched pairs, resampling ``texts.cluster`` within ``texts.domain`` and seed replicas); ``verdicts``;
    ``seeds`` (replicas per slot); main-arm ``wins``, per-size ``winners`` and their seed spread (``winner_cells``,
    ``winner_spread``); ``coverage`` of ``pool`` (when given)."""
    domains = texts["domain"].to_numpy()
    L = lm.to_array()
    models = lm.models
    gains = arms.equal_size_pair_gains(L, models, domains)
    wins = main_arm_wins(lm, domains)
    counts = stratified_cluster_counts(texts["cluster"].to_numpy(), domains, n_bootstrap, seed)
    intervals = pd.concat([arms.arm_gain_intervals(L, models, domains, counts, level=level, seed=seed,
                                                   max_params_ratio=ratio).assign(selection=name)
                           for name, ratio in SELECTIONS.items()], ignore_index=True)
    intervals = intervals[["selection"] + [c for c in intervals.columns if c != "selection"]]
    seeds = arms.seed_coverage(models)
    sizes = seed_sizes(pool, models) or arms.shared_sizes(arms.comparison_units(models))
    verdicts = pd.concat([arms.contrast_verdicts(intervals[intervals["selection"] == name], seeds, sizes)
                          .assign(selection=name) for name in SELECTIONS], ignore_index=True)
    cells, spread = arms.winner_seed_spread(L, models, domains, seed=seed)
    frames = {"gains": gains, "summary": arms.arm_gain_summary(gains),
              "every_size": arms.arm_gain_summary(gains, common_sizes=False), "wins": wins,
              "winners": arms.winners_by_size(wins), "intervals": intervals,
              "verdicts": verdicts[["selection"] + [c for c in verdicts.columns if c != "selection"]],
              "seeds": seeds, "winner_cells": cells, "winner_spread": spread}
    if pool is not None:
        frames["coverage"] = arms.arm_coverage(pool, list(lm.model_names))
    return frames


def _ordered_arms(columns) -> list[str]:
    """Arms in ARM_ORDER first, then any others alphabetically."""
    return [a for a in ARM_ORDER if a in columns] + sorted(a for a in columns if a not in ARM_ORDER)


def size_table(every_size: pd.DataFrame) -> pd.DataFrame:
    """Arm x size index: mean pair gain over all texts (nats per text), each arm at every size it has."""
    rows = every_size[(every_size["domain"] == arms.ALL_TEXTS) & (every_size["size_index"] != "all")]
    table = rows.pivot(index="arm", columns="size_index", values="mean_gain")
    return table.loc[_ordered_arms(table.index), sorted(table.columns)]


def family_wins_table(winners: pd.DataFrame, mixtures: dict[str, str] | None = None) -> pd.DataFrame:
    """Family x size index: the domains the family wins (comma-separated; "-" for none), with its training mixture."""
    families = sorted(set(winners["family"]) | set(mixtures or {}))
    sizes = sorted(winners["size_index"].unique())
    table = pd.DataFrame(index=pd.Index(families, name="family"))
    table["mixture"] = [(mixtures or {}).get(f, "") for f in families]
    for size in sizes:
        at = winners[winners["size_index"] == size]
        table[size] = [", ".join(sorted(at.loc[at["family"] == f, "domain"])) or "-" for f in families]
    return table


def _markdown_table(frame: pd.DataFrame, first: str, fmt=str) -> list[str]:
    """A markdown table of ``frame`` with its index as the first column named ``first``."""
    lines = [f"| {first} | " + " | ".join(str(c) for c in frame.columns) + " |",
             "|---|" + "---|" * len(frame.columns)]
    lines += [f"| {index} | " + " | ".join(fmt(v) for v in row) + " |" for index, row in zip(frame.index, frame.to_numpy())]
    return lines


def _number(value) -> str:
    return "" if pd.isna(value) else f"{value:.3f}"


def _cell(row) -> str:
    """ "estimate [lo, hi]" in nats per text."""
    return f"{row.estimate:.2f} [{row.lo:.2f}, {row.hi:.2f}]"


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Domain x quantity (arms, then differences) of the oracle gain, all pairs: "estimate [lo, hi]" in nats per
    text; the row ``all`` first."""
    rows = intervals
    if "selection" in rows.columns:
        rows = rows[rows["selection"] == "all_pairs"]
    if "gain" in rows.columns:
        rows = rows[rows["gain"] == "oracle"]
    cells = rows.assign(cell=[_cell(r) for r in rows.itertuples()])
    table = cells.pivot(index="domain", columns="quantity", values="cell")
    arm_columns = _ordered_arms(rows.loc[rows["kind"] == "arm", "quantity"].unique())
    contrasts = list(dict.fromkeys(rows.loc[rows["kind"] == "contrast", "quantity"]))
    order = [arms.ALL_TEXTS] + sorted(d for d in table.index if d != arms.ALL_TEXTS)
    return table.loc[[d for d in order if d in table.index], arm_columns + contrasts]


def three_gain_table(intervals: pd.DataFrame, selection: str = "all_pairs") -> pd.DataFrame:
    """Quantity (arms, then differences) x gain (oracle, router, within) over all texts: "estimate [lo, hi]"
    (nats per text), with the pairs averaged and the families whose seeds were resampled."""
    rows = intervals[(intervals["selection"] == selection) & (intervals["domain"] == arms.ALL_TEXTS)]
    table = rows.assign(cell=[_cell(r) for r in rows.itertuples()]).pivot(index="quantity", columns="gain",
                                                                           values="cell")
    first = rows.drop_duplicates("quantity").set_index("quantity")
    order = _ordered_arms(first.index[first["kind"] == "arm"]) + list(first.index[first["kind"] == "contrast"])
    table = table.loc[order, [g for g in arms.GAINS if g in table.columns]]
    table["pairs"] = [("" if pd.isna(n) else str(int(n))) for n in first.loc[order, "n_pairs"]]
    table["seeds resampled"] = [s or "none" for s in first.loc[order, "seeded"].fillna("")]
    return table


def seed_note(seeds: pd.DataFrame, sizes: list[int], coverage: pd.DataFrame | None = None) -> str:
    """One paragraph: which families had seed replicas (per replicated arm, at the seed sizes) and which not yet."""
    at = seeds[seeds["size_index"].isin(sizes)]
    parts = []
    for arm, group in at.groupby("slot_arm", sort=False):
        full = group.groupby("base_family")["n_replicas"].min()
        have = [f"{f} ({int(n)} replicas)" for f, n in full.items() if n > 1]
        partial = sorted(set(group.loc[group["n_replicas"] > 1, "base_family"]) - set(full.index[full > 1]))
        lacking = sorted(set(full.index) - set(full.index[full > 1]) - set(partial))
        text = f"{arm}: " + (", ".join(have) if have else "no family")
        if partial:
            text += f"; at some sizes only: {', '.join(partial)}"
        if lacking:
            text += f"; not yet: {', '.join(lacking)}"
        parts.append(text)
    line = (f"**Seeds (model-level uncertainty).** At size indexes {', '.join(str(s) for s in sizes)} each interval "
            "also draws, per resample, which replica (the arm's own model or one of its seed retrainings) stands in "
            "for each model; families with seeds scored — " + "; ".join(parts) + ".")
    if coverage is not None and "seed" in set(coverage["arm"]):
        row = coverage.set_index("arm").loc["seed"]
        line += f" Seed models scored: {int(row.n_scored)} of {int(row.n_models)}."
    return line + (" Where a family has no seed, its intervals cover the texts only.")


_VERDICT_TEXT = {"above 0": "above 0", "below 0": "below 0", "not distinguishable from 0": "not distinguishable from 0"}


def contrast_reading(verdicts: pd.DataFrame, intervals: pd.DataFrame, selection: str = "all_pairs") -> list[str]:
    """One sentence per difference between arms: its oracle, router and within-domain gain and verdicts, or the
    seeds the verdict still needs; then, for the oracle gain, the domains where the interval excludes 0."""
    lines = []
    rows = verdicts[verdicts["selection"] == selection] if "selection" in verdicts.columns else verdicts
    per_domain = intervals[(intervals["selection"] == selection) & (intervals["domain"] != arms.ALL_TEXTS)
                           & (intervals["gain"] == "oracle")]
    for contrast, group in rows.groupby("contrast", sort=False):
        group = group.set_index("gain")
        if group["estimate"].isna().all():
            lines.append(f"- **{contrast}**: no verdict: needs seeds of {group['missing'].iloc[0]} (not scored yet)."
                         if group["verdict"].iloc[0] == "needs seeds" else f"- **{contrast}**: an arm is not scored.")
            continue
        parts = [f"{gain} {r.estimate:.2f} [{r.lo:.2f}, {r.hi:.2f}]" + ("" if r.verdict == "needs seeds" else
                                                                        f" ({_VERDICT_TEXT[r.verdict]})")
                 for gain, r in group.iterrows()]
        text = f"- **{contrast}** over all texts (nats per text): " + "; ".join(parts) + "."
        if group["verdict"].iloc[0] == "needs seeds":
            text += (f" **No verdict yet**: it needs seed replicas of every family, and {group['missing'].iloc[0]} "
                     "have none scored.")
        domains = per_domain[per_domain["quantity"] == contrast]
        above = domains.loc[domains["lo"] > 0, "domain"].tolist()
        below = domains.loc[domains["hi"] < 0, "domain"].tolist()
        if not domains.empty:
            text += (f" Per domain (within-domain gain) above 0 in {len(above)} of {len(domains)}"
                     + (f" ({', '.join(above)})" if above else "") + f", below 0 in {len(below)}"
                     + (f" ({', '.join(below)})" if below else "") + ".")
        lines.append(text)
    return lines


def winner_table(spread: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Domain x size index: "family share [min, max over reseeds]", with "flips: other winners" where a reseed
    changes the winner."""
    bounds = cells.set_index(["size_index", "domain", "family"])
    texts = []
    for r in spread.itertuples():
        c = bounds.loc[(r.size_index, r.domain, r.family)]
        cell = f"{r.family} {r.win_share:.2f}"
        if r.n_combos > 1:
            cell += f" [{c.win_share_min:.2f}, {c.win_share_max:.2f}]"
        if r.flipped:
            cell += f" **flips: {r.other_winners}**"
        texts.append(cell)
    return spread.assign(cell=texts).pivot(index="domain", columns="size_index", values="cell")


def summary_markdown(frames: dict[str, pd.DataFrame], mixtures: dict[str, str] | None = None,
                     sizes: list[int] | None = None) -> str:
    """Markdown of ``arms_frames``: coverage and seeds, the three gains per arm (all pairs and size-matched) with
    verdicts, the oracle gain per domain, per size, and the domain winners with their seed spread."""
    summary, intervals, coverage = frames["summary"], frames["intervals"], frames.get("coverage")
    lines: list[str] = []
    if coverage is not None and (coverage["n_scored"] < coverage["n_models"]).any():
        counts = ", ".join(f"{r.arm} {r.n_scored}/{r.n_models}" for r in coverage.itertuples())
        lines += [f"**Partial pool**: models scored per arm: {counts}. Every number below covers the scored models "
                  "only.", ""]
    shared = sorted({s for s in summary["size_index"] if s != "all"})
    if "seeds" in frames:
        lines += [seed_note(frames["seeds"], sizes or shared, coverage), ""]
    if not intervals.empty:
        first = intervals.iloc[0]
        lines += [f"**Three gains per arm** over all texts, mean over the equal-size pairs at size indexes "
                  f"{', '.join(str(s) for s in shared)} (nats per text), with {first.level:.0%} intervals over "
                  f"{int(first.n_resamples)} resamples of the source documents (within each domain) and of the seed "
                  "replicas. *oracle*: the pair's per-text best over its better member (eqs. 3–4); *router*: the "
                  "better member chosen per domain, not per text; *within*: oracle − router, the text-weighted mean "
                  "of the per-domain gains. seed(X) pairs two replicas of one model of arm X (the retraining noise "
                  "floor); estimates average over the replicas. main − same_data is what different training data "
                  "add to architecture and tokenizer diversity; same_data − seed(same_data) what architecture and "
                  "tokenizer add to retraining noise.", "",
                  *_markdown_table(three_gain_table(intervals, "all_pairs"), "quantity"), "",
                  *contrast_reading(frames["verdicts"], intervals, "all_pairs"), ""]
        matched = intervals[intervals["selection"] == "size_matched"]
        if not matched.empty:
            lines += [f"**Size-matched sensitivity**: only pairs whose members are within {arms.SIZE_MATCH_RATIO}× "
                      "in parameters:", "", *_markdown_table(three_gain_table(intervals, "size_matched"), "quantity"),
                      "", *contrast_reading(frames["verdicts"], intervals, "size_matched"), ""]
        lines += ["**Oracle gain per domain** (in one domain the router gains nothing, so this is the within-domain "
                  "gain). The row *all* is not an average of the domain rows: it adds the router's between-domain "
                  "gain to their text-weighted mean (*within* above), and a pair whose members win different "
                  "domains gains most of its overall gain by routing:", "",
                  *_markdown_table(interval_table(intervals), "domain")]
    overall = summary[(summary["size_index"] == "all") & (summary["domain"] == arms.ALL_TEXTS)]
    if "max_params_ratio" in overall.columns and overall["max_params_ratio"].notna().any():
        lines += ["", f"The two members of a pair differ in parameters by up to a factor "
                      f"{overall['max_params_ratio'].max():.2f} (equal size is equal budget only approximately; the "
                      "size-matched rows above keep pairs within "
                      f"{arms.SIZE_MATCH_RATIO}×)."]
    if "every_size" in frames:
        lines += ["", "Mean oracle gain over all texts (nats per text) at each size index, each arm at every size it "
                      "has, the arm's own models (seed arms: every replica pair):", "",
                  *_markdown_table(size_table(frames["every_size"]), "arm", _number)]
    spread = frames.get("winner_spread")
    if spread is not None and not spread.empty:
        flips = spread[spread["flipped"]]
        by_size = ", ".join(f"{n} of {spread['domain'].nunique()} at size index {s}"
                            for s, n in flips.groupby("size_index").size().items()) or "none"
        lines += ["", "Domain winners in the main arm at each size index where every family is scored (family and "
                      "share of the domain's texts it wins, ties split; in brackets the share's range over every "
                      "combination of seed replicas of the families that have seeds; **flips** names the families "
                      f"that win the domain under some reseed). Winners a reseed flips: {by_size}.", "",
                  *_markdown_table(winner_table(spread, frames["winner_cells"]), "domain"),
                  "", "Domains each main-arm family wins with its own models, by size index (and the mixture it was "
                      "trained on):", "", *_markdown_table(family_wins_table(frames["winners"], mixtures), "family")]
    return "\n".join(lines) + "\n"


def gain_figure(intervals: pd.DataFrame, every_size: pd.DataFrame | None = None):
    """Grouped bars: each arm's mean oracle gain per domain with its interval (all pairs); the bar *all* split into
    its within-domain part and the router's between-domain part; with ``every_size``, a second panel: the gain
    over all texts against size index per arm (bars: min to max over pairs)."""
    import matplotlib.pyplot as plt

    rows = intervals[(intervals["selection"] == "all_pairs") & (intervals["kind"] == "arm")]
    oracle = rows[rows["gain"] == "oracle"]
    estimates = oracle.pivot(index="domain", columns="quantity", values="estimate")
    order = [arms.ALL_TEXTS] + sorted(d for d in estimates.index if d != arms.ALL_TEXTS)
    estimates = estimates.loc[order, _ordered_arms(estimates.columns)]
    bounds = oracle.set_index(["domain", "quantity"])
    within = rows[(rows["gain"] == "within") & (rows["domain"] == arms.ALL_TEXTS)].set_index("quantity")["estimate"]
    if every_size is None:
        fig, ax = plt.subplots(figsize=(9, 4.6))
    else:
        fig, (ax, by_size) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / max(1, len(estimates.columns))
    x = np.arange(len(estimates))
    for k, arm in enumerate(estimates.columns):
        heights = estimates[arm].to_numpy()
        lo = np.array([bounds.loc[(d, arm), "lo"] if (d, arm) in bounds.index else np.nan for d in estimates.index])
        hi = np.array([bounds.loc[(d, arm), "hi"] if (d, arm) in bounds.index else np.nan for d in estimates.index])
        yerr = np.vstack([np.clip(heights - lo, 0, None), np.clip(hi - heights, 0, None)])
        offset = x + (k - (len(estimates.columns) - 1) / 2) * width
        ax.bar(offset, heights, width, label=arm, color=f"C{k}", yerr=yerr, capsize=2)
        if arm in within.index:  # the "all" bar: hatch the router's part above the within-domain part
            ax.bar(offset[0], heights[0] - within[arm], width, bottom=within[arm], color="none", edgecolor="white",
                   hatch="//", linewidth=0)
    ax.bar([np.nan], [np.nan], color="0.6", hatch="//", edgecolor="white", label="all: router's share")
    ax.set_xticks(x, estimates.index, rotation=30, ha="right")
    ax.set_ylabel("pair oracle gain (nats per text)")
    ax.set_title("Oracle gain at equal size, by arm (sizes every arm has)")
    ax.legend(title="arm", fontsize=8)
    ax.annotate("'all' is not an average of the domains: it adds the gain of routing between domains\n"
                "(hatched) to the text-weighted mean of the per-domain gains (solid)",
                xy=(0.99, 0.80), xycoords="axes fraction", ha="right", va="top", fontsize=7.5)
    if every_size is not None:
        rows = every_size[(every_size["domain"] == arms.ALL_TEXTS) & (every_size["size_index"] != "all")]
        for k, arm in enumerate(estimates.columns):
            at = rows[rows["arm"] == arm].sort_values("size_index")
            sizes = at["size_index"].astype(int).to_numpy()
            mean = at["mean_gain"].to_numpy()
            spread = np.vstack([mean - at["min_gain"].to_numpy(), at["max_gain"].to_numpy() - mean])
            by_size.errorbar(sizes + (k - 1) * 0.08, mean, yerr=spread, marker="o", capsize=3, label=arm, color=f"C{k}")
        by_size.set_xticks(sorted({int(s) for s in rows["size_index"]}))
        by_size.set_yscale("symlog", linthresh=1.0)  # gains span decades and reach 0; linear below 1 nat
        by_size.set_ylim(bottom=0)  # gains are >= 0
        by_size.set_xlabel("size index")
        by_size.set_ylabel("pair oracle gain, all texts (nats per text)")
        by_size.set_title("By size (min to max over pairs)")
    fig.tight_layout()
    return fig


def write_outputs(frames: dict[str, pd.DataFrame], paths: RunPaths, markdown: str) -> dict[str, Path]:
    """Write the experiment's csv files, markdown and figure into the run's folders; return them by name."""
    from mmlaw_utils.report.figures import save_figure

    out = {"pair_gains": paths.output("arms_pair_gains"), "summary": paths.output("arms_summary"),
           "gains": paths.output("arms_gains"), "verdicts": paths.output("arms_verdicts"),
           "wins": paths.output("domain_wins"), "winner_seeds": paths.output("arms_winner_seeds"),
           "markdown": paths.output("arms_md")}
    summary = pd.concat([frames["summary"].assign(sizes="shared"), frames["every_size"].assign(sizes="own")],
                        ignore_index=True)
    spread = frames["winner_spread"].set_index(["size_index", "domain"])
    cells = frames["winner_cells"].copy()
    keys = list(zip(cells["size_index"], cells["domain"]))
    cells["winner"] = [spread.loc[k, "family"] == f for k, f in zip(keys, cells["family"])] if len(cells) else []
    for column in ("flipped", "kept_share", "other_winners"):
        cells[column] = [spread.loc[k, column] for k in keys] if len(cells) else []
    csv = {"pair_gains": frames["gains"], "summary": summary, "gains": frames["intervals"],
           "verdicts": frames["verdicts"], "wins": frames["wins"], "winner_seeds": cells}
    for name, frame in csv.items():
        atomic_write_text(out[name], frame.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["markdown"], markdown)
    figure = gain_figure(frames["intervals"], frames["every_size"])
    out["figure"] = save_figure(figure, paths.figures_dir, FIGURE_STEMS["arms_gain"])[0]
    import matplotlib.pyplot as plt

    plt.close(figure)
    return out


def write_report(profile_name: str, data_dir: str | Path | None = None, figures_dir: str | Path | None = None, *,
                 n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Path]:
    """Compute the arms frames from the profile's caches and write the csv, markdown and figure files."""
    paths = resolve_run_paths(profile_name, data_dir=data_dir, figures_dir=figures_dir)
    lm, texts = scored_loss_matrix(profile_name, paths.cache_dir)
    pool = load_pool(paths.pool)
    frames = arms_frames(lm, texts, pool, n_bootstrap=n_bootstrap, seed=seed, level=level)
    markdown = summary_markdown(frames, family_mixtures(lm.models), seed_sizes(pool, lm.models))
    return write_outputs(frames, paths, markdown)
