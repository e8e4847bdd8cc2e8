"""Verdicts of the paper's claims: identification first, then interval overlap, model support and budget gains."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.claims import (
    ORDERING_CLAIMS,
    OrderingClaim,
    budget_verdict,
    claims_table,
    ordering_verdict,
    power_law_verdict,
    verdict_counts,
)
from mmlaw_utils.analysis.fit import fit_scaling_law

PARAMS_B = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0])
NOISE = np.array([0.05, -0.08, 0.10, -0.03, 0.02, -0.09, 0.06, -0.02])
GOOD = fit_scaling_law(PARAMS_B, 3.0 * PARAMS_B**-0.4 + 2.0 + NOISE)
FLOORLESS = fit_scaling_law(PARAMS_B, 5.0 * PARAMS_B**-0.15 - 1.0 + NOISE)  # best floor < 0: held at its bound 0
CLAIM = OrderingClaim("a > b", "alpha", "a", "b", True)


def intervals(rows):
    """Uncertainty table from (group, parameter, method, estimate, lo, hi)."""
    return pd.DataFrame(rows, columns=["group", "parameter", "method", "estimate", "lo", "hi"]).assign(level=0.95)


def test_the_fixtures_are_what_the_tests_need():
    assert GOOD.ok and FLOORLESS.L_inf_at_bound and FLOORLESS.L_inf == 0.0


def test_disjoint_intervals_agree_or_disagree_with_the_claimed_order():
    table = intervals([("a", "alpha", "profile_likelihood", 0.9, 0.8, 1.0), ("b", "alpha", "profile_likelihood", 0.4, 0.3, 0.5)])
    assert ordering_verdict(CLAIM, {"a": GOOD, "b": GOOD}, table)["verdict"] == "agrees"
    reverse = OrderingClaim("b > a", "alpha", "b", "a", True)
    assert ordering_verdict(reverse, {"a": GOOD, "b": GOOD}, table)["verdict"] == "disagrees"


def test_overlap_of_the_widest_intervals_is_inconclusive():
    table = intervals([
        ("a", "alpha", "text_bootstrap", 0.9, 0.85, 0.95), ("b", "alpha", "text_bootstrap", 0.4, 0.35, 0.45),
        ("a", "alpha", "model_jackknife", 0.9, 0.2, 1.6),  # the widest interval of a reaches b's
    ])
    verdict = ordering_verdict(CLAIM, {"a": GOOD, "b": GOOD}, table)
    assert verdict["verdict"] == "inconclusive" and "model_jackknife" in verdict["evidence"]


def test_a_floor_at_its_bound_is_never_agreement():
    table = intervals([("a", "L_inf", "profile_likelihood", 0.0, 0.0, 0.5), ("b", "L_inf", "profile_likelihood", 2.0, 1.9, 2.1)])
    lower = OrderingClaim("a has the lower floor", "L_inf", "a", "b", False)
    verdict = ordering_verdict(lower, {"a": FLOORLESS, "b": GOOD}, table)
    assert verdict["verdict"] == "not identified" and "L_inf_at_bound" in verdict["evidence"]


def test_a_profile_interval_reaching_a_bound_is_not_identified():
    table = intervals([("a", "alpha", "profile_likelihood", 0.9, 0.5, 5.0), ("b", "alpha", "profile_likelihood", 0.2, 0.1, 0.3)])
    assert ordering_verdict(CLAIM, {"a": GOOD, "b": GOOD}, table)["verdict"] == "not identified"
    failed = {"a": GOOD, "b": {"status": "failed: 3 points"}}
    assert ordering_verdict(CLAIM, failed, table)["verdict"] == "not identified"


def test_power_law_verdict_follows_the_model_comparison():
    table = intervals([("g", p, "profile_likelihood", 1.0, 0.5, 1.5) for p in ("alpha", "L_inf", "A")])

    def comparison(delta, supported):
        return pd.DataFrame({"group": "g", "form": ["eq7", "eq7_no_floor", "log_linear"], "delta_aicc": delta,
                             "loo_rmse": [1.0, 1.0, 1.0], "supported": supported})
    assert power_law_verdict("g", GOOD, table, comparison([0.0, 5.0, 6.0], [True, False, False]))["verdict"] == "agrees"
    assert power_law_verdict("g", GOOD, table, comparison([3.0, 0.0, 1.0], [False, True, False]))["verdict"] == "disagrees"
    assert power_law_verdict("g", GOOD, table, comparison([1.0, 0.0, 4.0], [False, True, False]))["verdict"] == "inconclusive"
    assert power_law_verdict("g", FLOORLESS, table, comparison([0.0, 5.0, 6.0], [True, False, False]))["verdict"] == "not identified"


def _summary(vertical, horizontal):
    """Budget summary rows from (share_better, share_worse) of the vertical and horizontal comparisons."""
    rows = []
    for axis, (better, worse) in (("vertical", vertical), ("horizontal", horizontal)):
        rows.append({"comparison": "pairs_vs_single", "axis": axis, "range_lo": 1.0, "range_hi": 2.0, "n_points": 5,
                     "share_better": better, "share_worse": worse, "share_tied": 1 - better - worse,
                     "share_extra_model_cost": 0.0, "median": 1.0, "band_critical_value": 3.0, "level": 0.95,
                     "n_resamples": 100})
    return pd.DataFrame(rows)


def test_budget_verdicts_rest_on_both_curves():
    assert budget_verdict("pairs_vs_single", _summary((0.6, 0.1), (0.3, 0.2)))["verdict"] == "agrees"
    # better than worse on both, but on less than half of either range
    assert budget_verdict("pairs_vs_single", _summary((0.4, 0.1), (0.3, 0.2)))["verdict"] == "inconclusive"
    # one sliver of a budget no longer decides: better on most of ln P, worse on the horizontal
    assert budget_verdict("pairs_vs_single", _summary((0.9, 0.01), (0.1, 0.4)))["verdict"] == "inconclusive"
    assert budget_verdict("pairs_vs_single", _summary((0.1, 0.5), (0.0, 0.3)))["verdict"] == "disagrees"
    evidence = budget_verdict("pairs_vs_single", _summary((0.6, 0.1), (0.3, 0.2)))["evidence"]
    assert "better on 60%" in evidence and "sup-t" in evidence


def test_padding_null_inside_the_envelope_explains_an_exponent_claim():
    claim = OrderingClaim("a > single", "alpha", "a", "single", True)
    table = intervals([("a", "alpha", "profile_likelihood", GOOD.alpha + 0.05, GOOD.alpha - 0.02, GOOD.alpha + 0.1),
                       ("single", "alpha", "profile_likelihood", GOOD.alpha, GOOD.alpha - 0.01, GOOD.alpha + 0.01)])
    fits = {"a": GOOD, "single": GOOD}
    padding = pd.DataFrame({"group": ["a"], "alpha_null": [GOOD.alpha + 0.005]})
    assert ordering_verdict(claim, fits, table, padding)["verdict"] == "explained by padding"
    # the null outside a's envelope, or ordered against the claim: padding does not explain it
    outside = ordering_verdict(claim, fits, table, padding.assign(alpha_null=GOOD.alpha + 0.2))
    reversed_null = ordering_verdict(claim, fits, table, padding.assign(alpha_null=GOOD.alpha - 0.005))
    assert "padding" not in outside["verdict"] and "padding" not in reversed_null["verdict"]


def test_floor_rejection_replaces_not_identified_but_not_a_flat_likelihood():
    claim = OrderingClaim("lower floor", "L_inf", "a", "b", False)
    table = intervals([(g, "L_inf", "profile_likelihood", 0.0, 0.0, 5.0) for g in ("a", "b")])
    fits = {"a": FLOORLESS, "b": FLOORLESS}
    floor = pd.DataFrame({"variant": "all", "group": ["a", "b"], "rho": 0.9, "L_inf_null": 1.0, "lr": [11.0, 0.5],
                          "lr_p": [0.001, 0.48], "lr_rejects": [True, False], "curvature_outcome": "straight"})
    verdict = ordering_verdict(claim, fits, table, floor_tests=floor)
    assert verdict["verdict"] == "rejected at the paper's relative size" and "LR 11" in verdict["evidence"]
    flat = ordering_verdict(claim, fits, table, floor_tests=floor.assign(lr_rejects=False))
    assert flat["verdict"] == "not identified"
    power = power_law_verdict("a", FLOORLESS, table, None, floor_tests=floor)
    assert power["verdict"] == "rejected at the paper's relative size"


def test_claims_table_gives_each_claim_exactly_one_verdict():
    fits = {"single": GOOD, "same_family": GOOD, "cross_family": FLOORLESS}
    table = intervals([(g, p, "profile_likelihood", 1.0, 0.5, 1.5) for g in fits for p in ("alpha", "L_inf", "A")])
    claims = claims_table(fits, table)
    assert len(claims) == 3 + len(ORDERING_CLAIMS) and claims["claim"].is_unique
    counts = verdict_counts(claims)
    assert sum(counts.values()) == len(claims)
    floor_claims = claims[claims["claim"].str.contains("floor")]
    assert (floor_claims["verdict"] == "not identified").all()
