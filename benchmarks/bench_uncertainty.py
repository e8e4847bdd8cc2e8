"""Wall time of the uncertainty analyses of notebook 05 (they must stay cheap: seconds, not minutes).

On a paper-sized synthetic pool (K=71 models x N=10,000 texts, the family split of the paper's
Table 1) and on the committed miniature pool: the model jackknife (each model left out, frontiers
and fits recomputed), the profile-likelihood intervals of A, alpha and L_inf of the three fits,
the model comparison (with leave-one-point-out refits) and the equal-budget gain with 200 resamples.

Usage (from the repository root):
    nice -n 10 .venv/bin/python benchmarks/bench_uncertainty.py [--write-readme]

``--write-readme`` replaces the "Uncertainty" section of benchmarks/README.md (between its markers).
"""

from __future__ import annotations

import argparse
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

from mmlaw_utils.analysis.budget import equal_budget_table  # noqa: E402
from mmlaw_utils.analysis.frontier import collaboration_groups  # noqa: E402
from mmlaw_utils.scoring.assemble import load_loss_matrix  # noqa: E402
from mmlaw_utils.analysis.model_selection import compare_forms  # noqa: E402
from mmlaw_utils.analysis.oracle import pair_oracle_losses  # noqa: E402
from mmlaw_utils.analysis.profile import profile_intervals  # noqa: E402
from mmlaw_utils.analysis.uncertainty import leave_one_model_out  # noqa: E402
from mmlaw_utils.io import write_marked_region  # noqa: E402
from mmlaw_utils.report.tables import fit_groups  # noqa: E402

README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- uncertainty:start -->", "<!-- uncertainty:end -->"


def timed(fn) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(name: str, L: np.ndarray, params: np.ndarray, families: np.ndarray) -> list[tuple[str, float, str]]:
    """Rows (task, seconds, detail) for one pool; losses in nats, params raw counts."""
    pair_losses = pair_oracle_losses(L)
    groups = collaboration_groups(L, params, families, pair_losses=pair_losses)
    fits = fit_groups(groups)
    fronts = {g: f[f["on_frontier"]] for g, f in groups.items()}
    rows = []
    seconds, jack = timed(lambda: leave_one_model_out(L, params, families, pair_losses=pair_losses))
    rows.append((f"{name}: model jackknife", seconds, f"{L.shape[0]} x 3 refits ({int(jack['alpha'].notna().sum())} fitted)"))
    seconds, _ = timed(lambda: {g: profile_intervals(fit, fronts[g]["params"] / 1e9, fronts[g]["loss"])
                                for g, fit in fits.items() if fit.fitted})
    points = ", ".join(str(len(f)) for f in fronts.values())
    rows.append((f"{name}: profile likelihood, 3 parameters x 3 groups", seconds, f"Pareto points {points}"))
    seconds, _ = timed(lambda: [compare_forms(f["params"] / 1e9, f["loss"], g) for g, f in fronts.items()])
    rows.append((f"{name}: model comparison (3 forms, leave-one-point-out)", seconds, "3 groups"))
    seconds, budget = timed(lambda: equal_budget_table(L, params, families, n_bootstrap=200))
    rows.append((f"{name}: equal-budget gain, 200 resamples", seconds, f"{len(budget)} budgets"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-readme", action="store_true", help="replace the Uncertainty section of benchmarks/README.md")
    parser.add_argument("--smoke", action="store_true", help="seconds: a K=12, N=300 synthetic pool only, no README")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if args.smoke:
        print("\n".join(f"| {task} | {seconds:.3f} | {detail} |" for task, seconds, detail in
                        measure("K=12, N=300 synthetic", *synthetic_losses(12, 300))))
        return 0
    rows = measure("K=71, N=10,000 synthetic", *synthetic_losses(71, 10_000))
    lm = load_loss_matrix(REPO_ROOT / "data" / "minipool")
    n_models, n_texts = lm.shape
    rows += measure(f"minipool ({n_models} x {n_texts:,})", lm.to_array(), lm.params, lm.families)
    table = "\n".join(f"| {task} | {seconds:.3f} | {detail} |" for task, seconds, detail in rows)
    section = (
        "## Uncertainty\n\n"
        "Command: `nice -n 10 .venv/bin/python benchmarks/bench_uncertainty.py --write-readme` "
        f"({platform.machine()}, {os.cpu_count()} cores visible, load average {load:.1f} at start, "
        f"numpy {np.__version__}, python {platform.python_version()}). One run each; the machine is shared.\n\n"
        "| task | wall time (s) | detail |\n|---|---:|---|\n" + table + "\n"
    )
    print(section)
    if args.write_readme:
        write_marked_region(README, section, START, END, append_if_missing=True, new_file_text="# Benchmarks\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
