"""Figures of the paper, of notebook 07 and of notebook 08, built on ``matplotlib.figure.Figure`` (no pyplot state).

Figures 1 and 2 (§4.1) and the equal-budget figure: Pareto frontiers, fitted laws (eq. 7), bands;
figures 3-6 of notebook 07 (ensembles of any size, mixture − oracle, diversity, forecasts). They
render the same under papermill, in tests and on headless machines, whatever the backend. x axis:
total parameters P on a log scale, in a unit read off the data (thousands, millions or billions);
laws are evaluated in the unit they were fitted in (``params_unit``). y axis: oracle loss in nats
per text (eq. 4). Every raw point is drawn; Pareto points carry the model names and a marker per
family; a floor held at its bound is drawn dashed and said so; bands are the envelope of the methods
given (text and cluster bootstrap, model jackknife, profile likelihood). Notebook 08 draws the per-text scatter of a real pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mmlaw_utils.analysis import diversity, forecast, mixture
from mmlaw_utils.analysis.bootstrap import prediction_band
from mmlaw_utils.analysis.fit import predict
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUP_LABELS, PAIR_GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.uncertainty import curve_band
from mmlaw_utils.io import atomic_output
from mmlaw_utils.report.tables import fit_value
from mmlaw_utils.report.units import UNIT_NAMES, display_unit, short_name  # noqa: F401 (re-exported)

GROUP_COLORS = {SINGLE: "#4C72B0", SAME_FAMILY: "#DD8452", CROSS_FAMILY: "#55A868"}
FAMILY_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
METHOD_LABELS = {"text_bootstrap": "text bootstrap", "cluster_bootstrap": "cluster bootstrap",
                 "model_jackknife": "model jackknife", "profile_likelihood": "profile likelihood"}


def _unit_word(scale: float) -> str:
    """``millions`` for 1e6 parameters per unit (legends); ``units of 5e+07`` for another scale."""
    name = UNIT_NAMES.get(scale)
    return name.removesuffix(" of parameters") if name else f"units of {scale:g} parameters"


def law_band(boot_group: pd.DataFrame, params_scaled: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band (lower, upper) in nats of one group's bootstrap laws at ``params_scaled``; NaN if none fitted."""
    if boot_group["group"].nunique() != 1:
        raise ValueError(f"law_band needs the rows of one group, got {boot_group['group'].unique().tolist()}")
    try:
        return prediction_band(boot_group, str(boot_group["group"].iloc[0]), params_scaled, level)
    except ValueError:  # no successful bootstrap fit: no band to draw
        nan = np.full(np.shape(params_scaled), np.nan)
        return nan, nan


def _fit_is_usable(fit: Any) -> bool:
    return fit is not None and all(np.isfinite(float(fit_value(fit, name))) for name in ("A", "alpha", "L_inf"))


def _member_labels(frame: pd.DataFrame, model_names: Sequence[str] | None,
                   model_families: Sequence[str] | None, params: np.ndarray | None) -> tuple[list[str], list[str]]:
    """Per row: "a + b" model names and the family shown by its marker (the larger member's for pairs)."""
    labels, families = [], []
    for members in frame["members"]:
        members = tuple(int(m) for m in members)
        labels.append(" + ".join(short_name(model_names[m]) for m in members) if model_names is not None else "")
        if model_families is not None:
            largest = max(members, key=lambda m: params[m]) if params is not None else members[0]
            families.append(str(model_families[largest]))
        else:
            families.append("")
    return labels, families


def plot_group(
    ax: Any,
    frame: pd.DataFrame,
    fit: Any = None,
    boot_group: pd.DataFrame | None = None,
    *,
    group: str,
    params_unit: float = 1e9,
    x_range: tuple[float, float] | None = None,
    level: float = 0.95,
    show_raw: bool = True,
    display_scale: float | None = None,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    band_grid: np.ndarray | None = None,
    band_label: str = "",
    model_names: Sequence[str] | None = None,
    model_families: Sequence[str] | None = None,
    model_params: np.ndarray | None = None,
    family_markers: Mapping[str, str] | None = None,
) -> None:
    """Draw one collaboration group on ``ax``: raw points (faint), Pareto points, fitted law and its band.

    ``display_scale`` (raw parameters per x unit; default ``params_unit``) sets the x unit; ``x_range``
    is in that unit. ``band`` (lo, hi) at ``band_grid`` (x unit) replaces the bootstrap band of ``boot_group``.
    With ``model_names`` the Pareto points are labelled; with ``model_families`` marked per family.
    """
    scale = float(display_scale or params_unit)
    color = GROUP_COLORS.get(group, "#8172B3")
    label = GROUP_LABELS.get(group, group)
    x = frame["params"].to_numpy(dtype=np.float64) / scale
    y = frame["loss"].to_numpy(dtype=np.float64)
    front = frame["on_frontier"].to_numpy(dtype=bool)
    if show_raw and (~front).any():
        ax.scatter(x[~front], y[~front], s=8, color=color, alpha=0.25, linewidths=0, zorder=1,
                   label=f"{label}: other raw points ({int((~front).sum())})")
    names, families = _member_labels(frame[front], model_names, model_families, model_params)
    markers = family_markers or {}
    xf, yf = x[front], y[front]
    first = True
    for family in dict.fromkeys(families):
        rows = np.array([f == family for f in families])
        ax.scatter(xf[rows], yf[rows], s=36, color=color, marker=markers.get(family, "o"), edgecolors="black",
                   linewidths=0.6, zorder=3,
                   label=f"{label}: Pareto points ({int(front.sum())} of {len(frame)})" if first else None)
        first = False
    if model_names is not None:
        for xi, yi, name in zip(xf, yf, names):
            ax.annotate(name, (xi, yi), xytext=(3, -2), textcoords="offset points", fontsize=4.5, color="0.25",
                        zorder=4)
    if not _fit_is_usable(fit):
        return
    lo, hi = x_range if x_range is not None else (xf.min(), x.max())
    grid = np.geomspace(lo, hi, 200)
    grid_fit = grid * scale / params_unit
    A, alpha, L_inf = (float(fit_value(fit, n)) for n in ("A", "alpha", "L_inf"))
    if band is not None:
        band_lo, band_hi = band
        where = band_grid if band_grid is not None else grid
        if np.isfinite(band_lo).all():
            ax.fill_between(where, band_lo, band_hi, color=color, alpha=0.18, linewidth=0, zorder=0,
                            label=f"{label}: {level:.0%} band ({band_label})" if band_label else None)
    elif boot_group is not None and len(boot_group):
        band_lo, band_hi = law_band(boot_group, grid_fit, level)
        if np.isfinite(band_lo).all():
            ax.fill_between(grid, band_lo, band_hi, color=color, alpha=0.2, linewidth=0, zorder=0)
    at_bound = fit_value(fit, "L_inf_at_bound") is True
    a_shown = A * (scale / params_unit) ** (-alpha)  # the same law with P in the axis unit
    text = f"fit: {a_shown:.4g}/P^{alpha:.3f} + {L_inf:.1f}"
    if scale != params_unit:  # A depends on the unit of P: name both units, Table 1 gives A with P in params_unit
        text += f", P in {_unit_word(scale)} (Table 1's A = {A:.4g}: P in {_unit_word(params_unit)})"
    if at_bound:
        text += " (L∞ held at its bound)"
    ax.plot(grid, predict((A, alpha, L_inf), grid_fit), color=color, linewidth=2, zorder=2,
            linestyle="--" if at_bound else "-", label=text)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def place_labels(boxes: Sequence[Box], step: float, max_moves: int = 4) -> list[float | None]:
    """Vertical shift of each label box so that no two overlap, in input order: 0, -step, +step, -2·step, ...
    up to ``max_moves`` steps either way; None for a label that finds no free place (it is left out)."""
    placed: list[Box] = []
    shifts: list[float | None] = []
    candidates = [0.0] + [sign * k * step for k in range(1, max_moves + 1) for sign in (-1, 1)]
    for x0, y0, x1, y1 in boxes:
        for dy in candidates:
            box = (x0, y0 + dy, x1, y1 + dy)
            if not any(box[0] < p[2] and p[0] < box[2] and box[1] < p[3] and p[1] < box[3] for p in placed):
                placed.append(box)
                shifts.append(dy)
                break
        else:
            shifts.append(None)
    return shifts


def declutter_annotations(fig: Figure, ax: Axes, max_moves: int = 4) -> int:
    """Move the point labels of ``ax`` up or down by whole lines until none overlap, left to right; hide the
    ones that find no place. Returns how many were hidden."""
    from matplotlib.text import Annotation

    labels = sorted((a for a in ax.texts if isinstance(a, Annotation) and a.get_visible()), key=lambda a: a.xy[0])
    if not labels:
        return 0
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()  # final layout, limits and text extents
    renderer = canvas.get_renderer()
    extents = [a.get_window_extent(renderer) for a in labels]
    scale = fig.dpi / 72  # pixels per point
    shifts = place_labels([(e.x0, e.y0, e.x1, e.y1) for e in extents], max(e.height for e in extents), max_moves)
    hidden = 0
    for label, dy in zip(labels, shifts):
        if dy is None:
            label.set_visible(False)
            hidden += 1
        else:
            x_off, y_off = label.xyann
            label.xyann = (x_off, y_off + dy / scale)
    return hidden


def comparison_figure(
    groups: Mapping[str, pd.DataFrame],
    fits: Mapping[str, Any],
    boot: pd.DataFrame | None,
    keys: Sequence[str],
    *,
    title: str,
    params_unit: float = 1e9,
    level: float = 0.95,
    draws: Mapping[str, pd.DataFrame] | None = None,
    model_names: Sequence[str] | None = None,
    model_families: Sequence[str] | None = None,
    model_params: np.ndarray | None = None,
) -> Figure:
    """One panel comparing ``keys`` groups: every raw point, labelled Pareto points, fitted laws and bands; log-x.

    ``draws`` (method -> refits) gives each law the envelope of the bands of those methods (else the text
    bootstrap band of ``boot``); x in a unit read off the data.
    """
    import seaborn as sns

    missing = [k for k in keys if k not in groups]
    if missing:
        raise KeyError(f"group(s) {missing} not in {list(groups)}")
    fronts = np.concatenate([groups[k].loc[groups[k]["on_frontier"], "params"].to_numpy(dtype=np.float64) for k in keys])
    raws = np.concatenate([groups[k]["params"].to_numpy(dtype=np.float64) for k in keys])
    scale, unit = display_unit(float(raws.max()))
    x_range = (fronts.min() / scale, raws.max() / scale)
    markers = ({family: FAMILY_MARKERS[i % len(FAMILY_MARKERS)] for i, family in enumerate(sorted(set(map(str, model_families))))}
               if model_families is not None else None)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(8.6, 7.8), layout="constrained")
        ax = fig.add_subplot()
    for key in keys:
        boot_group = None if boot is None or not len(boot) else boot[boot["group"] == key]
        band, band_grid, band_label = None, None, ""
        fit = fits.get(key)
        if draws and _fit_is_usable(fit):
            band_grid = np.geomspace(*x_range, 200)
            lo, hi, used = curve_band(fit, draws, key, band_grid * scale / params_unit, level)
            band, band_label = (lo, hi), "envelope of " + ", ".join(METHOD_LABELS.get(m, m) for m in used)
        plot_group(ax, groups[key], fit, boot_group, group=key, params_unit=params_unit,
                   x_range=x_range, level=level, display_scale=scale, band=band, band_grid=band_grid,
                   band_label=band_label, model_names=model_names, model_families=model_families,
                   model_params=model_params, family_markers=markers)
    ax.set_xscale("log")
    ax.set_xlabel(f"Total parameters P ({unit})")
    ax.set_ylabel("Oracle loss (nats per text)")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if markers:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], marker=m, linestyle="", color="0.4", markeredgecolor="black") for m in markers.values()]
        labels += [f"family {f}" + (" (larger member)" if any(k != SINGLE for k in keys) else "") for f in markers]
    ax.legend(handles, labels, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, frameon=True)
    all_losses = np.concatenate([groups[k]["loss"].to_numpy() for k in keys])
    span = all_losses.max() - all_losses.min()
    ax.set_ylim(all_losses.min() - 0.05 * span - 1e-9, all_losses.max() + 0.05 * span + 1e-9)
    hidden = declutter_annotations(fig, ax)
    if hidden:
        ax.text(0.99, 0.99, f"{hidden} crowded point label(s) left out; every Pareto point is in frontiers.parquet",
                transform=ax.transAxes, ha="right", va="top", fontsize=5, color="0.35")
    return fig


def figure1(groups: Mapping[str, pd.DataFrame], fits: Mapping[str, Any], boot: pd.DataFrame | None,
            *, ensemble_group: str = CROSS_FAMILY, params_unit: float = 1e9, level: float = 0.95,
            **labels: Any) -> Figure:
    """Figure 1: single models vs the model ensemble (``ensemble_group``, cross-family by default).

    ``labels``: ``draws``, ``model_names``, ``model_families``, ``model_params`` of :func:`comparison_figure`.
    """
    return comparison_figure(groups, fits, boot, (SINGLE, ensemble_group),
                             title="Single model vs model ensemble", params_unit=params_unit, level=level, **labels)


def figure2(groups: Mapping[str, pd.DataFrame], fits: Mapping[str, Any], boot: pd.DataFrame | None,
            *, params_unit: float = 1e9, level: float = 0.95, **labels: Any) -> Figure:
    """Figure 2: ensembles within a family vs across families (``labels`` as in :func:`figure1`)."""
    return comparison_figure(groups, fits, boot, (SAME_FAMILY, CROSS_FAMILY),
                             title="Ensembles within vs across families", params_unit=params_unit, level=level,
                             **labels)


BUDGET_TITLES = {"pairs_vs_single": ("best pair", "best single model"),
                 "cross_vs_same": ("best cross-family pair", "best same-family pair")}


def budget_figure(budget: pd.DataFrame, horizontal: pd.DataFrame | None = None) -> Figure:
    """Equal-budget gain over ln P (top) and, below, the horizontal parameter ratio (or the parameters to match).

    ``budget`` and ``horizontal`` from ``analysis.budget.equal_budget_analysis``; the simultaneous
    (sup-t) band is drawn over the pointwise one; steps behind only by the cheapest extra model are
    marked. x: the budget P in a unit read off the data (top), the loss target in nats (bottom).
    """
    import seaborn as sns

    comparisons = [c for c in BUDGET_TITLES if c in set(budget["comparison"])]
    scale, unit = display_unit(float(budget["budget_params"].max()))
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(5.6 * max(len(comparisons), 1), 7.6), layout="constrained")
        axes = fig.subplots(2, max(len(comparisons), 1), squeeze=False)
    for column, name in enumerate(comparisons):
        ensemble, reference = BUDGET_TITLES[name]
        rows = budget[budget["comparison"] == name]
        x = rows["budget_params"].to_numpy(dtype=float) / scale
        level = float(rows["level"].iloc[0])
        resamples = int(rows["n_resamples"].iloc[0])
        ax = axes[0][column]
        ax.fill_between(x, rows["gain_lo"], rows["gain_hi"], step="post", color="#55A868", alpha=0.25, linewidth=0,
                        label=f"{level:.0%} pointwise interval ({resamples} resamples)")
        if "gain_band_lo" in rows:
            ax.fill_between(x, rows["gain_band_lo"], rows["gain_band_hi"], step="post", color="#55A868", alpha=0.15,
                            linewidth=0, hatch="///", label=f"{level:.0%} simultaneous (sup-t) band")
        ax.step(x, rows["gain"], where="post", color="#55A868", label=f"{reference} − {ensemble}")
        if "extra_model_cost" in rows and rows["extra_model_cost"].astype(bool).any():
            extra = rows["extra_model_cost"].astype(bool).to_numpy()
            ax.scatter(x[extra], rows["gain"].to_numpy()[extra], marker="v", s=14, color="#C44E52", zorder=3,
                       label="behind only by the cheapest extra model")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_ylabel("gain (nats per text)")
        ax.set_xlabel(f"budget P ({unit})")
        ax.set_title(f"{ensemble} vs {reference}, both with ≤ P parameters", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[1][column]
        curve = None if horizontal is None else horizontal[horizontal["comparison"] == name]
        if curve is not None and len(curve):
            target = curve["target_loss"].to_numpy(dtype=float)
            ratio = np.exp(curve["log_ratio"].to_numpy(dtype=float))
            ax.fill_between(target, np.exp(curve["log_ratio_band_lo"].to_numpy(dtype=float)),
                            np.exp(curve["log_ratio_band_hi"].to_numpy(dtype=float)), step="post", color="#4C72B0",
                            alpha=0.2, linewidth=0, label=f"{level:.0%} simultaneous (sup-t) band")
            ax.step(target, ratio, where="post", color="#4C72B0",
                    label=f"P the {reference.split('best ')[-1]} needs / P the {ensemble.split('best ')[-1]} needs")
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_xlabel("loss target (nats per text)", fontsize=8)
            ax.set_ylabel("parameter ratio (above 1: ensemble cheaper)", fontsize=8)
            ax.legend(fontsize=7)
            continue
        used = rows["ensemble_params"].to_numpy(dtype=float) / scale
        need = rows["reference_params_to_match"].to_numpy(dtype=float) / scale
        finite = np.isfinite(need) & np.isfinite(rows["match_lo"].to_numpy(dtype=float))
        top = float(np.nanmax(np.r_[used, need[finite]])) * 2 if finite.any() else float(used.max()) * 2
        with np.errstate(invalid="ignore"):  # inf - inf where nothing matches; those rows are not drawn
            err_lo = np.maximum(need - rows["match_lo"].to_numpy(dtype=float) / scale, 0.0)
            err_hi = np.maximum(np.minimum(rows["match_hi"].to_numpy(dtype=float) / scale, top) - need, 0.0)
        ax.errorbar(used[finite], need[finite], yerr=[err_lo[finite], err_hi[finite]], fmt="o", ms=3,
                    color="#4C72B0", ecolor="#4C72B0", elinewidth=0.7, label=f"{reference}: P needed to match")
        if (~finite).any():
            ax.scatter(used[~finite], np.full((~finite).sum(), top), marker="^", color="#C44E52", zorder=3,
                       label=f"no {reference.split('best ')[-1]} in the pool matches")
        lims = [min(used.min(), np.nanmin(need[finite]) if finite.any() else used.min()), top]
        ax.plot(lims, lims, color="black", linewidth=0.8, label="same parameters (above: ensemble saves)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"P used by the {ensemble} ({unit})", fontsize=8)
        ax.set_ylabel(f"P the {reference.split('best ')[-1]} needs ({unit})", fontsize=8)
        ax.legend(fontsize=7)
    return fig


def save_figure(fig: Figure, figures_dir: str | Path, stem: str, formats: Sequence[str] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``figures_dir/stem.<fmt>`` for each format, each file written atomically."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = figures_dir / f"{stem}.{fmt}"
        with atomic_output(path) as handle:
            # metadata without dates keeps re-runs byte-identical where the backend allows it
            metadata = {"CreationDate": None} if fmt == "pdf" else {}
            fig.savefig(handle, format=fmt, dpi=dpi, metadata=metadata)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- beyond pairs (notebook 07, figures 3-6)


def plot_subset_frontiers(frontiers: dict[str, pd.DataFrame], fits: pd.DataFrame | None = None,
                          heuristics: dict[str, pd.DataFrame] | None = None, params_unit: float = 1e9) -> Figure:
    """Figure: exactly-k frontiers (k = 1, 2, ...) and the exact all-sizes frontier with their eq. 7
    fits (left); heuristic frontiers against the exact one (right, when given)."""
    scale, unit = display_unit(float(max((f["params"].max() for f in frontiers.values() if not f.empty), default=1.0)))
    ncols = 2 if heuristics else 1
    fig = Figure(figsize=(6.0 * ncols, 4.6))
    axes = fig.subplots(1, ncols, squeeze=False)
    ax = axes[0][0]
    labels = [k for k in frontiers if k.startswith("k=")] + (["all"] if "all" in frontiers else [])
    colors = colormaps["viridis"](np.linspace(0, 0.85, max(len(labels), 1)))
    fit_rows = fits.set_index("frontier") if fits is not None else None
    for color, label in zip(colors, labels):
        front = frontiers[label]
        if front.empty:
            continue
        color = "k" if label == "all" else color
        name = "all sizes (exact)" if label == "all" else f"exactly {label[2:]} model(s)"
        ax.plot(front["params"] / scale, front["loss"], "o", ms=3.5, color=color, label=name)
        if fit_rows is not None and label in fit_rows.index and np.isfinite(fit_rows.loc[label, "alpha"]):
            row = fit_rows.loc[label]
            grid = np.geomspace(front["params"].min(), front["params"].max(), 100)
            at_bound = "L_inf_at_bound" in str(row.get("status", ""))
            ax.plot(grid / scale, predict(row, grid / params_unit), "--" if at_bound else "-", color=color, lw=1,
                    label=f"  fit: alpha={row['alpha']:.3g}, L_inf={row['L_inf']:.4g}"
                          + (" (held at its bound)" if at_bound else ""))
    ax.set_xscale("log")
    ax.set_xlabel(f"total parameters ({unit})")
    ax.set_ylabel("oracle loss (nats / text)")
    ax.set_title("oracle frontiers by ensemble size")
    ax.legend(fontsize=7)
    if heuristics:
        ax = axes[0][1]
        exact = frontiers["all"]
        ax.plot(exact["params"] / scale, exact["loss"], "k-", lw=1.5, label=f"exact ({_exact_method(exact)})")
        for (name, front), style in zip(heuristics.items(), ("s--", "^:", "v-.")):
            ax.plot(front["params"] / scale, front["loss"], style, ms=3, lw=1, label=name)
        ax.set_xscale("log")
        ax.set_xlabel(f"total parameters ({unit})")
        ax.set_title("heuristics vs exact all-sizes frontier")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


EXACT_METHODS = {"branch_and_bound": "branch and bound", "milp": "MIP budget walk",
                 "brute_force": "all subsets", "exhaustive": "all subsets"}


def _exact_method(front: pd.DataFrame) -> str:
    """How an exact frontier was computed, for a legend (its ``method`` column; "exact" when absent)."""
    methods = sorted({str(m) for m in front.get("method", pd.Series(dtype=object)).dropna()})
    return " + ".join(EXACT_METHODS.get(m, m.replace("_", " ")) for m in methods) or "exact search"


def plot_mixture_vs_oracle(table: pd.DataFrame, any_size: pd.DataFrame | None = None, params_unit: float = 1e9) -> Figure:
    """Figure 4: mixture − oracle loss (nats per held-out text) of every pair against its total parameters.

    One panel per pair group (pairs on the group's oracle frontier ringed) and, when given, one for
    the all-sizes oracle frontier subsets. The gap is >= 0 and piles up near 0 (pairs where one
    model wins almost every text), so y is symlog. ``params_unit`` is unused: x is in a unit read off the data.
    """
    gaps = mixture.mixture_gaps(table[table["group"] != SINGLE])
    panels = [g for g in PAIR_GROUPS if g in set(gaps["group"])]
    extra = any_size is not None and not any_size.empty and "params" in any_size
    ncols = max(len(panels) + int(extra), 1)
    scale, unit = display_unit(float(table["params"].max()))
    positive = np.r_[gaps["gap_fitted"].to_numpy(), gaps["gap_uniform"].to_numpy()]
    positive = positive[positive > 0]
    linthresh = float(np.quantile(positive, 0.1)) if positive.size else 1e-3
    fig = Figure(figsize=(5.2 * ncols, 4.2))
    axes = fig.subplots(1, ncols, squeeze=False, sharey=True)
    styles = (("gap_fitted", "tab:red", "s", "fitted-weight mixture − oracle"),
              ("gap_uniform", "tab:orange", "^", "uniform mixture − oracle"))
    for ax, group in zip(axes[0], panels):
        sub = gaps[gaps["group"] == group]
        front = np.zeros(len(sub), dtype=bool)
        front[pareto_front(sub["params"].to_numpy(), sub["oracle"].to_numpy())] = True
        for column, color, marker, label in styles:
            ax.scatter(sub["params"] / scale, sub[column], s=10, color=color, marker=marker, alpha=0.5, linewidths=0,
                       label=label)
        ax.scatter(sub["params"][front] / scale, sub["gap_fitted"][front], s=40, facecolors="none", edgecolors="black",
                   linewidths=0.8, label="pairs on the oracle frontier")
        ax.set_title(group.replace("_", " ") + " pairs")
    if extra:
        ax = axes[0][len(panels)]
        for column, color, marker, label in styles:
            values = any_size[column.replace("gap", "mix")] - any_size["oracle"]
            ax.plot(any_size["params"] / scale, values, "-", color=color, marker=marker, ms=4, label=label)
        ax.set_title("all-sizes oracle frontier subsets")
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xlabel(f"total parameters ({unit})")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"mixture − oracle (nats / held-out text)\nsymlog axis, linear below {linthresh:.2g}")
    fig.tight_layout()
    return fig


def plot_diversity(table: pd.DataFrame, win_shares: np.ndarray | None = None, model_order: np.ndarray | None = None,
                   model_names: Sequence[str] | None = None) -> Figure:
    """Figure: family x family mean gain heatmap, gain vs size ratio by relation, and (optional) the
    K x K pair win-share matrix (rows sorted by ``model_order``, ticks labelled with ``model_names``)."""
    n_panels = 3 if win_shares is not None else 2
    # the K x K panel gets the most room, so that K = 30 model names stay readable
    fig = Figure(figsize=(5.2 * 2 + (7.0 if win_shares is not None else 0.0), 6.4 if win_shares is not None else 4.4))
    axes = fig.subplots(1, n_panels, gridspec_kw={"width_ratios": [1.0, 1.0, 1.45][:n_panels]})
    heat = diversity.family_gain_matrix(table)
    im = axes[0].imshow(heat.to_numpy(), cmap="viridis")
    axes[0].set_xticks(range(len(heat.columns)), heat.columns, rotation=45, ha="right", fontsize=8)
    axes[0].set_yticks(range(len(heat.index)), heat.index, fontsize=8)
    for (r, c), v in np.ndenumerate(heat.to_numpy()):
        if np.isfinite(v):
            axes[0].text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=axes[0], label="mean pair gain over better member (nats)")
    axes[0].set_title("mean oracle gain, family x family")
    for same, color, label in ((True, "tab:blue", "same family"), (False, "tab:red", "cross family")):
        sub = table[table["same_family"] == same]
        axes[1].scatter(sub["size_ratio"], sub["gain"], s=8, alpha=0.5, color=color, label=label)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("size ratio (larger / smaller)")
    axes[1].set_ylabel("gain over better member (nats / text)")
    axes[1].set_title("gain vs size ratio")
    axes[1].legend(fontsize=8)
    if win_shares is not None:
        order = np.arange(win_shares.shape[0]) if model_order is None else np.asarray(model_order)
        im2 = axes[2].imshow(win_shares[np.ix_(order, order)], cmap="coolwarm", vmin=0, vmax=1)
        fig.colorbar(im2, ax=axes[2], label="share of texts row model wins vs column")
        axes[2].set_title("pair win shares")
        if model_names is not None:
            labels = [short_name(model_names[k]) for k in order]
            size = float(np.clip(230.0 / max(len(labels), 1), 4.0, 9.0))  # points: 7.7 for 30 models
            axes[2].set_xticks(range(len(labels)), labels, rotation=90, fontsize=size)
            axes[2].set_yticks(range(len(labels)), labels, fontsize=size)
        axes[2].set_xlabel("column model")
        axes[2].set_ylabel("row model")
    fig.tight_layout()
    return fig


def plot_forecast(L: np.ndarray, params: np.ndarray, families: np.ndarray, table: pd.DataFrame,
                  any_size_front: pd.DataFrame | None = None, params_unit: float = 1e9, *, n_bootstrap: int = 200,
                  seed: int = 0, level: float = 0.95) -> Figure:
    """Figure: per group, frontier points fitted (filled) and forecast (open), the law fitted below the
    labelled cutoff (solid) and extrapolated above it (dashed), with its bootstrap band over texts."""
    p = np.asarray(params, dtype=np.int64)
    any_full = None if any_size_front is None else (any_size_front["params"].to_numpy(), any_size_front["loss"].to_numpy())
    fronts = forecast.loss_matrix_frontiers(L, p, families, any_full)
    groups = [g for g in forecast.FORECAST_GROUPS if g in fronts]
    scale, unit = display_unit(float(max(fronts[g][0].max() for g in groups)))
    grids = {g: np.geomspace(fronts[g][0].min(), fronts[g][0].max(), 100) for g in groups}
    bands = forecast.forecast_bands(L, p, families, table, grids, n_bootstrap=n_bootstrap, seed=seed,
                                    params_unit=params_unit, level=level)
    fig = Figure(figsize=(4.4 * len(groups), 4.0))
    axes = fig.subplots(1, len(groups), squeeze=False)
    rows = table.set_index("group")
    for ax, group in zip(axes[0], groups):
        fp, fl = fronts[group]
        cut = rows.loc[group, "cutoff"] if group in rows.index else None
        if cut is None or (isinstance(cut, float) and math.isnan(cut)):
            ax.plot(fp / scale, fl, "o", color="0.5")
        else:
            below = fp <= cut
            ax.plot(fp[below] / scale, fl[below], "o", color="tab:blue", label="fitted points")
            ax.plot(fp[~below] / scale, fl[~below], "o", mfc="none", color="tab:red", label="forecast targets")
            row = rows.loc[group]
            if group in bands:
                ax.fill_between(grids[group] / scale, *bands[group], color="tab:blue", alpha=0.15, linewidth=0,
                                label=f"{level:.0%} band ({n_bootstrap} text resamples)")
            if np.isfinite(row["alpha"]):
                grid_lo = np.geomspace(fp.min(), cut, 50)
                grid_hi = np.geomspace(cut, fp.max(), 50)
                ax.plot(grid_lo / scale, predict(row, grid_lo / params_unit), "-", color="tab:blue")
                ax.plot(grid_hi / scale, predict(row, grid_hi / params_unit), "--", color="tab:red")
                ax.set_title(f"{group.replace('_', ' ')}: MRE {100 * row['mre']:.2f}%", fontsize=10)
            ax.axvline(cut / scale, color="0.5", lw=0.8, ls=":", label=f"cutoff {cut / scale:.3g}: fit ≤, forecast >")
        ax.set_xscale("log")
        ax.set_xlabel(f"total parameters ({unit})")
        ax.set_ylabel("oracle loss (nats / text)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
