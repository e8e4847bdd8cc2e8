"""Report of the granularity study (notebook 10, issue 21): the oracle and a switching mixture from text to token.

Reads the segment losses of a profile (``data/<profile>/segments/``, long form: model, text_id, segment,
byte_start, byte_end, nll; one table per segmentation), computes ``analysis/granularity.py``'s frames at
every segmentation there is, and writes into the data folder ``granularity_summary.csv`` (per granularity:
best single, best pair, all-model oracle, Bayesian and switching mixture on the evaluation half, nats per
text and bits per byte), ``granularity_win_shares.csv``, ``granularity_table1.csv``, ``granularity_claims.csv``,
``granularity_relations.csv``, ``granularity_budgets.csv`` and ``granularity.md``; and the figures
``granularity_budgets`` and ``granularity_winners``. Losses are nats per text unless a column says bits per byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmlaw_utils.analysis import granularity as gran
from mmlaw_utils.analysis.lossmatrix import LossMatrix, loss_matrix_bytes
from mmlaw_utils.analysis.switching import document_split
from mmlaw_utils.analysis.uncertainty import text_clusters
from mmlaw_utils.config import FIGURE_STEMS, RunPaths
from mmlaw_utils.report.tables import table1_frame, table1_markdown
from mmlaw_utils.report.units import display_unit, short_name
from mmlaw_utils.scoring.segment_files import available_segmentations, read_segment_table, segmented_models, segments_dir

README_START = "<!-- granularity-{profile}:start -->"
README_END = "<!-- granularity-{profile}:end -->"
# the winners figure prefers texts up to this many UTF-8 bytes (readable in one panel)
EXAMPLE_MAX_BYTES = 700


def load_segments(data_dir: str | Path, segmentation: str, model_names: Sequence[str],
                  text_ids: Sequence[str]) -> gran.SegmentLosses:
    """Segment losses of ``model_names`` under ``segmentation`` from ``data_dir/segments``, in that model and text order."""
    frame = read_segment_table(data_dir, segmentation, model_names)
    return gran.segment_losses_from_frame(frame, segmentation, model_names, text_ids)


@dataclass
class GranularityResults:
    """Everything notebook 10 shows for one profile (frames in nats per text unless named otherwise)."""

    profile: str
    model_names: list[str]
    n_texts: int
    segmentations: list[str]
    frontier_kind: str
    summary: pd.DataFrame
    win_shares: pd.DataFrame
    table1: pd.DataFrame
    claims: pd.DataFrame
    relations: pd.DataFrame
    curves: pd.DataFrame
    sum_check: pd.DataFrame
    example: pd.DataFrame | None = None
    example_text: str = ""
    example_models: tuple[str, str] = ("", "")
    notes: list[str] = field(default_factory=list)


def _example(seg: gran.SegmentLosses, matrix: np.ndarray, texts: pd.DataFrame) -> tuple[pd.DataFrame, str, tuple[str, str]]:
    """The word winners of one text for the cross-model pair with the largest word-level gain over its better member."""
    single = np.diag(matrix)
    i, j = np.triu_indices(matrix.shape[0], k=1)
    gains = np.minimum(single[i], single[j]) - matrix[i, j]
    best = int(np.argmax(gains))
    pair = [int(i[best]), int(j[best])] if single[i[best]] <= single[j[best]] else [int(j[best]), int(i[best])]
    per_text = np.minimum(seg.text_losses()[pair[0]], seg.text_losses()[pair[1]]) - gran.subset_text_losses(seg, pair)
    short = np.flatnonzero(seg.n_bytes <= EXAMPLE_MAX_BYTES)
    candidates = short if short.size else np.arange(seg.n_texts)
    text = int(candidates[np.argmax(per_text[candidates])])
    frame = gran.segment_winners(seg, text, pair)
    raw = texts.set_index("text_id").loc[seg.text_ids[text], "text"].encode("utf-8")
    frame["segment_text"] = [raw[a:b].decode("utf-8", errors="replace") for a, b in
                             zip(frame["byte_start"], frame["byte_end"])]
    frame.insert(0, "text_id", seg.text_ids[text])
    return frame, seg.text_ids[text], (seg.model_names[pair[0]], seg.model_names[pair[1]])


def model_labels(models: pd.DataFrame) -> list[str]:
    """Names to show: the pool's ``short_name`` where given, else the model id without its folder."""
    from mmlaw_utils.report.realpool import display_names

    return [short_name(name) for name in display_names(models)]


def default_budgets(params: np.ndarray, n_budgets: int = 3) -> np.ndarray:
    """Budgets (raw parameters) log-spaced from above the smallest model to the whole pool."""
    p = np.asarray(params, dtype=np.float64)
    return p.min() * (p.sum() / p.min()) ** (np.arange(1, n_budgets + 1) / n_budgets)


def compute_results(lm: LossMatrix, texts: pd.DataFrame, data_dir: str | Path, profile: str, *,
                    n_bootstrap: int = 200, seed: int = 0, level: float = 0.95, params_unit: float = 1e9,
                    progress: bool = True) -> GranularityResults | None:
    """Every frame of the study for the models of ``lm`` on its texts (``texts``: text_id, text, domain, source);
    None when ``data_dir`` has no segment files."""
    found = available_segmentations(data_dir)
    if not found:
        return None
    segmented = [segmented_models(data_dir, g) for g in found]
    left_out = [m for m in lm.model_names if not all(m in models for models in segmented)]
    if len(left_out) == len(lm.model_names):
        raise ValueError(f"no model of profile {profile!r} has segment files at every segmentation there is ({found})")
    if left_out:  # e.g. models whose weights are not on disk to rescore
        lm = lm.select([m for m in lm.model_names if m not in left_out])
    text_ids, names = lm.text_ids, lm.model_names
    ordered = texts.set_index("text_id").loc[text_ids]
    domains = ordered["domain"].astype(str).to_numpy() if "domain" in ordered.columns else None
    clusters, rule = text_clusters(text_ids, ordered["source"].tolist() if "source" in ordered.columns else None)
    fit_idx, eval_idx = document_split(clusters, seed, domains)
    L, params, families = lm.to_array(), lm.params, lm.families
    any_size = len(names) <= gran.ANY_SIZE_MAX_MODELS
    segmentations = found if "text" in found else ["text", *found]
    text_bytes = loss_matrix_bytes(lm).astype(np.int64)
    rows, shares, tables, claims, relations, fronts, segs, checks = [], [], [], [], [], {}, {}, []
    example = None
    from tqdm.auto import tqdm

    for g in tqdm(segmentations, desc="granularities", disable=not progress):
        seg = (load_segments(data_dir, g, names, text_ids) if g in found
               else gran.text_segments(L, text_bytes, names, text_ids))
        wrong_size = np.flatnonzero(seg.n_bytes != text_bytes)
        if wrong_size.size:
            raise ValueError(f"{g} segments of text {text_ids[wrong_size[0]]!r} cover {int(seg.n_bytes[wrong_size[0]])} bytes, "
                             f"not the text's {int(text_bytes[wrong_size[0]])}")
        rel, model, text = gran.text_sum_mismatch(seg, L)
        checks.append({"granularity": g, "max_rel_diff": rel, "model": model, "text_id": text})
        if rel > 1e-6:
            raise ValueError(f"{g} segments of model {model!r} on text {text!r} sum to a loss {rel:.2g} (relative) away "
                             "from the loss matrix: segment files and score caches disagree")
        singles, pairs = seg.text_losses(), gran.pair_text_losses(seg)
        law = gran.granularity_law(singles, pairs, params, families, names, None if rule == "text" else clusters,
                                   n_bootstrap=n_bootstrap, seed=seed, params_unit=params_unit, level=level)
        tables.append(table1_frame(law.groups, law.fits, law.text_boot, level, law.uncertainty).assign(granularity=g))
        claims.append(law.claims.assign(granularity=g))
        relations.append(gran.relation_gains(singles, pairs, families).assign(granularity=g))
        shares.append(gran.win_share_table(seg, domains).assign(granularity=g))
        matrix = gran.pair_loss_matrix(singles, pairs)
        fronts[g] = gran.any_size_frontier(seg, params) if any_size else gran.small_subset_frontier(matrix, params)
        summary = gran.realizable_summary(seg, fit_idx, eval_idx, pairs=pairs)
        eval_bytes = seg.n_bytes[eval_idx]
        bpb = {f"{key}_bpb": gran.nats_to_bits_per_byte(summary[key], eval_bytes)
               for key in ("best_single", "best_pair", "oracle", "bayes_mixture", "switching")}
        rows.append({"granularity": g, "n_segments": seg.shape[1], **summary, **bpb})
        segs[g] = seg
        if g == "word":
            example = _example(seg, matrix, texts)
    curves = gran.budget_curves(segs, fronts, default_budgets(params), fit_idx, eval_idx, clusters,
                                n_bootstrap=n_bootstrap, seed=seed, level=level)
    label = dict(zip(names, model_labels(lm.models)))
    rows_frame = pd.DataFrame(rows).assign(best_single_model=lambda f: f["best_single_model"].map(label))
    shares_frame = pd.concat(shares, ignore_index=True).assign(model=lambda f: f["model"].map(label))
    result = GranularityResults(
        profile=profile, model_names=names, n_texts=len(text_ids), segmentations=segmentations,
        frontier_kind="any size (exact)" if any_size else "single models and pairs",
        summary=rows_frame, win_shares=shares_frame,
        table1=pd.concat(tables, ignore_index=True), claims=pd.concat(claims, ignore_index=True),
        relations=pd.concat(relations, ignore_index=True), curves=curves, sum_check=pd.DataFrame(checks))
    if example is not None:
        frame, text_id, pair = example
        frame = frame.rename(columns=label).assign(winner=frame["winner"].map(label))
        result.example, result.example_text, result.example_models = frame, text_id, (label[pair[0]], label[pair[1]])
    if "text" not in found:
        result.notes.append("no text-level segment file: the text granularity is the loss matrix itself")
    if left_out:
        result.notes.append(f"{len(left_out)} of the profile's {len(left_out) + len(names)} models have no segment files "
                            f"and are left out of every granularity, the text level included: {', '.join(left_out)}")
    return result


# ---------------------------------------------------------------- markdown


def _num(value: float, digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def summary_table_markdown(summary: pd.DataFrame) -> str:
    """Granularity x (best single, best pair, oracle, Bayesian and switching mixture, gains), nats per text and bpb."""
    lines = ["| granularity | segments | best single | best pair | oracle (all models) | Bayesian mixture | "
             "switching mixture (α) | oracle gain | switching gain | switching keeps |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in summary.itertuples(index=False):
        kept = (f"{row.kept_share:.1%}" if np.isfinite(row.kept_share)
                else f"{row.gain_switching:+.3f} nats (oracle gain near 0)")
        lines.append(
            f"| {row.granularity} | {row.n_segments} | {_num(row.best_single)} ({row.best_single_bpb:.4f}) "
            f"| {_num(row.best_pair)} ({row.best_pair_bpb:.4f}) | {_num(row.oracle)} ({row.oracle_bpb:.4f}) "
            f"| {_num(row.bayes_mixture)} ({row.bayes_mixture_bpb:.4f}) "
            f"| {_num(row.switching)} ({row.switching_bpb:.4f}; α = {row.alpha:.3g}) "
            f"| {_num(row.gain_oracle)} | {_num(row.gain_switching)} | {kept} |")
    return "\n".join(lines) + "\n"


def reading_markdown(results: GranularityResults) -> list[str]:
    """Sentences read off the summary: how the oracle gain grows with granularity and what the mixture keeps."""
    s = results.summary.set_index("granularity")
    lines = []
    coarse, fine = s.index[0], s.index[-1]
    lines.append(f"- Oracle gain over the best single model: {s.loc[coarse, 'gain_oracle']:.2f} nats per text at "
                 f"{coarse} level, {s.loc[fine, 'gain_oracle']:.2f} at {fine} level "
                 f"({', '.join(f'{g}: {v:.2f}' for g, v in s['gain_oracle'].items())}).")
    kept = ", ".join(f"{g}: {v:.1%}" if np.isfinite(v) else f"{g}: {s.loc[g, 'gain_switching']:+.3f} nats"
                     for g, v in s["kept_share"].items())
    lines.append(f"- The switching mixture (a real probability model, α fitted on the other half) keeps of that gain: "
                 f"{kept}; its gap to the segment oracle is {s.loc[fine, 'gap']:.2f} nats per text at {fine} level.")
    best = s["switching"].idxmin()
    lines.append(f"- Lowest realizable loss: the switching mixture at {best} level, {s.loc[best, 'switching']:.2f} "
                 f"nats per text against {s.loc[best, 'best_single']:.2f} for the best single model "
                 f"({s.loc[best, 'best_single_model']}).")
    rel = results.relations
    if "word" in set(rel["granularity"]):
        word = rel[rel["granularity"] == "word"].set_index("relation")
        if {"same_family", "cross_family"} <= set(word.index):
            c, m = word.loc["cross_family", "mean_gain"], word.loc["same_family", "mean_gain"]
            lines.append(f"- Word level, mean pair gain over the better member: cross-family {c:.2f} nats per text "
                         f"({int(word.loc['cross_family', 'n_pairs'])} pairs), same-family {m:.2f} "
                         f"({int(word.loc['same_family', 'n_pairs'])} pairs): cross-family pairs gain "
                         f"{'more' if c > m else 'less'} (a mean over pairs, not a test at equal budget).")
        else:
            lines.append("- Word level: the pool has no same-family pair, so cross- and same-family pairs cannot be "
                         "compared.")
    return lines


def results_markdown(results: GranularityResults) -> str:
    """The README block of one profile: the table, the reading, verdicts per granularity and the figures' meaning."""
    s = results.summary.iloc[0]
    lines = [f"{len(results.model_names)} models, {results.n_texts} texts; the mixtures' switching rate is fitted on "
             f"{s['n_fit']} texts and every column is on the other {s['n_eval']} (split by source document, within "
             "domains). Nats per text (bits per byte in parentheses). *Oracle*: per text, the sum over segments of "
             "the best model's segment loss (not a probability model); *switching mixture*: fixed-share mixture "
             "of all models (Herbster & Warmuth 1998), weights updated causally segment by segment. *Keeps*: switching "
             f"gain / oracle gain, shown only where the oracle gain is at least {gran.MIN_RELATIVE_GAIN_FOR_SHARE:.1%} "
             "of the best single loss (else the switching gain in nats).", "",
             summary_table_markdown(results.summary), *reading_markdown(results), ""]
    verdicts = results.claims.groupby("granularity", sort=False)["verdict"].value_counts().unstack(fill_value=0)
    lines += ["Verdicts of Table 1's claims at each granularity (eq. 7 on the frontiers of single models, same- and "
              "cross-family pairs; four intervals; equal-budget claims not evaluated here):", "",
              "| granularity | " + " | ".join(verdicts.columns) + " |",
              "|---|" + "---:|" * len(verdicts.columns)]
    lines += [f"| {g} | " + " | ".join(str(int(v)) for v in row) + " |" for g, row in verdicts.iterrows()]
    lines += ["", f"Budget curves use the frontier of {results.frontier_kind} at each granularity."]
    lines += [f"- {note}" for note in results.notes]
    return "\n".join(lines).rstrip() + "\n"


def table1_markdown_by_granularity(results: GranularityResults) -> str:
    """Table 1 (report.tables.table1_markdown) at each granularity, one after another."""
    parts = []
    for g in results.segmentations:
        table = results.table1[results.table1["granularity"] == g]
        parts.append(table1_markdown(table, f"**Granularity: {g}**"))
    return "\n".join(parts)


# ---------------------------------------------------------------- figures


def budget_figure(curves: pd.DataFrame, segmentations: Sequence[str], params_unit: float | None = None):
    """Loss (nats per evaluation text) against granularity at each budget: oracle solid, switching mixture dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.4), layout="constrained")
    ax = fig.add_subplot()
    order = {g: k for k, g in enumerate(segmentations)}
    scale, unit = display_unit(float(curves["budget"].max())) if params_unit is None else (params_unit, "")
    colours = ["C0", "C1", "C2", "C3", "C4"]
    for k, (budget, sub) in enumerate(curves.groupby("budget")):
        for curve, style in (("oracle", "-"), ("switching", "--")):
            part = sub[sub["curve"] == curve].sort_values("granularity", key=lambda c: c.map(order))
            x = part["granularity"].map(order).to_numpy()
            y = part["loss"].to_numpy()
            ax.plot(x, y, style, marker="o", color=colours[k % 5],
                    label=f"{curve}, budget ≤ {budget / scale:.3g} {unit}".strip())
            ax.fill_between(x, part["lo"].to_numpy(), part["hi"].to_numpy(), color=colours[k % 5], alpha=0.15)
    ax.set_xticks(range(len(segmentations)), list(segmentations))
    ax.set_xlabel("granularity of the oracle (coarse → fine)")
    ax.set_ylabel("loss, nats per text (evaluation half)")
    ax.legend(fontsize=7)
    ax.set_title("Oracle and switching mixture by granularity (bands: source-document bootstrap)", fontsize=9)
    return fig


def winners_figure(example: pd.DataFrame, models: tuple[str, str], width: int = 90):
    """One text, each word on a background coloured by the pair member that wins it (monospace layout)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    colours = {models[0]: "#9ecae1", models[1]: "#fdae6b"}
    row, col, placed = 0, 0, []
    for piece, winner in zip(example["segment_text"], example["winner"]):
        for part_index, part in enumerate(piece.replace("\t", "    ").split("\n")):
            if part_index:
                row, col = row + 1, 0
            if col + len(part) > width and col:
                row, col = row + 1, 0
            if part:
                placed.append((row, col, part, colours[winner]))
                col += len(part)
    n_rows = row + 1
    # a monospace character is ~0.6 em wide: the panel is as wide as ``width`` characters at 7 pt
    fig = Figure(figsize=(width * 0.6 * 7 / 72 + 0.4, 0.6 + 0.19 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(0, width)
    ax.set_ylim(n_rows, -0.5)
    ax.axis("off")
    for r, c, part, colour in placed:
        ax.text(c, r, part, family="monospace", fontsize=7, va="center", ha="left",
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.4})
    ax.legend(handles=[Patch(color=colours[m], label=m) for m in models], loc="upper center",
              bbox_to_anchor=(0.5, 1.0 + 0.6 / (0.6 + 0.19 * n_rows)), ncol=2, fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------- files


def write_outputs(results: GranularityResults, paths: RunPaths) -> dict[str, Path]:
    """Write the csv tables, granularity.md and the two figures; return the paths by name."""
    import matplotlib.pyplot as plt

    from mmlaw_utils.io import atomic_write_text
    from mmlaw_utils.report.figures import save_figure

    frames = {"granularity_summary": results.summary, "granularity_win_shares": results.win_shares,
              "granularity_table1": results.table1, "granularity_claims": results.claims,
              "granularity_relations": results.relations,
              "granularity_budgets": results.curves.assign(subset=results.curves["subset"].map(list))}
    out = {}
    for key, frame in frames.items():
        out[key] = paths.output(key)
        atomic_write_text(out[key], frame.to_csv(index=False, float_format="%.6g"))
    out["granularity_md"] = paths.output("granularity_md")
    atomic_write_text(out["granularity_md"],
                      f"# Granularity of the oracle ({results.profile})\n\nGenerated by notebook `10_granularity`; "
                      f"do not edit by hand.\n\n{results_markdown(results)}\n{table1_markdown_by_granularity(results)}")
    figure = budget_figure(results.curves, results.segmentations)
    out["granularity_budgets_fig"] = save_figure(figure, paths.figures_dir, FIGURE_STEMS["granularity_budgets"])[0]
    plt.close(figure)
    if results.example is not None:
        figure = winners_figure(results.example, results.example_models)
        out["granularity_winners_fig"] = save_figure(figure, paths.figures_dir,
                                                     FIGURE_STEMS["granularity_winners"])[0]
        plt.close(figure)
    return out


def update_readme(readme: str | Path, results: GranularityResults, figures: dict[str, Path]) -> bool:
    """Replace the README's granularity region of this profile; False (untouched) when it has none."""
    from mmlaw_utils.io import write_marked_region

    start, end = README_START.format(profile=results.profile), README_END.format(profile=results.profile)
    if start not in Path(readme).read_text():
        return False
    block = [f"_Generated from profile `{results.profile}` by notebook `10_granularity`; do not edit by hand._", "",
             results_markdown(results)]
    for key in ("granularity_budgets_fig", "granularity_winners_fig"):
        if key in figures:
            rel = Path(figures[key]).resolve().relative_to(Path(readme).resolve().parent)
            block += [f"![{Path(figures[key]).stem}]({rel.as_posix()})", ""]
    write_marked_region(readme, "\n".join(block), start, end)
    return True


def not_available_markdown(data_dir: str | Path, profile: str) -> str:
    """What notebook 10 says when a profile has no segment losses."""
    return (f"**No segment losses for profile `{profile}`**: `{segments_dir(data_dir)}` does not exist or holds no "
            f"segment files ({', '.join(gran.SEGMENTATIONS)}). They are written by the segment-scoring step "
            f"(`python -m mmlaw_utils segments --profile {profile}`); nothing is computed without them.")
