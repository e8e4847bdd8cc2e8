"""Figures 1-2 (mmlaw_utils.report.figures): what is drawn, and the files written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis.fit import fit_scaling_law, predict
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.report.figures import budget_figure, display_unit, figure1, figure2, law_band, save_figure


@pytest.fixture(scope="module")
def groups_and_fits():
    """Three families x six sizes on 60 random texts: groups, fits and a tiny 'bootstrap' table."""
    rng = np.random.default_rng(0)
    params = np.array([1, 2, 4, 8, 16, 32] * 3) * 10**8
    families = np.repeat(["a", "b", "c"], 6)
    L = 1000 + 400 * (params[:, None] / 1e9) ** -0.4 * np.exp(rng.normal(0, 0.1, (18, 60)))
    groups = collaboration_groups(L, params, families)
    fits = {}
    for group, frame in groups.items():
        front = frame[frame["on_frontier"]]
        fits[group] = fit_scaling_law(front["params"] / 1e9, front["loss"])
    boot = pd.DataFrame([{"group": g, "A": f.A * s, "alpha": f.alpha, "L_inf": f.L_inf}
                         for g, f in fits.items() for s in (0.9, 1.0, 1.1)])
    return groups, fits, boot


def test_display_unit_is_read_off_the_data():
    assert display_unit(5_000) == (1e3, "thousands of parameters")
    assert display_unit(1_200_000) == (1e6, "millions of parameters")
    assert display_unit(7e10) == (1e9, "billions of parameters")
    assert display_unit(500) == (1.0, "parameters")


def test_law_band_brackets_the_resampled_curves():
    boot = pd.DataFrame({"group": "single", "A": [1.0, 2.0, 3.0, np.nan], "alpha": [0.5] * 4, "L_inf": [0.0] * 4})
    x = np.array([1.0, 4.0])
    lo, hi = law_band(boot, x, level=0.5)
    # curves at x=1: 1, 2, 3 -> quartiles 1.5, 2.5; at x=4 halved
    np.testing.assert_allclose(lo, [1.5, 0.75])
    np.testing.assert_allclose(hi, [2.5, 1.25])
    lo, hi = law_band(boot.assign(A=np.nan), x)
    assert np.isnan(lo).all() and np.isnan(hi).all()


def _scatter_counts(ax):
    from matplotlib.collections import PathCollection  # what ax.scatter returns

    return sorted(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_figure1_draws_raw_points_frontiers_fits_and_bands(groups_and_fits):
    groups, fits, boot = groups_and_fits
    fig = figure1(groups, fits, boot)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    single, cross = groups["single"], groups["cross_family"]
    # every raw point is drawn once: frontier points solid, the rest faint
    counts = _scatter_counts(ax)
    expected = sorted(n for frame in (single, cross)
                      for n in (int(frame["on_frontier"].sum()), int((~frame["on_frontier"]).sum())) if n)
    assert counts == expected
    lines = [line for line in ax.get_lines() if line.get_label().startswith("fit")]
    assert len(lines) == 2
    for line, group in zip(lines, ("single", "cross_family")):
        x, y = line.get_data()
        np.testing.assert_allclose(y, fits[group].A * x ** -fits[group].alpha + fits[group].L_inf)
    assert len([c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]) == 2
    assert "P" in ax.get_xlabel() and "nats" in ax.get_ylabel()


def test_figure2_and_missing_fit(groups_and_fits, tmp_path):
    groups, fits, boot = groups_and_fits
    fig = figure2(groups, {**fits, "same_family": None}, boot)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()][0].startswith("fit")  # only the cross-family fit
    assert len(ax.get_lines()) == 1
    paths = save_figure(fig, tmp_path / "figs", "fig2_same_vs_cross_family")
    assert [p.name for p in paths] == ["fig2_same_vs_cross_family.png", "fig2_same_vs_cross_family.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert not list((tmp_path / "figs").glob("*.tmp"))
    with pytest.raises(KeyError, match="nope"):
        figure1(groups, fits, boot, ensemble_group="nope")


def test_labels_family_markers_floor_at_bound_and_envelope_band(groups_and_fits):
    from dataclasses import replace

    groups, fits, boot = groups_and_fits
    small = {g: f.assign(params=f["params"] // 1000) for g, f in groups.items()}  # 1e5 .. 3.2e6 parameters
    floor = replace(fits["cross_family"], L_inf=0.0, L_inf_at_bound=True)
    wide = boot.assign(A=boot["A"] * 3)  # a wider set of refits than boot
    names = [f"models/pool/m{i}" for i in range(18)]
    fig = figure1(small, {**fits, "cross_family": floor}, boot, params_unit=1e6, draws={"text_bootstrap": boot,
                  "model_jackknife": wide}, model_names=names, model_families=list(np.repeat(["a", "b", "c"], 6)),
                  model_params=np.array([1, 2, 4, 8, 16, 32] * 3) * 10**5)
    (ax,) = fig.axes
    assert "millions" in ax.get_xlabel()
    texts = [t.get_text() for t in ax.texts]
    n_front = int(small["single"]["on_frontier"].sum() + small["cross_family"]["on_frontier"].sum())
    single_front = small["single"].loc[small["single"]["on_frontier"], "members"]
    assert len(texts) == n_front and {f"m{m[0]}" for m in single_front} <= set(texts)
    assert not any("models/" in t for t in texts) and any(" + " in t for t in texts)
    markers = {c.get_paths()[0].vertices.shape for c in ax.collections if type(c).__name__ == "PathCollection"}
    assert len(markers) >= 2  # more than one marker shape: families are marked
    floor_line = next(line for line in ax.get_lines() if "held at its bound" in line.get_label())
    assert floor_line.get_linestyle() == "--"
    x, y = floor_line.get_data()  # x in millions, fit in millions: eq. 7 with L_inf = 0
    np.testing.assert_allclose(y, predict((floor.A, floor.alpha, 0.0), x))
    bands = [c for c in ax.collections if type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    assert len(bands) == 2 and all("envelope of text bootstrap, model jackknife" in b.get_label() for b in bands)
    all_losses = np.concatenate([small[g]["loss"].to_numpy() for g in ("single", "cross_family")])
    lo, hi = ax.get_ylim()
    assert lo <= all_losses.min() and hi >= all_losses.max()  # every raw point is inside the axes


def test_budget_figure_draws_gain_and_parameters_to_match(tmp_path):
    budget = pd.DataFrame({"comparison": "pairs_vs_single", "budget_params": [2e6, 4e6, 8e6],
                           "gain": [-1.0, 2.0, 3.0], "gain_lo": [-2.0, 1.0, 2.0], "gain_hi": [0.5, 3.0, 4.0],
                           "ensemble_params": [2e6, 4e6, 8e6], "reference_params_to_match": [1e6, 6e6, np.inf],
                           "match_lo": [1e6, 5e6, np.inf], "match_hi": [2e6, 8e6, np.inf], "level": 0.95,
                           "n_resamples": 50})
    fig = budget_figure(budget)
    top, bottom = fig.axes
    assert "millions" in top.get_xlabel() and "nats" in top.get_ylabel()
    labels = [t.get_text() for t in bottom.get_legend().get_texts()]
    assert any("no single model in the pool matches" in label for label in labels)
    paths = save_figure(fig, tmp_path, "fig_equal_budget")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budget_figure_with_bands_extra_cost_marks_and_the_horizontal_ratio():
    budget = pd.DataFrame({"comparison": "pairs_vs_single", "budget_params": [2e6, 4e6, 8e6],
                           "gain": [-1.0, 2.0, 3.0], "gain_lo": [-2.0, 1.0, 2.0], "gain_hi": [0.5, 3.0, 4.0],
                           "gain_band_lo": [-3.0, 0.5, 1.0], "gain_band_hi": [1.0, 3.5, 5.0],
                           "extra_model_cost": [True, False, False], "level": 0.95, "n_resamples": 50})
    horizontal = pd.DataFrame({"comparison": "pairs_vs_single", "target_loss": [10.0, 11.0, 12.0],
                               "log_ratio": np.log([2.0, 1.0, 0.5]), "log_ratio_band_lo": np.log([1.0, 0.5, 0.25]),
                               "log_ratio_band_hi": np.log([4.0, 2.0, 1.0])})
    top, bottom = budget_figure(budget, horizontal).axes
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert any("simultaneous" in label for label in labels) and any("cheapest extra model" in label for label in labels)
    marks = next(c for c in top.collections if "cheapest extra model" in c.get_label())
    np.testing.assert_allclose(marks.get_offsets(), [[2.0, -1.0]])  # x in millions, at the one extra-cost step
    assert "loss target" in bottom.get_xlabel() and bottom.get_yscale() == "log"
    step = next(line for line in bottom.get_lines() if "needs /" in line.get_label())
    np.testing.assert_allclose(step.get_ydata(), [2.0, 1.0, 0.5])


@pytest.mark.parametrize("boxes, step, max_moves, expected", [
    ([], 1.0, 4, []),
    ([(0, 0, 2, 1), (5, 0, 7, 1)], 1.0, 4, [0.0, 0.0]),          # apart: both stay
    ([(0, 0, 2, 1), (1, 0, 3, 1)], 1.0, 4, [0.0, -1.0]),         # overlap: the second moves one line down
    ([(0, 0, 2, 1), (1, 0, 3, 1), (1.5, 0, 3, 1)], 1.0, 4, [0.0, -1.0, 1.0]),  # then one line up
    ([(0, 0, 2, 1), (0, 0, 2, 1), (0, 0, 2, 1)], 1.0, 1, [0.0, -1.0, 1.0]),
    ([(0, 0, 2, 1)] * 4, 1.0, 1, [0.0, -1.0, 1.0, None]),        # no free place within one line: left out
    ([(0, 0, 2, 1), (2, 0, 4, 1)], 1.0, 4, [0.0, 0.0]),          # touching edges do not overlap
])
def test_place_labels_table(boxes, step, max_moves, expected):
    from mmlaw_utils.report.figures import place_labels

    assert place_labels(boxes, step, max_moves) == expected


def test_crowded_labels_are_moved_apart_or_left_out(groups_and_fits):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    groups, fits, boot = groups_and_fits
    # every model at (almost) one size: all Pareto labels start on top of each other
    crowded = {g: f.assign(params=1_000_000 + np.arange(len(f))) for g, f in groups.items()}
    names = [f"models/pool/model-with-a-long-name-{i}" for i in range(18)]
    fig = figure1(crowded, fits, boot, model_names=names)
    (ax,) = fig.axes
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.canvas.draw()
    labels = [t for t in ax.texts if t.get_visible() and " crowded " not in t.get_text()]
    extents = [t.get_window_extent(renderer) for t in labels]
    for i, a in enumerate(extents):
        for b in extents[i + 1:]:
            assert not a.overlaps(b) or a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
    assert any(t.xyann[1] != -2 for t in labels)  # some labels were moved off their starting line
    hidden = [t for t in ax.texts if not t.get_visible()]
    note = [t.get_text() for t in ax.texts if " crowded " in t.get_text()]
    if hidden:
        assert note == [f"{len(hidden)} crowded point label(s) left out; every Pareto point is in frontiers.parquet"]
    else:
        assert note == []
