"""Figures 1 and 2 of the paper (§4.1): Pareto frontiers, fitted laws (eq. 7) and bootstrap bands.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state), so they render the
same under papermill, in tests and on headless machines, whatever the backend. x axis: total
parameters P in units of ``params_unit`` (1e9: billions), log scale; y axis: oracle loss in nats
per text (eq. 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmlaw_utils.analysis.bootstrap import prediction_band
from mmlaw_utils.analysis.fit import predict
from mmlaw_utils.scoring.cache import atomic_output
from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUP_LABELS, SAME_FAMILY, SINGLE
from mmlaw_utils.report.tables import fit_value

GROUP_COLORS = {SINGLE: "#4C72B0", SAME_FAMILY: "#DD8452", CROSS_FAMILY: "#55A868"}
FIGURE_STEMS = {"fig1": "fig1_single_vs_ensemble", "fig2": "fig2_same_vs_cross_family"}
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
