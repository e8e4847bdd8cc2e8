"""Pareto frontiers (§3.4) and the three collaboration groups (§3.3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlaw_utils.analysis.frontier import collaboration_groups, group_counts, is_dominated, pareto_front
from mmlaw_utils.analysis.oracle import oracle_loss


def naive_dominated(params, losses):
    """Reference O(n^2) definition: another point with params <= and loss <=, one strictly."""
    n = len(params)
    return np.array(
        [
            any(
                params[j] <= params[i] and losses[j] <= losses[i] and (params[j] < params[i] or losses[j] < losses[i])
                for j in range(n)
                if j != i
            )
            for i in range(n)
        ],
        dtype=bool,
    )


def test_hand_computed_front():
    params = [1, 2, 3, 4, 5, 2]
    losses = [10, 8, 9, 5, 5, 7]
    # (1,10) kept; (2,8) beaten by (2,7); (3,9) beaten by (2,7); (4,5) kept; (5,5) equal loss, more params
    np.testing.assert_array_equal(pareto_front(params, losses), [0, 5, 3])


def test_exact_duplicates_are_both_kept_and_sorted_by_params():
    params = [3.0, 1.0, 3.0, 2.0]
    losses = [1.0, 4.0, 1.0, 2.0]
    np.testing.assert_array_equal(pareto_front(params, losses), [1, 3, 0, 2])


def test_equal_params_higher_loss_and_equal_loss_more_params_are_dominated():
    np.testing.assert_array_equal(pareto_front([5, 5], [2.0, 3.0]), [0])
    np.testing.assert_array_equal(pareto_front([5, 6], [2.0, 2.0]), [0])
    assert pareto_front([], []).size == 0
    with pytest.raises(ValueError, match="differ in length"):
        pareto_front([1, 2], [1.0])


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(
        st.tuples(st.integers(1, 8), st.integers(0, 8)),  # small ranges force ties and duplicates
        min_size=1,
        max_size=40,
    )
)
def test_front_points_are_exactly_the_non_dominated_ones(points):
    params = np.array([p for p, _ in points], dtype=float)
    losses = np.array([y for _, y in points], dtype=float) / 3.0
    front = pareto_front(params, losses)
    dominated = naive_dominated(params, losses)
    assert not dominated[front].any()  # every frontier point is non-dominated
    others = np.setdiff1d(np.arange(len(points)), front)
    assert dominated[others].all()  # every other point is dominated
    assert np.all(np.diff(params[front]) >= 0)  # sorted by params
    np.testing.assert_array_equal(is_dominated(params, losses), dominated)


def test_groups_hand_computed():
    L = np.array(
        [
            [4.0, 4.0],
            [3.0, 5.0],
            [5.0, 1.0],
            [2.0, 6.0],
        ]
    )
    params = np.array([10, 20, 30, 40])
    families = np.array(["a", "a", "b", "b"])
    groups = collaboration_groups(L, params, families)
    counts = group_counts(groups).set_index("group")
    assert counts.loc["single", "raw_points"] == 4
    assert counts.loc["same_family", "raw_points"] == 2
    assert counts.loc["cross_family", "raw_points"] == 4
    same = groups["same_family"].set_index("members")
    assert same.loc[[(0, 1)], "params"].item() == 30 and same.loc[[(0, 1)], "loss"].item() == pytest.approx(3.5)
    assert same.loc[[(2, 3)], "params"].item() == 70 and same.loc[[(2, 3)], "loss"].item() == pytest.approx(1.5)
    cross = groups["cross_family"]
    assert sorted(cross["members"]) == [(0, 2), (0, 3), (1, 2), (1, 3)]
    for members, params_total, loss in zip(cross["members"], cross["params"], cross["loss"]):
        assert params_total == params[list(members)].sum()
        assert loss == pytest.approx(oracle_loss(L, members))
    # cross: (0,2) 40 -> 2.5, (0,3) 50 -> 3.0, (1,2) 50 -> 2.0, (1,3) 60 -> 4.0
    assert sorted(cross.loc[cross["on_frontier"], "members"]) == [(0, 2), (1, 2)]
    single = groups["single"]
    np.testing.assert_allclose(single["loss"], L.mean(axis=1))
    # singles: (10, 4), (20, 4), (30, 3), (40, 4)
    assert single["on_frontier"].tolist() == [True, False, True, False]
    assert counts.loc["cross_family", "pareto_points"] == 2


def test_pairs_with_a_model_winning_everywhere_tie_and_only_the_cheapest_stays():
    rng = np.random.default_rng(5)
    k = 8
    L = rng.gamma(3.0, 100.0, size=(k, 500))
    L[0] = L.min(axis=0) - 0.5  # model 0 wins every text: all pairs (0, j) tie exactly in loss
    params = np.array([5, 7, 3, 3, 9, 11, 2, 8]) * 10**8
    families = np.array([f"f{i}" for i in range(k)])  # all pairs cross-family
    cross = collaboration_groups(L, params, families)["cross_family"]
    with_zero = cross[[0 in m for m in cross["members"]]]
    assert with_zero["loss"].nunique() == 1  # exact tie
    best = with_zero["loss"].iloc[0]
    assert best == cross["loss"].min()
    tied_front = cross[cross["on_frontier"] & (cross["loss"] == best)]
    assert tied_front["members"].tolist() == [(0, 6)]  # cheapest partner (2e8)
    # two equally cheap partners: exact duplicates, both kept
    params2 = params.copy()
    params2[6] = params2[2]
    cross2 = collaboration_groups(L, params2, families)["cross_family"]
    tied2 = cross2[cross2["on_frontier"] & (cross2["loss"] == best)]
    assert sorted(tied2["members"]) == [(0, 2), (0, 3), (0, 6)]


def test_groups_validate_inputs():
    L = np.ones((3, 2))
    with pytest.raises(ValueError, match="one entry per model"):
        collaboration_groups(L, [1, 2], ["a", "a", "b"])
    with pytest.raises(ValueError, match="positive"):
        collaboration_groups(L, [1, 0, 2], ["a", "a", "b"])
    with pytest.raises(ValueError, match="whole parameter counts"):
        collaboration_groups(L, [0.5, 1.0, 2.0], ["a", "a", "b"])


def test_group_sizes_for_a_larger_pool():
    rng = np.random.default_rng(6)
    families = np.array(["a"] * 4 + ["b"] * 3 + ["c"])
    L = rng.gamma(3.0, 100.0, size=(8, 50))
    groups = collaboration_groups(L, np.arange(1, 9) * 10**9, families)
    n_same = sum(1 for i, j in itertools.combinations(range(8), 2) if families[i] == families[j])
    assert len(groups["same_family"]) == n_same == 6 + 3
    assert len(groups["cross_family"]) == 28 - n_same
