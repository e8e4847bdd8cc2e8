"""Report of the test bed's diversity experiment: which diversity (data, architecture + tokenizer, seed)
drives cross-family oracle gains, overall and per domain, and which domains each family wins.

``python -m mmlaw_utils arms --profile testbed`` reads the profile's score caches (the models
scored so far), computes analysis/arms.py's frames and writes, into the profile's data folder,
``arms_pair_gains.csv`` (every equal-size family pair, per domain), ``arms_summary.csv`` and
``arms.md`` (mean gain per arm and domain at the sizes all arms share; domain winners), and
``domain_wins.csv``; and ``arms_gain.png``/``.pdf`` in its figures folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmlaw_utils.analysis import arms
from mmlaw_utils.analysis.lossmatrix import LossMatrix
from mmlaw_utils.scoring.assemble import assemble_loss_matrix, find_cache_file
from mmlaw_utils.config import load_profile
from mmlaw_utils.pool import load_pool
from mmlaw_utils.io import atomic_write_text
from mmlaw_utils.texts import dataset_fingerprint, load_texts

ARM_ORDER = ("main", "same_data", "seed")


def scored_loss_matrix(profile_name: str) -> tuple[LossMatrix, np.ndarray]:
    """Loss matrix of the pool models that have a cache on the profile's text set, and the texts' domains."""
    profile = load_profile(profile_name)
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    pool = load_pool(profile.pool)
    have = []
    for model in pool["model"]:
        try:
            find_cache_file(profile.cache_dir, model, fingerprint)
            have.append(True)
        except FileNotFoundError:
            have.append(False)
    scored = pool[np.array(have, dtype=bool)].reset_index(drop=True)
    if scored.empty:
        raise FileNotFoundError(f"no model of {profile.pool} has a score cache in {profile.cache_dir}")
    lm = assemble_loss_matrix(profile.cache_dir, scored, dataset_fingerprint=fingerprint)
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


def summary_markdown(summary: pd.DataFrame, wins: pd.DataFrame) -> str:
    """Markdown: mean pair gain (nats per text) per domain x arm at the shared sizes, then domain winners."""
    overall = summary[summary["size_index"] == "all"]
    table = overall.pivot(index="domain", columns="arm", values="mean_gain")
    table = table[[a for a in ARM_ORDER if a in table.columns]]
    lines = ["Mean oracle gain of an equal-size family pair over its better member (nats per text), "
             "at the size indexes every arm has:", "",
             "| domain | " + " | ".join(table.columns) + " |", "|---|" + "---:|" * len(table.columns)]
    for domain, row in table.iterrows():
        lines.append(f"| {domain} | " + " | ".join(f"{v:.3f}" for v in row.to_numpy()) + " |")
    if not wins.empty:
        largest = wins[wins["size_index"] == wins["size_index"].max()]
        winners = arms.domain_winners(largest)
        lines += ["", f"Domain winners in the main arm at size index {int(largest['size_index'].iloc[0])} "
                      "(share of the domain's texts won; ties split):", "", "| domain | family | win share |",
                  "|---|---|---:|"]
        lines += [f"| {r.domain} | {r.family} | {r.win_share:.2f} |" for r in winners.itertuples()]
    return "\n".join(lines) + "\n"


def gain_figure(summary: pd.DataFrame):
    """Grouped bars: mean equal-size pair gain per domain, one bar per arm (shared sizes)."""
    import matplotlib.pyplot as plt

    overall = summary[summary["size_index"] == "all"]
    table = overall.pivot(index="domain", columns="arm", values="mean_gain")
    table = table[[a for a in ARM_ORDER if a in table.columns]]
    order = ["all"] + sorted(d for d in table.index if d != "all")
    table = table.loc[[d for d in order if d in table.index]]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table))
    for k, arm in enumerate(table.columns):
        ax.bar(x + (k - (len(table.columns) - 1) / 2) * width, table[arm].to_numpy(), width, label=arm)
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_ylabel("pair oracle gain (nats per text)")
    ax.set_title("Cross-family oracle gain at equal size, by arm")
    ax.legend(title="arm")
    fig.tight_layout()
    return fig


def write_report(profile_name: str) -> dict[str, Path]:
    """Compute the arms frames from the profile's caches and write the csv, markdown and figure files."""
    from mmlaw_utils.report.figures import save_figure

    profile = load_profile(profile_name)
    lm, domains = scored_loss_matrix(profile_name)
    gains = arms.equal_size_pair_gains(lm.to_array(), lm.models, domains)
    summary = arms.arm_gain_summary(gains)
    wins = main_arm_wins(lm, domains)
    out = {"pair_gains": profile.data_dir / "arms_pair_gains.csv", "summary": profile.data_dir / "arms_summary.csv",
           "wins": profile.data_dir / "domain_wins.csv", "markdown": profile.data_dir / "arms.md"}
    atomic_write_text(out["pair_gains"], gains.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["summary"], summary.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["wins"], wins.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out["markdown"], summary_markdown(summary, wins))
    save_figure(gain_figure(summary), profile.figures_dir, "arms_gain")
    out["figure"] = profile.figures_dir / "arms_gain.png"
    return out
