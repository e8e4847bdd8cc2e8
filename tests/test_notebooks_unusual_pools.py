"""Notebooks 03-07 on unusual pools: they run and say "not enough points", or stop with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mmlaw_utils.analysis.bootstrap import bootstrap_counts
from mmlaw_utils.analysis.lossmatrix import loss_matrix_from_arrays
from mmlaw_utils.scoring.assemble import write_loss_matrix

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return "mmlaw" if "mmlaw" in KernelSpecManager().find_kernel_specs() else "python3"


def _save_pool(data_dir: Path, families: list[str], n_texts: int = 20, equal: bool = False) -> None:
    """A small loss matrix (nats) over ``families`` (one model per entry), sizes 0.1B-8B, saved as notebook 02 would."""
    k = len(families)
    params = np.geomspace(1e8, 8e9, k).astype(np.int64) if k > 1 else np.array([10**9])
    noise = np.random.default_rng(0).normal(0.0, 0.1, (k, n_texts))
    losses = np.full((k, n_texts), 500.0) if equal else 1000 * (params[:, None] / 1e9) ** -0.1 * np.exp(noise)
    lm = loss_matrix_from_arrays(losses, [f"m{i}" for i in range(k)], [f"t{j}" for j in range(n_texts)], families, params)
    write_loss_matrix(lm, data_dir)


def _run(name: str, data_dir: Path, **parameters) -> str:
    """Execute notebook ``name`` on ``data_dir``; return the executed notebook's text."""
    import papermill

    os.environ.setdefault("MPLBACKEND", "Agg")
    out = data_dir / f"{name}.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"), str(out), kernel_name=_kernel_name(), progress_bar=False, cwd=str(NOTEBOOKS),
        parameters={"profile": "synthetic", "data_dir": str(data_dir), **parameters},
    )
    return out.read_text()


def test_pool_without_same_family_pairs_runs_and_says_not_enough_points(tmp_path):
    # six models in six families: no same-family pairs, and frontiers too short to forecast
    _save_pool(tmp_path, list("abcdef"))
    for name, extra in (("03_oracle_pairs", {}), ("04_frontiers", {}), ("05_fit_scaling_laws", {"n_bootstrap": 3})):
        _run(name, tmp_path, **extra)
    figures = _run("06_figures", tmp_path, figures_dir=str(tmp_path / "fig"))
    assert "Figure 2 not drawn: not enough points" in figures and "no same_family pairs" in figures
    assert (tmp_path / "fig" / "fig1_single_vs_ensemble.png").is_file()
    assert not (tmp_path / "fig" / "fig2_same_vs_cross_family.png").exists()
    _run("07_beyond_pairs", tmp_path, figures_dir=str(tmp_path / "fig"), n_bootstrap=3, max_size=2)
    forecast = (tmp_path / "forecast.csv").read_text()
    assert "same_family" not in forecast and "cross_family" in forecast


def test_all_equal_losses_run_through_notebook_07(tmp_path):
    _save_pool(tmp_path, list("aabbcc"), equal=True)
    _run("07_beyond_pairs", tmp_path, figures_dir=str(tmp_path / "fig"), n_bootstrap=3, max_size=2)
    assert "Not enough points" in (tmp_path / "beyond_pairs.md").read_text()


def test_one_model_pool_stops_with_a_clear_message(tmp_path):
    import papermill

    _save_pool(tmp_path, ["a"])
    _run("03_oracle_pairs", tmp_path)
    with pytest.raises(papermill.PapermillExecutionError, match=r"has 1 model: there are no pairs.*at least 2 models"):
        _run("04_frontiers", tmp_path)


def test_bootstrap_over_one_text_warns():
    with pytest.warns(UserWarning, match=r"bootstrap over 1 text\(s\).*zero width"):
        counts = bootstrap_counts(1, 3, seed=0)
    assert counts.tolist() == [[1], [1], [1]]


def test_pool_where_no_group_can_be_fitted_gives_table1_with_reasons(tmp_path):
    # two models of two families: 2 single points, 1 cross-family pair, no same-family pair; eq. 7 needs more
    _save_pool(tmp_path, ["a", "b"])
    for name in ("03_oracle_pairs", "04_frontiers"):
        _run(name, tmp_path)
    _run("05_fit_scaling_laws", tmp_path, n_bootstrap=3)
    table1 = (tmp_path / "table1.md").read_text()
    assert "| Single model | 2 | 2 |" in table1
    claims = (tmp_path / "claims.csv").read_text()
    assert "not identified" in claims


@pytest.mark.parametrize("value", [0, -1e9])
def test_papermill_run_of_notebook_04_refuses_a_bad_params_unit(tmp_path, value):
    import papermill

    _save_pool(tmp_path, list("aabb"))
    _run("03_oracle_pairs", tmp_path)
    with pytest.raises(papermill.PapermillExecutionError, match=r"params_unit.*must be a finite number > 0"):
        _run("04_frontiers", tmp_path, params_unit=value)
