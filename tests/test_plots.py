"""Figures 1-2 (mmlaw_utils.report.figures): what is drawn, and the files written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis.fit import fit_scaling_law, predict
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.report.figures import figure1, figure2, law_band, save_figure


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
