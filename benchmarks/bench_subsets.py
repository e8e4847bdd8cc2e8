"""Benchmarks for mmlaw_utils.analysis.subsets: all triples, the exact all-sizes frontier, growth with K and N.

    nice -n 5 .venv/bin/python benchmarks/bench_subsets.py [--cap 600] [--write-readme]

1. all C(71,3) triples on N=10,000 texts (``subsets.triple_losses``; target < 10 s on 2 cores);
2. the exact all-sizes frontier (``subsets.subset_frontier``, branch and bound) on the miniature
   pool (data/minipool/loss_matrix.parquet when present, else a paper-like matrix of its shape);
3. growth of the exact frontier on paper-like matrices (``scoring.synthetic.paper_like_losses``:
   the 11 families of configs/pools/paper71.yaml, per-text difficulty shared within family and
   release) over K = 30, 50, 71 and N = 1,000 .. 10,000, the headline K=71, N=10,000 (target:
   complete, every point proven, <= 10 min, peak memory < 4 GB) and K=200, N=10,000 with
   max_size 4 (target: complete, every point proven, <= 10 min; the level-wise search of
   ``subset_search.level_search``); optionally the HiGHS budget walk (``method="milp"``) for
   comparison (``--milp``).
Every frontier run is a fresh subprocess capped at ``--cap`` wall seconds (the search stops with
its certified partial frontier); its peak resident memory is the child's ru_maxrss (L included).
The machine is shared, so each run reports CPU seconds and wall seconds, and its CPU time as a
ratio to a reference solve (K=30, N=1,000 paper-like) timed in the same run, before and after.
With ``--write-readme`` the table replaces the "beyond" region of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmlaw_utils.analysis import subsets  # noqa: E402
from mmlaw_utils.analysis.subset_search import memory_bound_bytes  # noqa: E402
from mmlaw_utils.io import atomic_write_text, sha256_file, write_marked_region  # noqa: E402
from mmlaw_utils.scoring.synthetic import paper_like_losses  # noqa: E402

START, END = "<!-- beyond:start -->", "<!-- beyond:end -->"
REFERENCE = {"n_models": 30, "n_texts": 1000, "max_size": None, "method": "bnb"}


def paper_matrix(n_models: int, n_texts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(L, params, description) of a paper-like synthetic pool."""
    pool, nll = paper_like_losses(n_models, n_texts, seed)
    return nll, pool["params"].to_numpy(), f"paper-like, seed {seed}"


def bench_triples(repeats: int = 3, n_models: int = 71, n_texts: int = 10_000) -> dict:
    L, _, desc = paper_matrix(n_models, n_texts)
    best = best_cpu = np.inf
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        idx, loss = subsets.triple_losses(L)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu_start)
    pick = np.random.default_rng(0).integers(0, len(idx), 20)
    assert np.allclose(loss[pick], [L[list(t)].min(axis=0).mean() for t in idx[pick]], rtol=1e-12)
    return {"task": f"all {len(idx):,} triples, K={n_models}, N={n_texts:,}", "seconds": best, "cpu": best_cpu,
            "ratio": None, "detail": f"best of {repeats} (wall and CPU apart); `triple_losses`; {desc}"}


def load_case(case: dict) -> tuple[np.ndarray, np.ndarray, str]:
    if case.get("minipool"):
        data = REPO / "data" / "minipool"
        if (data / "loss_matrix.parquet").is_file():
            from mmlaw_utils.scoring.assemble import load_loss_matrix

            lm = load_loss_matrix(data)
            return lm.to_array(), lm.params, "miniature pool (data/minipool)"
        L, p, desc = paper_matrix(30, 1186)
        return L, p, f"NOT the miniature pool (not built yet): {desc}"
    return paper_matrix(case["n_models"], case["n_texts"])


def run_case(case: dict) -> dict:
    """One frontier run in this process (called in a child): timings, search counters, certificate summary."""
    L, p, desc = load_case(case)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    front = subsets.subset_frontier(L, p, case.get("max_size"), method=case["method"],
                                    total_time_limit=case["cap"], time_limit=case.get("mip_limit"))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    attrs = front.attrs
    return {
        "desc": desc, "n_models": int(L.shape[0]), "n_texts": int(L.shape[1]), "cpu": cpu, "seconds": wall,
        "points": int(len(front)), "complete": bool(attrs.get("complete", True)),
        "reason": str(attrs.get("stop_reason", "total time limit")), "nodes": int(attrs.get("n_nodes", 0)),
        "solves": int(attrs.get("n_solves", 0)), "proven": int(front["proven_optimal"].sum()),
        "max_gap": float(front["gap"].max()) if len(front) else float("nan"),
        "max_size": int(front["size"].max()) if len(front) else 0, "search": attrs.get("search"),
        "memory_bound": int(attrs.get("memory_bound_bytes",
                                      memory_bound_bytes(L.shape[0], L.shape[1], case.get("max_size") or L.shape[0]))),
        "matrix_bytes": int(L.nbytes),
    }


CACHE = Path(os.environ.get("BENCH_SUBSETS_CACHE", "/tmp/bench_subsets_runs.json"))
REUSE = {"on": False}


def run_child(case: dict) -> dict:
    """``run_case`` in a fresh interpreter; adds its peak resident memory (bytes, ru_maxrss).

    Every result is kept in CACHE; with ``--reuse`` a case already there is not run again (its row is
    marked "(earlier run)")."""
    key = json.dumps(case, sort_keys=True)
    cached = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    if REUSE["on"] and key in cached:
        return {**cached[key], "reused": True}
    result = _run_child(case)
    cached = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    cached[key] = result
    atomic_write_text(CACHE, json.dumps(cached, indent=1))
    return result


def _run_child(case: dict) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(case)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = usage.ru_maxrss * 1024
    return result


def row_for(label: str, r: dict, reference_cpu: float | None) -> dict:
    status = "complete" if r["complete"] else f"STOPPED ({r['reason']})"
    method = f"{r['nodes']:,} search nodes" if r["nodes"] else f"{r['solves']} MIP solves"
    if r.get("search") == "levels":
        method = f"level-wise search: {r['nodes']:,} subsets computed (every pair and triple, the quads past the bound)"
    if r.get("reused"):
        label += " (earlier run)"
    return {
        "task": label, "seconds": r["seconds"], "cpu": r["cpu"],
        "ratio": None if not reference_cpu else r["cpu"] / reference_cpu,
        "detail": (f"{status}: {r['points']} frontier points, {r['proven']} proven optimal (max gap "
                   f"{r['max_gap']:.2g} nats), {method}, largest subset {r['max_size']}; peak RSS "
                   f"{r['peak_rss'] / 2**20:,.0f} MiB (L: {r['matrix_bytes'] / 2**20:,.0f} MiB; search bound "
                   f"{r['memory_bound'] / 2**20:,.0f} MiB)"),
    }


def verdict(label: str, r: dict, cpu_target: float, need_complete: bool, memory_target: float | None) -> str:
    """One sentence: the target for this run and whether it was met, from the run's own figures."""
    misses = []
    if need_complete and not (r["complete"] and r["proven"] == r["points"]):
        misses.append(f"stopped with {r['proven']} of {r['points']} points proven ({r['reason']})")
    if r["cpu"] > cpu_target:
        misses.append(f"{r['cpu']:.0f} CPU s > {cpu_target:.0f} s")
    if memory_target is not None and r["peak_rss"] > memory_target:
        misses.append(f"peak RSS {r['peak_rss'] / 2**30:.2f} GiB > {memory_target / 2**30:.0f} GiB")
    if not misses:
        return f"- {label}: **target met** ({r['cpu']:.0f} CPU s, {r['seconds']:.0f} wall s, peak RSS {r['peak_rss'] / 2**30:.2f} GiB)."
    return f"- {label}: **target missed**: " + "; ".join(misses) + "."


def reference_cpu_seconds() -> float:
    """CPU seconds of the reference solve (paper-like K=30, N=1,000, bnb), in a child (never reused)."""
    return _run_child({**REFERENCE, "cap": 600.0})["cpu"]


def smoke() -> int:
    """The benchmark's code paths on tiny paper-like pools (child processes included); fails on an incomplete search."""
    print(bench_triples(1, 12, 300), flush=True)
    for case in ({"n_models": 12, "n_texts": 300, "method": "bnb", "cap": 120.0},
                 {"n_models": 20, "n_texts": 300, "max_size": 3, "method": "bnb", "cap": 120.0}):
        r = _run_child(case)
        print(row_for(f"exact frontier, paper-like K={case['n_models']}, N=300, max_size {case.get('max_size')}", r,
                      None), flush=True)
        if not (r["complete"] and r["proven"] == r["points"]):
            print(f"bench_subsets --smoke: case {case} did not finish with every point proven", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=600.0, help="wall seconds per frontier run")
    parser.add_argument("--ks", type=int, nargs="*", default=[30, 50, 71])
    parser.add_argument("--ns", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--big-k", type=int, default=200, help="K of the max_size-4 run (0: skip)")
    parser.add_argument("--big-cap", type=float, default=600.0, help="wall seconds for the max_size-4 run")
    parser.add_argument("--milp", type=int, nargs="*", default=[], help="K values (N=1,000) also run with method=milp")
    parser.add_argument("--milp-cap", type=float, default=300.0, help="wall seconds per method=milp run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["triples", "exact", "growth"])
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--reuse", action="store_true", help=f"reuse results of earlier runs kept in {CACHE}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: triples and two exact frontiers (all sizes; max_size 3) on K <= 20, N=300; no README")
    args = parser.parse_args(argv)
    REUSE["on"] = args.reuse
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))), flush=True)
        return 0
    if args.smoke:
        return smoke()
    load = os.getloadavg()[0]
    ref_before = reference_cpu_seconds()
    print(f"reference solve: {ref_before:.2f} CPU s", flush=True)
    rows = []
    verdicts = []
    if "triples" not in args.skip:
        rows.append(bench_triples())
        print(rows[-1], flush=True)
    if "exact" not in args.skip:
        # the matrix's hash keys the cached run, so --reuse never reports a frontier of older data
        matrix = REPO / "data" / "minipool" / "loss_matrix.parquet"
        digest = sha256_file(matrix)[:16] if matrix.is_file() else None
        r = run_child({"minipool": True, "matrix_sha256": digest, "method": "bnb", "cap": args.cap})
        rows.append(row_for(f"exact all-sizes frontier, {r['desc']}, K={r['n_models']}, N={r['n_texts']:,}", r,
                            ref_before))
        print(rows[-1], flush=True)
    if "growth" not in args.skip:
        for n in args.ns:
            for k in args.ks:
                r = run_child({"n_models": k, "n_texts": n, "method": "bnb", "cap": args.cap})
                rows.append(row_for(f"exact frontier, paper-like K={k}, N={n:,}", r, ref_before))
                print(rows[-1], flush=True)
                if k == 71 and n == 10_000:
                    verdicts.append(verdict("K=71, N=10,000, all sizes (target: complete, every point proven, "
                                            "<= 600 s, < 4 GiB)", r, 600.0, True, 4 * 2**30))
        if args.big_k:
            r = run_child({"n_models": args.big_k, "n_texts": 10_000, "max_size": 4, "method": "bnb",
                           "cap": args.big_cap})
            rows.append(row_for(f"exact frontier, max_size 4, paper-like K={args.big_k}, N=10,000", r, ref_before))
            print(rows[-1], flush=True)
            verdicts.append(verdict(f"K={args.big_k}, N=10,000, max_size 4 (target: <= 600 s)", r, 600.0, True, None))
        for k in args.milp:
            r = run_child({"n_models": k, "n_texts": 1000, "method": "milp", "cap": args.milp_cap})
            rows.append(row_for(f"HiGHS budget walk (method=milp), paper-like K={k}, N=1,000", r, ref_before))
            print(rows[-1], flush=True)
    ref_after = reference_cpu_seconds()
    command = " ".join([f"nice -n {os.nice(0)} .venv/bin/python benchmarks/bench_subsets.py",
                        *(argv if argv is not None else sys.argv[1:])])
    header = (f"Command: `{command}` ({platform.machine()}, {os.cpu_count()} cores visible, load average "
              f"{load:.1f} at start and {os.getloadavg()[0]:.1f} at the end, numpy {np.__version__}, python "
              f"{platform.python_version()}). The machine is shared with other jobs: wall seconds are upper bounds "
              "of an idle run; CPU seconds (the search is single-threaded) are the better measure, and the last "
              f"column divides them by the CPU time of a reference solve (paper-like K=30, N=1,000, branch and "
              f"bound) timed in the same run: {ref_before:.2f} s before and {ref_after:.2f} s after the table. "
              "Peak RSS is the child process's maximum resident set (Python, numpy and L included). Rows marked "
              "\"(earlier run)\" come from an earlier run of the same script and code (`--reuse`).")
    reference = (ref_before + ref_after) / 2
    table = ["| task | wall (s) | CPU (s) | CPU / reference | detail |", "|---|---:|---:|---:|---|"]
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['cpu'] / reference:.1f}"
        table.append(f"| {r['task']} | {r['seconds']:.2f} | {r['cpu']:.2f} | {ratio} | {r['detail']} |")
    block = "\n".join([START, "## Beyond pairs (subsets)", "", header, "", *table, "", *verdicts, END])
    print(block)
    if args.write_readme:
        body = "\n".join(["## Beyond pairs (subsets)", "", header, "", *table, "", *verdicts])
        write_marked_region(REPO / "benchmarks" / "README.md", body, START, END, append_if_missing=True,
                            new_file_text="# Benchmarks\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
