"""Report of the miniature pool's diversity experiment: which diversity (data, architecture + tokenizer, seed)
drives cross-family oracle gains, overall and per domain, and which domains each family wins.

Notebook 09 (stage ``09_diversity_arms``) and ``python -m mmlaw_utils arms --profile minipool`` read the
profile's score caches of every arm (the models scored so far), compute analysis/arms.py's frames and
write, into the data folder, ``arms_pair_gains.csv`` (every equal-size family pair, per domain),
``arms_summary.csv`` (mean gain per arm and domain, per size and over sizes: column ``sizes`` is ``shared``
for the sizes all arms have, ``own`` for each arm at all its sizes),
``domain_wins.csv`` (main arm: each family's win share per domain and size) and ``arms.md``; and
``arms_gain.png``/``.pdf`` in the figures folder. Gains are nats per text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmlaw_utils.analysis import arms
from mmlaw_utils.analysis.lossmatrix import LossMatrix
from mmlaw_utils.config import FIGURE_STEMS, RunPaths, load_profile, resolve_run_paths
from mmlaw_utils.io import atomic_write_text
from mmlaw_utils.pool import load_pool
from mmlaw_utils.scoring.assemble import assemble_loss_matrix, find_cache_file
from mmlaw_utils.scoring.expect import profile_expectation
from mmlaw_utils.texts import dataset_fingerprint, load_texts

ARM_ORDER = ("main", "same_data", "seed")


def scored_loss_matrix(profile_name: str, cache_dir: str | Path | None = None) -> tuple[LossMatrix, np.ndarray]:
    """Loss matrix (nats per text) of the pool models of every arm that have a cache on the profile's text set
    (in ``cache_dir``, default the profile's), and the texts' domains; stale caches are refused as in stage 02."""
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
    domains = texts.set_index("text_id").loc[lm.text_ids, "domain"].to_numpy()
    return lm, domains


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


def arms_frames(lm: LossMatrix, domains: np.ndarray, pool: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Every frame of the experiment: pair ``gains``; ``summary`` (arms at their shared sizes); ``every_size``
    (each arm at all its sizes); main-arm ``wins`` and per-size ``winners``; ``coverage`` of ``pool`` (when given)."""
    gains = arms.equal_size_pair_gains(lm.to_array(), lm.models, domains)
    wins = main_arm_wins(lm, domains)
    frames = {"gains": gains, "summary": arms.arm_gain_summary(gains),
              "every_size": arms.arm_gain_summary(gains, common_sizes=False), "wins": wins,
              "winners": arms.winners_by_size(wins)}
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


def summary_markdown(summary: pd.DataFrame, wins: pd.DataFrame, every_size: pd.DataFrame | None = None,
                     coverage: pd.DataFrame | None = None, mixtures: dict[str, str] | None = None) -> str:
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


def gain_figure(summary: pd.DataFrame, every_size: pd.DataFrame | None = None):
    """Grouped bars: mean equal-size pair gain per domain, one bar per arm (shared sizes); with ``every_size``, a
    second panel: the gain over all texts against size index per arm (bars: min to max over family pairs)."""
    import matplotlib.pyplot as plt

    table = gain_table(summary)
    if every_size is None:
        fig, ax = plt.subplots(figsize=(9, 4))
    else:
        fig, (ax, by_size) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table))
    for k, arm in enumerate(table.columns):
        ax.bar(x + (k - (len(table.columns) - 1) / 2) * width, table[arm].to_numpy(), width, label=arm,
               color=f"C{k}")
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
           "wins": paths.output("domain_wins"), "markdown": paths.output("arms_md")}
    summary = pd.concat([frames["summary"].assign(sizes="shared"), frames["every_size"].assign(sizes="own")],
                        ignore_index=True)
    atomic_write_text(out["pair_gains"], frames["gains"].to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["summary"], summary.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["wins"], frames["wins"].to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["markdown"], markdown)
    figure = gain_figure(frames["summary"], frames["every_size"])
    out["figure"] = save_figure(figure, paths.figures_dir, FIGURE_STEMS["arms_gain"])[0]
    import matplotlib.pyplot as plt

    plt.close(figure)
    return out


def write_report(profile_name: str, data_dir: str | Path | None = None,
                 figures_dir: str | Path | None = None) -> dict[str, Path]:
    """Compute the arms frames from the profile's caches and write the csv, markdown and figure files."""
    paths = resolve_run_paths(profile_name, data_dir=data_dir, figures_dir=figures_dir)
    lm, domains = scored_loss_matrix(profile_name, paths.cache_dir)
    frames = arms_frames(lm, domains, load_pool(paths.pool))
    markdown = summary_markdown(frames["summary"], frames["wins"], frames["every_size"], frames["coverage"],
                                family_mixtures(lm.models))
    return write_outputs(frames, paths, markdown)
