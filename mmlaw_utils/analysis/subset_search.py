"""Exact all-sizes oracle frontier by bi-objective branch and bound over models (paper §2.5).

One depth-first search enumerates subsets S in a set-enumeration tree: a node is a chosen set I
and a candidate list R; its subtree holds every I + J with J a subset of R. The search keeps the
incumbent frontier (a staircase of (P_total, loss) points, eqs. 4–5) and prunes a subtree when a
lower bound on the loss of its subsets, as a function of their total parameters, nowhere falls
strictly below the staircase. Work is in summed nats (sum over texts of the per-text minimum);
points are divided by N at the end.

Lower bounds for the subsets I + J (J in R, P(J) <= b), all proven in ``node_bound``:

- bottom-up: the gain of J over I is a monotone submodular (facility-location) function, so it is
  at most the sum of the single-model gains Delta_j = sum_t max(0, m_t - L_jt) (m: minimum over I);
  at most their fractional knapsack at capacity b; at most the k largest Delta of affordable
  models when only k more models may be added; and at most the gain of all affordable models of
  R at once (each text takes the best model it could afford);
- top-down: removing a set D from U = I + R raises the loss by at least the sum of the single
  removal costs delta_d (only the unique best model of a text has delta > 0 on it, and removing
  it costs at least the gap to the second best), so loss(I + J) >= loss(U) + the fractional
  min-cost cover of the parameters P(R) - b that must be removed.

Models whose gain over I is zero are dropped from R (adding one never changes the loss). A child
I + j is skipped when the loss of I + j + (all of R after j) is not below the staircase at the
cost of I + j. Memory: at most O(K^2·N) floats on the depth-first stack (``memory_bound_bytes``:
409 MB at K=71, N=10,000). A search stopped by its time, node or memory budget returns the
incumbent staircase with a certificate: for each point, the lowest bound over every subtree still
open, so each point carries a valid lower bound and a gap.

Subsets of at most four models (``level_search``, chosen by ``search_frontier`` when K <= 400) are
searched level by level instead: every single, pair and triple is computed (K^3 N / 6 minima), and
each quad S is bounded from the pair and triple tables alone, loss(S) >= loss(Q + x) + loss(Q + y) -
loss(Q) for every pair Q of S and the other two members x, y (the gain of y over Q + x is at most its
gain over Q); only the quads whose bound falls below the staircase at their cost are computed.
"""

from __future__ import annotations

import bisect
import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from mmlaw_utils.analysis.oracle import DEFAULT_BLOCK_TEXTS, blocked_text_sums, pair_minimum_sums

# bounds are compared with the staircase with this relative slack (bounds are summed in another
# order than losses; a subtree is kept unless its bound is above the staircase by more than this)
BOUND_REL_TOL = 1e-11
# the level-wise search (max_size <= LEVELS_MAX_SIZE) keeps a dense K^3 table of triple losses: above
# this many usable models (512 MiB of table at 400) the depth-first search runs instead
LEVELS_MAX_SIZE = 4
LEVELS_MAX_MODELS = 400
# quads whose per-text minima are gathered and summed in one batch (x N floats)
QUAD_BATCH = 512


class SearchStopped(Exception):
    """Raised inside the search when its time, node or memory budget is spent."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def canonical_sum(minima: np.ndarray) -> float:
    """Sum of a per-text minimum vector (nats) in the canonical order of ``oracle.blocked_text_sums``."""
    return float(blocked_text_sums(minima)[0])


@dataclass
class Staircase:
    """Incumbent frontier: params strictly increasing, loss sums strictly decreasing (nats summed over texts)."""

    params: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    subsets: list[tuple[int, ...]] = field(default_factory=list)
    found_s: list[float] = field(default_factory=list)  # search seconds when each point was found
    version: int = 0
    start: float = field(default_factory=time.perf_counter)

    def best_within(self, budget: int) -> float:
        """Lowest loss sum among points with params <= ``budget`` (inf when none)."""
        idx = bisect.bisect_right(self.params, budget) - 1
        return self.losses[idx] if idx >= 0 else np.inf

    def insert(self, params: int, loss: float, subset: tuple[int, ...]) -> bool:
        """Add a point unless a point with <= params has <= loss; drop the points it dominates."""
        if loss >= self.best_within(params):
            return False
        idx = bisect.bisect_left(self.params, params)
        end = idx
        while end < len(self.params) and self.losses[end] >= loss:
            end += 1
        self.params[idx:end] = [params]
        self.losses[idx:end] = [loss]
        self.subsets[idx:end] = [subset]
        self.found_s[idx:end] = [time.perf_counter() - self.start]
        self.version += 1
        return True

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(params int64, loss sums float64) as arrays."""
        return np.asarray(self.params, dtype=np.int64), np.asarray(self.losses, dtype=np.float64)


@dataclass
class NodeBound:
    """Lower bound on the loss sum of the subsets I + J (J in R) as a function of their total params."""

    cost: int  # params of I
    loss: float  # loss sum of I (inf when I is empty)
    reach: int  # params of I + R: no subset in the subtree costs more
    # bottom-up: fractional knapsack of single gains (sorted by gain per param)
    fk_cum_params: np.ndarray
    fk_cum_gain: np.ndarray
    fk_ratio: np.ndarray
    # bottom-up, affordable models sorted by params: gain of all of them, k largest single gains
    afford_params: np.ndarray
    afford_all_gain: np.ndarray
    afford_topk_gain: np.ndarray | None
    # top-down: loss of I + R, fractional min-cost cover of removal costs, k-smallest removal sum
    union_loss: float
    cover_cum_params: np.ndarray
    cover_cum_cost: np.ndarray
    cover_ratio: np.ndarray
    min_removal_cost: float

    def __post_init__(self) -> None:
        # padded copies: entry i is the state after the first i items, so lookups need no clamping
        zero = np.zeros(1)
        self._fk_p = np.concatenate([zero, self.fk_cum_params])
        self._fk_g = np.concatenate([zero, self.fk_cum_gain])
        self._fk_r = np.concatenate([self.fk_ratio, zero])
        self._all = np.concatenate([zero, self.afford_all_gain])
        self._topk = None if self.afford_topk_gain is None else np.concatenate([zero, self.afford_topk_gain])
        self._cv_p = np.concatenate([zero, self.cover_cum_params])
        self._cv_c = np.concatenate([zero, self.cover_cum_cost])
        self._cv_r = np.concatenate([self.cover_ratio, zero])

    def at(self, total_params: np.ndarray) -> np.ndarray:
        """Lower bound (nats, summed) on the loss of a subset in the subtree with params <= ``total_params``."""
        b = np.asarray(total_params, dtype=np.float64) - self.cost
        if (b < 0).any():
            out = np.full(b.shape, np.inf)
            ok = b >= 0
            if ok.any():
                out[ok] = self.at(np.asarray(total_params)[ok])
            return out
        j = np.searchsorted(self.afford_params, b, side="right")  # number of affordable models
        gain = self._all[j]
        if self.fk_ratio.size:
            i = np.searchsorted(self.fk_cum_params, b, side="right")
            gain = np.minimum(gain, self._fk_g[i] + (b - self._fk_p[i]) * self._fk_r[i])
        if self._topk is not None:
            gain = np.minimum(gain, self._topk[j])
        bottom_up = self.loss - gain
        if not np.isfinite(self.union_loss):
            return bottom_up
        need = (self.reach - self.cost) - b  # params of R that must be left out
        removal = np.zeros(b.shape)
        if self.cover_ratio.size:
            k = np.searchsorted(self.cover_cum_params, need, side="left")
            removal = np.maximum(self._cv_c[k] + (need - self._cv_p[k]) * self._cv_r[k], 0.0)
        return np.maximum(bottom_up, self.union_loss + np.maximum(removal, self.min_removal_cost))


def running_topk_sums(values: np.ndarray, k: int) -> np.ndarray:
    """For each prefix values[:i+1], the sum of its k largest entries (nats)."""
    out = np.zeros(values.shape[0])
    if k <= 0:
        return out
    heap: list[float] = []
    total = 0.0
    for idx, v in enumerate(values.tolist()):
        if len(heap) < k:
            heapq.heappush(heap, v)
            total += v
        elif v > heap[0]:
            total += v - heapq.heapreplace(heap, v)
        out[idx] = total
    return out


def gain_bound(cost: int, loss: float, p_R: np.ndarray, gains: np.ndarray, k_left: int) -> NodeBound:
    """The bottom-up bound from the single gains alone (fractional knapsack, k largest affordable gains):
    no pass over the texts, so it is tried before ``node_bound``."""
    r = gains.shape[0]
    p_f = p_R.astype(np.float64)
    order = np.argsort(-(gains / p_f), kind="stable")
    by_params = np.argsort(p_f, kind="stable")
    topk = running_topk_sums(gains[by_params], k_left) if 0 <= k_left < r else None
    empty = np.zeros(0)
    return NodeBound(cost=int(cost), loss=float(loss), reach=int(cost + p_R.sum()),
                     fk_cum_params=np.cumsum(p_f[order]), fk_cum_gain=np.cumsum(gains[order]),
                     fk_ratio=gains[order] / p_f[order], afford_params=p_f[by_params],
                     afford_all_gain=np.full(r, np.inf), afford_topk_gain=topk, union_loss=-np.inf,
                     cover_cum_params=empty, cover_cum_cost=empty, cover_ratio=empty, min_removal_cost=0.0)


def node_bound(m_active: np.ndarray, D: np.ndarray, cost: int, loss: float, p_R: np.ndarray, k_left: int,
               base_union: float, gains: np.ndarray | None) -> NodeBound:
    """Bound of a node from the minima over I on its active texts ``m_active`` (inf when I is empty) and the
    candidates' losses there ``D`` (|R| x active texts) and their single gains ``gains`` (Delta, nats; None
    when I is empty).

    ``base_union``: loss sum of I on the inactive texts (their minimum cannot drop below I's).
    """
    r = D.shape[0]
    p_f = p_R.astype(np.float64)
    best = D.min(axis=0) if r else m_active.copy()
    best = np.minimum(best, m_active)
    union_loss = base_union + float(best.sum())
    finite_I = np.isfinite(loss)
    if finite_I:
        order = np.argsort(-(gains / p_f), kind="stable")
        fk_cum_params = np.cumsum(p_f[order])
        fk_cum_gain = np.cumsum(gains[order])
        fk_ratio = gains[order] / p_f[order]
    else:
        gains = np.full(r, np.inf)
        fk_cum_params = fk_cum_gain = fk_ratio = np.zeros(0)
    by_params = np.argsort(p_f, kind="stable")
    afford_params = p_f[by_params]
    afford_all_gain = np.zeros(0)
    if finite_I and r:
        prefix_min = np.minimum.accumulate(D[by_params], axis=0)
        afford_all_gain = np.maximum(m_active[None, :] - prefix_min, 0.0).sum(axis=1)
    afford_topk_gain = running_topk_sums(gains[by_params], k_left) if finite_I and 0 <= k_left < r else None
    # removal costs from U = I + R: unique best model of a text pays the gap to the second best
    if r:
        arg = D.argmin(axis=0)
        first = D[arg, np.arange(D.shape[1])]
        masked = D.copy()
        masked[arg, np.arange(D.shape[1])] = np.inf
        second = np.minimum(masked.min(axis=0) if r > 1 else np.full(D.shape[1], np.inf), m_active)
        use = first < m_active
        delta = np.bincount(arg[use], weights=(second - first)[use], minlength=r)
    else:
        delta = np.zeros(0)
    if r:
        cover_order = np.argsort(delta / p_f, kind="stable")
        cover_cum_params = np.cumsum(p_f[cover_order])
        cover_cum_cost = np.cumsum(delta[cover_order])
        cover_ratio = delta[cover_order] / p_f[cover_order]
    else:
        cover_cum_params = cover_cum_cost = cover_ratio = np.zeros(0)
    min_removal = float(np.sort(delta)[: r - k_left].sum()) if 0 <= k_left < r else 0.0
    if not finite_I:
        # I empty: the bottom-up bound is the loss of all affordable models of R on every text
        loss = 0.0
        afford_topk_gain = None
        afford_all_gain = -(np.minimum.accumulate(D[by_params], axis=0).sum(axis=1) + base_union) if r else np.zeros(0)
    return NodeBound(cost=int(cost), loss=float(loss), reach=int(cost + p_R.sum()),
                     fk_cum_params=fk_cum_params, fk_cum_gain=fk_cum_gain, fk_ratio=fk_ratio,
                     afford_params=afford_params, afford_all_gain=afford_all_gain,
                     afford_topk_gain=afford_topk_gain, union_loss=union_loss,
                     cover_cum_params=cover_cum_params, cover_cum_cost=cover_cum_cost, cover_ratio=cover_ratio,
                     min_removal_cost=min_removal)


def subtree_bound(L: np.ndarray, p: np.ndarray, chosen: list[int], candidates: list[int], k_left: int) -> NodeBound:
    """Bound of the subsets chosen + J (J within candidates, |J| <= k_left) built as the search builds it."""
    R = np.asarray(candidates, dtype=np.int64)
    if not chosen:
        return node_bound(np.full(L.shape[1], np.inf), L[R], 0, np.inf, p[R], k_left, 0.0, None)
    m = L[list(chosen)].min(axis=0)
    loss = canonical_sum(m)
    D = L[R]
    improvable = (D < m).any(axis=0)
    m_act, D = m[improvable], D[:, improvable]
    gains = np.maximum(m_act[None, :] - D, 0.0).sum(axis=1)
    return node_bound(m_act, D, int(p[list(chosen)].sum()), loss, p[R], k_left, loss - float(m_act.sum()), gains)


def greedy_seeds(L: np.ndarray, p: np.ndarray, usable: np.ndarray, max_size: int) -> list[tuple[int, ...]]:
    """Subsets on cost-benefit greedy chains (largest gain in nats per parameter first), one chain from
    each single model on the singles' frontier; incumbents that let the search prune from the start."""
    rows = np.flatnonzero(usable)
    single = L[rows].sum(axis=1)
    order = np.lexsort((single, p[rows]))
    starts = [rows[i] for i in order if single[i] < single[order[: list(order).index(i)]].min(initial=np.inf)]
    seeds: list[tuple[int, ...]] = []
    for first in starts:
        chosen = [int(first)]
        current = L[first].copy()
        seeds.append((int(first),))
        while len(chosen) < max_size:
            rest = np.setdiff1d(rows, chosen)
            if rest.size == 0:
                break
            gain = np.maximum(current[None, :] - L[rest], 0.0).sum(axis=1) / p[rest]
            if gain.max() <= 0:
                break
            pick = int(rest[np.argmax(gain)])
            chosen.append(pick)
            current = np.minimum(current, L[pick])
            seeds.append(tuple(sorted(chosen)))
    return seeds


def staircase_arrays(stair: Staircase, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """``stair.arrays()``, kept in ``cache`` until the staircase changes (also its losses padded with inf in front)."""
    if cache.get("version") != stair.version:
        xs, fs = stair.arrays()
        cache.update(version=stair.version, xs=xs, fs=fs, padded=np.concatenate([[np.inf], fs]))
    return cache["xs"], cache["fs"]


def can_improve(bound: NodeBound, stair: Staircase, cache: dict) -> bool:
    """True when some total-params value in the node's range has a bound strictly below the staircase."""
    xs, fs = staircase_arrays(stair, cache)
    lo_i = np.searchsorted(xs, bound.cost, side="right")
    hi_i = np.searchsorted(xs, bound.reach, side="right")
    # right end of each staircase step that the node's range meets: just below the next point, and its reach
    query = np.concatenate([xs[lo_i:hi_i] - 1, [bound.reach]])
    level = np.concatenate([fs[lo_i - 1 : hi_i - 1] if lo_i > 0 else np.r_[np.inf, fs[: hi_i - 1]], [fs[hi_i - 1] if hi_i > 0 else np.inf]])
    if not np.isfinite(level).all():
        return True
    lb = bound.at(query)
    return bool((lb < level - BOUND_REL_TOL * np.abs(level)).any())


def staircase_levels(stair: Staircase, cache: dict, total: np.ndarray, slack: bool = True) -> np.ndarray:
    """Staircase value (summed nats) at each total params, lowered by the comparison slack unless ``slack`` is
    False (inf where no point is that cheap); a bound must fall strictly below it to matter."""
    staircase_arrays(stair, cache)
    value = cache["padded"][np.searchsorted(cache["xs"], total, side="right")]
    if not slack:
        return value
    finite = np.isfinite(value)
    return np.where(finite, value - BOUND_REL_TOL * np.abs(np.where(finite, value, 0.0)), np.inf)


def pair_screen(cost: int, loss: float, p_R: np.ndarray, gains: np.ndarray, m_act: np.ndarray, D: np.ndarray,
                stair: Staircase, cache: dict) -> np.ndarray:
    """For a node that may add two more models: which children I + R[k] can hold a point below the staircase.

    The gain of a pair {a, b} over I is sum_t max(g_at, g_bt) = gains[a] + gains[b] - sum_t min(g_at, g_bt)
    (g: single gains per text), and min(x, y) >= x*y / M_t when x, y <= M_t = max_j g_jt, so the overlap
    is at least (G diag(1/M) G^T)[a, b], one matrix product for all pairs. Each pair I + R[k] + R[l]
    (l > k) and each I + R[k] alone is checked against the staircase at its exact cost, all at once.
    """
    child_loss = loss - gains
    child_cost = cost + p_R
    own = staircase_levels(stair, cache, child_cost)
    alive = child_loss < own
    G = np.maximum(m_act[None, :] - D, 0.0)
    shared = (G > 0).sum(axis=0) >= 2  # a text that only one candidate improves adds no overlap
    G = G[:, shared]
    top = G.max(axis=0)
    # float32 product: its relative error is below n * 2^-23 (< 1 % up to 10^5 texts), so 0.98 x the
    # product is still a lower bound on the overlap
    overlap = (G.astype(np.float32) @ (G / top).astype(np.float32).T).astype(np.float64)
    overlap *= 0.98
    pair_level = staircase_levels(stair, cache, child_cost[:, None] + p_R[None, :])
    pair_lb = child_loss[:, None] - gains[None, :] + np.maximum(overlap, 0.0)
    later = np.triu(np.ones((p_R.size, p_R.size), dtype=bool), k=1)
    alive |= (later & (pair_lb < pair_level)).any(axis=1)
    return alive


def uses_levels(n_models: int, max_size: int) -> bool:
    """Whether ``search_frontier`` ("auto") runs the level-wise search for this many usable models and max_size."""
    return max_size <= LEVELS_MAX_SIZE and n_models <= LEVELS_MAX_MODELS


def memory_bound_bytes(n_models: int, n_texts: int, max_size: int) -> int:
    """Upper bound on the search's working memory beyond L itself (bytes, float64 arrays).

    Where ``uses_levels``, that of the level-wise search (``levels_memory_bytes``). The depth-first stack holds at most max_size + 1 frames (the root's copy of L included); each
    keeps its candidates' losses (<= K x N) and minima (<= N); a node adds at most five K x N
    temporaries (gains, prefix and suffix minima, a masked copy, a comparison).
    """
    if uses_levels(n_models, max_size):
        return levels_memory_bytes(n_models, n_texts)
    frames = min(max_size, n_models) + 1
    return 8 * (frames * (n_models + 1) * n_texts + 5 * n_models * n_texts)


@dataclass
class SearchResult:
    """Staircase found, whether the search finished, and the open subtrees' bounds (for certificates)."""

    stair: Staircase
    complete: bool
    reason: str
    n_nodes: int
    open_bounds: list[NodeBound]
    seconds: float


def _peak_rss_bytes() -> int:
    """Peak resident set of this process so far (bytes; ru_maxrss is in KiB on Linux)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def search_frontier(L: np.ndarray, p: np.ndarray, usable: np.ndarray, lo: int, hi: int, *,
                    time_limit: float | None = None, max_nodes: int | None = None,
                    memory_limit_bytes: int | None = None, progress: bool = False,
                    seeds: list[tuple[int, ...]] | None = None, strategy: str = "auto") -> SearchResult:
    """Depth-first branch and bound over the ``usable`` rows of ``L`` (nats) with integer ``p``; see module doc.

    ``seeds``: subsets (e.g. from a heuristic) put on the staircase first, so pruning starts strong.
    ``strategy``: "depth_first", "levels" (``level_search``, hi <= 4) or "auto" (levels where ``uses_levels``).
    """
    if strategy not in ("auto", "levels", "depth_first"):
        raise ValueError(f"strategy must be 'auto', 'levels' or 'depth_first', got {strategy!r}")
    if strategy == "levels" or (strategy == "auto" and uses_levels(int(np.count_nonzero(usable)), hi)):
        if hi > LEVELS_MAX_SIZE:
            raise ValueError(f"the level-wise search covers max_size <= {LEVELS_MAX_SIZE}, got {hi}")
        return level_search(L, p, usable, lo, hi, time_limit=time_limit, max_nodes=max_nodes,
                            memory_limit_bytes=memory_limit_bytes, progress=progress, seeds=seeds)
    start = time.perf_counter()
    n_texts = L.shape[1]
    stair = Staircase()
    cache: dict = {}
    open_frames: list[NodeBound] = []
    state = {"nodes": 0}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="subset frontier (branch and bound)", unit="node", mininterval=5.0)

    def check_budget() -> None:
        state["nodes"] += 1
        n = state["nodes"]
        if bar is not None and n % 512 == 0:
            bar.update(512)
            bar.set_postfix(points=len(stair.params))
        if time_limit is not None and time.perf_counter() - start > time_limit:
            raise SearchStopped(f"time limit {time_limit:g} s")
        if max_nodes is not None and n > max_nodes:
            raise SearchStopped(f"node limit {max_nodes}")
        if memory_limit_bytes is not None and n % 64 == 0 and _peak_rss_bytes() > memory_limit_bytes:
            raise SearchStopped(f"memory limit {memory_limit_bytes / 2**30:.2f} GiB")

    def try_insert(I: tuple[int, ...], cost: int, approx_loss: float, minima: np.ndarray) -> float:
        """Insert I (per-text minima ``minima``, all N texts) when its loss may beat the staircase; returns its
        canonical loss sum (or the approximation when it cannot)."""
        if approx_loss >= stair.best_within(cost) + BOUND_REL_TOL * abs(approx_loss):
            return approx_loss
        exact = canonical_sum(minima)
        stair.insert(cost, exact, tuple(sorted(I)))
        return exact

    def expand(I: tuple[int, ...], cost: int, loss: float, m_full: np.ndarray, m_act: np.ndarray, D: np.ndarray,
               R: np.ndarray) -> None:
        """Node I with candidates R; ``m_full``: minimum over I on every text; ``m_act``: the same on the texts
        where the parent could still improve, ``D``: the candidates' losses there (rows aligned with R);
        ``loss``: loss sum of I."""
        check_budget()
        if len(I) >= lo:
            loss = try_insert(I, cost, loss, m_full)
        k_left = hi - len(I)
        if k_left <= 0 or R.size == 0:
            return
        improvable = (D < m_act).any(axis=0)
        if not improvable.all():
            D, m_act = D[:, improvable], m_act[improvable]
        gains = np.maximum(m_act[None, :] - D, 0.0).sum(axis=1)
        if len(I) >= lo:
            keep = gains > 0  # a model with no gain over I never changes the loss below this node
            if not keep.all():
                R, D, gains = R[keep], D[keep], gains[keep]
            if k_left == 1 or R.size == 1:  # the children are leaves: try each directly
                for j, g in zip(R.tolist(), gains.tolist()):
                    check_budget()
                    if loss - g < stair.best_within(cost + int(p[j])) + BOUND_REL_TOL * abs(loss):
                        try_insert(I + (j,), cost + int(p[j]), loss - g, np.minimum(m_full, L[j]))
                return
        if R.size == 0:
            return
        inactive_sum = loss - float(m_act.sum())  # loss sum of I on texts no candidate can improve
        if not can_improve(gain_bound(cost, loss, p[R], gains, k_left), stair, cache):
            return
        bound = node_bound(m_act, D, cost, loss, p[R], k_left, inactive_sum, gains)
        if not can_improve(bound, stair, cache):
            return
        order = np.argsort(-gains, kind="stable")
        R, D, gains = R[order], D[order], gains[order]
        # child k holds subsets I + R[k] + (part of R[k+1:]): none costs less than I + R[k] nor has a loss
        # below that of I + R[k:]; if the staircase at that cost is already as low, the child cannot improve it
        union = inactive_sum + np.minimum(np.minimum.accumulate(D[::-1], axis=0)[::-1], m_act).sum(axis=1)
        open_frames.append(bound)
        p_R = p[R]
        alive = pair_screen(cost, loss, p_R, gains, m_act, D, stair, cache) if k_left == 2 else None
        for k, j in enumerate(R.tolist()):
            level = stair.best_within(cost + int(p[j]))
            if union[k] >= level - BOUND_REL_TOL * abs(level):
                continue
            if alive is not None:
                if not alive[k]:
                    continue
            # gains over I bound the gains over I + j (submodularity): a bound for the child without a text pass
            elif k + 1 < R.size and not can_improve(gain_bound(cost + int(p[j]), loss - gains[k], p_R[k + 1 :],
                                                             gains[k + 1 :], k_left - 1), stair, cache):
                continue  # the bound covers the child's own point too
            expand(I + (j,), cost + int(p[j]), loss - gains[k], np.minimum(m_full, L[j]), np.minimum(m_act, D[k]),
                   D[k + 1 :], R[k + 1 :])
        open_frames.pop()

    for subset in seeds or []:
        if lo <= len(subset) <= hi:
            stair.insert(int(p[list(subset)].sum()), canonical_sum(L[list(subset)].min(axis=0)), tuple(sorted(subset)))
    rows = np.flatnonzero(usable)
    complete, reason = True, "complete"
    try:
        # root: the candidates are all usable models, best single loss first
        singles = np.array([canonical_sum(L[j]) for j in rows])
        order = rows[np.argsort(singles, kind="stable")]
        root_bound = node_bound(np.full(n_texts, np.inf), L[order], 0, np.inf, p[order], hi, 0.0, None)
        open_frames.append(root_bound)
        D_root = L[order]
        for k, j in enumerate(order.tolist()):
            expand((j,), int(p[j]), float(singles[np.searchsorted(rows, j)]), L[j], D_root[k], D_root[k + 1 :],
                   order[k + 1 :])
        open_frames.pop()
    except SearchStopped as stop:
        complete, reason = False, stop.reason
    except MemoryError:
        complete, reason = False, "out of memory (MemoryError)"
    if bar is not None:
        bar.update(state["nodes"] % 512)
        bar.close()
    return SearchResult(stair=stair, complete=complete, reason=reason, n_nodes=state["nodes"],
                        open_bounds=list(open_frames) if not complete else [],
                        seconds=time.perf_counter() - start)


# ---------------------------------------------------------------- level-wise search (max_size <= 4)


def triple_minimum_sums(L: np.ndarray, *, block_texts: int = DEFAULT_BLOCK_TEXTS) -> tuple[np.ndarray, np.ndarray]:
    """All C(K,3) triples i<j<k of the rows of ``L``: (indices (n, 3) int64 in lexicographic order, sums over texts
    of their per-text minima, nats, in the canonical order of ``oracle.blocked_text_sums``).

    For each pair (i, j) the pair minimum over a block of texts is computed once and then
    min-ed against all rows k > j at once; the block keeps temporaries in cache.
    """
    n_models, n_texts = L.shape
    first, second = np.triu_indices(n_models, k=1)  # pairs in lexicographic order
    tail = n_models - 1 - second  # number of third members k > j
    offsets = np.concatenate([[0], np.cumsum(tail)]).astype(np.int64)
    n_triples = int(offsets[-1])
    within = np.arange(n_triples, dtype=np.int64) - np.repeat(offsets[:-1], tail)
    triples = np.stack([np.repeat(first, tail), np.repeat(second, tail), np.repeat(second + 1, tail) + within], axis=1)
    sums = np.zeros(n_triples)
    buffer = np.empty((max(n_models - 2, 1), min(block_texts, n_texts)))
    pairs = list(zip(first.tolist(), second.tolist(), offsets[:-1].tolist()))
    for start in range(0, n_texts, block_texts):
        block = np.ascontiguousarray(L[:, start : start + block_texts])
        width = block.shape[1]
        pair_min = np.empty(width)
        for i, j, off in pairs:
            rest = n_models - 1 - j
            if rest == 0:
                continue
            np.minimum(block[i], block[j], out=pair_min)
            out = buffer[:rest, :width]
            np.minimum(block[j + 1 :], pair_min, out=out)
            sums[off : off + rest] += out.sum(axis=1)
    return triples, sums


def pair_table(singles: np.ndarray, pair_sums: np.ndarray) -> np.ndarray:
    """Symmetric K x K table of pair loss sums (nats) from ``oracle.pair_minimum_sums``; the diagonal holds the singles."""
    n_models = singles.size
    table = np.empty((n_models, n_models))
    i, j = np.triu_indices(n_models, k=1)
    table[i, j] = pair_sums
    table[j, i] = pair_sums
    table[np.arange(n_models), np.arange(n_models)] = singles
    return table


def triple_table(triples: np.ndarray, sums: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Symmetric K x K x K table of triple loss sums (nats); an entry with a repeated index holds the pair's sum
    (the minimum over {i, j, j} is that over {i, j}), so every entry is a loss."""
    n_models = pairs.shape[0]
    table = np.empty((n_models, n_models, n_models))
    diag = np.arange(n_models)
    table[:, diag, diag] = pairs
    table[diag, :, diag] = pairs
    table[diag, diag, :] = pairs
    a, b, c = triples.T
    for x, y, z in ((a, b, c), (a, c, b), (b, a, c), (b, c, a), (c, a, b), (c, b, a)):
        table[x, y, z] = sums
    return table


def quad_lower_bounds(triples: np.ndarray, pairs: np.ndarray, a: int, b: int) -> np.ndarray:
    """Lower bounds (nats, summed) on the loss of {a, b, c, d} for all c, d > b: matrix over (c - b - 1, d - b - 1).

    From the tables of ``pair_table`` and ``triple_table`` only: for a pair Q of the four and the other two
    x, y, loss(Q + x + y) = loss(Q + x) - gain(y | Q + x) >= loss(Q + x) - gain(y | Q) =
    loss(Q + x) + loss(Q + y) - loss(Q) (the gain of y can only shrink as the set grows); the bound is the
    largest of the six. Only entries with c < d are quads.
    """
    rest = slice(b + 1, None)
    abc = triples[a, b, rest][:, None]
    abd = abc.T
    acd = triples[a, rest, rest]
    bcd = triples[b, rest, rest]
    ac = pairs[a, rest][:, None]
    bc = pairs[b, rest][:, None]
    bound = abc + abd - pairs[a, b]  # Q = ab
    np.maximum(bound, abc + acd - ac, out=bound)  # Q = ac
    np.maximum(bound, abd + acd - ac.T, out=bound)  # Q = ad
    np.maximum(bound, abc + bcd - bc, out=bound)  # Q = bc
    np.maximum(bound, abd + bcd - bc.T, out=bound)  # Q = bd
    np.maximum(bound, acd + bcd - pairs[rest, rest], out=bound)  # Q = cd
    return bound


def levels_memory_bytes(n_models: int, n_texts: int) -> int:
    """Upper bound on the level-wise search's working memory beyond L itself (bytes).

    The dense triple table (K^3 floats), the triples' indices and sums with the index temporaries that build
    them (8 numbers per triple), the sorted copy of L and the gathered minima of a batch of quads
    (3 x QUAD_BATCH x N), per-prefix K x K temporaries, and, when the search stops, the root bound of the
    depth-first search (five K x N temporaries).
    """
    k = n_models
    n_triples = k * (k - 1) * (k - 2) // 6
    return 8 * (k**3 + 8 * n_triples + 6 * k * n_texts + 3 * QUAD_BATCH * n_texts + 16 * k * k)


def level_frontier(params: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Indices of the points (params, loss sums) strictly better than every point with <= params, by params."""
    order = np.lexsort((sums, params))
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(sums[order])[:-1]])
    return order[sums[order] < best_before]


def level_search(L: np.ndarray, p: np.ndarray, usable: np.ndarray, lo: int, hi: int, *,
                 time_limit: float | None = None, max_nodes: int | None = None,
                 memory_limit_bytes: int | None = None, progress: bool = False,
                 seeds: list[tuple[int, ...]] | None = None) -> SearchResult:
    """Exact frontier of the subsets of ``lo``..``hi`` <= 4 ``usable`` rows of ``L`` (nats), level by level.

    Singles, pairs (``oracle.pair_minimum_sums``) and triples (``triple_minimum_sums``) are all computed;
    every quad is bounded from these tables (``quad_lower_bounds``) against the staircase at its cost, and only
    the quads whose bound falls below it are computed. Models are taken best single loss first, so
    strong quads come early. A node is one subset whose loss is computed. A search stopped by a budget
    certifies its points with the depth-first search's root bound (valid for every subset).
    """
    start = time.perf_counter()
    n_texts = L.shape[1]
    rows = np.flatnonzero(usable)
    singles = blocked_text_sums(L[rows])
    order = rows[np.argsort(singles, kind="stable")]
    A = np.ascontiguousarray(L[order])
    pA = p[order].astype(np.int64)
    k = order.size
    stair = Staircase()
    cache: dict = {}
    state = {"nodes": 0}

    def name(members: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(int(order[m]) for m in members))

    def spend(n: int) -> None:
        """Count ``n`` computed subsets; stop on a spent budget."""
        state["nodes"] += n
        if time_limit is not None and time.perf_counter() - start > time_limit:
            raise SearchStopped(f"time limit {time_limit:g} s")
        if max_nodes is not None and state["nodes"] > max_nodes:
            raise SearchStopped(f"node limit {max_nodes}")
        if memory_limit_bytes is not None and _peak_rss_bytes() > memory_limit_bytes:
            raise SearchStopped(f"memory limit {memory_limit_bytes / 2**30:.2f} GiB")

    def insert_level(subsets: np.ndarray, sums: np.ndarray) -> None:
        """Put one level's subsets (rows of local indices) on the staircase, cheapest first."""
        costs = pA[subsets].sum(axis=1)
        for i in level_frontier(costs, sums).tolist():
            stair.insert(int(costs[i]), float(sums[i]), name(tuple(subsets[i].tolist())))

    for subset in seeds or []:
        if lo <= len(subset) <= hi:
            stair.insert(int(p[list(subset)].sum()), canonical_sum(L[list(subset)].min(axis=0)), tuple(sorted(subset)))
    complete, reason = True, "complete"
    bar = None
    try:
        local_singles = np.sort(singles, kind="stable")
        if lo <= 1:
            insert_level(np.arange(k)[:, None], local_singles)
        spend(k)
        if hi >= 2 and k >= 2:
            _, pair_sums = pair_minimum_sums(A)
            pairs = pair_table(local_singles, pair_sums)
            if lo <= 2:
                insert_level(np.stack(np.triu_indices(k, k=1), axis=1), pair_sums)
            spend(pair_sums.size)
        if hi >= 3 and k >= 3:
            triples_idx, triple_sums = triple_minimum_sums(A)
            if lo <= 3:
                insert_level(triples_idx, triple_sums)
            spend(triple_sums.size)
            triples = triple_table(triples_idx, triple_sums, pairs)
            del triples_idx, triple_sums
        if hi >= 4 and k >= 4:
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=k - 3, desc="subset frontier (quads by level)", unit="model", mininterval=5.0)
            upper = np.triu(np.ones((k, k), dtype=bool), k=1)
            for a in range(k - 3):
                for b in range(a + 1, k - 2):
                    tail = k - b - 1
                    bound = quad_lower_bounds(triples, pairs, a, b)
                    cost = pA[a] + pA[b] + pA[b + 1 :][:, None] + pA[b + 1 :][None, :]
                    ci, di = np.nonzero((bound < staircase_levels(stair, cache, cost)) & upper[:tail, :tail])
                    if ci.size:
                        best_first = np.argsort(bound[ci, di] - staircase_levels(stair, cache, cost[ci, di],
                                                                                  slack=False), kind="stable")
                        ci, di = ci[best_first], di[best_first]
                        pair_min = np.minimum(A[a], A[b])
                        for s in range(0, ci.size, QUAD_BATCH):
                            c, d = ci[s : s + QUAD_BATCH], di[s : s + QUAD_BATCH]
                            alive = bound[c, d] < staircase_levels(stair, cache, cost[c, d])
                            c, d = c[alive] + b + 1, d[alive] + b + 1
                            minima = np.minimum(A[c], A[d])
                            np.minimum(minima, pair_min, out=minima)
                            sums = blocked_text_sums(minima)
                            totals = pA[a] + pA[b] + pA[c] + pA[d]
                            for i in np.flatnonzero(sums < staircase_levels(stair, cache, totals, slack=False)).tolist():
                                stair.insert(int(totals[i]), float(sums[i]), name((a, b, int(c[i]), int(d[i]))))
                            spend(int(c.size))
                    spend(0)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(points=len(stair.params), nodes=state["nodes"])
    except SearchStopped as stop:
        complete, reason = False, stop.reason
    except MemoryError:
        complete, reason = False, "out of memory (MemoryError)"
    if bar is not None:
        bar.close()
    open_bounds = []
    if not complete:
        open_bounds = [node_bound(np.full(n_texts, np.inf), A, 0, np.inf, pA, hi, 0.0, None)]
    return SearchResult(stair=stair, complete=complete, reason=reason, n_nodes=state["nodes"],
                        open_bounds=open_bounds, seconds=time.perf_counter() - start)
