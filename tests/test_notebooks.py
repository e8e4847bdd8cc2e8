"""Notebooks: .py/.ipynb pairs in sync, and stages 02-06 run by the pipeline (papermill) on a synthetic pool."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest
import yaml

from mmlaw_utils.scoring.cache import read_cache
from mmlaw_utils.scoring.synthetic import SyntheticSettings, generate
from mmlaw_utils.analysis.claims import VERDICTS
from mmlaw_utils.report.tables import PAPER_TABLE1

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
SEQUENCE = ["02_loss_matrix", "03_oracle_pairs", "04_frontiers", "05_fit_scaling_laws", "06_figures"]
# small but with >= 4 Pareto points in every group: 4 families x 4 sizes, 120 texts
SETTINGS = SyntheticSettings(n_families=4, sizes_b=(0.1, 0.5, 2.0, 8.0), n_texts=120, seed=3)
N_BOOTSTRAP = 12


def _cells(notebook) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in notebook.cells]


@pytest.mark.parametrize("script", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_paired_notebooks_are_in_sync_and_parameterised(script):
    paired = script.with_suffix(".ipynb")
    assert paired.is_file(), f"{script.name} has no paired {paired.name}; run jupytext --sync {script}"
    from_py, from_ipynb = jupytext.read(script), jupytext.read(paired)
    assert _cells(from_py) == _cells(from_ipynb), f"{script.name} and {paired.name} differ; run jupytext --sync"
    tagged = [c for c in from_py.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "profile" in tagged[0].source
    assert from_py.cells[0].cell_type == "markdown" and "§" in from_py.cells[0].source


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """Generate a synthetic pool into a temp folder and run stages 02-06 on it through the pipeline."""
    from mmlaw_utils.pipeline import RunOptions, run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    data_dir, figures_dir, runs = root / "data", root / "figures", root / "runs"
    generate(SETTINGS, data_dir, name="fixture")
    parameters = {"data_dir": str(data_dir), "figures_dir": str(figures_dir), "n_bootstrap": N_BOOTSTRAP, "seed": 1}
    run_pipeline(RunOptions(profile="synthetic", parameters=parameters, start="02", stop="06", readme="no"),
                 runs_root=runs)
    return data_dir, figures_dir, runs / "synthetic"


def _independent_reference(data_dir: Path):
    """Losses, params and families read straight from the caches and pool file, without mmlaw's analysis code."""
    pool = yaml.safe_load((data_dir / "pool.yaml").read_text())["models"]
    files = sorted((data_dir / "scores").glob("*.parquet"))
    by_model = {}
    for path in files:
        frame, provenance = read_cache(path)
        by_model[provenance["model"]] = frame["nll"].to_numpy()
    losses = np.stack([by_model[m["id"]] for m in pool])
    return pool, losses


def test_pipeline_writes_every_output(pipeline_run):
    data_dir, figures_dir, runs = pipeline_run
    for name in ("loss_matrix.parquet", "models.parquet", "pairs.parquet", "frontiers.parquet", "fits.json",
                 "bootstrap.parquet", "table1.md", "table1.csv", "cluster_bootstrap.parquet", "model_jackknife.csv",
                 "uncertainty.csv", "sensitivity.csv", "model_comparison.csv", "equal_budget.csv", "claims.csv"):
        assert (data_dir / name).stat().st_size > 0, name
    for stem in ("fig1_single_vs_ensemble", "fig2_same_vs_cross_family", "fig_equal_budget"):
        assert (figures_dir / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures_dir / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.stem for p in runs.glob("*.ipynb")) == SEQUENCE
    timings = pd.read_csv(runs / "timings.tsv", sep="\t")
    assert list(timings["stage"]) == [*SEQUENCE, "total"] and (timings["seconds"] >= 0).all()
    assert not list((REPO_ROOT / "data").glob("fixture*")), "the fixture must not write into the repository"


def test_table1_counts_match_an_independent_count(pipeline_run):
    data_dir, _, _ = pipeline_run
    pool, _ = _independent_reference(data_dir)
    k = len(pool)
    family_sizes = pd.Series([m["family"] for m in pool]).value_counts()
    same = int(sum(math.comb(int(n), 2) for n in family_sizes))
    table = pd.read_csv(data_dir / "table1.csv").set_index("group")
    assert table["raw_points"].to_dict() == {"single": k, "same_family": same, "cross_family": math.comb(k, 2) - same}
    assert (table["pareto_points"] >= 4).all() and (table["pareto_points"] <= table["raw_points"]).all()
    for name in ("L_inf", "A", "alpha"):
        assert np.isfinite(table[name]).all() and (table[name] > 0).all()
        assert (table[f"{name}_lo"] <= table[f"{name}_hi"]).all()
    assert (table["n_bootstrap_ok"] <= N_BOOTSTRAP).all() and (table["n_bootstrap_ok"] > 0).all()
    paper = PAPER_TABLE1.set_index("group")
    for name in ("raw_points", "pareto_points", "L_inf", "A", "alpha"):
        np.testing.assert_allclose(table[f"paper_{name}"], paper.loc[table.index, name])
    markdown = (data_dir / "table1.md").read_text()
    # the paper's values stay in table1.csv but never stand beside ours in the markdown
    assert "1765.03" not in markdown and "0.5516" not in markdown and f"{N_BOOTSTRAP} text resamples" in markdown


def test_frontiers_match_a_brute_force_reference(pipeline_run):
    data_dir, _, _ = pipeline_run
    pool, losses = _independent_reference(data_dir)
    params = np.array([m["params"] for m in pool])
    frontiers = pd.read_parquet(data_dir / "frontiers.parquet")
    single = frontiers[frontiers["group"] == "single"]
    np.testing.assert_allclose(single["loss"].to_numpy(), losses.mean(axis=1))
    # brute-force Pareto set of the single models
    mean = losses.mean(axis=1)
    dominated = [any(params[j] <= params[i] and mean[j] <= mean[i] and (params[j] < params[i] or mean[j] < mean[i])
                     for j in range(len(pool))) for i in range(len(pool))]
    np.testing.assert_array_equal(single["on_frontier"].to_numpy(), ~np.array(dominated))
    # every cross-family pair's oracle loss, by hand
    cross = frontiers[frontiers["group"] == "cross_family"]
    expected = {tuple(sorted((i, j))): np.minimum(losses[i], losses[j]).mean()
                for i, j in itertools.combinations(range(len(pool)), 2) if pool[i]["family"] != pool[j]["family"]}
    got = {tuple(m): loss for m, loss in zip(cross["members"], cross["loss"])}
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[key] for key in expected], list(expected.values()), rtol=1e-12)


def test_fits_json_describes_the_run(pipeline_run):
    data_dir, _, _ = pipeline_run
    fits = json.loads((data_dir / "fits.json").read_text())
    assert fits["n_bootstrap"] == N_BOOTSTRAP and fits["params_unit"] == 1e9
    assert fits["n_texts"] == SETTINGS.n_texts and fits["n_models"] == SETTINGS.n_families * len(SETTINGS.sizes_b)
    table = pd.read_csv(data_dir / "table1.csv").set_index("group")
    for group, fit in fits["groups"].items():
        assert fit["n_points"] == table.loc[group, "pareto_points"]
        assert fit["alpha"] == pytest.approx(table.loc[group, "alpha"])
    boot = pd.read_parquet(data_dir / "bootstrap.parquet")
    assert len(boot) == 3 * N_BOOTSTRAP and set(boot["group"]) == set(fits["groups"])


def test_uncertainty_has_four_methods_and_table1_shows_the_envelope(pipeline_run):
    data_dir, _, _ = pipeline_run
    fits = json.loads((data_dir / "fits.json").read_text())["groups"]
    table = pd.read_csv(data_dir / "uncertainty.csv")
    assert list(table.columns) == ["group", "parameter", "method", "estimate", "lo", "hi", "level"]
    methods = {"text_bootstrap", "cluster_bootstrap", "model_jackknife", "profile_likelihood"}
    for group, fit in fits.items():
        for parameter in ("alpha", "L_inf", "A"):
            rows = table[(table["group"] == group) & (table["parameter"] == parameter)]
            assert set(rows["method"]) == methods, (group, parameter)
            np.testing.assert_allclose(rows["estimate"], fit[parameter], rtol=1e-12)
            assert (rows["lo"] <= rows["hi"]).all()
            profile = rows[rows["method"] == "profile_likelihood"].iloc[0]
            assert profile["lo"] <= fit[parameter] <= profile["hi"]
    assert (table["level"] == 0.95).all()
    table1 = pd.read_csv(data_dir / "table1.csv").set_index("group")
    ends = table.groupby(["group", "parameter"]).agg(lo=("lo", "min"), hi=("hi", "max"))
    for group in fits:
        for parameter in ("alpha", "L_inf", "A"):
            named = str(table1.loc[group, f"{parameter}_method"]).replace("lo: ", "").replace("hi: ", "").split("; ")
            assert set(named) <= methods
            assert table1.loc[group, f"{parameter}_lo"] == pytest.approx(ends.loc[(group, parameter), "lo"])
            assert table1.loc[group, f"{parameter}_hi"] == pytest.approx(ends.loc[(group, parameter), "hi"])
    assert "interval method" in (data_dir / "table1.md").read_text()


def test_claims_comparison_budget_and_sensitivity_are_sane(pipeline_run):
    data_dir, _, _ = pipeline_run
    fits = json.loads((data_dir / "fits.json").read_text())["groups"]
    claims = pd.read_csv(data_dir / "claims.csv")
    assert list(claims.columns) == ["claim", "groups", "verdict", "evidence"] and claims["claim"].is_unique
    assert set(claims["verdict"]) <= set(VERDICTS) and len(claims) >= 8
    for group, fit in fits.items():
        if fit.get("L_inf_at_bound"):  # a floor at its bound is never agreement
            rows = claims[claims["groups"].str.contains(group) & claims["claim"].str.contains("floor")]
            assert rows["verdict"].isin(["not identified", "rejected at the paper's relative size"]).all()
    summary = pd.read_csv(data_dir / "equal_budget_summary.csv")
    shares = summary[["share_better", "share_worse", "share_tied", "share_extra_model_cost"]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)
    floor = pd.read_csv(data_dir / "floor_tests.csv")
    assert set(floor.loc[floor["variant"] == "all", "group"]) == set(fits)
    comparison = pd.read_csv(data_dir / "model_comparison.csv")
    forms = comparison.groupby("group")["form"].apply(sorted)
    assert all(f == ["eq7", "eq7_no_floor", "log_linear"] for f in forms) and len(forms) == len(fits)
    assert (comparison.groupby("group")["delta_aicc"].min() == 0).all()
    assert (comparison.groupby("group")["supported"].sum() >= 1).all()
    budget = pd.read_csv(data_dir / "equal_budget.csv")
    assert set(budget["comparison"]) == {"pairs_vs_single", "cross_vs_same"}
    assert (budget["gain_lo"] <= budget["gain_hi"]).all() and (budget["n_resamples"] == N_BOOTSTRAP).all()
    np.testing.assert_allclose(budget["gain"], budget["reference_loss"] - budget["ensemble_loss"])
    sensitivity = pd.read_csv(data_dir / "sensitivity.csv")
    n_models = SETTINGS.n_families * len(SETTINGS.sizes_b)
    assert len(sensitivity) == n_models * len(fits) and sensitivity["influential"].dtype == bool
