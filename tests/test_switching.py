"""The fixed-share switching mixture (analysis/switching.py) against hand-computed cases and its bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmlaw_utils.analysis.mixture import mixture_loss
from mmlaw_utils.analysis.switching import document_split, fit_switching_rate, switching_losses


def _random_segments(rng: np.random.Generator, n_models: int, n_texts: int, max_segments: int, scale: float = 3.0):
    lengths = rng.integers(1, max_segments + 1, n_texts)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    losses = rng.gamma(2.0, scale, size=(n_models, int(lengths.sum())))
    return losses, starts, lengths


def test_two_models_three_segments_by_hand():
    # model a: 1, 2, 0.5 nats; model b: 2, 0.5, 3 nats; alpha = 0.2
    alpha = 0.2
    losses = np.array([[1.0, 2.0, 0.5], [2.0, 0.5, 3.0]])
    w = [0.5, 0.5]
    expected = 0.0
    for s in range(3):
        p = [math.exp(-losses[0, s]), math.exp(-losses[1, s])]
        mix = w[0] * p[0] + w[1] * p[1]
        expected += -math.log(mix)
        post = [w[0] * p[0] / mix, w[1] * p[1] / mix]
        w = [(1 - alpha) * post[0] + alpha / 2, (1 - alpha) * post[1] + alpha / 2]
    got = switching_losses(losses, np.array([0]), np.array([3]), alpha)
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(expected, rel=1e-12)
    # worked on paper to 5 digits: segments 1.37989 + 1.25937 + 1.38266 nats (weights of a: 0.5, 0.68485, 0.36125)
    assert got[0, 0] == pytest.approx(1.37989 + 1.25937 + 1.38266, abs=2e-4)


def test_alpha_zero_is_the_text_level_bayesian_mixture():
    rng = np.random.default_rng(0)
    losses, starts, lengths = _random_segments(rng, 4, 30, 40)
    text_losses = np.add.reduceat(losses, starts, axis=1)
    got = switching_losses(losses, starts, lengths, 0.0)[0]
    want = mixture_loss(text_losses, [0, 1, 2, 3], per_text=True)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # with a prior, too
    prior = np.array([0.1, 0.2, 0.3, 0.4])
    got = switching_losses(losses, starts, lengths, 0.0, prior=prior)[0]
    np.testing.assert_allclose(got, mixture_loss(text_losses, [0, 1, 2, 3], prior, per_text=True), rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.9])
def test_one_segment_per_text_is_the_text_level_mixture(alpha):
    rng = np.random.default_rng(1)
    losses = rng.gamma(3.0, 200.0, size=(3, 25))  # hundreds of nats: exp(-L) underflows without log-sum-exp
    got = switching_losses(losses, np.arange(25), np.ones(25, dtype=int), alpha)[0]
    np.testing.assert_allclose(got, mixture_loss(losses, [0, 1, 2], per_text=True), rtol=1e-12)


def test_never_below_the_segment_oracle_and_bounded_at_alpha_zero():
    rng = np.random.default_rng(2)
    losses, starts, lengths = _random_segments(rng, 5, 50, 60)
    oracle = np.add.reduceat(losses.min(axis=0), starts)
    best_single = np.add.reduceat(losses, starts, axis=1).min(axis=0)
    got = switching_losses(losses, starts, lengths, [0.0, 1e-3, 0.1, 0.5, 0.99])
    assert (got >= oracle[None] - 1e-9).all()
    assert (got[0] <= best_single + math.log(5) + 1e-9).all()


def test_texts_may_come_in_any_order_and_alphas_are_independent():
    rng = np.random.default_rng(3)
    losses, starts, lengths = _random_segments(rng, 3, 20, 15)
    both = switching_losses(losses, starts, lengths, [0.0, 0.3])
    one = switching_losses(losses, starts, lengths, 0.3)
    np.testing.assert_array_equal(both[1], one[0])
    perm = rng.permutation(20)
    np.testing.assert_allclose(switching_losses(losses, starts[perm], lengths[perm], 0.3)[0], one[0][perm], rtol=1e-13)


def test_fitted_rate_finds_switching_where_segments_alternate():
    # model 0 wins the first half of every text, model 1 the second: switching pays
    n_texts, half = 40, 20
    lengths = np.full(n_texts, 2 * half)
    starts = np.arange(n_texts) * 2 * half
    first = np.r_[np.full(half, 1.0), np.full(half, 5.0)]
    losses = np.stack([np.tile(first, n_texts), np.tile(first[::-1], n_texts)])
    alpha, loss = fit_switching_rate(losses, starts, lengths)
    assert 0 < alpha < 0.5
    assert loss < switching_losses(losses, starts, lengths, 0.0)[0].mean()
    # and where one model always wins, the best rate is (near) 0
    alpha_flat, _ = fit_switching_rate(np.stack([np.ones(lengths.sum()), np.full(lengths.sum(), 3.0)]), starts, lengths)
    assert alpha_flat < 1e-4


def test_bad_input_names_the_text_or_rate():
    losses = np.ones((2, 5))
    with pytest.raises(ValueError, match="text 1"):
        switching_losses(losses, np.array([0, 3]), np.array([3, 3]), 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        switching_losses(losses, np.array([0]), np.array([5]), 1.0)


def test_document_split_keeps_documents_together_and_is_seeded():
    clusters = np.repeat([f"doc{i}" for i in range(10)], 3)
    domains = np.repeat(["a", "b"], 15)
    fit, ev = document_split(clusters, seed=4, strata=domains)
    assert set(clusters[fit]).isdisjoint(clusters[ev])
    assert np.union1d(fit, ev).tolist() == list(range(30))
    assert sorted(set(domains[fit])) == ["a", "b"] and sorted(set(domains[ev])) == ["a", "b"]
    again = document_split(clusters, seed=4, strata=domains)
    np.testing.assert_array_equal(fit, again[0])
    with pytest.raises(ValueError, match="two documents"):
        document_split(["only"] * 4)
