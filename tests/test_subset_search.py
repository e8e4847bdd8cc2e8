"""Branch and bound for the exact all-sizes frontier (analysis.subset_search) against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlaw_utils.analysis import subset_search, subsets
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.oracle import oracle_loss


def _all_subsets(L, params, lo=1, hi=None):
    """(subsets, params, losses) of every subset by itertools and oracle.oracle_loss (the reference)."""
    K = L.shape[0]
    hi = K if hi is None else hi
    subs = [s for k in range(lo, hi + 1) for s in itertools.combinations(range(K), k)]
    tot = np.array([params[list(s)].sum() for s in subs], dtype=np.int64)
    loss = np.array([oracle_loss(L, s) for s in subs])
    return subs, tot, loss


def _reference_points(L, params, lo=1, hi=None):
    subs, tot, loss = _all_subsets(L, params, lo, hi)
    keep = pareto_front(tot, loss)
    return sorted({(int(tot[i]), float(loss[i])) for i in keep})


def _matrix(draw_kind: str, seed: int, K: int, N: int):
    rng = np.random.default_rng(seed)
    if draw_kind == "ties":  # small integer losses and sizes: many exact ties in loss and in params
        L = rng.integers(1, 5, size=(K, N)).astype(np.float64)
        params = rng.integers(1, 6, size=K)
        if K > 2:
            L[-1] = L[0]  # an exact duplicate model
            params[-1] = params[0]
    else:
        L = 100 * rng.uniform(1, 3, size=(K, 1)) * np.exp(rng.normal(0, 0.3, size=(K, N)))
        params = rng.integers(1, 10**6, size=K)
    return L, params


def _check(front, L, params, lo=1, hi=None):
    want = _reference_points(L, params, lo, hi)
    got = list(zip(front["params"].astype(int), front["loss"].astype(float)))
    assert got == want
    for subset, p, loss in zip(front["subset"], front["params"], front["loss"]):
        assert lo <= len(subset) <= (hi or L.shape[0])
        assert params[list(subset)].sum() == p and oracle_loss(L, subset) == loss
    assert front["proven_optimal"].all() and (front["gap"] == 0).all()
    assert front.attrs["complete"]


@pytest.mark.parametrize("seed,K", [(0, 5), (1, 8), (2, 10), (3, 12)])
def test_bnb_equals_brute_force_on_the_tied_matrices_of_the_milp_tests(seed, K):
    rng = np.random.default_rng(seed)
    L = rng.integers(10, 30, size=(K, 25)).astype(np.float64)
    params = rng.integers(1, 40, size=K) * 1000
    L[K - 1], params[K - 1] = L[0], params[0]
    params[1] = params[2]
    L[3], params[3] = 10.0, params.max() * 2
    _check(subsets.subset_frontier(L, params, method="bnb"), L, params)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["ties", "continuous"]), seed=st.integers(0, 10**6), K=st.integers(1, 9),
       N=st.integers(1, 30), lo=st.integers(1, 3), width=st.integers(0, 9))
def test_bnb_equals_brute_force_random_and_tie_heavy(kind, seed, K, N, lo, width):
    L, params = _matrix(kind, seed, K, N)
    lo = min(lo, K)
    hi = min(K, lo + width)
    _check(subsets.subset_frontier(L, params, max_size=hi, min_size=lo, method="bnb"), L, params, lo, hi)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["ties", "continuous"]), seed=st.integers(0, 10**6), K=st.integers(2, 9),
       N=st.integers(1, 25), n_chosen=st.integers(0, 3), k_left=st.integers(0, 9))
def test_subtree_bound_never_exceeds_the_best_subset_within_each_budget(kind, seed, K, N, n_chosen, k_left):
    """The bound at every budget is <= the brute-force best loss of chosen + J (J in R, |J| <= k_left)."""
    L, params = _matrix(kind, seed, K, N)
    rng = np.random.default_rng(seed + 1)
    perm = rng.permutation(K)
    chosen = sorted(perm[: min(n_chosen, K - 1)].tolist())
    cand = sorted(perm[len(chosen):].tolist())
    k_left = min(k_left, len(cand))
    bound = subset_search.subtree_bound(L, params, chosen, cand, k_left)
    base = int(params[chosen].sum()) if chosen else 0
    reach = base + int(params[cand].sum())
    budgets = np.arange(base, reach + 1)
    best = np.full(budgets.shape, np.inf)
    for r in range(0 if chosen else 1, k_left + 1):
        for extra in itertools.combinations(cand, r):
            members = chosen + list(extra)
            cost = int(params[members].sum())
            best[budgets >= cost] = np.minimum(best[budgets >= cost], L[members].min(axis=0).sum())
    lower = bound.at(budgets)
    slack = 1e-9 * np.abs(np.where(np.isfinite(best), best, 0.0)) + 1e-9
    assert (lower <= best + slack).all()


def test_bound_pieces_by_hand():
    """Chosen {0}; candidates 1 and 2 each win one text: the single gains add up exactly."""
    L = np.array([[5.0, 5.0, 5.0], [1.0, 5.0, 5.0], [5.0, 2.0, 5.0], [5.0, 5.0, 4.0]])
    params = np.array([10, 3, 4, 100])
    bound = subset_search.subtree_bound(L, params, [0], [1, 2, 3], 3)
    # budgets 10..117: with 3 more params only model 1 (gain 4) fits; with 7 both 1 and 2 (gain 4 + 3)
    lower = bound.at(np.array([9, 10, 13, 17, 117]))
    assert lower[0] == np.inf  # below the chosen set's own cost nothing exists
    assert lower[1] == pytest.approx(15.0)  # no budget to add anything: the chosen set's own loss
    assert lower[2] == pytest.approx(11.0)  # fractional knapsack: model 1 has the best gain per param
    assert lower[3] == pytest.approx(8.0)  # models 1 and 2
    assert lower[4] == pytest.approx(7.0)  # all three: 1 + 2 + 4
    # with one more model allowed, the k-largest-gain piece caps the gain at 4
    assert subset_search.subtree_bound(L, params, [0], [1, 2, 3], 1).at(np.array([117]))[0] == pytest.approx(11.0)


def test_staircase_keeps_only_strict_improvements():
    stair = subset_search.Staircase()
    assert stair.insert(5, 10.0, (0,))
    assert not stair.insert(6, 10.0, (1,))  # same loss, more params: dominated
    assert not stair.insert(5, 10.0, (2,))  # the same point again
    assert stair.insert(7, 8.0, (3,))
    assert stair.insert(4, 10.0, (4,))  # same loss, fewer params: replaces (5, 10)
    assert stair.insert(6, 7.0, (5,))  # dominates (7, 8)
    assert stair.params == [4, 6] and stair.losses == [10.0, 7.0] and stair.subsets == [(4,), (5,)]
    assert stair.best_within(3) == np.inf and stair.best_within(5) == 10.0 and stair.best_within(100) == 7.0


def test_stopped_search_returns_a_certified_partial_frontier():
    rng = np.random.default_rng(3)
    K, N = 12, 40
    L = 100 * rng.uniform(1, 3, size=(K, 1)) * np.exp(rng.normal(0, 0.3, size=(K, N)))
    params = rng.integers(1, 10**6, size=K)
    subs, tot, loss = _all_subsets(L, params)
    full = subsets.subset_frontier(L, params, method="bnb")
    n_nodes = full.attrs["n_nodes"]
    for limit in sorted({1, n_nodes // 4, n_nodes // 2, n_nodes - 1}):
        part = subsets.subset_frontier(L, params, method="bnb", node_limit=limit)
        assert not part.attrs["complete"] and part.attrs["stop_reason"] == f"node limit {limit}"
        for p, lb, ls in zip(part["params"], part["lower_bound"], part["loss"]):
            best_within = loss[tot <= p].min()
            assert lb <= best_within + 1e-9 and best_within <= ls  # a valid certificate
        proven = part[part["proven_optimal"]]
        for p, ls in zip(proven["params"], proven["loss"]):
            assert ls == pytest.approx(loss[tot <= p].min(), rel=1e-12)
    assert len(full) > 10 and n_nodes > 8
    _check(full, L, params)


def test_memory_limit_stops_without_crashing():
    rng = np.random.default_rng(4)
    L = rng.normal(50, 5, size=(10, 200))
    params = rng.integers(1, 1000, size=10)
    part = subsets.subset_frontier(L, params, method="bnb", memory_limit_gb=1e-6)
    assert not part.attrs["complete"] and part.attrs["stop_reason"].startswith("memory limit")
    assert (part["lower_bound"] <= part["loss"]).all()


def test_memory_bound_states_the_paper_scale_figure():
    # K=71, N=10,000, any size: (71 + 1) frames of 72 x 10,000 floats plus 5 x 71 x 10,000 temporaries
    assert subset_search.memory_bound_bytes(71, 10_000, 71) == 8 * (72 * 72 * 10_000 + 5 * 71 * 10_000)
    assert subset_search.memory_bound_bytes(71, 10_000, 71) < 4 * 2**30


@given(values=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30), k=st.integers(0, 8))
def test_running_topk_sums_match_sorting(values, k):
    got = subset_search.running_topk_sums(np.array(values), k)
    want = [sum(sorted(values[: i + 1], reverse=True)[:k]) for i in range(len(values))]
    assert np.allclose(got, want, rtol=1e-12, atol=1e-9)


def test_min_size_above_one_with_an_empty_staircase():
    """With min_size 2 nothing is on the staircase while pairs are screened: every pair must stay alive."""
    L = np.array([[4.0], [3.0], [4.0]])
    params = np.array([2, 2, 2])
    _check(subsets.subset_frontier(L, params, max_size=3, min_size=2, method="bnb"), L, params, 2, 3)


# ---------------------------------------------------------------- level-wise search (max_size <= 4)


def _paper_like(K, N, seed):
    from mmlaw_utils.scoring.synthetic import paper_like_losses

    pool, L = paper_like_losses(K, N, seed)
    return L, pool["params"].to_numpy()


@pytest.mark.parametrize("seed,K,lo,hi", [(0, 16, 1, 4), (1, 18, 1, 3), (2, 16, 2, 4), (3, 14, 4, 4), (4, 17, 3, 3)])
def test_levels_equal_brute_force_on_paper_like_pools(seed, K, lo, hi):
    L, params = _paper_like(K, 60, seed)
    front = subsets.subset_frontier(L, params, max_size=hi, min_size=lo, method="bnb")
    assert front.attrs["search"] == "levels"
    _check(front, L, params, lo, hi)


@pytest.mark.parametrize("kind,seed,K,N,lo,hi", [("paper", 5, 40, 400, 1, 4), ("paper", 6, 36, 300, 1, 3),
                                                 ("paper", 7, 30, 300, 2, 4), ("continuous", 8, 24, 50, 1, 4),
                                                 ("ties", 9, 20, 12, 1, 4)])
def test_levels_find_the_depth_first_search_frontier_subset_for_subset(kind, seed, K, N, lo, hi):
    L, params = _paper_like(K, N, seed) if kind == "paper" else _matrix(kind, seed, K, N)
    usable = np.ones(K, dtype=bool) if lo > 1 else ~subsets.dominated_models(L, params)
    seeds = subset_search.greedy_seeds(L, params, usable, hi)
    runs = {strategy: subset_search.search_frontier(L, params, usable, lo, hi, seeds=seeds, strategy=strategy)
            for strategy in ("levels", "depth_first")}
    levels, depth_first = runs["levels"], runs["depth_first"]
    assert levels.complete and depth_first.complete and not levels.open_bounds
    assert levels.stair.params == depth_first.stair.params and levels.stair.losses == depth_first.stair.losses
    if kind != "ties":  # with exact ties either search may report another subset of the same point
        assert levels.stair.subsets == depth_first.stair.subsets
    if hi == 4:  # some quads are pruned by their bound
        assert levels.n_nodes < sum(math.comb(K, k) for k in range(1, 5))


def _tables(L):
    singles, pair_sums = subsets.pair_minimum_sums(L)
    pairs = subset_search.pair_table(singles, pair_sums)
    idx, sums = subset_search.triple_minimum_sums(L)
    return pairs, idx, sums, subset_search.triple_table(idx, sums, pairs)


def test_pair_and_triple_tables_hold_canonical_sums_for_every_index_order():
    rng = np.random.default_rng(11)
    K, N = 6, 4096 + 37  # two blocks of the canonical order
    L = rng.uniform(1, 9, size=(K, N))
    pairs, idx, sums, triples = _tables(L)
    assert idx.tolist() == [list(t) for t in itertools.combinations(range(K), 3)]
    for t, s in zip(idx, sums):
        assert s == subset_search.canonical_sum(L[list(t)].min(axis=0))  # bit for bit
    for i, j, k in itertools.product(range(K), repeat=3):
        assert triples[i, j, k] == subset_search.canonical_sum(L[[i, j, k]].min(axis=0))
        assert pairs[i, j] == subset_search.canonical_sum(L[[i, j]].min(axis=0))


def test_quad_bound_is_tight_when_every_model_wins_its_own_text():
    """Model i has loss 1 on text i and 10 elsewhere: gains add up, so loss(Q+x) + loss(Q+y) - loss(Q) is exact."""
    L = 10.0 - 9.0 * np.eye(5)
    pairs, _, _, triples = _tables(L)
    bound = subset_search.quad_lower_bounds(triples, pairs, 0, 1)  # c, d in {2, 3, 4}
    for c, d in itertools.combinations(range(3), 2):
        assert bound[c, d] == L[[0, 1, c + 2, d + 2]].min(axis=0).sum() == 4 * 1.0 + 10.0


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["ties", "continuous"]), seed=st.integers(0, 10**6), K=st.integers(4, 8),
       N=st.integers(1, 30))
def test_quad_lower_bounds_never_exceed_the_quad_losses(kind, seed, K, N):
    L, _ = _matrix(kind, seed, K, N)
    pairs, _, _, triples = _tables(L)
    for a, b in itertools.combinations(range(K), 2):
        bound = subset_search.quad_lower_bounds(triples, pairs, a, b)
        for c, d in itertools.combinations(range(b + 1, K), 2):
            exact = L[[a, b, c, d]].min(axis=0).sum()
            assert bound[c - b - 1, d - b - 1] <= exact + 1e-9 * abs(exact)


def test_stopped_level_search_returns_a_certified_partial_frontier():
    L, params = _paper_like(14, 80, 12)
    subs, tot, loss = _all_subsets(L, params, 1, 4)
    full = subsets.subset_frontier(L, params, max_size=4, method="bnb")
    n_nodes = full.attrs["n_nodes"]
    assert full.attrs["search"] == "levels" and n_nodes > 14 + 91 + 364  # some quads are computed
    for limit in sorted({1, 14 + 50, 14 + 91 + 1, n_nodes - 1}):
        part = subsets.subset_frontier(L, params, max_size=4, method="bnb", node_limit=limit)
        assert not part.attrs["complete"] and part.attrs["stop_reason"] == f"node limit {limit}"
        for p, lb, ls in zip(part["params"], part["lower_bound"], part["loss"]):
            best_within = loss[tot <= p].min()
            assert lb <= best_within + 1e-9 and best_within <= ls
    stopped = subsets.subset_frontier(L, params, max_size=4, method="bnb", memory_limit_gb=1e-6)
    assert not stopped.attrs["complete"] and stopped.attrs["stop_reason"].startswith("memory limit")
    _check(full, L, params, 1, 4)


def test_levels_cover_max_size_four_and_small_pools_only():
    assert subset_search.uses_levels(400, 4) and not subset_search.uses_levels(401, 4)
    assert not subset_search.uses_levels(30, 5)
    L, params = _paper_like(8, 20, 0)
    with pytest.raises(ValueError, match="max_size <= 4, got 5"):
        subset_search.search_frontier(L, params, np.ones(8, dtype=bool), 1, 5, strategy="levels")
    # the level-wise memory bound: dense triple table, triple indices and sums, copies of L, quad batch
    k, n = 200, 10_000
    assert subset_search.memory_bound_bytes(k, n, 4) == 8 * (k**3 + 8 * 1_313_400 + 6 * k * n + 3 * 512 * n
                                                             + 16 * k * k)


def test_level_frontier_keeps_strict_improvements_by_params():
    params = np.array([3, 1, 2, 2, 5])
    sums = np.array([5.0, 9.0, 7.0, 6.0, 5.0])
    # by params: (1, 9) (2, 6) (2, 7: not below 6) (3, 5) (5, 5: not below 5)
    assert subset_search.level_frontier(params, sums).tolist() == [1, 3, 0]
