"""Forecasting the frontier above a budget with eq. 7 fitted below it; bootstrap intervals; markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis import forecast
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.oracle import pair_oracle_losses


def test_cutoff_budget_hand_cases():
    p = np.array([1, 10, 100, 1000, 10000, 100000]) * 10**6
    # 60% of the log range from 1e6 to 1e11 is 10^9
    assert forecast.cutoff_budget(p, 0.6) == 10**9
    # too few points below: moved up to the 4th point
    assert forecast.cutoff_budget(p, 0.1) == 1000 * 10**6
    assert forecast.cutoff_budget(p[:4], 0.6) is None


def test_exact_law_forecasts_perfectly_and_offsets_show_as_bias():
    p = np.geomspace(1e8, 1e11, 10).round()
    y = 30.0 * (p / 1e9) ** -0.4 + 100.0
    res = forecast.forecast_errors(p, y, cutoff=int(p[5]), params_unit=1e9)
    assert res["n_fit"] == 6 and res["n_test"] == 4
    assert res["mae"] < 1e-6 and res["alpha"] == pytest.approx(0.4, rel=1e-5)
    assert res["naive_mae"] > 1.0  # the law beats "no further improvement"
    y2 = y.copy()
    y2[6:] += 2.0  # the frontier above the cutoff is 2 nats worse than the law says
    res2 = forecast.forecast_errors(p, y2, cutoff=int(p[5]))
    assert res2["bias"] == pytest.approx(-2.0, abs=1e-6) and res2["last_error"] == pytest.approx(-2.0, abs=1e-6)
    assert res2["mre"] == pytest.approx(np.mean(2.0 / y2[6:]), rel=1e-6)
    assert math.isnan(forecast.forecast_errors(p[:4], y[:4], cutoff=int(p[2]))["mae"])


def _pool(seed=0, K=12, N=200):
    rng = np.random.default_rng(seed)
    fam = np.repeat(["a", "b", "c"], K // 3)
    sizes = np.tile(np.geomspace(1e8, 1e10, K // 3), 3).round().astype(np.int64)
    shared = {f: rng.normal(0, 0.1, N) for f in "abc"}
    L = np.stack([1000 * (0.7 + 0.3 * (sizes[k] / 1e9) ** -0.3) * np.exp(shared[fam[k]] + rng.normal(0, 0.03, N))
                  for k in range(K)])
    return L, sizes, fam


def test_forecast_table_point_estimates_match_direct_computation():
    L, params, fam = _pool()
    subsets = [(0,), (0, 4), (0, 4, 8), (3, 7, 11), (1, 5, 9, 2), (3,), (7,), (11,), (2, 6, 10), (4, 0)]
    table = forecast.forecast_table(L, params, fam, subsets, n_bootstrap=8, seed=1).set_index("group")
    assert list(table.index) == ["single", "same_family", "cross_family", "any_size"]
    pm = pair_oracle_losses(L)
    i, j = np.triu_indices(len(params), 1)
    cross = fam[i] != fam[j]
    cp, cl = (params[i] + params[j])[cross], pm[i, j][cross]
    keep = pareto_front(cp, cl)
    cut = forecast.cutoff_budget(cp[keep], 0.6)
    direct = forecast.forecast_errors(cp[keep], cl[keep], cut)
    row = table.loc["cross_family"]
    assert row["cutoff"] == cut and row["mae"] == pytest.approx(direct["mae"])
    distinct = subsets[:-1]  # (4, 0) repeats (0, 4): counted once
    any_p = np.array([params[list(s)].sum() for s in distinct])
    any_l = np.array([L[list(s)].min(axis=0).mean() for s in distinct])
    assert table.loc["any_size", "n_points"] == len(pareto_front(any_p, any_l))
    for group in table.index:
        if table.loc[group, "n_boot_ok"] > 0:
            assert table.loc[group, "mae_lo"] <= table.loc[group, "mae_hi"]


def test_notebook_07_runs_on_a_tiny_pool(tmp_path):
    """Execute notebook 07 headlessly on a saved 8-model loss matrix; every output file appears."""
    import os
    from pathlib import Path

    import papermill

    from mmlaw_utils.analysis.lossmatrix import loss_matrix_from_arrays
    from mmlaw_utils.scoring.assemble import write_loss_matrix

    L, params, fam = _pool(seed=3, K=9, N=80)
    names = [f"m{k}" for k in range(len(params))]
    lm = loss_matrix_from_arrays(L, names, [f"t{n}" for n in range(L.shape[1])], fam, params)
    write_loss_matrix(lm, tmp_path)
    os.environ.setdefault("MPLBACKEND", "Agg")
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    papermill.execute_notebook(
        str(notebooks / "07_beyond_pairs.ipynb"), str(tmp_path / "07.ipynb"), kernel_name="python3",
        parameters={"profile": "synthetic", "data_dir": str(tmp_path), "n_bootstrap": 5, "max_size": 4},
        cwd=str(notebooks), progress_bar=False,
    )
    for name in ("subset_frontier.parquet", "subset_fits.csv", "mixture_gain.csv", "diversity_by_relation.csv",
                 "forecast.csv", "beyond_pairs.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    for stem in ("fig3_subset_frontiers", "fig4_mixture_vs_oracle", "fig5_diversity", "fig6_forecast"):
        assert (tmp_path / "figures" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    front = pd.read_parquet(tmp_path / "subset_frontier.parquet")
    # the saved frontier is the exact one (9 models: checked against brute force)
    from mmlaw_utils.analysis import subsets

    brute = subsets.subset_frontier(L, params, method="brute")
    assert front["params"].tolist() == brute["params"].tolist()
    assert np.allclose(front["loss"], brute["loss"], rtol=0, atol=0)
    assert "Beyond pairs" in (tmp_path / "beyond_pairs.md").read_text()


def test_forecast_figure_labels_the_cutoff_and_draws_bands():
    L, params, fam = _pool()
    table = forecast.forecast_table(L, params, fam, n_bootstrap=0)
    from mmlaw_utils.report.figures import plot_forecast

    fig = plot_forecast(L, params, fam, table, n_bootstrap=20, seed=1)
    assert len(fig.axes) == len(table)
    fitted = [ax for ax, cut in zip(fig.axes, table["cutoff"]) if not pd.isna(cut)]
    assert fitted
    for ax in fitted:
        labels = [line.get_label() for line in ax.get_lines()]
        assert any(label.startswith("cutoff") for label in labels)
        assert any("band" in c.get_label() for c in ax.collections)
        assert "billions" in ax.get_xlabel()
    # the band is the pointwise percentile of refits below the cutoff: it brackets the law at the cutoff's budget
    grid = {"cross_family": np.array([float(table.set_index("group").loc["cross_family", "cutoff"])])}
    bands = forecast.forecast_bands(L, params, fam, table, grid, n_bootstrap=40, seed=2)
    lo, hi = bands["cross_family"]
    row = table.set_index("group").loc["cross_family"]
    law = row["A"] * (grid["cross_family"] / 1e9) ** (-row["alpha"]) + row["L_inf"]
    assert lo[0] <= law[0] <= hi[0] and hi[0] - lo[0] > 0
