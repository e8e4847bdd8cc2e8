"""Figures 1 and 2 of the paper (§4.1): Pareto frontiers, fitted laws (eq. 7) and bootstrap bands;
figures 3-6 of notebook 07 (ensembles of any size, mixtures, diversity, forecasts) and the real
pair of notebook 08.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state), so they render the
same under papermill, in tests and on headless machines, whatever the backend. x axis: total
parameters P in units of ``params_unit`` (1e9: billions), log scale; y axis: oracle loss in nats
per text (eq. 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from mmlaw_utils.analysis import diversity, forecast, mixture
from mmlaw_utils.analysis.bootstrap import prediction_band
from mmlaw_utils.analysis.fit import predict
from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUP_LABELS, PAIR_GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.lossmatrix import LossMatrix, loss_matrix_bytes
from mmlaw_utils.io import atomic_output
from mmlaw_utils.report.tables import fit_value

GROUP_COLORS = {SINGLE: "#4C72B0", SAME_FAMILY: "#DD8452", CROSS_FAMILY: "#55A868"}
UNIT_NAMES = {1.0: "parameters", 1e6: "millions of parameters", 1e9: "billions of parameters"}


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
) -> None:
    """Draw one collaboration group on ``ax``: raw points (faint), frontier points, fitted law and its band."""
    color = GROUP_COLORS.get(group, "#8172B3")
    label = GROUP_LABELS.get(group, group)
    x = frame["params"].to_numpy(dtype=np.float64) / params_unit
    y = frame["loss"].to_numpy(dtype=np.float64)
    front = frame["on_frontier"].to_numpy(dtype=bool)
    if show_raw:
        ax.scatter(x[~front], y[~front], s=8, color=color, alpha=0.15, linewidths=0, zorder=1)
    ax.scatter(x[front], y[front], s=36, color=color, edgecolors="black", linewidths=0.6, zorder=3,
               label=f"{label}: Pareto points ({int(front.sum())} of {len(frame)})")
    if not _fit_is_usable(fit):
        return
    lo, hi = x_range if x_range is not None else (x[front].min(), x.max())
    grid = np.geomspace(lo, hi, 200)
    A, alpha, L_inf = (float(fit_value(fit, n)) for n in ("A", "alpha", "L_inf"))
    if boot_group is not None and len(boot_group):
        band_lo, band_hi = law_band(boot_group, grid, level)
        if np.isfinite(band_lo).all():
            ax.fill_between(grid, band_lo, band_hi, color=color, alpha=0.2, linewidth=0, zorder=0)
    ax.plot(grid, predict((A, alpha, L_inf), grid), color=color, linewidth=2, zorder=2,
            label=f"fit: {A:.4g}/P^{alpha:.3f} + {L_inf:.1f}")


def comparison_figure(
    groups: Mapping[str, pd.DataFrame],
    fits: Mapping[str, Any],
    boot: pd.DataFrame | None,
    keys: Sequence[str],
    *,
    title: str,
    params_unit: float = 1e9,
    level: float = 0.95,
) -> Figure:
    """One panel comparing ``keys`` groups: frontier points, fitted laws, bootstrap bands, raw points faint; log-x."""
    import seaborn as sns

    missing = [k for k in keys if k not in groups]
    if missing:
        raise KeyError(f"group(s) {missing} not in {list(groups)}")
    fronts = np.concatenate([groups[k].loc[groups[k]["on_frontier"], "params"].to_numpy(dtype=np.float64) for k in keys])
    raws = np.concatenate([groups[k]["params"].to_numpy(dtype=np.float64) for k in keys])
    x_range = (fronts.min() / params_unit, raws.max() / params_unit)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(6.4, 4.6), layout="constrained")
        ax = fig.add_subplot()
    for key in keys:
        boot_group = None if boot is None or not len(boot) else boot[boot["group"] == key]
        plot_group(ax, groups[key], fits.get(key), boot_group, group=key, params_unit=params_unit,
                   x_range=x_range, level=level)
    ax.set_xscale("log")
    unit = UNIT_NAMES.get(float(params_unit), f"{params_unit:g} parameters")
    ax.set_xlabel(f"Total parameters P ({unit})")
    ax.set_ylabel("Oracle loss (nats per text)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right", frameon=True)
    # keep the faint raw cloud from stretching the axes far above the frontiers
    front_losses = np.concatenate([groups[k].loc[groups[k]["on_frontier"], "loss"].to_numpy() for k in keys])
    span = front_losses.max() - front_losses.min()
    ax.set_ylim(front_losses.min() - 0.15 * span - 1e-9, front_losses.max() + 0.25 * span + 1e-9)
    return fig


def figure1(groups: Mapping[str, pd.DataFrame], fits: Mapping[str, Any], boot: pd.DataFrame | None,
            *, ensemble_group: str = CROSS_FAMILY, params_unit: float = 1e9, level: float = 0.95) -> Figure:
    """Figure 1: single models vs the model ensemble (``ensemble_group``, cross-family by default)."""
    return comparison_figure(groups, fits, boot, (SINGLE, ensemble_group),
                             title="Single model vs model ensemble", params_unit=params_unit, level=level)


def figure2(groups: Mapping[str, pd.DataFrame], fits: Mapping[str, Any], boot: pd.DataFrame | None,
            *, params_unit: float = 1e9, level: float = 0.95) -> Figure:
    """Figure 2: ensembles within a family vs across families."""
    return comparison_figure(groups, fits, boot, (SAME_FAMILY, CROSS_FAMILY),
                             title="Ensembles within vs across families", params_unit=params_unit, level=level)


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
        ax.plot(front["params"] / params_unit, front["loss"], "o", ms=3.5, color=color, label=name)
        if fit_rows is not None and label in fit_rows.index and np.isfinite(fit_rows.loc[label, "alpha"]):
            row = fit_rows.loc[label]
            grid = np.geomspace(front["params"].min(), front["params"].max(), 100) / params_unit
            ax.plot(grid, predict(row, grid), "-", color=color, lw=1,
                    label=f"  fit: alpha={row['alpha']:.3g}, L_inf={row['L_inf']:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("total parameters (B)")
    ax.set_ylabel("oracle loss (nats / text)")
    ax.set_title("oracle frontiers by ensemble size")
    ax.legend(fontsize=7)
    if heuristics:
        ax = axes[0][1]
        exact = frontiers["all"]
        ax.plot(exact["params"] / params_unit, exact["loss"], "k-", lw=1.5, label="exact (MIP)")
        for (name, front), style in zip(heuristics.items(), ("s--", "^:", "v-.")):
            ax.plot(front["params"] / params_unit, front["loss"], style, ms=3, lw=1, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("total parameters (B)")
        ax.set_title("heuristics vs exact all-sizes frontier")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mixture_vs_oracle(table: pd.DataFrame, any_size: pd.DataFrame | None = None, params_unit: float = 1e9) -> Figure:
    """Figure: per pair group, oracle vs mixture frontiers (held-out texts), beside the single-model frontier."""
    fronts = mixture.mixture_frontiers(table)
    panels = [g for g in PAIR_GROUPS if g in fronts]
    ncols = len(panels) + (any_size is not None and not any_size.empty)
    fig = Figure(figsize=(5.2 * max(ncols, 1), 4.2))
    axes = fig.subplots(1, max(ncols, 1), squeeze=False)
    styles = {"oracle": ("k", "o", "oracle"), "mix_fitted": ("tab:red", "s", "mixture (fitted w)"),
              "mix_uniform": ("tab:orange", "^", "mixture (uniform w)")}
    for ax, group in zip(axes[0], panels):
        single = fronts[SINGLE]["oracle"]
        ax.plot(single["params"] / params_unit, single["loss"], "-", color="0.6", marker=".", label="single models")
        for column, (color, marker, label) in styles.items():
            f = fronts[group][column]
            ax.plot(f["params"] / params_unit, f["loss"], "-", color=color, marker=marker, ms=4, label=label)
        ax.set_xscale("log")
        ax.set_title(group.replace("_", " ") + " pairs")
        ax.set_xlabel("total parameters (B)")
        ax.set_ylabel("loss on held-out half (nats / text)")
        ax.legend(fontsize=8)
    if ncols > len(panels):
        ax = axes[0][-1]
        for column, (color, marker, label) in styles.items():
            ax.plot(any_size["params"] / params_unit, any_size[column], "-", color=color, marker=marker, ms=4, label=label)
        ax.set_xscale("log")
        ax.set_title("all-sizes oracle frontier subsets")
        ax.set_xlabel("total parameters (B)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_diversity(table: pd.DataFrame, win_shares: np.ndarray | None = None, model_order: np.ndarray | None = None) -> Figure:
    """Figure: family x family mean gain heatmap, gain vs size ratio by relation, and (optional) the
    K x K pair win-share matrix (rows sorted by ``model_order``)."""
    n_panels = 3 if win_shares is not None else 2
    fig = Figure(figsize=(5.2 * n_panels, 4.4))
    axes = fig.subplots(1, n_panels)
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
        axes[2].set_xlabel("model")
        axes[2].set_ylabel("model")
    fig.tight_layout()
    return fig


def plot_forecast(L: np.ndarray, params: np.ndarray, families: np.ndarray, table: pd.DataFrame,
                  any_size_front: pd.DataFrame | None = None, params_unit: float = 1e9) -> Figure:
    """Figure: per group, frontier points fitted (filled) and forecast (open), the law fitted below
    the cutoff (solid) and extrapolated above it (dashed)."""
    any_full = None if any_size_front is None else (any_size_front["params"].to_numpy(), any_size_front["loss"].to_numpy())
    fronts = forecast.loss_matrix_frontiers(L, np.asarray(params, dtype=np.int64), families, any_full)
    groups = [g for g in forecast.FORECAST_GROUPS if g in fronts]
    fig = Figure(figsize=(4.4 * len(groups), 4.0))
    axes = fig.subplots(1, len(groups), squeeze=False)
    rows = table.set_index("group")
    for ax, group in zip(axes[0], groups):
        fp, fl = fronts[group]
        cut = rows.loc[group, "cutoff"] if group in rows.index else None
        if cut is None or (isinstance(cut, float) and math.isnan(cut)):
            ax.plot(fp / params_unit, fl, "o", color="0.5")
        else:
            below = fp <= cut
            ax.plot(fp[below] / params_unit, fl[below], "o", color="tab:blue", label="fitted points")
            ax.plot(fp[~below] / params_unit, fl[~below], "o", mfc="none", color="tab:red", label="forecast targets")
            row = rows.loc[group]
            if np.isfinite(row["alpha"]):
                grid_lo = np.geomspace(fp.min(), cut, 50) / params_unit
                grid_hi = np.geomspace(cut, fp.max(), 50) / params_unit
                ax.plot(grid_lo, predict(row, grid_lo), "-", color="tab:blue")
                ax.plot(grid_hi, predict(row, grid_hi), "--", color="tab:red")
                ax.set_title(f"{group.replace('_', ' ')}: MRE {100 * row['mre']:.2f}%", fontsize=10)
            ax.axvline(cut / params_unit, color="0.7", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("total parameters (B)")
        ax.set_ylabel("oracle loss (nats / text)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- real pair (notebook 08)


def pair_scatter_figure(lm: LossMatrix) -> Figure:
    """Per-text bits per byte of two models against each other (points below the diagonal: model 2 wins)."""
    L = lm.to_array()
    bpb = L / loss_matrix_bytes(lm)[None, :] / math.log(2)
    fig = Figure(figsize=(4.8, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(bpb[0], bpb[1], s=6, alpha=0.5, color="#4C72B0", linewidths=0)
    lo, hi = float(bpb.min()), float(bpb.max())
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--")
    ax.set_xlabel(f"{lm.model_names[0]} (bits/byte)")
    ax.set_ylabel(f"{lm.model_names[1]} (bits/byte)")
    ax.set_title(f"per-text loss, {L.shape[1]} texts")
    return fig
