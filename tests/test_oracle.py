"""Oracle losses (eqs. 3-4): hand-computed cases, a naive-loop reference, and a superset property."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmlaw_utils.analysis.oracle import (
    blocked_text_sums,
    oracle_loss,
    pair_dominance,
    pair_index,
    pair_minimum_sums,
    pair_oracle_losses,
    pair_win_shares,
    pair_winners,
    per_text_oracle,
    per_text_winners,
    win_shares,
)

# 3 models x 4 texts, nats
HAND = np.array(
    [
        [1.0, 5.0, 3.0, 2.0],
        [2.0, 2.0, 4.0, 2.0],
        [0.0, 6.0, 1.0, 9.0],
    ]
)


def naive_pair_matrix(L: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Reference: explicit double loop over pairs and texts in Python floats."""
    k, n = L.shape
    w = np.ones(n) if weights is None else weights
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            out[i, j] = sum(min(L[i, t], L[j, t]) * w[t] for t in range(n)) / sum(w)
    return out


def test_oracle_loss_hand_computed():
    assert oracle_loss(HAND, [0]) == pytest.approx(11 / 4)
    assert oracle_loss(HAND, [0, 1]) == pytest.approx((1 + 2 + 3 + 2) / 4)
    assert oracle_loss(HAND, [1, 2]) == pytest.approx((0 + 2 + 1 + 2) / 4)
    assert oracle_loss(HAND, [0, 1, 2]) == pytest.approx((0 + 2 + 1 + 2) / 4)
    assert oracle_loss(HAND, 2) == pytest.approx(16 / 4)
    np.testing.assert_array_equal(per_text_oracle(HAND, [0, 2]), [0.0, 5.0, 1.0, 2.0])


def test_pair_matrix_hand_computed():
    M = pair_oracle_losses(HAND)
    expected = np.array(
        [
            [11 / 4, 8 / 4, 8 / 4],
            [8 / 4, 10 / 4, 5 / 4],
            [8 / 4, 5 / 4, 16 / 4],
        ]
    )
    np.testing.assert_allclose(M, expected, rtol=1e-15)


@pytest.mark.parametrize("block_texts", [1, 3, 7, 4096])
def test_pair_matrix_matches_naive_loop_any_blocking(block_texts):
    rng = np.random.default_rng(1)
    L = rng.gamma(3.0, 200.0, size=(9, 23))
    M = pair_oracle_losses(L, block_texts=block_texts)
    np.testing.assert_allclose(M, naive_pair_matrix(L), rtol=1e-12)
    np.testing.assert_array_equal(M, M.T)
    np.testing.assert_allclose(np.diag(M), L.mean(axis=1), rtol=1e-12)


def test_weighted_pair_matrix_matches_explicit_resample():
    rng = np.random.default_rng(2)
    L = rng.gamma(3.0, 200.0, size=(6, 17))
    counts = rng.multinomial(17, np.full(17, 1 / 17))
    M = pair_oracle_losses(L, weights=counts, block_texts=5)
    resampled = np.repeat(L, counts, axis=1)  # the texts drawn, explicitly
    np.testing.assert_allclose(M, naive_pair_matrix(resampled), rtol=1e-12)


def test_pair_with_a_model_winning_everywhere_equals_its_single_loss_exactly():
    rng = np.random.default_rng(3)
    L = rng.gamma(3.0, 200.0, size=(5, 10_000))
    L[2] = L.min(axis=0) - 1.0  # model 2 wins on every text
    M = pair_oracle_losses(L, block_texts=999)
    for j in range(5):
        assert M[2, j] == M[2, 2] == M[j, 2]  # bitwise: same summation order


def test_winners_and_shares_hand_computed():
    np.testing.assert_array_equal(per_text_winners(HAND), [2, 1, 2, 0])  # text 4: tie 0/1 -> first (0)
    np.testing.assert_array_equal(pair_winners(HAND, 1, 0), [0, 1, 0, 1])  # tie goes to the first named (1)
    np.testing.assert_allclose(win_shares(HAND, [0, 1]), [(1 + 1 + 0.5) / 4, (1 + 0.5) / 4])
    np.testing.assert_allclose(win_shares(HAND), [0.5 / 4, 1.5 / 4, 2 / 4])
    W = pair_win_shares(HAND)
    assert W[0, 1] == pytest.approx(2.5 / 4) and W[1, 0] == pytest.approx(1.5 / 4)
    assert W[0, 2] == pytest.approx(2 / 4) and W[2, 1] == pytest.approx(2 / 4)
    np.testing.assert_array_equal(np.diag(W), 1.0)


def test_pair_win_shares_match_naive_and_complement():
    rng = np.random.default_rng(4)
    L = rng.integers(0, 4, size=(7, 31)).astype(float)  # many ties
    W = pair_win_shares(L, block_texts=8)
    for i, j in itertools.permutations(range(7), 2):
        wins = sum(1.0 if L[i, t] < L[j, t] else 0.5 if L[i, t] == L[j, t] else 0.0 for t in range(31))
        assert W[i, j] == pytest.approx(wins / 31)
        assert W[i, j] + W[j, i] == pytest.approx(1.0)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty subset"):
        oracle_loss(HAND, [])
    with pytest.raises(IndexError, match="outside"):
        oracle_loss(HAND, [0, 3])
    bad = HAND.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="model row 1, text column 2"):
        pair_oracle_losses(bad)
    with pytest.raises(ValueError, match="2-D"):
        pair_oracle_losses(np.ones(4))


@settings(max_examples=60, deadline=None)
@given(
    L=arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 12)),
             elements=st.floats(0.0, 1e4, allow_nan=False, allow_infinity=False)),
    data=st.data(),
)
def test_oracle_of_superset_never_higher(L, data):
    k = L.shape[0]
    subset = data.draw(st.lists(st.integers(0, k - 1), min_size=1, unique=True))
    extra = data.draw(st.lists(st.integers(0, k - 1), unique=True))
    superset = sorted(set(subset) | set(extra))
    assert oracle_loss(L, superset) <= oracle_loss(L, subset)
    # pair matrix consistent with the general subset oracle
    M = pair_oracle_losses(L)
    i, j = data.draw(st.integers(0, k - 1)), data.draw(st.integers(0, k - 1))
    assert M[i, j] == pytest.approx(oracle_loss(L, [i, j]), rel=1e-12, abs=1e-9)
    assert M[i, j] <= min(M[i, i], M[j, j]) + 1e-9


def test_pair_dominance_hand_computed():
    L = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 3.0], [0.0, 9.0, 9.0]])
    D = pair_dominance(L, block_texts=2)
    expected = np.array([[True, True, False], [False, True, False], [False, False, True]])
    np.testing.assert_array_equal(D, expected)


def test_weighted_pairs_with_a_model_winning_everywhere_tie_exactly():
    rng = np.random.default_rng(8)
    L = rng.gamma(3.0, 200.0, size=(40, 3000))
    L[7] = L.min(axis=0) - 1.0
    counts = rng.multinomial(3000, np.full(3000, 1 / 3000)).astype(float)
    M = pair_oracle_losses(L, weights=counts, block_texts=1000)
    assert np.all(M[7] == M[7, 7])


def test_pair_index_hand_computed():
    index = pair_index(["a", "b", "a", "b"])
    np.testing.assert_array_equal(index.i, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(index.j, [1, 2, 3, 2, 3, 3])
    np.testing.assert_array_equal(index.same_family, [False, True, False, False, True, False])
    np.testing.assert_array_equal(index.cross_family, ~index.same_family)
    assert index.group.tolist() == ["cross_family", "same_family", "cross_family", "cross_family", "same_family",
                                    "cross_family"]
    assert len(index) == 6 and len(pair_index(["x"])) == 0


def test_pair_minimum_sums_hand_computed():
    singles, pairs = pair_minimum_sums(HAND, block_texts=3)
    np.testing.assert_array_equal(singles, [11.0, 10.0, 16.0])
    # pairs (0,1), (0,2), (1,2): sums of per-text minima
    np.testing.assert_array_equal(pairs, [1 + 2 + 3 + 2, 0 + 5 + 1 + 2, 0 + 2 + 1 + 2])
    counts = np.array([[2, 0, 1, 1], [0, 1, 0, 3]])
    w_singles, w_pairs = pair_minimum_sums(HAND, counts, block_texts=3)
    np.testing.assert_array_equal(w_singles[:, 0], [2 + 3 + 2, 4 + 4 + 2, 0 + 1 + 9])
    np.testing.assert_array_equal(w_pairs[:, 1], [2 + 6, 5 + 6, 2 + 6])


def test_blocked_text_sums_blocking_changes_no_exact_sum():
    values = np.arange(12, dtype=float).reshape(2, 6)
    for block in (1, 4, 6, 100):
        np.testing.assert_array_equal(blocked_text_sums(values, block), [15.0, 51.0])
    np.testing.assert_array_equal(blocked_text_sums(values[0], 4), [15.0])
