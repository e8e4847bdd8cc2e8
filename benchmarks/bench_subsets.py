"""Benchmarks for mmlaw_utils.analysis.subsets: all triples, the exact all-sizes frontier, growth with K and N.

    nice -n 10 .venv/bin/python benchmarks/bench_subsets.py [--cap 600] [--write-readme]

1. all C(71,3) triples on N=10,000 texts (``subsets.triple_losses``; target < 10 s on 2 cores);
2. the exact all-sizes frontier (``subsets.subset_frontier``, MIP) on the miniature pool
   (data/minipool/loss_matrix.parquet when present, else a synthetic matrix of its shape,
   30 models x 1,000 texts; the table says which) (target < 10 min);
3. growth of (2) with K (at N=1,000) and N (at K=30), up to K=71; each run capped at ``--cap``
   seconds (a capped run reports how many frontier points it reached).
Synthetic matrices come from ``mmlaw_utils.scoring.synthetic.synthetic_losses`` (family-correlated texts).
With ``--write-readme`` the table replaces the "beyond" region of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmlaw_utils.analysis import subsets  # noqa: E402
from mmlaw_utils.io import write_marked_region  # noqa: E402
from mmlaw_utils.scoring.synthetic import SyntheticSettings, synthetic_losses  # noqa: E402

START, END = "<!-- beyond:start -->", "<!-- beyond:end -->"


def synthetic_matrix(n_models: int, n_texts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(L, params, description): the first ``n_models`` of a families x sizes synthetic pool."""
    n_families = max(2, int(np.ceil(n_models / 9)))
    sizes = tuple(np.geomspace(0.01, 10.0, int(np.ceil(n_models / n_families))).round(4))
    settings = SyntheticSettings(n_families=n_families, sizes_b=sizes, n_texts=n_texts, seed=seed)
    pool, nll, _ = synthetic_losses(settings)
    keep = np.arange(n_models)
    return nll[keep], pool["params"].to_numpy()[keep], f"synthetic {n_families} families x {len(sizes)} sizes, seed {seed}"


def bench_triples(repeats: int = 3) -> dict:
    L, _, desc = synthetic_matrix(71, 10_000)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        idx, loss = subsets.triple_losses(L)
        best = min(best, time.perf_counter() - start)
    # spot-check against the direct definition
    pick = np.random.default_rng(0).integers(0, len(idx), 20)
    assert np.allclose(loss[pick], [L[list(t)].min(axis=0).mean() for t in idx[pick]], rtol=1e-12)
    return {"task": f"all {len(idx):,} triples, K=71, N=10,000", "seconds": best,
            "detail": f"best of {repeats}; `triple_losses`; {desc}"}


def minipool_or_synthetic() -> tuple[np.ndarray, np.ndarray, str]:
    data = REPO / "data" / "minipool"
    if (data / "loss_matrix.parquet").is_file():
        from mmlaw_utils.scoring.assemble import load_loss_matrix

        lm = load_loss_matrix(data)
        return lm.to_array(), lm.params, "miniature pool (data/minipool)"
    L, p, desc = synthetic_matrix(30, 1000)
    return L, p, f"NOT the miniature pool (not built yet): {desc}"


def bench_exact(L: np.ndarray, params: np.ndarray, cap: float) -> dict:
    start = time.perf_counter()
    front = subsets.subset_frontier(L, params, method="milp", total_time_limit=cap)
    seconds = time.perf_counter() - start
    model = subsets._RadiusModel(L[~subsets.dominated_models(L, params)])
    return {
        "seconds": seconds, "points": len(front), "complete": bool(front.attrs.get("complete", True)),
        "solves": int(front.attrs.get("n_solves", 0)), "proven": int(front["proven_optimal"].sum()),
        "max_gap": float(front["gap"].max()) if len(front) else float("nan"),
        "max_size": int(front["size"].max()) if len(front) else 0,
        "slowest_solve": float(front["solve_s"].max()) if len(front) else float("nan"),
        "z_vars": model.n_z, "kn": L.shape[0] * L.shape[1],
    }


def exact_row(label: str, r: dict) -> dict:
    status = "complete" if r["complete"] else "STOPPED at the cap"
    return {"task": label, "seconds": r["seconds"],
            "detail": (f"{status}: {r['points']} frontier points ({r['proven']} proven optimal, max gap "
                       f"{r['max_gap']:.2g} nats), {r['solves']} MIP solves, slowest {r['slowest_solve']:.2f} s, "
                       f"largest subset {r['max_size']}; first MIP: {r['z_vars']:,} aggregated z vars vs K*N = {r['kn']:,}")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=600.0, help="seconds for the miniature-pool exact frontier")
    parser.add_argument("--growth-cap", type=float, default=300.0, help="seconds per growth run")
    parser.add_argument("--ks", type=int, nargs="*", default=[10, 20, 30, 50, 71])
    parser.add_argument("--ns", type=int, nargs="*", default=[250, 1000, 4000])
    parser.add_argument("--skip", nargs="*", default=[], choices=["triples", "exact", "growth"])
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = []
    if "triples" not in args.skip:
        rows.append(bench_triples())
        print(rows[-1], flush=True)
    if "exact" not in args.skip:
        L, p, desc = minipool_or_synthetic()
        rows.append(exact_row(f"exact all-sizes frontier, {desc}, K={L.shape[0]}, N={L.shape[1]}",
                              bench_exact(L, p, args.cap)))
        print(rows[-1], flush=True)
    if "growth" not in args.skip:
        for k in args.ks:
            L, p, desc = synthetic_matrix(k, 1000)
            rows.append(exact_row(f"growth: exact frontier, K={k}, N=1,000 ({desc})", bench_exact(L, p, args.growth_cap)))
            print(rows[-1], flush=True)
        for n in args.ns:
            L, p, desc = synthetic_matrix(30, n)
            rows.append(exact_row(f"growth: exact frontier, K=30, N={n:,} ({desc})", bench_exact(L, p, args.growth_cap)))
            print(rows[-1], flush=True)
    command = " ".join(["nice -n 10 .venv/bin/python benchmarks/bench_subsets.py", *(argv if argv is not None else sys.argv[1:])])
    header = (f"Command: `{command}` "
              f"({platform.machine()}, {os.cpu_count()} cores visible, load average {load:.1f} at start, "
              f"numpy {np.__version__}, python {platform.python_version()}). The machine is shared with other "
              "jobs, so figures are upper bounds of an idle run.")
    table = ["| task | wall time (s) | detail |", "|---|---:|---|"]
    table += [f"| {r['task']} | {r['seconds']:.2f} | {r['detail']} |" for r in rows]
    block = "\n".join([START, "## Beyond pairs (subsets)", "", header, "", *table, END])
    print(block)
    if args.write_readme:
        body = "\n".join(["## Beyond pairs (subsets)", "", header, "", *table])
        write_marked_region(REPO / "benchmarks" / "README.md", body, START, END, append_if_missing=True,
                            new_file_text="# Benchmarks\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
