"""The findings of notebook 07 (ensembles of any size, mixtures, diversity, forecasts) as markdown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.fit import MIN_POINTS


def _fmt(value: object, digits: int = 4) -> str:
    """One table cell: numbers to ``digits`` significant digits, NaN as a dash, booleans as yes/no."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A GitHub markdown table of ``frame`` (selected ``columns``), numbers to ``digits`` significant digits."""
    cols = list(columns or frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in frame[cols].iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], digits) for c in cols) + " |")
    return "\n".join(lines)


def without_times(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without its wall-clock columns and attrs (names ending in ``_s``, seconds), for a committed file
    that a rerun must reproduce byte for byte (stage times go to the run folder's timings.tsv)."""
    timeless = frame.drop(columns=[c for c in frame.columns if str(c).endswith("_s")])
    timeless.attrs = {key: value for key, value in frame.attrs.items() if not str(key).endswith("_s")}
    return timeless


def beyond_pairs_markdown(profile: str, *, exact: pd.DataFrame, size_fits: pd.DataFrame, shortfall: Mapping[str, pd.DataFrame],
                          gain_kept: pd.DataFrame, relation: pd.DataFrame, forecast: pd.DataFrame,
                          n_models: int, n_texts: int) -> str:
    """Findings of notebook 07 as markdown; every number comes from the arguments (one run). No wall-clock time:
    the file is committed, and a rerun on the same data must reproduce it byte for byte (times go to runs/)."""
    lines = [f"### Beyond pairs ({profile}: {n_models} models x {n_texts} texts)", ""]
    proven = int(exact["proven_optimal"].sum())
    method = str(exact["method"].iloc[0]) if len(exact) else ""
    certificate = {"milp": "the MIP's dual bound", "branch_and_bound": "the branch and bound"}.get(method, "exhaustion")
    sizes = exact["size"].value_counts().sort_index()
    lines += [
        f"**Ensembles of any size.** The exact all-sizes oracle frontier has {len(exact)} points "
        f"({proven} proven optimal by {certificate}, max gap {_fmt(float(exact['gap'].max()), 3)} nats); "
        f"subset sizes on it: "
        + ", ".join(f"{int(k)}: {int(v)}" for k, v in sizes.items()) + ". "
        f"Its lowest loss is {_fmt(float(exact['loss'].min()), 6)} nats/text with {int(exact.loc[exact['loss'].idxmin(), 'size'])} models.",
        "",
        markdown_table(size_fits, ["frontier", "n_points", "A", "alpha", "L_inf", "alpha_se", "L_inf_se", "r2", "status"]),
        "",
    ]
    heur_rows = []
    for name, short in shortfall.items():
        heur_rows.append({"heuristic": name, "points matched": f"{int(short['matched'].sum())}/{len(short)}",
                          "mean excess (nats)": float(short["excess"].mean()), "max excess (nats)": float(short["excess"].max()),
                          "max excess (%)": 100 * float(short["excess_rel"].max())})
    if heur_rows:
        lines += ["Heuristics vs the exact frontier (best heuristic loss within each exact point's budget):", "",
                  markdown_table(pd.DataFrame(heur_rows)), ""]
    lines += ["**Realizable mixture vs oracle** (held-out half of the texts; weights fitted on the other half). "
              "`kept_*` = share of the oracle's gain over the better member that the Bayesian mixture keeps "
              "(a dash where the oracle gains under 0.01 nats per text: a share of almost nothing); `uniform_gain_*`, "
              "`fitted_gain_*` = the mixtures' own mean gain in nats per text.", "",
              markdown_table(gain_kept), ""]
    lines += ["**Diversity.** Pair gain over its better member by family relation:", "",
              markdown_table(relation), ""]
    lines += ["**Forecasting.** Eq. 7 fitted below a cutoff budget, errors on the frontier points above it "
              "(95% bootstrap intervals over texts); `naive_mae` predicts no further improvement.", "",
              markdown_table(forecast, ["group", "n_fit", "n_test", "alpha", "mae", "mae_lo", "mae_hi", "mre", "bias",
                                        "naive_mae", "n_boot_ok"]), ""]
    if not (forecast["n_test"] > 0).any():
        lines += [f"Not enough points: no frontier has the {MIN_POINTS} points below a cutoff and one above it "
                  "that a forecast needs.", ""]
    return "\n".join(lines)
