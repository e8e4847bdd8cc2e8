"""Oracle ensembles of any size: exact Pareto frontiers over all subsets (paper §2.5; §6.3 stops at pairs).

The frontier of §2.5 ranges over *all* subsets S of the pool: points (P_total(S) eq. 5, raw
parameter counts; L_oracle(S) eq. 4, nats per text), with the dominance rule of
``frontier.pareto_front`` (weakly better in both, strictly in one). 2^K subsets rule out brute
force beyond K ~ 25. ``subset_frontier`` (default) runs the bi-objective branch and bound of
``subset_search`` (submodular bounds, one search for the whole frontier; for max_size <= 4 a level-wise
search over all pairs and triples with bounded quads). The older alternative,
``method="milp"``, solves a sequence of mixed-integer programs (budgeted facility location,
``scipy.optimize.milp`` = HiGHS branch-and-cut):

    min_S  sum_t min_{i in S} L_it   s.t.  sum_{i in S} P_i <= B,  min_size <= |S| <= max_size,

walking the budget B down the frontier: B_0 = total params; the optimum S* at B is a frontier
candidate; next B = P(S*) - 1 (integer parameter counts, so "strictly cheaper" is exact); a
cheaper optimum with the *same* loss replaces the previous point (tie rule of ``pareto_front``).
Each point carries HiGHS's dual bound, so each point is either proven optimal or its gap is shown.

The MIP uses the "radius" form of facility location: for text t with losses sorted
l_(1) <= ... <= l_(m) over the models in budget, min_{i in S} L_it = l_(m) - sum_k g_tk z_tk with
gaps g_tk = l_(k+1) - l_(k) and z_tk = [S meets the k best models of t] (z_tk <= sum_{i in top_k} x_i,
z <= 1). Texts whose top-k sets coincide share one z with summed gap; zero gaps are dropped.
This shrinks the LP from K*N to the number of distinct "top-k" sets (measured in benchmarks/).
Models dominated text by text by a no-larger model are removed first: they are never needed.

Budget rows are compared in floating point by HiGHS, so a solution is re-checked in integers;
one that is over budget by rounding is excluded by a no-good cut and the MIP is re-solved.

Also here: vectorised exhaustive enumeration of all subsets of size <= 3, a reference brute
force over all 2^K - 1 subsets (small K), greedy and beam heuristics, and fits of eq. 7 on the
best-of-size-k frontiers.

All losses are computed the same way (per-text minimum, then ``oracle.blocked_text_sums`` over
blocks of ``oracle.DEFAULT_BLOCK_TEXTS`` texts, divided by N), so equal per-text minima give bit-identical
losses across sizes and methods, and pair losses equal ``oracle.pair_oracle_losses`` bit for bit.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from mmlaw_utils.analysis.fit import fit_points
from mmlaw_utils.analysis.frontier import as_param_counts, pareto_front
from mmlaw_utils.analysis.oracle import (DEFAULT_BLOCK_TEXTS, _as_loss_matrix, blocked_text_sums, pair_dominance,
                                         pair_minimum_sums)
from mmlaw_utils.analysis.subset_search import (greedy_seeds, memory_bound_bytes, search_frontier,
                                                triple_minimum_sums, uses_levels)

FRONTIER_COLUMNS = ("subset", "size", "params", "loss", "lower_bound", "gap", "proven_optimal", "solve_s", "method")
# brute force evaluates 2^K subsets x N texts; above this many cells "auto" switches to the MIP
_BRUTE_MAX_CELLS = 2e8
_BRUTE_MAX_MODELS = 22
# a MIP solution counts as proven optimal when its dual bound is this close (nats per text)
_PROOF_TOL = 1e-9


# ---------------------------------------------------------------- checks and canonical losses


def _check_sizes(n_models: int, max_size: int | None, min_size: int) -> tuple[int, int]:
    hi = n_models if max_size is None else int(max_size)
    lo = int(min_size)
    if lo < 1 or hi < lo:
        raise ValueError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
    return lo, min(hi, n_models)


def subset_losses(L: np.ndarray, subsets: Iterable[Sequence[int]]) -> np.ndarray:
    """Oracle loss (eq. 4, nats per text) of each subset of model rows, in the canonical summation order."""
    array = _as_loss_matrix(L)
    out = []
    for subset in subsets:
        rows = np.asarray(list(subset), dtype=np.int64)
        if rows.size == 0:
            raise ValueError("oracle of an empty subset is undefined")
        out.append(blocked_text_sums(array[rows].min(axis=0))[0] / array.shape[1])
    return np.asarray(out, dtype=np.float64)


def _frame(subsets: list[tuple[int, ...]], params: np.ndarray, losses: np.ndarray, method: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "subset": pd.Series(subsets, dtype=object),
            "size": np.array([len(s) for s in subsets], dtype=np.int64),
            "params": np.asarray(params, dtype=np.int64),
            "loss": np.asarray(losses, dtype=np.float64),
        }
    )
    frame["lower_bound"] = frame["loss"]
    frame["gap"] = 0.0
    frame["proven_optimal"] = True
    frame["solve_s"] = 0.0
    frame["method"] = method
    return frame


def frontier_of(points: pd.DataFrame, *, one_per_point: bool = True) -> pd.DataFrame:
    """Rows of ``points`` (columns ``params``, ``loss``) on the Pareto frontier, sorted by params.

    ``one_per_point`` keeps one row per distinct (params, loss) point (the first in input order)
    where ``pareto_front`` keeps every exact duplicate.
    """
    if points.empty:
        return points.copy()
    keep = pareto_front(points["params"].to_numpy(), points["loss"].to_numpy())
    front = points.iloc[np.sort(keep)]
    if one_per_point:
        front = front.drop_duplicates(subset=["params", "loss"], keep="first")
    return front.sort_values(["params", "loss"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- exhaustive small subsets


def triple_losses(L: np.ndarray, *, block_texts: int = DEFAULT_BLOCK_TEXTS) -> tuple[np.ndarray, np.ndarray]:
    """All C(K,3) triples i<j<k: (indices (n, 3) int64 in lexicographic order, oracle losses (n,) nats per text)."""
    array = _as_loss_matrix(L)
    triples, sums = triple_minimum_sums(array, block_texts=block_texts)
    return triples, sums / array.shape[1]


def small_subsets(L: np.ndarray, params: np.ndarray, max_size: int = 3, *,
                  block_texts: int = DEFAULT_BLOCK_TEXTS) -> pd.DataFrame:
    """Every subset of 1..``max_size`` (<= 3) models: columns subset, size, params (raw), loss (nats)."""
    array = _as_loss_matrix(L)
    p = as_param_counts(params, array.shape[0])
    if not 1 <= max_size <= 3:
        raise ValueError(f"small_subsets enumerates sizes 1..3, got max_size={max_size}")
    n_models, n_texts = array.shape
    subsets: list[tuple[int, ...]] = [(i,) for i in range(n_models)]
    losses = [blocked_text_sums(array, block_texts) / n_texts]
    sizes_params = [p.copy()]
    if max_size >= 2 and n_models >= 2:
        rows, cols = np.triu_indices(n_models, k=1)
        subsets += list(zip(rows.tolist(), cols.tolist()))
        losses.append(pair_minimum_sums(array, block_texts=block_texts)[1] / n_texts)
        sizes_params.append(p[rows] + p[cols])
    if max_size >= 3 and n_models >= 3:
        idx, tl = triple_losses(array, block_texts=block_texts)
        subsets += [tuple(r) for r in idx.tolist()]
        losses.append(tl)
        sizes_params.append(p[idx].sum(axis=1))
    return _frame(subsets, np.concatenate(sizes_params), np.concatenate(losses), "exhaustive")


def size_frontiers_small(small: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Frontier of the subsets of exactly k models, for each k in ``small`` (from ``small_subsets``)."""
    return {int(k): frontier_of(g) for k, g in small.groupby("size")}


# ---------------------------------------------------------------- brute force (reference, small K)


def brute_force_points(L: np.ndarray, params: np.ndarray, *, max_size: int | None = None, min_size: int = 1,
                       low_bits: int = 10) -> pd.DataFrame:
    """All 2^K - 1 subsets (with min_size <= size <= max_size): subset, size, params, loss. K <= 22.

    Subsets are bit masks over the model rows; the per-text minima of the low ``low_bits`` models
    are tabulated once and combined with each mask of the remaining models.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    p = as_param_counts(params, n_models)
    lo, hi = _check_sizes(n_models, max_size, min_size)
    if n_models > _BRUTE_MAX_MODELS:
        raise ValueError(f"brute force over 2^{n_models} subsets is too large (K <= {_BRUTE_MAX_MODELS})")
    b = min(low_bits, n_models)
    low_masks = np.arange(2**b)
    low_bits_of = (low_masks[:, None] >> np.arange(b)) & 1
    low_min = np.full((2**b, n_texts), np.inf)
    for mask in range(1, 2**b):
        top = mask.bit_length() - 1
        low_min[mask] = np.minimum(low_min[mask & ~(1 << top)], array[top])
    low_params = low_bits_of @ p[:b]
    low_size = low_bits_of.sum(axis=1)
    masks, losses, totals = [], [], []
    for high in range(2 ** (n_models - b)):
        high_rows = [b + r for r in range(n_models - b) if high >> r & 1]
        size = low_size + len(high_rows)
        take = (size >= lo) & (size <= hi)
        if not take.any():
            continue
        vec = array[high_rows].min(axis=0) if high_rows else np.full(n_texts, np.inf)
        minima = np.minimum(low_min[take], vec)
        masks.append((high << b) | low_masks[take])
        losses.append(blocked_text_sums(minima) / n_texts)
        totals.append(low_params[take] + p[high_rows].sum())
    all_masks = np.concatenate(masks)
    subsets = [tuple(r for r in range(n_models) if int(m) >> r & 1) for m in all_masks]
    return _frame(subsets, np.concatenate(totals), np.concatenate(losses), "brute_force")


# ---------------------------------------------------------------- exact frontier by MIP


def dominated_models(L: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Mask of models never needed on a frontier: some other model with <= params is <= on every text.

    Exact duplicates (same params, identical rows) keep their lowest row index. Why: if i dominates
    j, any subset S holding j is matched by S - j (when i is in S) or S - j + i (when not), with loss
    and params no higher and size no larger; so without a minimum size, dropping j loses no point.
    """
    array = _as_loss_matrix(L)
    p = as_param_counts(params, array.shape[0])
    dom = pair_dominance(array)  # dom[j, i]: j <= i on every text
    np.fill_diagonal(dom, False)
    cheaper = p[:, None] <= p[None, :]  # [j, i]: P_j <= P_i
    strictly = (p[:, None] < p[None, :]) | ~dom.T  # j strictly better somewhere or strictly cheaper
    index = np.arange(len(p))
    lower_index = index[:, None] < index[None, :]
    return (dom & cheaper & (strictly | lower_index)).any(axis=0)


class _RadiusModel:
    """The aggregated radius formulation of the MIP for one set of available models."""

    def __init__(self, L_avail: np.ndarray):
        m, n_texts = L_avail.shape
        self.m = m
        order = np.argsort(L_avail, axis=0, kind="stable")
        ordered = np.take_along_axis(L_avail, order, axis=0)
        self.const_sum = float(ordered[-1].sum())  # loss if every z is 0 (the worst model on each text)
        gaps = np.diff(ordered, axis=0)
        member = np.zeros((n_texts, m), dtype=bool)
        texts = np.arange(n_texts)
        sets, coefs = [], []
        for k in range(m - 1):
            member[texts, order[k]] = True
            keep = gaps[k] > 0
            if not keep.any():
                continue
            packed = np.packbits(member[keep], axis=1)
            unique, inverse = np.unique(packed, axis=0, return_inverse=True)
            coefs.append(np.bincount(inverse.ravel(), weights=gaps[k][keep], minlength=len(unique)))
            sets.append(np.unpackbits(unique, axis=1, count=m).astype(bool))
        self.sets = np.vstack(sets) if sets else np.zeros((0, m), dtype=bool)
        self.coefs = np.concatenate(coefs) if coefs else np.zeros(0)
        n_z = len(self.coefs)
        # z_s - sum_{i in set s} x_i <= 0
        self.cover = sparse.hstack(
            [-sparse.csr_matrix(self.sets.astype(np.float64)), sparse.identity(n_z, format="csr")], format="csr"
        )
        self.n_z = n_z

    def solve(self, params_avail: np.ndarray, budget: int, lo: int, hi: int, cuts: list[np.ndarray],
              time_limit: float | None) -> tuple[np.ndarray | None, float, float, int]:
        """(chosen mask over available models or None, objective sum, dual-bound sum, HiGHS status)."""
        m, n_z = self.m, self.n_z
        scale = float(params_avail.max())
        zeros = np.zeros(n_z)
        objective = np.concatenate([np.zeros(m), -self.coefs])
        constraints = [
            LinearConstraint(np.concatenate([params_avail / scale, zeros])[None], -np.inf, budget / scale),
            LinearConstraint(np.concatenate([np.ones(m), zeros])[None], lo, hi),
        ]
        if n_z:
            constraints.append(LinearConstraint(self.cover, -np.inf, 0.0))
        for cut in cuts:  # no-good: not exactly this subset
            constraints.append(LinearConstraint(np.concatenate([np.where(cut, 1.0, -1.0), zeros])[None],
                                                -np.inf, cut.sum() - 1.0))
        options = {"mip_rel_gap": 0.0, "presolve": True}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        res = milp(objective, constraints=constraints, integrality=np.r_[np.ones(m), zeros],
                   bounds=Bounds(0.0, 1.0), options=options)
        if res.x is None:
            return None, math.nan, math.nan, int(res.status)
        bound = getattr(res, "mip_dual_bound", None)
        bound = res.fun if bound is None or not np.isfinite(bound) else bound
        return res.x[:m] > 0.5, self.const_sum + res.fun, self.const_sum + bound, int(res.status)


def _milp_frontier(array: np.ndarray, p: np.ndarray, lo: int, hi: int, time_limit: float | None,
                   progress: bool, total_time_limit: float | None = None) -> pd.DataFrame:
    n_models, n_texts = array.shape
    walk_start = time.perf_counter()
    complete = True
    n_solves = 0
    usable = np.ones(n_models, dtype=bool) if lo > 1 else ~dominated_models(array, p)
    budget = int(p[usable].sum())
    rows: list[dict] = []
    found: list[np.ndarray] = []  # every subset returned so far (all over every later budget)
    cache: dict[tuple[int, ...], _RadiusModel] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="subset frontier (MIP)", unit="point", mininterval=10.0)
    while True:
        avail = np.flatnonzero(usable & (p <= budget))
        if avail.size < lo:
            break
        if total_time_limit is not None and time.perf_counter() - walk_start > total_time_limit:
            complete = False  # the points below this budget were not computed
            break
        key = tuple(avail.tolist())
        if key not in cache:
            cache = {key: _RadiusModel(array[avail])}  # budgets only fall: older models are not reused
        model = cache[key]
        outside = ~np.isin(np.arange(n_models), avail)
        # earlier optima are all over budget; only those within HiGHS's feasibility tolerance of it
        # could be returned again, so only they need a no-good cut
        cuts = [f[avail] for f in found if not f[outside].any() and p[f].sum() - budget <= 1e-6 * budget]
        start = time.perf_counter()
        while True:
            chosen, obj_sum, bound_sum, status = model.solve(p[avail], budget, lo, min(hi, avail.size), cuts,
                                                             time_limit)
            n_solves += 1
            if chosen is None:
                break
            members = avail[chosen]
            if int(p[members].sum()) <= budget:
                break
            cuts.append(chosen)  # over budget by floating-point rounding only: exclude and re-solve
        elapsed = time.perf_counter() - start
        if chosen is None:
            if status in (0, 2):  # infeasible: no subset fits the budget and size limits
                break
            raise RuntimeError(f"subset_frontier: HiGHS returned no solution at budget {budget} (status {status})")
        subset = tuple(int(i) for i in members)
        loss = float(subset_losses(array, [subset])[0])
        lower = min(loss, bound_sum / n_texts)
        full = np.zeros(n_models, dtype=bool)
        full[members] = True
        found.append(full)
        row = {
            "subset": subset, "size": len(subset), "params": int(p[members].sum()), "loss": loss,
            "lower_bound": lower, "gap": loss - lower,
            "proven_optimal": bool(status == 0 and loss - lower <= _PROOF_TOL * max(1.0, abs(loss))),
            "solve_s": elapsed, "method": "milp",
        }
        # the optimum at a lower budget can only be worse or equal; equal loss at lower params
        # replaces the previous (now dominated) point
        while rows and row["loss"] <= rows[-1]["loss"]:
            rows.pop()
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(params=row["params"], loss=f"{loss:.4g}")
        budget = row["params"] - 1
    if bar is not None:
        bar.close()
    frame = pd.DataFrame(rows, columns=list(FRONTIER_COLUMNS))
    frame["subset"] = pd.Series(list(frame["subset"]), dtype=object)
    frame = frame.sort_values("params", kind="stable").reset_index(drop=True)
    frame.attrs.update({"complete": complete, "n_solves": n_solves, "n_usable_models": int(usable.sum()),
                        "stop_reason": "complete" if complete else f"time limit {total_time_limit:g} s",
                        "stopped_at_budget": None if complete else int(budget)})
    return frame


def _bnb_frontier(array: np.ndarray, p: np.ndarray, lo: int, hi: int, time_limit: float | None,
                  memory_limit_gb: float | None, node_limit: int | None, progress: bool) -> pd.DataFrame:
    """Frontier frame from ``subset_search.search_frontier``, with each point's certificate."""
    n_models, n_texts = array.shape
    usable = np.ones(n_models, dtype=bool) if lo > 1 else ~dominated_models(array, p)
    limit = None if memory_limit_gb is None else int(memory_limit_gb * 2**30)
    seeds = greedy_seeds(array, p, usable, hi)
    result = search_frontier(array, p, usable, lo, hi, time_limit=time_limit, max_nodes=node_limit,
                             memory_limit_bytes=limit, progress=progress, seeds=seeds)
    stair = result.stair
    subsets_found = list(stair.subsets)
    losses = subset_losses(array, subsets_found) if subsets_found else np.zeros(0)
    totals = np.asarray(stair.params, dtype=np.int64)
    lower_sums = np.asarray(stair.losses, dtype=np.float64)
    for bound in result.open_bounds:  # subtrees never searched: their bound is all that is known there
        lower_sums = np.minimum(lower_sums, bound.at(totals))
    lower = np.minimum(losses, lower_sums / n_texts)
    frame = pd.DataFrame({
        "subset": pd.Series(subsets_found, dtype=object), "size": [len(s) for s in subsets_found],
        "params": totals, "loss": losses, "lower_bound": lower, "gap": losses - lower,
    })
    frame["proven_optimal"] = frame["gap"] <= _PROOF_TOL * np.maximum(1.0, np.abs(frame["loss"]))
    frame["solve_s"] = np.asarray(stair.found_s, dtype=np.float64)
    frame["method"] = "branch_and_bound"
    frame = frame_of_front(frame) if result.complete else frame
    frame.attrs.update({"complete": result.complete, "stop_reason": result.reason, "n_solves": 0,
                        "n_nodes": result.n_nodes, "search_s": result.seconds, "n_usable_models": int(usable.sum()),
                        "stopped_at_budget": None,
                        "search": "levels" if uses_levels(int(usable.sum()), hi) else "depth_first",
                        "memory_bound_bytes": memory_bound_bytes(int(usable.sum()), n_texts, hi)})
    return frame


def frame_of_front(frame: pd.DataFrame) -> pd.DataFrame:
    """``frontier_of`` keeping the certificate columns and the frame's attrs."""
    attrs = dict(frame.attrs)
    front = frontier_of(frame)
    front.attrs.update(attrs)
    return front


def subset_frontier(L: np.ndarray, params: np.ndarray, max_size: int | None = None, *, min_size: int = 1,
                    method: str = "auto", time_limit: float | None = None, total_time_limit: float | None = None,
                    memory_limit_gb: float | None = None, node_limit: int | None = None,
                    progress: bool = False, model_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Exact Pareto frontier (§2.5) over all subsets of the pool with min_size <= |S| <= max_size.

    ``L``: K models x N texts, nats (eq. 1); ``params``: raw parameter counts (eq. 5).
    Returns one row per frontier point, sorted by params, with ``subset`` (tuple of model rows),
    ``size``, ``params`` (total, raw count), ``loss`` (oracle loss, nats per text), and the
    certificate: ``lower_bound`` (no subset within this point's budget has a lower loss), ``gap`` =
    loss - lower_bound, ``proven_optimal``, ``solve_s`` and ``method``.
    The dominance rule is ``frontier.pareto_front``'s; where several subsets share a frontier
    point exactly (same params and loss) one of them is reported.
    ``method``: "bnb" (branch and bound over models, ``subset_search``; memory O(K^2 N) floats at
    most, or K^3 + O(K N) for the level-wise search of max_size <= 4, ``attrs["memory_bound_bytes"]``;
    ``attrs["search"]`` names which ran), "milp" (a budget walk of HiGHS MIPs), "brute" (all
    2^K - 1 subsets, K <= 22) or "auto" (brute when small, else bnb).
    ``time_limit``: seconds per MIP (milp; a point not proven within it keeps its gap).
    ``total_time_limit``: seconds for the whole search; ``memory_limit_gb``: resident-memory cap
    (bnb; the process's peak resident set, checked every 64 nodes); ``node_limit``: search nodes (bnb).
    A search that hits a limit stops with ``attrs["complete"]`` False: bnb then returns the
    points found so far, each with a lower bound from every subtree left open (its gap may be > 0,
    and frontier points not yet found are missing); milp returns the frontier above
    ``attrs["stopped_at_budget"]``.
    ``model_names`` (one per row of ``L``) adds ``members``: the tuple of the subset's model names.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    p = as_param_counts(params, n_models)
    lo, hi = _check_sizes(n_models, max_size, min_size)
    if model_names is not None and len(model_names) != n_models:
        raise ValueError(f"model_names has {len(model_names)} names for {n_models} models")
    if method == "auto":
        method = "brute" if n_models <= 16 and 2.0**n_models * n_texts <= _BRUTE_MAX_CELLS else "bnb"
    if method == "brute":
        front = frontier_of(brute_force_points(array, p, max_size=hi, min_size=lo))
        front.attrs.update({"complete": True, "n_solves": 0})
    elif method == "bnb":
        front = _bnb_frontier(array, p, lo, hi, total_time_limit, memory_limit_gb, node_limit, progress)
    elif method == "milp":
        front = _milp_frontier(array, p, lo, hi, time_limit, progress, total_time_limit)
    else:
        raise ValueError(f"method must be 'auto', 'bnb', 'milp' or 'brute', got {method!r}")
    if model_names is not None:
        names = [str(name) for name in model_names]
        front["members"] = pd.Series([tuple(names[i] for i in s) for s in front["subset"]], index=front.index, dtype=object)
    return front


# ---------------------------------------------------------------- heuristics


def greedy_points(L: np.ndarray, params: np.ndarray, *, max_size: int | None = None) -> pd.DataFrame:
    """Subsets visited by cost-benefit greedy chains, one chain started from each single model.

    Each step adds the model with the largest loss decrease per added parameter (nats per
    parameter). Returns every visited subset (subset, size, params, loss); take ``frontier_of``.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    p = as_param_counts(params, n_models)
    _, hi = _check_sizes(n_models, max_size, 1)
    seen: dict[tuple[int, ...], tuple[int, float]] = {}
    for first in range(n_models):
        chosen = [first]
        current = array[first].copy()
        seen[(first,)] = (int(p[first]), float(blocked_text_sums(current)[0] / n_texts))
        while len(chosen) < hi:
            rest = np.setdiff1d(np.arange(n_models), chosen)
            cand = blocked_text_sums(np.minimum(array[rest], current)) / n_texts
            base = seen[tuple(sorted(chosen))][1]
            gain_per_param = (base - cand) / p[rest]
            if gain_per_param.max() <= 0:
                break
            pick = int(rest[np.argmax(gain_per_param)])
            chosen.append(pick)
            current = np.minimum(current, array[pick])
            key = tuple(sorted(chosen))
            seen[key] = (int(p[list(key)].sum()), float(cand[np.argmax(gain_per_param)]))
    keys = list(seen)
    return _frame(keys, np.array([seen[k][0] for k in keys]), np.array([seen[k][1] for k in keys]), "greedy")


def beam_points(L: np.ndarray, params: np.ndarray, *, beam_width: int = 32, max_size: int | None = None) -> pd.DataFrame:
    """Subsets visited by a beam search over sizes: each size keeps up to ``beam_width`` frontier subsets.

    Size k+1 candidates are all one-model extensions of the size-k beam; the beam is their Pareto
    frontier, thinned evenly along it when longer than ``beam_width``.
    """
    array = _as_loss_matrix(L)
    n_models, n_texts = array.shape
    p = as_param_counts(params, n_models)
    _, hi = _check_sizes(n_models, max_size, 1)
    singles = [(i,) for i in range(n_models)]
    all_keys = list(singles)
    all_params = list(p.tolist())
    all_losses = list(blocked_text_sums(array) / n_texts)
    beam = frontier_of(_frame(singles, p, np.asarray(all_losses), "beam"))
    for _size in range(2, hi + 1):
        cand_keys, cand_losses = [], []
        seen_now: set[tuple[int, ...]] = set()
        for subset in beam["subset"]:
            current = array[list(subset)].min(axis=0)
            rest = np.setdiff1d(np.arange(n_models), subset)
            new_keys = [tuple(sorted(subset + (int(r),))) for r in rest]
            losses = blocked_text_sums(np.minimum(array[rest], current)) / n_texts
            for key, loss in zip(new_keys, losses):
                if key not in seen_now:
                    seen_now.add(key)
                    cand_keys.append(key)
                    cand_losses.append(float(loss))
        if not cand_keys:
            break
        cand_params = np.array([p[list(k)].sum() for k in cand_keys])
        all_keys += cand_keys
        all_params += cand_params.tolist()
        all_losses += cand_losses
        front = frontier_of(_frame(cand_keys, cand_params, np.asarray(cand_losses), "beam"))
        if len(front) > beam_width:
            front = front.iloc[np.unique(np.linspace(0, len(front) - 1, beam_width).round().astype(int))]
        beam = front
    return _frame(all_keys, np.asarray(all_params), np.asarray(all_losses), "beam")


def heuristic_shortfall(exact: pd.DataFrame, heuristic: pd.DataFrame) -> pd.DataFrame:
    """Per exact frontier point: the best heuristic loss within its budget and the excess (nats, >= 0).

    Columns: params, loss (exact), heuristic_loss, excess (nats per text), excess_rel (fraction),
    matched (heuristic reaches the exact loss).
    """
    hp = heuristic["params"].to_numpy()
    hl = heuristic["loss"].to_numpy()
    order = np.argsort(hp, kind="stable")
    best_within = np.minimum.accumulate(hl[order])
    idx = np.searchsorted(hp[order], exact["params"].to_numpy(), side="right") - 1
    h_loss = np.where(idx >= 0, best_within[np.maximum(idx, 0)], np.inf)
    out = pd.DataFrame({"params": exact["params"].to_numpy(), "loss": exact["loss"].to_numpy(),
                        "heuristic_loss": h_loss})
    out["excess"] = out["heuristic_loss"] - out["loss"]
    out["excess_rel"] = out["excess"] / out["loss"]
    out["matched"] = out["excess"] <= 0
    return out


# ---------------------------------------------------------------- fits by size


def fit_frontiers(frontiers: dict[str, pd.DataFrame], params_unit: float = 1e9, **fit_kwargs) -> pd.DataFrame:
    """Eq. 7 fitted to each frontier (params / ``params_unit``, loss in nats): one row per label.

    Columns: frontier, n_points, A, alpha, L_inf, A_se, alpha_se, L_inf_se, r2, rmse, status.
    Frontiers with fewer than 4 points get NaNs and status "too_few_points" (``fit.fit_points``).
    """
    rows = []
    for label, front in frontiers.items():
        fit = fit_points(front["params"].to_numpy() / params_unit, front["loss"].to_numpy(), **fit_kwargs)
        rows.append({"frontier": label, "n_points": int(len(front)),
                     **{k: getattr(fit, k) for k in ("A", "alpha", "L_inf", "A_se", "alpha_se", "L_inf_se", "r2",
                                                     "rmse", "status")}})
    return pd.DataFrame(rows)


def frontiers_by_size(L: np.ndarray, params: np.ndarray, max_k: int = 3, *, small: pd.DataFrame | None = None,
                      all_sizes: pd.DataFrame | None = None, time_limit: float | None = None,
                      total_time_limit: float | None = None, progress: bool = False) -> dict[str, pd.DataFrame]:
    """Frontiers of exactly-k subsets ("k=1", "k=2", ...; exhaustive for k <= 3, exact search above), of
    at-most-k subsets ("k<=2", ...) and of all sizes ("all"; ``all_sizes`` when the caller already has
    :func:`subset_frontier` of the whole pool); the limits are those of :func:`subset_frontier`, per search."""
    array = _as_loss_matrix(L)
    p = as_param_counts(params, array.shape[0])
    n_models = array.shape[0]
    max_k = min(max_k, n_models)
    small = small_subsets(array, p, max_size=min(3, max_k)) if small is None else small
    out: dict[str, pd.DataFrame] = {}
    for k in range(1, max_k + 1):
        if k <= 3:
            out[f"k={k}"] = frontier_of(small[small["size"] == k])
        else:
            out[f"k={k}"] = subset_frontier(array, p, max_size=k, min_size=k, time_limit=time_limit,
                                           total_time_limit=total_time_limit, progress=progress)
    for k in range(2, max_k + 1):
        if k <= 3:
            out[f"k<={k}"] = frontier_of(small[small["size"] <= k])
        else:
            out[f"k<={k}"] = subset_frontier(array, p, max_size=k, time_limit=time_limit,
                                            total_time_limit=total_time_limit, progress=progress)
    out["all"] = all_sizes if all_sizes is not None else subset_frontier(
        array, p, time_limit=time_limit, total_time_limit=total_time_limit, progress=progress)
    return out


def named_frontier(front: pd.DataFrame, model_names: Sequence[str]) -> pd.DataFrame:
    """``front`` with ``subset`` as a list (parquet-friendly) and ``models`` ("a + b + c") added."""
    names = np.asarray(model_names, dtype=object)
    out = front.copy()
    out["models"] = [" + ".join(names[list(s)]) for s in front["subset"]]
    out["subset"] = [list(s) for s in front["subset"]]
    return out
