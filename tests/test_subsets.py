"""Exact subset frontiers vs brute force over all 2^K - 1 subsets, exhaustive small subsets, heuristics."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from mmlaw_utils.analysis import subsets
from mmlaw_utils.analysis.fit import predict, ScalingFit
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.oracle import oracle_loss, pair_oracle_losses


def _reference_frontier(L: np.ndarray, params: np.ndarray, lo: int = 1, hi: int | None = None):
    """Independent reference: every subset by itertools, oracle.oracle_loss, frontier.pareto_front."""
    K = L.shape[0]
    hi = K if hi is None else hi
    subs = [s for k in range(lo, hi + 1) for s in itertools.combinations(range(K), k)]
    tot = np.array([params[list(s)].sum() for s in subs])
    loss = np.array([oracle_loss(L, s) for s in subs])
    keep = pareto_front(tot, loss)
    points = sorted({(int(tot[i]), float(loss[i])) for i in keep})
    members = {(int(tot[i]), float(loss[i]), subs[i]) for i in keep}
    return points, members


def _tied_matrix(rng: np.random.Generator, K: int, N: int):
    """Integer losses (many exact ties), a duplicated model row and duplicated parameter counts."""
    L = rng.integers(10, 30, size=(K, N)).astype(np.float64)
    params = rng.integers(1, 40, size=K) * 1000
    L[K - 1] = L[0]  # an exact duplicate model ...
    params[K - 1] = params[0]  # ... with the same size
    params[1] = params[2]  # equal sizes, different losses
    L[3] = 10.0  # a model that wins or ties every text, and is the largest: it ends the frontier
    params[3] = params.max() * 2
    return L, params


def _check_against_reference(front: pd.DataFrame, L, params, lo=1, hi=None):
    points, members = _reference_frontier(L, params, lo, hi)
    got = list(zip(front["params"].astype(int), front["loss"].astype(float)))
    assert got == points
    for subset, p, loss in zip(front["subset"], front["params"], front["loss"]):
        assert lo <= len(subset) <= (hi or L.shape[0])
        assert params[list(subset)].sum() == p
        assert oracle_loss(L, subset) == loss
        assert (int(p), float(loss), tuple(subset)) in members


@pytest.mark.parametrize("seed,K", [(0, 5), (1, 8), (2, 10), (3, 12)])
def test_milp_frontier_equals_brute_force_with_ties(seed, K):
    rng = np.random.default_rng(seed)
    L, params = _tied_matrix(rng, K, 25)
    front = subsets.subset_frontier(L, params, method="milp")
    _check_against_reference(front, L, params)
    assert front["proven_optimal"].all()
    assert (front["gap"] >= -1e-9).all() and (front["lower_bound"] <= front["loss"] + 1e-9).all()
    assert subsets.subset_frontier(L, params, method="brute").equals(subsets.frontier_of(
        subsets.brute_force_points(L, params)))


@pytest.mark.parametrize("seed", [4, 5])
def test_milp_frontier_equals_brute_force_continuous(seed):
    rng = np.random.default_rng(seed)
    K, N = 11, 60
    quality = rng.uniform(1, 3, size=K)
    L = 100 * quality[:, None] * np.exp(rng.normal(0, 0.2, size=(K, N)))
    params = np.round(1e9 / quality**3).astype(np.int64)
    front = subsets.subset_frontier(L, params, method="milp")
    _check_against_reference(front, L, params)
    brute = subsets.subset_frontier(L, params, method="brute")
    _check_against_reference(brute, L, params)


@pytest.mark.parametrize("lo,hi", [(1, 2), (1, 3), (2, 2), (3, 3), (2, 4)])
def test_size_limits_equal_brute_force(lo, hi):
    rng = np.random.default_rng(10 + lo + hi)
    L, params = _tied_matrix(rng, 9, 20)
    front = subsets.subset_frontier(L, params, max_size=hi, min_size=lo, method="milp")
    _check_against_reference(front, L, params, lo, hi)
    brute = subsets.subset_frontier(L, params, max_size=hi, min_size=lo, method="brute")
    _check_against_reference(brute, L, params, lo, hi)


def test_one_model_winning_everywhere_ends_the_frontier():
    L = np.array([[5.0, 5.0, 5.0], [4.0, 4.0, 4.0], [1.0, 1.0, 1.0]])
    params = np.array([1, 2, 10])
    front = subsets.subset_frontier(L, params, method="milp")
    # {0} (1 param, 5), {1} (2 params, 4), {2} (10 params, 1): supersets of {2} tie at loss 1 and cost more
    assert list(front["subset"]) == [(0,), (1,), (2,)]
    assert list(front["loss"]) == [5.0, 4.0, 1.0]


def test_milp_walk_stopped_by_its_time_limit_says_so():
    L = np.array([[5.0, 5.0, 5.0], [4.0, 4.0, 4.0], [1.0, 1.0, 1.0]])
    params = np.array([1, 2, 10])
    done = subsets.subset_frontier(L, params, method="milp")
    assert done.attrs["complete"] and done.attrs["stop_reason"] == "complete"
    stopped = subsets.subset_frontier(L, params, method="milp", total_time_limit=0.0)
    # stopped before the first budget (every usable model, 13 parameters): nothing computed
    assert not stopped.attrs["complete"] and stopped.attrs["stop_reason"] == "time limit 0 s"
    assert stopped.attrs["stopped_at_budget"] == 13 and len(stopped) == 0


def test_dominated_models():
    L = np.array([[3.0, 3.0], [2.0, 3.0], [2.0, 3.0], [1.0, 1.0]])
    params = np.array([5, 5, 5, 4])
    # 0 is beaten by 1 at equal size; 2 duplicates 1 (drop the later row); 3 is better and cheaper than all
    assert subsets.dominated_models(L, params).tolist() == [True, True, True, False]
    params = np.array([5, 5, 5, 50])
    assert subsets.dominated_models(L, params).tolist() == [True, False, True, False]


def test_small_subsets_match_direct_computation_and_pair_matrix():
    rng = np.random.default_rng(7)
    K, N = 9, 5000  # more texts than one block: the blocked sums must still agree
    L = rng.normal(50, 10, size=(K, N))
    params = rng.integers(1, 100, size=K)
    small = subsets.small_subsets(L, params, max_size=3, block_texts=4096)
    assert len(small) == K + K * (K - 1) // 2 + K * (K - 1) * (K - 2) // 6
    pairs = pair_oracle_losses(L)
    for subset, p, loss in zip(small["subset"], small["params"], small["loss"]):
        assert p == params[list(subset)].sum()
        assert loss == pytest.approx(L[list(subset)].min(axis=0).mean(), rel=1e-13)
        if len(subset) == 2:
            assert loss == pairs[subset]  # bit for bit: same summation order as oracle.pair_oracle_losses
        if len(subset) == 1:
            assert loss == pairs[subset[0], subset[0]]


def test_triple_with_a_useless_member_ties_its_pair_exactly():
    rng = np.random.default_rng(8)
    L = rng.normal(50, 5, size=(5, 6000))
    L[4] = L.max(axis=0) + 1.0  # never wins
    small = subsets.small_subsets(L, np.arange(1, 6))
    loss = dict(zip(small["subset"], small["loss"]))
    for i, j in itertools.combinations(range(4), 2):
        assert loss[(i, j, 4)] == loss[(i, j)]
    front = subsets.frontier_of(small)
    assert not any(4 in s for s in front["subset"])


def test_heuristics_never_beat_the_exact_frontier_and_beam_finds_small_optima():
    rng = np.random.default_rng(9)
    K, N = 10, 80
    L = 100 * rng.uniform(1, 2, size=(K, 1)) * np.exp(rng.normal(0, 0.3, size=(K, N)))
    params = rng.integers(1, 1000, size=K) * 10**6
    exact = subsets.subset_frontier(L, params, method="brute")
    for points in (subsets.greedy_points(L, params), subsets.beam_points(L, params, beam_width=8)):
        check = [oracle_loss(L, s) for s in points["subset"].head(20)]
        assert np.allclose(check, points["loss"].head(20), rtol=1e-13)
        short = subsets.heuristic_shortfall(exact, subsets.frontier_of(points))
        assert (short["excess"] >= -1e-9).all()
    # an exhaustive beam (width >= all subsets of each size) is exact
    full = subsets.heuristic_shortfall(exact, subsets.frontier_of(subsets.beam_points(L, params, beam_width=10**6)))
    assert full["matched"].all()


def test_heuristic_shortfall_hand_case():
    exact = pd.DataFrame({"params": [1, 3, 5], "loss": [10.0, 8.0, 6.0]})
    heur = pd.DataFrame({"params": [1, 4], "loss": [10.0, 7.0]})
    short = subsets.heuristic_shortfall(exact, heur)
    assert short["heuristic_loss"].tolist() == [10.0, 10.0, 7.0]
    assert short["excess"].tolist() == [0.0, 2.0, 1.0]
    assert short["matched"].tolist() == [True, False, False]


def test_fit_frontiers_recovers_a_planted_law_and_flags_short_frontiers():
    params = np.array([1, 2, 4, 8, 16, 32]) * 10**8
    truth = ScalingFit(A=50.0, alpha=0.5, L_inf=100.0, A_se=0, alpha_se=0, L_inf_se=0, r2=1, rmse=0,
                       n_points=6, status="ok")
    front = pd.DataFrame({"params": params, "loss": predict(truth, params / 1e9)})
    fits = subsets.fit_frontiers({"all": front, "short": front.head(3)})
    row = fits.set_index("frontier").loc["all"]
    assert row["alpha"] == pytest.approx(0.5, rel=1e-5) and row["L_inf"] == pytest.approx(100.0, rel=1e-6)
    assert fits.set_index("frontier").loc["short", "status"] == "too_few_points"


def test_frontiers_by_size_are_nested():
    rng = np.random.default_rng(11)
    L = 100 * np.exp(rng.normal(0, 0.3, size=(7, 40)))
    params = rng.integers(1, 50, size=7) * 10**7
    fronts = subsets.frontiers_by_size(L, params, max_k=4)
    assert {"k=1", "k=2", "k=3", "k=4", "k<=2", "k<=3", "k<=4", "all"} <= set(fronts)
    _check_against_reference(fronts["k=4"], L, params, 4, 4)
    _check_against_reference(fronts["k<=4"], L, params, 1, 4)
    # the best loss within any budget can only improve as larger subsets are allowed
    for small_k, big_k in (("k=1", "k<=2"), ("k<=2", "k<=3"), ("k<=3", "k<=4"), ("k<=4", "all")):
        short = subsets.heuristic_shortfall(fronts[small_k], fronts[big_k])
        assert (short["heuristic_loss"] <= short["loss"]).all()
    # a given all-sizes frontier is used as is (notebook 07 has it already), not searched again
    reused = subsets.frontiers_by_size(L, params, max_k=2, all_sizes=fronts["all"])
    assert reused["all"] is fronts["all"]
    _check_against_reference(reused["all"], L, params, 1, 7)


def test_bad_inputs_are_named():
    L = np.ones((3, 4))
    with pytest.raises(ValueError, match="whole parameter counts"):
        subsets.subset_frontier(L, np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match="one entry per model"):
        subsets.subset_frontier(L, np.array([1, 2]))
    with pytest.raises(ValueError, match="min_size"):
        subsets.subset_frontier(L, np.array([1, 2, 3]), max_size=1, min_size=2)


def test_frontiers_by_size_passes_its_time_limit_to_every_exact_search():
    rng = np.random.default_rng(0)
    L = rng.gamma(5.0, 1.0, size=(20, 300))
    params = np.round(np.geomspace(1e3, 1e5, 20)).astype(int)
    stopped = subsets.frontiers_by_size(L, params, max_k=4, total_time_limit=0.0)
    finished = subsets.frontiers_by_size(L, params, max_k=4)
    for key in ("k=4", "k<=4", "all"):
        assert stopped[key].attrs["complete"] is False, key
        assert finished[key].attrs["complete"] is True, key
