"""Padding on pair frontiers: effective members, the padding null, and the null applied to the paper's eq. 8."""

from __future__ import annotations

import numpy as np
import pytest

from mmlaw_utils.analysis.fit import fit_points, predict
from mmlaw_utils.analysis.frontier import collaboration_groups
from mmlaw_utils.analysis.groups import PAPER_TABLE1
from mmlaw_utils.analysis.oracle import pair_oracle_losses, pair_win_shares
from mmlaw_utils.analysis.padding import (
    PAPER_ASSUMED_SIZES_B,
    cheapest_partner,
    effective_mask,
    member_gains,
    padding_null_points,
    padding_table,
    paper_padding_null,
    paper_padding_table,
)

# m0 (family a, 10 params), m1 (a, 1 param: wins no text against m0), m2 (b, 3 params)
L = np.array([[5.0, 5.0, 5.0], [6.0, 6.0, 6.0], [2.0, 8.0, 8.0]])
PARAMS = np.array([10, 1, 3])
FAMILIES = np.array(["a", "a", "b"])


def test_member_gains_and_effectiveness_by_hand():
    full = pair_oracle_losses(L)
    pairs = [(0, 1), (0, 2), (1, 2)]
    # (0,1): without m0 -> 6 (gain 1), without m1 -> 5 (gain 0); (0,2) = [2,5,5] -> 4: without m0 6, without m2 5
    np.testing.assert_allclose(member_gains(full, pairs), [[1.0, 0.0], [2.0, 1.0], [4 / 3, 4 / 3]])
    assert effective_mask(full, pairs).tolist() == [False, True, True]
    assert effective_mask(full, pairs, min_gain=1.5).tolist() == [False, False, False]
    # m2 wins a third of the texts against m0: effective by win share even at a high min_gain
    shares = pair_win_shares(L)
    assert effective_mask(full, pairs, win_shares=shares, min_gain=1.5, min_win_share=0.3).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="win_shares"):
        effective_mask(full, pairs, min_win_share=0.3)


def test_cheapest_partner_by_group():
    assert cheapest_partner(PARAMS, FAMILIES, "same_family").tolist() == [1, 0, -1]
    assert cheapest_partner(PARAMS, FAMILIES, "cross_family").tolist() == [2, 2, 1]
    with pytest.raises(ValueError, match="single"):
        cheapest_partner(PARAMS, FAMILIES, "single")


def test_padding_null_points_keep_the_singles_loss_at_the_padded_size():
    params, losses = padding_null_points(np.array([10, 1]), np.array([5.0, 6.0]), np.array([1, 10]))
    # (11, 5) dominates (11, 6)
    assert params.tolist() == [11.0] and losses.tolist() == [5.0]


def _nested_family_pool():
    """One family of six nested models (bigger is better on every text) plus a tiny sibling that wins nothing."""
    rng = np.random.default_rng(0)
    base = rng.uniform(50, 100, size=40)
    sizes = np.array([2, 4, 8, 16, 32, 64]) * 10**6
    losses = [base * (1 + 3 * s**-0.3 * 10) for s in sizes / 1e6]
    L_pool = np.vstack([*losses, base * 100])  # the sibling: worst on every text
    params = np.r_[sizes, 10**5]
    return L_pool, params, np.array(["f"] * 7)


def test_a_sibling_that_wins_no_text_pads_every_same_family_point_and_the_null_is_the_fit():
    L_pool, params, families = _nested_family_pool()
    full = pair_oracle_losses(L_pool)
    groups = collaboration_groups(L_pool, params, families, pair_losses=full)
    table, fits = padding_table(groups, full, params, families)
    row = table.set_index("group").loc["same_family"]
    assert row["padded_points"] == row["pareto_points"] == 6 and row["padded_share"] == 1.0
    # the frontier is exactly the null: each model plus the sibling at the model's own loss
    assert row["alpha_all"] == pytest.approx(row["alpha_null"], rel=1e-12)
    assert row["L_inf_all"] == pytest.approx(row["L_inf_null"], rel=1e-12, abs=1e-9)
    # the singles alone are a different (less steep) law: padding changes the exponent
    single = fit_points(params[:6] / 1e9, np.diag(full)[:6])
    assert single.alpha < row["alpha_null"]
    assert fits["same_family"]["effective"].status == "too_few_points"


def test_paper_padding_null_is_eq7_refitted_on_the_padded_eq8_points():
    law = PAPER_TABLE1.set_index("group").loc["single"]
    sizes = [s for family in PAPER_ASSUMED_SIZES_B.values() for s in family]
    fit = paper_padding_null(law, sizes, 0.5)
    by_hand = fit_points(np.array(sorted(sizes)) + 0.5, predict(law, np.array(sorted(sizes))))
    assert fit.alpha == pytest.approx(by_hand.alpha) and fit.L_inf == pytest.approx(by_hand.L_inf)
    table = paper_padding_table((0.1, 0.5, 1.5))
    # a larger zero-gain sibling steepens the padded law further, and every null is steeper than eq. 8
    assert table["alpha_null"].is_monotonic_increasing
    assert (table["alpha_null"] > law["alpha"]).all() and table["reproduces_alpha"].all()
    assert (table["reproduces_L_inf"] == (table["L_inf_null"] >= law["L_inf"])).all()
