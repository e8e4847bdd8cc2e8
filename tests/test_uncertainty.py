"""Cluster bootstrap, model jackknife, the uncertainty table and the sensitivity flags, against explicit recomputations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mmlaw_utils.analysis.bootstrap import bootstrap_group_fits, cluster_bootstrap_counts
from mmlaw_utils.analysis.fit import fit_scaling_law, predict
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.analysis.profile import ProfileInterval
from mmlaw_utils.analysis.uncertainty import (
    jackknife_interval,
    leave_one_model_out,
    reaches_bound,
    sensitivity_table,
    text_clusters,
    uncertainty_table,
    envelope_intervals,
)
from test_bootstrap import synthetic_pool


def test_clusters_come_from_the_source_field_first():
    labels, rule = text_clusters(["a-1", "a-2", "b-1"], ["wikipedia:A", "wikipedia:A", "wikipedia:B"])
    assert rule == "source" and labels.tolist() == ["wikipedia:A", "wikipedia:A", "wikipedia:B"]


def test_clusters_come_from_the_text_id_when_the_source_is_one_value_or_missing():
    ids = ["wiki-abraham-lincoln-000", "wiki-abraham-lincoln-001", "wiki-apollo-8-000"]
    for sources in (None, ["x", "x", "x"], ["x", None, "y"]):
        labels, rule = text_clusters(ids, sources)
        assert rule == "text_id" and labels.tolist() == ["wiki-abraham-lincoln", "wiki-abraham-lincoln", "wiki-apollo-8"]


def test_one_text_per_cluster_when_nothing_encodes_a_document():
    for ids in (["syn000001", "syn000002"], ["doc-1", "doc-2"]):  # no number suffix / one document only
        labels, rule = text_clusters(ids, ["synthetic", "synthetic"])
        assert rule == "text" and labels.tolist() == ids


def test_cluster_counts_draw_whole_documents():
    clusters = np.array(["a", "a", "a", "b", "c", "c"])
    counts = cluster_bootstrap_counts(clusters, 200, seed=5)
    assert counts.shape == (200, 6)
    # texts of one document are always drawn together, and each resample draws 3 documents
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 1] == counts[:, 2]).all()
    assert (counts[:, 4] == counts[:, 5]).all()
    drawn = counts[:, 0] + counts[:, 3] + counts[:, 4]
    assert (drawn == 3).all()
    assert set(np.unique(counts[:, 0])) == {0, 1, 2, 3}
    np.testing.assert_array_equal(cluster_bootstrap_counts(clusters, 3, seed=5, start=2), counts[2:5])


def test_cluster_bootstrap_fits_equal_a_fit_on_the_explicit_resample():
    L, params, families = synthetic_pool(n=120)
    clusters = np.repeat(np.arange(30), 4).astype(str)
    boot = bootstrap_group_fits(L, params, families, n_bootstrap=2, seed=4, clusters=clusters)
    counts = cluster_bootstrap_counts(clusters, 2, seed=4)
    resampled = L[:, np.repeat(np.arange(L.shape[1]), counts[1])]
    for name, frame in collaboration_groups(resampled, params, families).items():
        front = frame[frame["on_frontier"]]
        expected = fit_scaling_law(front["params"].to_numpy() / 1e9, front["loss"].to_numpy())
        row = boot[(boot["resample"] == 1) & (boot["group"] == name)].iloc[0]
        assert row["alpha"] == pytest.approx(expected.alpha, rel=1e-6)
        assert row["L_inf"] == pytest.approx(expected.L_inf, rel=1e-6, abs=1e-9)


def test_leave_one_model_out_equals_refitting_without_the_model():
    L, params, families = synthetic_pool(k=12, n=200)
    jack = leave_one_model_out(L, params, families)
    assert len(jack) == 12 * 3
    for left_out in (0, 5, 11):
        keep = np.delete(np.arange(12), left_out)
        groups = collaboration_groups(L[keep], params[keep], families[keep])
        for name, frame in groups.items():
            front = frame[frame["on_frontier"]]
            row = jack[(jack["left_out"] == left_out) & (jack["group"] == name)].iloc[0]
            assert row["n_frontier"] == len(front)
            if len(front) < 4:
                assert row["status"] == "too_few_points" and math.isnan(row["alpha"])
                continue
            expected = fit_scaling_law(front["params"].to_numpy() / 1e9, front["loss"].to_numpy())
            assert row["alpha"] == pytest.approx(expected.alpha, rel=1e-6)
            assert row["L_inf"] == pytest.approx(expected.L_inf, rel=1e-6, abs=1e-9)


def test_jackknife_interval_hand_computed():
    values = np.array([1.0, 2.0, 3.0, 6.0, np.nan])  # NaN: a failed refit, ignored
    # mean 3, squared deviations 4 + 1 + 0 + 9 = 14, se = sqrt(3/4 * 14)
    se = math.sqrt(0.75 * 14.0)
    z = norm.ppf(0.975)
    assert jackknife_interval(2.5, values, 0.95) == pytest.approx((2.5 - z * se, 2.5 + z * se))
    assert jackknife_interval(2.5, values, 0.95, bounds=(0.0, 5.0)) == pytest.approx((0.0, 5.0))
    assert all(math.isnan(v) for v in jackknife_interval(2.5, np.array([1.0]), 0.95))


def _fit_on(params_b, losses):
    return fit_scaling_law(np.asarray(params_b, dtype=float), np.asarray(losses, dtype=float))


def test_uncertainty_table_and_widest():
    params_b = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    fit = _fit_on(params_b, 3.0 * params_b**-0.4 + 2.0 + np.array([0.05, -0.08, 0.1, -0.03, 0.02, -0.09]))
    boot = pd.DataFrame({"resample": range(4), "group": "single", "A": [1.0, 2.0, 3.0, 4.0],
                         "alpha": [0.3, 0.4, 0.5, 0.6], "L_inf": [1.0, 2.0, 3.0, 4.0]})
    jack = pd.DataFrame({"left_out": range(3), "group": "single", "A": [3.0, 3.0, 3.0],
                         "alpha": [0.1, 0.4, 0.7], "L_inf": [2.0, 2.0, 2.0]})
    profiles = {"single": {name: ProfileInterval(name, getattr(fit, name), 0.0, 10.0, 0.95, True, False)
                           for name in ("A", "alpha", "L_inf")}}
    table = uncertainty_table({"single": fit, "broken": {"status": "failed: 3 points"}}, level=0.95,
                              text_boot=boot, jackknife=jack, profiles=profiles)
    assert set(table["group"]) == {"single"}
    assert set(table["method"]) == {"text_bootstrap", "model_jackknife", "profile_likelihood"}
    row = table[(table["parameter"] == "alpha") & (table["method"] == "text_bootstrap")].iloc[0]
    assert (row["lo"], row["hi"]) == pytest.approx(np.quantile([0.3, 0.4, 0.5, 0.6], [0.025, 0.975]))
    assert row["estimate"] == fit.alpha and row["level"] == 0.95
    jack_row = table[(table["parameter"] == "alpha") & (table["method"] == "model_jackknife")].iloc[0]
    half = norm.ppf(0.975) * math.sqrt(2 / 3 * 0.18)
    assert jack_row["hi"] == pytest.approx(fit.alpha + half)
    envelope = envelope_intervals(table).set_index("parameter")
    assert envelope.loc["alpha", "method"] == "profile_likelihood"  # [0, 10] holds every other interval
    assert (envelope.loc["alpha", "lo"], envelope.loc["alpha", "hi"]) == (0.0, 10.0)


def test_envelope_takes_each_end_from_the_method_that_sets_it():
    # issue 20: the jackknife reaches lowest, the profile highest; the envelope is neither one alone
    table = pd.DataFrame({"group": "single", "parameter": "alpha", "estimate": 0.126,
                          "method": ["text_bootstrap", "cluster_bootstrap", "model_jackknife", "profile_likelihood"],
                          "lo": [0.10, 0.095, 0.089, 0.110], "hi": [0.15, 0.16, 0.163, 0.174], "level": 0.95})
    row = envelope_intervals(table).iloc[0]
    assert (row["lo"], row["hi"]) == (0.089, 0.174)
    assert (row["lo_method"], row["hi_method"]) == ("model_jackknife", "profile_likelihood")
    assert row["method"] == "lo: model_jackknife; hi: profile_likelihood"
    nan_end = table.assign(lo=[np.nan, 0.095, 0.089, 0.110], hi=[0.5, 0.16, 0.163, np.nan])
    row = envelope_intervals(nan_end).iloc[0]
    assert (row["lo"], row["hi"], row["hi_method"]) == (0.089, 0.5, "text_bootstrap")


def test_profile_band_holds_the_fit_and_the_accepted_curves():
    from mmlaw_utils.analysis.profile import profile_intervals
    from mmlaw_utils.analysis.uncertainty import curve_band, profile_draws

    params_b = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0])
    losses = 3.0 * params_b**-0.4 + 2.0 + np.array([0.05, -0.08, 0.1, -0.03, 0.02, -0.09, 0.04])
    fit = _fit_on(params_b, losses)
    draws = profile_draws({"g": fit}, {"g": (params_b, losses)})
    interval = profile_intervals(fit, params_b, losses)["alpha"]
    # the accepted exponents span the alpha profile interval (to the grid's resolution)
    assert draws["alpha"].min() >= interval.lo - 1e-9 and draws["alpha"].max() <= interval.hi + 1e-9
    assert draws["alpha"].min() < fit.alpha < draws["alpha"].max()
    x = np.geomspace(0.05, 20, 9)
    lo, hi, used = curve_band(fit, {"profile_likelihood": draws}, "g", x)
    assert used == ["profile_likelihood"]
    assert np.all(lo <= predict(fit, x) + 1e-9) and np.all(hi >= predict(fit, x) - 1e-9)


def test_reaches_bound():
    assert reaches_bound(0.0, 5.0, (0.0, math.inf))
    assert reaches_bound(1.0, math.inf, (0.0, math.inf))
    assert reaches_bound(0.2, 5.0, (1e-3, 5.0))
    assert not reaches_bound(0.2, 4.0, (1e-3, 5.0))


def test_sensitivity_flags_a_model_that_moves_the_fit_beyond_its_profile_interval():
    params_b = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    fit = _fit_on(params_b, 3.0 * params_b**-0.4 + 2.0 + np.array([0.05, -0.08, 0.1, -0.03, 0.02, -0.09]))
    profiles = {"single": {"alpha": ProfileInterval("alpha", fit.alpha, 0.3, 0.5, 0.95, False, False),
                           "L_inf": ProfileInterval("L_inf", fit.L_inf, 1.0, 3.0, 0.95, False, False)}}
    jack = pd.DataFrame({"left_out": [0, 1, 2], "group": "single", "A": 1.0, "alpha": [0.45, 0.9, np.nan],
                         "L_inf": [2.5, 2.0, np.nan], "n_frontier": [6, 6, 3],
                         "status": ["ok", "ok", "failed: 3 points"]})
    table = sensitivity_table(jack, {"single": fit}, profiles, ["m0", "m1", "m2"]).set_index("left_out")
    assert table["influential"].to_dict() == {"m0": False, "m1": True, "m2": True}
    assert "alpha outside" in table.loc["m1", "reason"] and "not possible" in table.loc["m2", "reason"]
    assert table.loc["m1", "alpha_change"] == pytest.approx(0.9 - fit.alpha)


def test_curve_band_is_the_envelope_of_the_methods():
    from mmlaw_utils.analysis.uncertainty import curve_band

    params_b = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    fit = _fit_on(params_b, 3.0 * params_b**-0.4 + 2.0 + np.array([0.05, -0.08, 0.1, -0.03, 0.02, -0.09]))
    x = np.array([1.0])
    boot = pd.DataFrame({"group": "g", "A": [1.0, 2.0, 3.0, np.nan], "alpha": 0.5, "L_inf": 0.0})
    jack = pd.DataFrame({"group": "g", "A": [fit.A - 1.0, fit.A + 1.0], "alpha": 0.0, "L_inf": fit.L_inf})
    lo, hi, used = curve_band(fit, {"text_bootstrap": boot}, "g", x, level=0.5)
    assert (lo[0], hi[0], used) == (pytest.approx(1.5), pytest.approx(2.5), ["text_bootstrap"])
    # jackknife curves at P = 1: fit.A + L_inf -/+ 1, so se = sqrt(1/2 * 2) = 1 around the fitted curve
    lo, hi, used = curve_band(fit, {"text_bootstrap": boot, "model_jackknife": jack}, "g", x, level=0.5)
    z = norm.ppf(0.75)
    centre = fit.A + fit.L_inf
    assert lo[0] == pytest.approx(min(1.5, centre - z)) and hi[0] == pytest.approx(max(2.5, centre + z))
    assert used == ["text_bootstrap", "model_jackknife"]
    lo, _, used = curve_band(fit, {}, "g", x)
    assert np.isnan(lo).all() and used == []


def test_text_field_reads_the_field_without_filling_it_in(tmp_path):
    import json

    from mmlaw_utils.texts import text_field

    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (
        {"text_id": "a-0", "text": "x", "source": "doc A", "domain": "code"},
        {"text_id": "b-0", "text": "y", "source": "doc B", "domain": None})))
    assert text_field(path, ["b-0", "a-0"], "source") == ["doc B", "doc A"]
    assert text_field(path, ["a-0", "b-0"], "domain") == ["code", None]
    no_source = tmp_path / "plain.jsonl"
    no_source.write_text(json.dumps({"text_id": "a-0", "text": "x"}) + "\n")
    assert text_field(no_source, ["a-0"], "source") is None and text_field("synthetic", ["a-0"], "source") is None
    with pytest.raises(KeyError, match="c-0"):
        text_field(path, ["c-0"], "source")
