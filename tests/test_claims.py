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


def test_budget_verdicts():
    def budget(lo, hi):
        return pd.DataFrame({"comparison": "pairs_vs_single", "gain": np.add(lo, hi) / 2, "gain_lo": lo, "gain_hi": hi,
                             "level": 0.95, "n_resamples": 100})
    assert budget_verdict("pairs_vs_single", budget([1.0, 2.0], [3.0, 4.0]))["verdict"] == "agrees"
    assert budget_verdict("pairs_vs_single", budget([1.0, -2.0], [3.0, -1.0]))["verdict"] == "disagrees"
    assert budget_verdict("pairs_vs_single", budget([1.0, 0.0], [3.0, 0.0]))["verdict"] == "inconclusive"


def test_claims_table_gives_each_claim_exactly_one_verdict():
    fits = {"single": GOOD, "same_family": GOOD, "cross_family": FLOORLESS}
    table = intervals([(g, p, "profile_likelihood", 1.0, 0.5, 1.5) for g in fits for p in ("alpha", "L_inf", "A")])
    claims = claims_table(fits, table)
    assert len(claims) == 3 + len(ORDERING_CLAIMS) and claims["claim"].is_unique
    counts = verdict_counts(claims)
    assert sum(counts.values()) == len(claims)
    floor_claims = claims[claims["claim"].str.contains("floor")]
    assert (floor_claims["verdict"] == "not identified").all()
