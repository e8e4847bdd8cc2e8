"""How fast the explorer (notebooks/explore.ipynb) follows a change of selection.

A change of selection recomputes every number of the selection (oracle loss, best member, the
uniform and the fitted Bayesian mixture, win shares overall and per domain, texts by gain), redraws
the numbers, the text view and the plot's selection mark. Targets: within 200 ms on the committed
miniature pool (K=30 x N=2,398) and within 1 s on a synthetic K=71 x N=10,000 matrix (the paper's pool
size, ``bench_analysis.synthetic_losses`` with 8 domains). Timed in the kernel, without a browser:
the browser's own drawing is not included.

Usage (from the repository root):
    nice -n 10 .venv/bin/python benchmarks/bench_explorer.py [--smoke] [--write-readme]
(any Python with the base install: ``pip install -e .``)

``--smoke`` runs two selections of each kind once (seconds, a check that the script works);
``--write-readme`` replaces the "Explorer" section of benchmarks/README.md (between its markers).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_analysis import synthetic_losses  # noqa: E402

from mmlaw_utils.analysis.lossmatrix import loss_matrix_from_arrays  # noqa: E402
from mmlaw_utils.io import write_marked_region  # noqa: E402
from mmlaw_utils.report.explorer import Explorer, ExplorerData, load_explorer_data  # noqa: E402

README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- explorer:start -->", "<!-- explorer:end -->"


def synthetic_data(n_models: int = 71, n_texts: int = 10_000) -> ExplorerData:
    """The paper-sized synthetic matrix as explorer data, 8 domains of equal size."""
    L, params, families = synthetic_losses(n_models, n_texts)
    lm = loss_matrix_from_arrays(L, [f"syn/{f}-{i:02d}" for i, f in enumerate(families)],
                                 [f"t{i:05d}" for i in range(n_texts)], families, params)
    domains = np.array([f"d{i % 8}" for i in range(n_texts)], dtype=object)
    return ExplorerData(profile="synthetic-71", lm=lm, domains=domains)


def selections(explorer: Explorer, rng: np.random.Generator) -> list[tuple[str, list[str]]]:
    """(kind, model names) of the selections timed: a pair, a whole family, 10 random models, the largest frontier point."""
    lm = explorer.data.lm
    names = lm.model_names
    families, counts = np.unique(lm.families, return_counts=True)
    family = families[int(np.argmax(counts))]  # the largest family
    front = explorer.data.exact_frontier()
    out = []
    for _ in range(2):
        out.append(("pair", list(rng.choice(names, 2, replace=False))))
        out.append(("10 random models", list(rng.choice(names, min(10, len(names)), replace=False))))
    out.append(("whole family", [n for n, f in zip(names, lm.families) if f == family]))
    out.append(("largest frontier point", list(front["members"].iloc[-1])))
    return out


def measure(name: str, explorer: Explorer, repeats: int) -> list[tuple[str, str, float, float, float]]:
    """Rows (pool, selection, median ms, max ms, EM-fitted mixture ms) over ``repeats`` changes of each selection.

    The fitted mixture is shown by a worker thread after the other numbers; its time (the first fit
    of the selection; later ones come from a cache) is measured from the change to its display.
    """
    rng = np.random.default_rng(0)
    rows = []
    for kind, names in selections(explorer, rng):
        times, fit_s = [], None
        for _ in range(repeats):
            explorer.select_best_single()  # a change every time
            explorer.wait_for_mixture()
            start = time.perf_counter()
            explorer.select(names)
            times.append(time.perf_counter() - start)
            explorer.wait_for_mixture()
            fit_s = time.perf_counter() - start if fit_s is None else fit_s
        rows.append((name, f"{kind} ({len(names)} models)", 1000 * float(np.median(times)), 1000 * max(times), 1000 * fit_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one change of each selection (a quick check)")
    parser.add_argument("--write-readme", action="store_true", help="write the results into benchmarks/README.md")
    args = parser.parse_args()
    repeats = 1 if args.smoke else 7
    load = os.getloadavg()[0]
    start = time.perf_counter()
    mini = Explorer("minipool", data=load_explorer_data("minipool"), profiles=["minipool"])
    mini_setup = time.perf_counter() - start
    start = time.perf_counter()
    big = Explorer("synthetic-71", data=synthetic_data(), profiles=["synthetic-71"])
    big_setup = time.perf_counter() - start
    rows = measure("minipool K=30, N=2,398", mini, repeats) + measure("synthetic K=71, N=10,000", big, repeats)
    lines = [
        "## Explorer",
        "",
        f"Command: `nice -n 10 python benchmarks/bench_explorer.py{' --smoke' if args.smoke else ''} --write-readme` "
        f"(`python` of a {'fresh base install' if importlib.util.find_spec('torch') is None else 'full install'}; "
        f"{platform.machine()}, {os.cpu_count()} cores visible, load average {load:.1f} at start, python "
        f"{platform.python_version()}; figures are upper bounds of an idle machine's). Wall time of one change of selection in the kernel (all numbers, the text view "
        f"and the plot's mark; the browser's drawing not included), over {repeats} changes. Targets: 200 ms on minipool, "
        f"1 s on K=71 x N=10,000. The mixture with EM-fitted weights is fitted by a worker thread after the update "
        f"(\"fitting…\" until then); its column is the time from the change until it is shown. Start-up (load, all pairs, exact any-size frontier, widgets): minipool {mini_setup:.1f} s, "
        f"K=71 {big_setup:.1f} s.",
        "",
        "| pool | selection | update, median (ms) | update, max (ms) | fitted mixture shown after (ms) |",
        "|---|---|---:|---:|---:|",
        *[f"| {pool} | {kind} | {median:.0f} | {worst:.0f} | {fit:.0f} |" for pool, kind, median, worst, fit in rows],
    ]
    block = "\n".join(lines)
    print(block)
    if args.write_readme:
        write_marked_region(README, block, START, END, append_if_missing=True)


if __name__ == "__main__":
    main()
