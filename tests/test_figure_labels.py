"""Labels of the beyond-pairs figures a newcomer could not read (issue 22 §5): fig3's legend names the
search that computed the exact frontier, fig4's y label fits in the figure, fig5's 30 x 30 tick labels are
legible, and a fit's A in a figure says which unit of P it uses when Table 1 uses another."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from mmlaw_utils.analysis import diversity, mixture
from mmlaw_utils.analysis.oracle import pair_win_shares
from mmlaw_utils.analysis.subsets import frontiers_by_size
from mmlaw_utils.report.figures import plot_diversity, plot_mixture_vs_oracle, plot_subset_frontiers


def _inside_figure(fig, artist) -> bool:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = artist.get_window_extent(canvas.get_renderer())
    width, height = fig.get_size_inches() * fig.dpi
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width + 0.5 and box.y1 <= height + 0.5


@pytest.mark.parametrize("method, label", [("bnb", "exact (branch and bound)"), ("milp", "exact (MIP budget walk)"),
                                           ("brute", "exact (all subsets)")])
def test_fig3_names_the_exact_search_it_drew(method, label):
    rng = np.random.default_rng(0)
    L = rng.gamma(20.0, 10.0, size=(6, 80))
    params = np.array([1, 2, 3, 5, 8, 13]) * 10**6
    frontiers = frontiers_by_size(L, params, max_k=2)
    from mmlaw_utils.analysis.subsets import subset_frontier

    frontiers["all"] = subset_frontier(L, params, method=method)
    fig = plot_subset_frontiers(frontiers, heuristics={"greedy": frontiers["all"]})
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend[0] == label and not any("MIP" in t for t in legend if method != "milp")


def test_fig4_y_label_fits_in_the_figure():
    rng = np.random.default_rng(2)
    L = rng.gamma(20.0, 10.0, size=(4, 200))
    table = mixture.pair_mixture_table(L, np.array([1, 2, 3, 4]) * 10**6, np.array(["a", "a", "b", "b"]), seed=0)
    fig = plot_mixture_vs_oracle(table)
    assert "nats / held-out text" in fig.axes[0].get_ylabel()
    assert _inside_figure(fig, fig.axes[0].yaxis.label)


def test_fig5_win_share_ticks_are_legible_for_30_models():
    rng = np.random.default_rng(1)
    families = np.repeat(["a", "b", "c", "d", "e"], 6)
    L = rng.gamma(20.0, 10.0, size=(30, 60))
    params = np.tile([1, 2, 4, 8, 16, 32], 5) * 10**6
    table = diversity.pair_diversity_table(L, params, families)
    names = [f"models/minipool/{f}-d{s}l{s}" for f, s in zip(families, np.tile(range(6), 5))]
    fig = plot_diversity(table, pair_win_shares(L), np.arange(30), names)
    heat = next(ax for ax in fig.axes if ax.get_title() == "pair win shares")
    sizes = {t.get_fontsize() for t in heat.get_yticklabels() + heat.get_xticklabels()}
    assert min(sizes) >= 7
    # the panel is tall enough that neighbouring labels do not overlap
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    boxes = [t.get_window_extent(canvas.get_renderer()) for t in heat.get_yticklabels()]
    assert all(lower.y1 <= upper.y0 + 0.5 or lower.y0 >= upper.y1 - 0.5 for lower, upper in zip(boxes, boxes[1:]))


def test_fit_legend_names_the_unit_of_p_when_table_1_uses_another():
    from mmlaw_utils.analysis.fit import fit_points
    from mmlaw_utils.report.figures import plot_group
    from matplotlib.figure import Figure

    params = np.array([1, 2, 4, 8, 16, 32]) * 10**6
    loss = 300.0 * (params / 1e9) ** -0.2 + 50.0
    fit = fit_points(params / 1e9, loss)
    frame = pd.DataFrame({"params": params, "loss": loss, "on_frontier": True,
                          "members": [(i,) for i in range(6)]})
    ax = Figure().subplots()
    plot_group(ax, frame, fit, None, group="single", params_unit=1e9, display_scale=1e6)
    label = next(line.get_label() for line in ax.get_lines() if line.get_label().startswith("fit"))
    assert "P in millions" in label and f"Table 1's A = {fit.A:.4g}: P in billions" in label
    x, y = next(line for line in ax.get_lines() if line.get_label().startswith("fit")).get_data()
    a_shown = float(label.split("fit: ")[1].split("/P^")[0])
    np.testing.assert_allclose(y, a_shown * x ** -fit.alpha + fit.L_inf, rtol=1e-3)  # the legend's A is the axis unit's
