"""Report of the miniature pool's diversity experiment: which diversity (data, architecture + tokenizer, seed)
drives cross-family oracle gains, overall and per domain, and which domains each family wins.

Notebook 09 (stage ``09_diversity_arms``) and ``python -m mmlaw_utils arms --profile minipool`` read the
profile's score caches of every arm (the models scored so far), compute analysis/arms.py's frames and
write, into the data folder, ``arms_pair_gains.csv`` (every equal-size family pair, per domain),
``arms_summary.csv`` (mean gain per arm and domain, per size and over sizes: column ``sizes`` is ``shared``
for the sizes all arms have, ``own`` for each arm at all its sizes),
``arms_intervals.csv`` (each arm's mean gain and the differences between arms, with intervals over source
documents resampled within domains), ``domain_wins.csv`` (main arm: each family's win share per domain and
size) and ``arms.md``; and
``arms_gain.png``/``.pdf`` in the figures folder. Gains are nats per text.
"""

from __future__ import annotations

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

ARM_ORDER = ("main", "same_data", "seed")


def scored_loss_matrix(profile_name: str, cache_dir: str | Path | None = None) -> tuple[LossMatrix, pd.DataFrame]:
    """Loss matrix (nats per text) of the pool models of every arm that have a cache on the profile's text set
    (in ``cache_dir``, default the profile's), and its texts' ``domain`` and ``cluster`` (source document, as
    ``uncertainty.text_clusters`` finds it) in loss-matrix order; stale caches are refused as in stage 02."""
    profile = load_profile(profile_name)
    cache_dir = Path(cache_dir) if cache_dir is not None else profile.cache_dir
    texts = load_texts(profile.dataset, profile.n_texts)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    pool = load_pool(profile.pool)
    have = []
    for model in pool["model"]:
        try:
            find_cache_file(cache_dir, model, fingerprint)
            have.append(True)
        except FileNotFoundError:
            have.append(False)
    scored = pool[np.array(have, dtype=bool)].reset_index(drop=True)
    if scored.empty:
        raise FileNotFoundError(f"no model of {profile.pool} has a score cache in {cache_dir}")
    expected = profile_expectation(profile_name, cache_dir)
    lm = assemble_loss_matrix(cache_dir, scored, dataset_fingerprint=fingerprint, check_provenance=expected.check,
                              rescore_hint=expected.rescore_hint)
    ordered = texts.set_index("text_id").loc[lm.text_ids]
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


def arms_frames(lm: LossMatrix, texts: pd.DataFrame, pool: pd.DataFrame | None = None, *, n_bootstrap: int = 1000,
                seed: int = 0, level: float = 0.95) -> dict[str, pd.DataFrame]:
    """Every frame of the experiment: pair ``gains``; ``summary`` (arms at their shared sizes); ``every_size``
    (each arm at all its sizes); ``intervals`` (arm means and differences, resampling ``texts.cluster`` within
    ``texts.domain``); main-arm ``wins`` and per-size ``winners``; ``coverage`` of ``pool`` (when given)."""
    domains = texts["domain"].to_numpy()
    L = lm.to_array()
    gains = arms.equal_size_pair_gains(L, lm.models, domains)
    wins = main_arm_wins(lm, domains)
    counts = stratified_cluster_counts(texts["cluster"].to_numpy(), domains, n_bootstrap, seed)
    frames = {"gains": gains, "summary": arms.arm_gain_summary(gains),
              "every_size": arms.arm_gain_summary(gains, common_sizes=False), "wins": wins,
              "winners": arms.winners_by_size(wins),
              "intervals": arms.arm_gain_intervals(L, lm.models, domains, counts, level=level)}
    if pool is not None:
        frames["coverage"] = arms.arm_coverage(pool, list(lm.model_names))
    return frames


def _ordered_arms(columns) -> list[str]:
    """Arms in ARM_ORDER first, then any others alphabetically."""
    return [a for a in ARM_ORDER if a in columns] + sorted(a for a in columns if a not in ARM_ORDER)


def gain_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Domain x arm mean pair gain (nats per text) over all sizes of ``summary``; the row ``all`` first."""
    overall = summary[summary["size_index"] == "all"]
    table = overall.pivot(index="domain", columns="arm", values="mean_gain")
    table = table[_ordered_arms(table.columns)]
    order = [arms.ALL_TEXTS] + sorted(d for d in table.index if d != arms.ALL_TEXTS)
    return table.loc[[d for d in order if d in table.index]]


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


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Domain x quantity (arms, then differences): "estimate [lo, hi]" in nats per text; the row ``all`` first."""
    cells = intervals.assign(cell=[f"{r.estimate:.2f} [{r.lo:.2f}, {r.hi:.2f}]" for r in intervals.itertuples()])
    table = cells.pivot(index="domain", columns="quantity", values="cell")
    arm_columns = _ordered_arms(intervals.loc[intervals["kind"] == "arm", "quantity"].unique())
    contrasts = list(dict.fromkeys(intervals.loc[intervals["kind"] == "contrast", "quantity"]))
    order = [arms.ALL_TEXTS] + sorted(d for d in table.index if d != arms.ALL_TEXTS)
    return table.loc[[d for d in order if d in table.index], arm_columns + contrasts]


def contrast_reading(intervals: pd.DataFrame) -> list[str]:
    """One sentence per difference between arms: above 0, below 0, or not distinguishable, over all texts and
    the domains where the interval excludes 0."""
    lines = []
    contrasts = intervals[intervals["kind"] == "contrast"]
    for quantity, group in contrasts.groupby("quantity", sort=False):
        overall = group[group["domain"] == arms.ALL_TEXTS].iloc[0]
        per_domain = group[group["domain"] != arms.ALL_TEXTS]
        above = per_domain.loc[per_domain["lo"] > 0, "domain"].tolist()
        below = per_domain.loc[per_domain["hi"] < 0, "domain"].tolist()
        verdict = ("above 0" if overall.lo > 0 else "below 0" if overall.hi < 0 else "not distinguishable from 0")
        lines.append(f"- **{quantity}** over all texts: {overall.estimate:.2f} [{overall.lo:.2f}, {overall.hi:.2f}] "
                     f"nats per text, {verdict}; per domain above 0 in {len(above)} of {len(per_domain)}"
                     + (f" ({', '.join(above)})" if above else "") + f", below 0 in {len(below)}"
                     + (f" ({', '.join(below)})" if below else "") + ".")
    return lines


def summary_markdown(summary: pd.DataFrame, wins: pd.DataFrame, every_size: pd.DataFrame | None = None,
                     coverage: pd.DataFrame | None = None, mixtures: dict[str, str] | None = None,
                     intervals: pd.DataFrame | None = None) -> str:
    """Markdown: mean pair gain (nats per text) per domain x arm at the shared sizes, per size, then domain winners."""
    lines: list[str] = []
    if coverage is not None and (coverage["n_scored"] < coverage["n_models"]).any():
        counts = ", ".join(f"{r.arm} {r.n_scored}/{r.n_models}" for r in coverage.itertuples())
        lines += [f"**Partial pool**: models scored per arm: {counts}. Every number below covers the scored models "
                  "only.", ""]
    overall = summary[(summary["size_index"] == "all") & (summary["domain"] == arms.ALL_TEXTS)].set_index("arm")
    shared = sorted({s for s in summary["size_index"] if s != "all"})
    pairs = ", ".join(f"{arm} {int(overall.loc[arm, 'n_pairs'])}" for arm in _ordered_arms(overall.index))
    lines += ["Mean oracle gain of an equal-size family pair over its better member (nats per text), "
              "at the size indexes every arm has:", "", *_markdown_table(gain_table(summary), "domain", _number), "",
              f"Size indexes: {', '.join(str(s) for s in shared)}; family pairs per arm: {pairs}."]
    if "max_params_ratio" in overall.columns and overall["max_params_ratio"].notna().any():
        lines[-1] += (f" The two members of a pair differ in parameters by up to a factor "
                      f"{overall['max_params_ratio'].max():.2f} (equal size is equal budget only approximately).")
    if intervals is not None and not intervals.empty:
        first = intervals.iloc[0]
        lines += ["", f"The same means with {first.level:.0%} intervals over {int(first.n_resamples)} resamples of the "
                      "source documents, drawn within each domain (every resample recomputes each model's mean and so "
                      "which member of a pair is the better one), and the differences between arms: main − same_data "
                      "is what different training data add to architecture and tokenizer diversity, same_data − seed "
                      "what architecture and tokenizer add to retraining noise:", "",
                  *_markdown_table(interval_table(intervals), "domain"), "", *contrast_reading(intervals)]
    if every_size is not None:
        lines += ["", "Mean pair gain over all texts (nats per text) at each size index, each arm at every size it has:",
                  "", *_markdown_table(size_table(every_size), "arm", _number)]
    winners = arms.winners_by_size(wins)
    if not winners.empty:
        by_domain = winners.assign(cell=[f"{r.family} {r.win_share:.2f}" for r in winners.itertuples()])
        by_domain = by_domain.pivot(index="domain", columns="size_index", values="cell")
        lines += ["", "Domain winners in the main arm at each size index where every family is scored (family and "
                      "share of the domain's texts it wins; ties split):", "",
                  *_markdown_table(by_domain, "domain"),
                  "", "Domains each main-arm family wins, by size index (and the mixture it was trained on):", "",
                  *_markdown_table(family_wins_table(winners, mixtures), "family")]
    return "\n".join(lines) + "\n"


def gain_figure(summary: pd.DataFrame, every_size: pd.DataFrame | None = None, intervals: pd.DataFrame | None = None):
    """Grouped bars: mean equal-size pair gain per domain, one bar per arm (shared sizes; error bars from
    ``intervals`` when given); with ``every_size``, a second panel: the gain over all texts against size index
    per arm (bars: min to max over family pairs)."""
    import matplotlib.pyplot as plt

    table = gain_table(summary)
    if every_size is None:
        fig, ax = plt.subplots(figsize=(9, 4))
    else:
        fig, (ax, by_size) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table))
    bounds = None if intervals is None else intervals[intervals["kind"] == "arm"].set_index(["domain", "quantity"])
    for k, arm in enumerate(table.columns):
        heights = table[arm].to_numpy()
        yerr = None
        if bounds is not None:
            lo = np.array([bounds.loc[(d, arm), "lo"] if (d, arm) in bounds.index else np.nan for d in table.index])
            hi = np.array([bounds.loc[(d, arm), "hi"] if (d, arm) in bounds.index else np.nan for d in table.index])
            yerr = np.vstack([np.clip(heights - lo, 0, None), np.clip(hi - heights, 0, None)])
        ax.bar(x + (k - (len(table.columns) - 1) / 2) * width, heights, width, label=arm, color=f"C{k}",
               yerr=yerr, capsize=2 if yerr is not None else 0)
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_ylabel("pair oracle gain (nats per text)")
    ax.set_title("Cross-family oracle gain at equal size, by arm (sizes every arm has)")
    ax.legend(title="arm")
    if every_size is not None:
        rows = every_size[(every_size["domain"] == arms.ALL_TEXTS) & (every_size["size_index"] != "all")]
        for k, arm in enumerate(table.columns):
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
           "intervals": paths.output("arms_intervals"), "wins": paths.output("domain_wins"),
           "markdown": paths.output("arms_md")}
    summary = pd.concat([frames["summary"].assign(sizes="shared"), frames["every_size"].assign(sizes="own")],
                        ignore_index=True)
    atomic_write_text(out["pair_gains"], frames["gains"].to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["summary"], summary.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["intervals"], frames["intervals"].to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["wins"], frames["wins"].to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["markdown"], markdown)
    figure = gain_figure(frames["summary"], frames["every_size"], frames["intervals"])
    out["figure"] = save_figure(figure, paths.figures_dir, FIGURE_STEMS["arms_gain"])[0]
    import matplotlib.pyplot as plt

    plt.close(figure)
    return out


def write_report(profile_name: str, data_dir: str | Path | None = None, figures_dir: str | Path | None = None, *,
                 n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Path]:
    """Compute the arms frames from the profile's caches and write the csv, markdown and figure files."""
    paths = resolve_run_paths(profile_name, data_dir=data_dir, figures_dir=figures_dir)
    lm, texts = scored_loss_matrix(profile_name, paths.cache_dir)
    frames = arms_frames(lm, texts, load_pool(paths.pool), n_bootstrap=n_bootstrap, seed=seed, level=level)
    markdown = summary_markdown(frames["summary"], frames["wins"], frames["every_size"], frames["coverage"],
                                family_mixtures(lm.models), frames["intervals"])
    return write_outputs(frames, paths, markdown)
