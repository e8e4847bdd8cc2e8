"""Result tables (mmlaw_utils.report.tables): pairs, frontiers, Table 1, fits.json, README results region."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis.fit import ScalingFit, fit_scaling_law
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.analysis.oracle import pair_oracle_losses, pair_win_shares
from mmlaw_utils.report.tables import (
    PAPER_TABLE1, RESULTS_END, RESULTS_START, TABLE1_COLUMNS, family_win_summary, fit_groups, fits_from_json,
    frontiers_table,
    groups_from_frontiers_table, loss_matrix_summary, pair_loss_matrix, pairs_table, read_fits_json,
    table1_frame, table1_markdown, update_readme, write_fits_json, write_table1,
)

# 3 models x 2 texts, families a, a, b; params 1, 2, 4 (billions)
L3 = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
NAMES3, FAMILIES3, PARAMS3 = ["m0", "m1", "m2"], ["a", "a", "b"], np.array([1, 2, 4]) * 10**9


def test_pairs_table_hand_computed():
    pairs = pairs_table(pair_oracle_losses(L3), NAMES3, FAMILIES3, PARAMS3, win_share=pair_win_shares(L3))
    assert list(zip(pairs["model_a"], pairs["model_b"])) == [("m0", "m1"), ("m0", "m2"), ("m1", "m2")]
    assert pairs["group"].tolist() == ["same_family", "cross_family", "cross_family"]
    assert pairs["params"].tolist() == [3 * 10**9, 5 * 10**9, 6 * 10**9]
    # min over texts: {m0,m1}: (1, 2) -> 1.5; {m0,m2}: (1, 1) -> 1; {m1,m2}: (2, 1) -> 1.5
    np.testing.assert_allclose(pairs["loss"], [1.5, 1.0, 1.5])
    np.testing.assert_allclose(pairs["loss_a"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(pairs["gain"], [0.5, 1.0, 0.5])
    # m0 wins text 0 against m1, ties none; m1 vs m2: m1 wins text 0, m2 text 1
    np.testing.assert_allclose(pairs["win_share_a"], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(pairs["win_share_a"] + pairs["win_share_b"], 1.0)
    summary = family_win_summary(pairs).set_index("group")
    assert summary.loc["same_family", "pairs"] == 1 and summary.loc["cross_family", "pairs"] == 2
    assert summary.loc["cross_family", "mean_gain_nats"] == pytest.approx(0.75)


def test_pair_loss_matrix_round_trips():
    matrix = pair_oracle_losses(L3)
    pairs = pairs_table(matrix, NAMES3, FAMILIES3, PARAMS3)
    np.testing.assert_array_equal(pair_loss_matrix(pairs, 3), matrix)
    with pytest.raises(ValueError, match="pairs"):
        pair_loss_matrix(pairs.iloc[:2], 3)


def test_frontiers_table_round_trips_and_scales_params():
    groups = collaboration_groups(L3, PARAMS3, np.array(FAMILIES3))
    table = frontiers_table(groups, NAMES3, params_unit=1e9)
    assert len(table) == 3 + 1 + 2
    assert table.loc[table["group"] == "cross_family", "models"].tolist() == ["m0 + m2", "m1 + m2"]
    np.testing.assert_allclose(table["params_scaled"], table["params"] / 1e9)
    back = groups_from_frontiers_table(table)
    for group, frame in groups.items():
        assert back[group]["members"].tolist() == frame["members"].tolist()
        np.testing.assert_array_equal(back[group]["on_frontier"], frame["on_frontier"])
        np.testing.assert_array_equal(back[group]["loss"], frame["loss"])


def _group(params_b, losses):
    frame = pd.DataFrame({"members": [(i,) for i in range(len(params_b))],
                          "params": (np.asarray(params_b) * 1e9).astype(np.int64), "loss": losses})
    frame["on_frontier"] = [True] * (len(params_b) - 1) + [False]
    return frame


def test_table1_counts_fits_intervals_and_paper_values():
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 9.0])
    groups = {"single": _group(p, 100 * p**-0.5 + 50), "cross_family": _group(p, 80 * p**-0.4 + 40)}
    fits = {g: fit_scaling_law(f.loc[f.on_frontier, "params"] / 1e9, f.loc[f.on_frontier, "loss"]) for g, f in groups.items()}
    # bootstrap rows 1..101 for every parameter: 95% percentile interval = (3.5, 98.5) by linear interpolation
    values = np.arange(1.0, 102.0)
    boot = pd.concat([pd.DataFrame({"resample": range(101), "group": g, "A": values, "alpha": values / 100,
                                    "L_inf": values + 1000}) for g in groups], ignore_index=True)
    boot.loc[0, "A"] = np.nan  # a failed resample is left out of the single-model interval
    table = table1_frame(groups, fits, boot).set_index("group")
    assert list(table.reset_index().columns) == TABLE1_COLUMNS
    assert table.loc["single", "raw_points"] == 6 and table.loc["single", "pareto_points"] == 5
    assert table.loc["single", "alpha"] == pytest.approx(0.5, abs=1e-6)
    assert table.loc["cross_family", "L_inf"] == pytest.approx(40, abs=1e-4)
    assert table.loc["cross_family", "A_lo"] == pytest.approx(3.5) and table.loc["cross_family", "A_hi"] == pytest.approx(98.5)
    assert table.loc["cross_family", "L_inf_lo"] == pytest.approx(1003.5)
    assert table.loc["single", "n_bootstrap_ok"] == 100 and table.loc["cross_family", "n_bootstrap_ok"] == 101
    assert table.loc["single", "A_lo"] == pytest.approx(np.quantile(values[1:], 0.025))
    paper = PAPER_TABLE1.set_index("group")
    assert table.loc["cross_family", "paper_alpha"] == paper.loc["cross_family", "alpha"] == 0.5516
    assert table.loc["single", "paper_raw_points"] == 71
    text = table1_markdown(table.reset_index(), caption="cap")
    assert text.startswith("cap\n") and "| Single model | 6 | 5 |" in text
    # ours [CI], never interleaved with the paper's values; resample 0 (NaN A) is dropped from all three intervals
    lo, hi = np.quantile(values[1:] / 100, [0.025, 0.975])
    assert f"0.5000 [{lo:.4f}, {hi:.4f}] |" in text and "0.3578" not in text and "(71)" not in text


def test_paper_table1_reproduces_its_own_laws():
    """The constant matches eqs. 8-10: e.g. L_single(1) = A + L_inf."""
    paper = PAPER_TABLE1.set_index("group")
    assert paper.loc["single", "A"] + paper.loc["single", "L_inf"] == pytest.approx(886.1545 + 1765.0285)
    assert paper.loc["same_family", ["raw_points", "pareto_points", "L_inf", "A", "alpha"]].tolist() == [
        506, 22, 1780.0938, 979.6996, 0.8500]
    assert paper.loc["cross_family", ["raw_points", "pareto_points"]].tolist() == [1979, 32]
    # 71 models: singles + same + cross pairs = 71 + C(71, 2)
    assert paper["raw_points"].sum() == 71 + math.comb(71, 2)


def test_table1_without_bootstrap_or_fit():
    p = np.array([1.0, 2.0, 3.0])
    table = table1_frame({"single": _group(p, 10 / p)}, {}, None)
    assert table.loc[0, "fit_status"] == "not fitted" and np.isnan(table.loc[0, "A"]) and np.isnan(table.loc[0, "A_lo"])
    assert "—" in table1_markdown(table)


def test_fits_json_round_trip(tmp_path):
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    fit = fit_scaling_law(p, 100 * p**-0.5 + 50)
    written = write_fits_json({"single": fit}, tmp_path / "fits.json", params_unit=1e9, n_bootstrap=3)
    back = read_fits_json(tmp_path / "fits.json")
    assert back == written and back["params_unit"] == 1e9
    assert ScalingFit.from_dict(back["groups"]["single"]) == fit
    with pytest.raises(FileNotFoundError, match="notebook 05"):
        read_fits_json(tmp_path / "missing.json")


def test_loss_matrix_summary_hand_computed():
    n_bytes = np.array([10, 30])
    summary = loss_matrix_summary(L3, NAMES3, FAMILIES3, PARAMS3, n_tokens=np.full((3, 2), 2), n_bytes=n_bytes)
    np.testing.assert_allclose(summary["mean_nll"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(summary["nats_per_token"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(summary["nats_per_byte"], [4 / 40, 4 / 40, 4 / 40])
    np.testing.assert_allclose(summary["bits_per_byte"], summary["nats_per_byte"] / math.log(2))
    assert summary["params_b"].tolist() == [1.0, 2.0, 4.0]


def test_update_readme_embeds_table_and_figures(tmp_path):
    data, figures = tmp_path / "data", tmp_path / "figures"
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 9.0])
    table = table1_frame({"single": _group(p, 100 * p**-0.5 + 50)}, {}, None)
    write_table1(table, data, caption="**Table 1** test")
    assert pd.read_csv(data / "table1.csv")["raw_points"].tolist() == [6]
    figures.mkdir()
    (figures / "fig1_single_vs_ensemble.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n{RESULTS_START}\nstale\n{RESULTS_END}\nrest\n")
    update_readme(readme, "synthetic", data, figures)
    text = readme.read_text()
    assert "stale" not in text and "**Table 1** test" in text and "| Single model | 6 | 5 |" in text
    assert "(figures/fig1_single_vs_ensemble.png)" in text and "fig2" not in text
    assert text.endswith(f"{RESULTS_END}\nrest\n")


def test_fit_groups_records_a_group_that_cannot_be_fitted(tmp_path):
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 9.0])
    groups = {"single": _group(p, 100 * p**-0.5 + 50), "same_family": _group(p[:4], 100 * p[:4] ** -0.5 + 50)}
    fits = fit_groups(groups, params_unit=1e9)
    assert fits["single"].alpha == pytest.approx(0.5, abs=1e-6)
    assert fits["same_family"].status == "too_few_points" and fits["same_family"].n_points == 3
    # P in millions: same exponent and floor, A scaled by 1000**alpha
    in_millions = fit_groups({"single": groups["single"]}, params_unit=1e6)["single"]
    assert in_millions.alpha == pytest.approx(0.5, abs=1e-6) and in_millions.A == pytest.approx(100 * 1000**0.5, rel=1e-5)
    table = table1_frame(groups, fits).set_index("group")
    assert table.loc["same_family", "fit_status"] == "too_few_points" and np.isnan(table.loc["same_family", "alpha"])
    write_fits_json(fits, tmp_path / "fits.json")
    back = fits_from_json(read_fits_json(tmp_path / "fits.json"))
    assert back["single"] == fits["single"]
    assert back["same_family"].status == "too_few_points" and np.isnan(back["same_family"].alpha)
    # a fits.json of an older run records a failed group by its status and point count only
    old = fits_from_json({"groups": {"same_family": {"status": "failed: too few", "n_points": 3}}})["same_family"]
    assert old.status == "failed: too few" and not old.fitted and np.isnan(old.L_inf)


def test_readme_claims_paragraph_uses_the_verdicts_of_claims_csv(tmp_path):
    from mmlaw_utils.report.tables import results_markdown

    data = tmp_path / "data"
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 9.0])
    write_table1(table1_frame({"single": _group(p, 100 * p**-0.5 + 50)}, {}, None), data)
    pd.DataFrame({"claim": ["floor is lower", "alpha is larger"], "groups": ["a, b", "a, b"],
                  "verdict": ["not identified", "inconclusive"], "evidence": ["a: L_inf_at_bound", "overlap"]}
                 ).to_csv(data / "claims.csv", index=False)
    text = results_markdown("synthetic", data, tmp_path / "figures", tmp_path)
    assert "1 not identified, 1 inconclusive" in text
    assert "1. *floor is lower*: **not identified**. a: L_inf_at_bound." in text
    assert "**agrees**" not in text


def test_readme_results_add_the_arms_experiment_when_notebook_09_ran(tmp_path):
    from mmlaw_utils.report.tables import results_markdown

    data, figures = tmp_path / "data", tmp_path / "figures"
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 9.0])
    write_table1(table1_frame({"single": _group(p, 100 * p**-0.5 + 50)}, {}, None), data)
    assert "Which diversity pays" not in results_markdown("synthetic", data, figures, tmp_path)
    (data / "arms.md").write_text("| domain | main |\n|---|---|\n| all | 1.000 |\n")
    figures.mkdir()
    (figures / "arms_gain.png").write_bytes(b"png")
    text = results_markdown("synthetic", data, figures, tmp_path)
    block = text[text.index("### Which diversity pays"):]
    assert "| all | 1.000 |" in block and "![arms_gain](figures/arms_gain.png)" in block


def _table1_with_intervals(jackknife_hi: float) -> pd.DataFrame:
    """Table 1 of one fitted group whose three intervals per parameter are the bootstrap's [0.9, 1.1], the
    jackknife's [0.2, jackknife_hi] and the profile's [0.5, 2.0]."""
    p = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 9.0])
    groups = {"single": _group(p, 100 * p**-0.5 + 50)}
    fits = {g: fit_scaling_law(f.loc[f.on_frontier, "params"] / 1e9, f.loc[f.on_frontier, "loss"]) for g, f in groups.items()}
    rows = [("single", name, method, 1.0, lo, hi, 0.95)
            for name in ("alpha", "L_inf", "A")
            for method, lo, hi in (("text_bootstrap", 0.9, 1.1), ("model_jackknife", 0.2, jackknife_hi),
                                   ("profile_likelihood", 0.5, 2.0))]
    uncertainty = pd.DataFrame(rows, columns=["group", "parameter", "method", "estimate", "lo", "hi", "level"])
    return table1_frame(groups, fits, None, uncertainty=uncertainty).set_index("group")


def test_table1_shows_the_envelope_and_the_methods_setting_its_ends():
    # no single method is widest: the jackknife reaches lowest, the profile highest
    table = _table1_with_intervals(jackknife_hi=1.5)
    assert (table.loc["single", "alpha_lo"], table.loc["single", "alpha_hi"]) == (0.2, 2.0)
    assert table.loc["single", "alpha_method"] == "lo: model_jackknife; hi: profile_likelihood"
    assert "| lo: model jackknife; hi: profile likelihood |" in table1_markdown(table.reset_index())


def test_readme_support_paragraph_is_generated_from_the_tables():
    from mmlaw_utils.report.tables import support_markdown

    floor = pd.DataFrame({"variant": ["all", "all", "bits_per_byte"], "group": ["single", "cross_family", "single"],
                          "rho": [0.9, 0.96, 0.9], "lr": [11.04, 0.5, 7.0], "lr_rejects": [True, False, True],
                          "curvature_outcome": ["straight", "bends toward a floor", "straight"], "level": 0.95})
    padding = pd.DataFrame({"group": ["same_family"], "pareto_points": [11], "padded_points": [11],
                            "alpha_all": [0.151], "alpha_effective": [np.nan], "alpha_null": [0.151], "min_gain": [1.0]})
    summary = pd.DataFrame({"comparison": "pairs_vs_single", "axis": ["vertical", "horizontal"],
                            "share_better": [0.43, 0.0], "share_worse": [0.0, 0.0], "share_tied": [0.48, 0.7],
                            "share_extra_model_cost": [0.09, 0.3], "median": [0.0, 0.977], "level": 0.95})
    claims = pd.DataFrame({"claim": ["same > single"], "verdict": ["explained by padding"]})
    text = support_markdown(padding, floor, summary, claims)
    assert "is rejected on 1 of 2 frontiers at the 95% level" in text and "LR 11" in text
    assert "bits per byte: rejected on 1 of 1" in text
    assert "11 of 11 Pareto points padded" in text and "not fitted (too few points)" in text
    assert "reproduces: *same > single*" in text
    assert "better on 43% of the ln P range" in text and "more on 30% (of which 30% only the cheapest" in text


def test_table1_envelope_of_nested_intervals_is_the_outer_one():
    table = _table1_with_intervals(jackknife_hi=3.0)  # the jackknife's interval holds the other two
    assert (table.loc["single", "alpha_lo"], table.loc["single", "alpha_hi"]) == (0.2, 3.0)
    assert table.loc["single", "alpha_method"] == table.loc["single", "L_inf_method"] == "model_jackknife"
    assert "| model jackknife |" in table1_markdown(table.reset_index())


def test_write_csv_writes_the_frame_atomically(tmp_path):
    from mmlaw_utils.report.tables import write_csv

    frame = pd.DataFrame({"members": [(0, 1), (2,)], "loss": [1.5, 2.25]})
    path = write_csv(frame, tmp_path / "sub" / "out.csv")
    assert path.read_text() == "members,loss\n\"(0, 1)\",1.5\n\"(2,)\",2.25\n"
    assert [p.name for p in path.parent.iterdir()] == ["out.csv"]
