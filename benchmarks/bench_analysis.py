"""Benchmarks of the analysis numerics on synthetic loss matrices.

1. all pair oracle losses, K=71 models x N=10,000 texts (target < 0.5 s on 2 cores);
2. all pair oracle losses, K=200 x N=50,000: time and peak memory;
3. 1,000 bootstrap resamples over texts, K=71 x N=10,000, each with the three frontiers and fits.

Usage (from the repository root):
    nice -n 10 .venv/bin/python benchmarks/bench_analysis.py [--quick] [--write-readme]

``--write-readme`` replaces the "Analysis" section of benchmarks/README.md (between its
markers) with the measured table; other sections are left as they are.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from mmlaw_utils.analysis.bootstrap import bootstrap_counts, bootstrap_group_fits, weighted_pair_means  # noqa: E402
from mmlaw_utils.analysis.oracle import pair_oracle_losses  # noqa: E402
from mmlaw_utils.io import write_marked_region  # noqa: E402

README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- analysis:start -->", "<!-- analysis:end -->"
# family sizes of a 71-model pool with 506 same-family and 1,979 cross-family pairs (the paper's Table 1)
PAPER_LIKE_FAMILIES = (24, 21, 6, 3, 2, 2, *([1] * 13))


def family_labels(n_models: int) -> np.ndarray:
    """Family label per model: the paper-like split for K=71, otherwise ~10 families round-robin."""
    if n_models == sum(PAPER_LIKE_FAMILIES):
        return np.repeat([f"f{i}" for i in range(len(PAPER_LIKE_FAMILIES))], PAPER_LIKE_FAMILIES)
    return np.array([f"f{i % 10}" for i in range(n_models)])


def synthetic_losses(n_models: int, n_texts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K x N summed nats per text, params (raw counts) and families; losses fall with params."""
    rng = np.random.default_rng(seed)
    families = family_labels(n_models)
    codes = np.unique(families, return_inverse=True)[1]
    params = np.round(np.exp(rng.uniform(np.log(1e8), np.log(7e10), n_models))).astype(np.int64)
    text_size = rng.gamma(4.0, 600.0, n_texts)  # bytes-like length per text
    per_byte = 0.7 + 0.3 * (params / 1e9) ** -0.35  # nats per byte
    family_noise = rng.normal(0.0, 0.12, (codes.max() + 1, n_texts))[codes]
    model_noise = rng.normal(0.0, 0.04, (n_models, n_texts))
    losses = per_byte[:, None] * text_size[None, :] * np.exp(family_noise + model_noise)
    return losses, params, families


def best_of(fn, repeats: int) -> float:
    """Fastest wall time (s) of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_pairs(n_models: int, n_texts: int, repeats: int) -> dict:
    L, _, _ = synthetic_losses(n_models, n_texts)
    pair_oracle_losses(L[:, :1000])  # warm-up
    seconds = best_of(lambda: pair_oracle_losses(L), repeats)
    tracemalloc.start()
    pair_oracle_losses(L)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "task": f"all pairs K={n_models}, N={n_texts:,}",
        "seconds": seconds,
        "detail": f"best of {repeats}; L itself {L.nbytes / 2**20:.0f} MiB, "
        f"peak extra numpy memory {peak / 2**20:.1f} MiB (tracemalloc)",
    }


def bench_bootstrap(n_models: int, n_texts: int, n_bootstrap: int) -> list[dict]:
    L, params, families = synthetic_losses(n_models, n_texts)
    start = time.perf_counter()
    counts = bootstrap_counts(n_texts, n_bootstrap, seed=0)
    t_counts = time.perf_counter() - start
    start = time.perf_counter()
    for chunk in range(0, n_bootstrap, 250):
        weighted_pair_means(L, counts[chunk : chunk + 250])
    t_means = time.perf_counter() - start
    start = time.perf_counter()
    boot = bootstrap_group_fits(L, params, families, n_bootstrap=n_bootstrap, seed=0)
    t_total = time.perf_counter() - start
    n_ok = int(boot["alpha"].notna().sum())
    return [
        {
            "task": f"bootstrap {n_bootstrap:,} resamples K={n_models}, N={n_texts:,}: counts + pair means only",
            "seconds": t_counts + t_means,
            "detail": f"counts {t_counts:.2f} s + weighted single/pair means {t_means:.2f} s",
        },
        {
            "task": f"bootstrap {n_bootstrap:,} resamples K={n_models}, N={n_texts:,}: full (means, 3 frontiers, 3 fits)",
            "seconds": t_total,
            "detail": f"`bootstrap_group_fits`; {n_ok}/{len(boot)} fits succeeded",
        },
    ]


def environment() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"load average {load:.1f} at start, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"numpy {np.__version__}, python {platform.python_version()}"
    )


def markdown(rows: list[dict], command: str, env: str) -> str:
    lines = [
        "## Analysis",
        "",
        f"Command: `{command}` (synthetic loss matrices; {env}). "
        "The machine is shared, so figures are upper bounds of an idle run.",
        "",
        "| task | wall time (s) | detail |",
        "|---|---:|---|",
    ]
    lines += [f"| {row['task']} | {row['seconds']:.3f} | {row['detail']} |" for row in rows]
    return "\n".join(lines)


def write_readme_section(section: str) -> None:
    """Replace (or append) the Analysis section between its markers, re-reading the file first."""
    write_marked_region(README, section, START, END, append_if_missing=True, new_file_text="# Benchmarks\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script runs")
    parser.add_argument("--smoke", action="store_true", help="seconds: tiny sizes, no README (CI)")
    parser.add_argument("--write-readme", action="store_true", help="update the Analysis section of benchmarks/README.md")
    args = parser.parse_args()
    env = environment()
    if args.smoke:
        print(markdown([bench_pairs(8, 300, 1), *bench_bootstrap(8, 300, 5)], "bench_analysis.py --smoke", env))
        return 0
    if args.quick:
        rows = [bench_pairs(20, 2_000, 2), *bench_bootstrap(20, 2_000, 20)]
    else:
        rows = [bench_pairs(71, 10_000, 5), bench_pairs(200, 50_000, 2), *bench_bootstrap(71, 10_000, 1_000)]
    command = "nice -n 10 .venv/bin/python benchmarks/bench_analysis.py" + (" --quick" if args.quick else "")
    section = markdown(rows, command + " --write-readme", env)
    print(section)
    if args.write_readme:
        write_readme_section(section)
        print(f"\nwrote the Analysis section of {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
