"""Result tables: loss-matrix summary, pairs table, frontiers table and the paper's Table 1 (§4.2).

Losses are in nats per text (eq. 1-4); ``params`` columns are raw parameter counts; fitted
laws use P in units of ``params_unit`` parameters (1e9: billions, as in eqs. 8-10).

CLI: ``python -m mmlaw_utils readme --profile NAME [--readme README.md]`` rewrites the
region between ``<!-- results:start -->`` and ``<!-- results:end -->`` of the README with the
profile's Table 1 and figures, as written by notebooks 05 and 06.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.fit import ScalingFit, fit_points
from mmlaw_utils.analysis.groups import GROUP_LABELS, GROUPS, PAPER_TABLE1
from mmlaw_utils.analysis.oracle import pair_index
from mmlaw_utils.config import FIGURE_STEMS, OUTPUT_FILES
from mmlaw_utils.io import atomic_write_table, atomic_write_text, write_marked_region

LAW_PARAMS = ("L_inf", "A", "alpha")
TABLE1_COLUMNS = [
    "group", "setting", "raw_points", "pareto_points",
    "L_inf", "L_inf_lo", "L_inf_hi", "A", "A_lo", "A_hi", "alpha", "alpha_lo", "alpha_hi",
    "L_inf_method", "A_method", "alpha_method", "r2", "rmse", "fit_status", "n_bootstrap_ok",
    "paper_raw_points", "paper_pareto_points", "paper_L_inf", "paper_A", "paper_alpha",
]
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"
# the README's first screen: verdict counts and the paper's own Table 1 (update_readme writes both regions)
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """Atomically write a frame to parquet (no index)."""
    import pyarrow as pa

    atomic_write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Atomically write a frame as CSV (no index; tuples stored as their text); returns the path."""
    atomic_write_text(path, frame.to_csv(index=False))
    return Path(path)


def fit_value(fit: Any, name: str) -> float:
    """Attribute ``name`` of a fit given as a ScalingFit-like object or a mapping (NaN when absent)."""
    value = fit.get(name) if isinstance(fit, Mapping) else getattr(fit, name, None)
    return float("nan") if value is None else value


def fit_to_dict(fit: Any) -> dict[str, Any]:
    """JSON-ready dict of a ScalingFit (dataclass, namedtuple or mapping); floats made plain."""
    if isinstance(fit, Mapping):
        raw = dict(fit)
    elif hasattr(fit, "to_dict"):
        raw = fit.to_dict()
    elif hasattr(fit, "__dataclass_fields__"):
        raw = {name: getattr(fit, name) for name in fit.__dataclass_fields__}
    elif hasattr(fit, "_asdict"):
        raw = fit._asdict()
    else:
        raise TypeError(f"cannot convert fit of type {type(fit).__name__} to a dict")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None  # JSON has no NaN
        out[key] = value
    return out


def fit_groups(groups: Mapping[str, pd.DataFrame], params_unit: float = 1e9, **fit_kwargs: Any) -> dict[str, ScalingFit]:
    """Fit eq. 7 to the Pareto points of each group (P = params / params_unit); a group that cannot be fitted
    (fewer than 4 frontier points, say) gets a NaN fit with its status (``fit.fit_points``) instead of stopping the run."""
    fits: dict[str, ScalingFit] = {}
    for group, frame in groups.items():
        front = frame[frame["on_frontier"]]
        fits[group] = fit_points(front["params"].to_numpy(dtype=np.float64) / params_unit,
                                 front["loss"].to_numpy(dtype=np.float64), **fit_kwargs)
    return fits


def fits_from_json(payload: Mapping[str, Any]) -> dict[str, ScalingFit]:
    """Group -> ScalingFit from a fits.json payload (a group that was not fitted has NaN parameters and its status)."""
    return {group: ScalingFit.from_dict(fit) for group, fit in payload["groups"].items()}


def write_fits_json(fits: Mapping[str, Any], path: str | Path, **meta: Any) -> dict[str, Any]:
    """Write ``{"groups": {group: fit dict}, **meta}`` atomically to ``path``; return what was written."""
    payload = {**meta, "groups": {group: fit_to_dict(fit) for group, fit in fits.items()}}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return payload


def read_fits_json(path: str | Path) -> dict[str, Any]:
    """Read a fits.json written by :func:`write_fits_json`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fits file {str(path)!r} does not exist; run notebook 05 first")
    return json.loads(path.read_text())


def loss_matrix_summary(
    loss: np.ndarray, model_names: Any, families: Any, params: Any, n_tokens: np.ndarray | None = None,
    n_bytes: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per model: family, params (raw), params_b, mean loss (eq. 2, nats/text), sd, nats/byte, bits/byte.

    ``loss``, ``n_tokens`` and ``n_bytes`` are K x N arrays (``n_bytes`` may be (N,)).
    """
    loss = np.asarray(loss, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "model": list(model_names),
            "family": list(families),
            "params": np.asarray(params, dtype=np.int64),
            "params_b": np.asarray(params, dtype=np.float64) / 1e9,
            "mean_nll": loss.mean(axis=1),
            "sd_nll": loss.std(axis=1, ddof=1) if loss.shape[1] > 1 else np.nan,
        }
    )
    if n_tokens is not None:
        frame["nats_per_token"] = loss.sum(axis=1) / np.asarray(n_tokens).sum(axis=-1)
    if n_bytes is not None:
        total_bytes = np.broadcast_to(np.asarray(n_bytes), loss.shape).sum(axis=1)
        frame["nats_per_byte"] = loss.sum(axis=1) / total_bytes
        frame["bits_per_byte"] = frame["nats_per_byte"] / math.log(2)
    return frame


def pairs_table(
    pair_losses: np.ndarray, model_names: Any, families: Any, params: Any, win_share: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per unordered pair i < j (§3.3): models, families, group, params (sum, eq. 5), loss (eq. 4), gain.

    ``pair_losses`` is the K x K matrix of ``oracle.pair_oracle_losses`` (singles on the diagonal);
    ``win_share`` the K x K matrix of ``oracle.pair_win_shares``. ``gain`` = best single loss of
    the two minus the pair loss (nats per text, >= 0).
    """
    pair_losses = np.asarray(pair_losses, dtype=np.float64)
    names = np.asarray(list(model_names), dtype=object)
    fam = np.asarray(list(families)).astype(str)
    p = np.asarray(params, dtype=np.int64)
    k = len(names)
    if pair_losses.shape != (k, k):
        raise ValueError(f"pair_losses must be {k} x {k} for {k} models, got {pair_losses.shape}")
    index = pair_index(fam)
    rows, cols = index.i, index.j
    singles = np.diag(pair_losses)
    frame = pd.DataFrame(
        {
            "i": rows.astype(np.int64),
            "j": cols.astype(np.int64),
            "model_a": names[rows].astype(str),
            "model_b": names[cols].astype(str),
            "family_a": fam[rows],
            "family_b": fam[cols],
            "group": index.group,
            "params": p[rows] + p[cols],
            "loss": pair_losses[rows, cols],
            "loss_a": singles[rows],
            "loss_b": singles[cols],
        }
    )
    frame["gain"] = np.minimum(frame["loss_a"], frame["loss_b"]) - frame["loss"]
    if win_share is not None:
        win_share = np.asarray(win_share, dtype=np.float64)
        frame["win_share_a"] = win_share[rows, cols]
        frame["win_share_b"] = win_share[cols, rows]
    return frame


def pair_loss_matrix(pairs: pd.DataFrame, n_models: int) -> np.ndarray:
    """K x K pair oracle losses (nats; singles on the diagonal) rebuilt from a :func:`pairs_table` frame."""
    if n_models < 2:
        raise ValueError(f"the loss matrix has {n_models} model: there are no pairs, and the frontiers compare "
                         "single models with pairs; a pool needs at least 2 models")
    expected = n_models * (n_models - 1) // 2
    if len(pairs) != expected:
        raise ValueError(f"pairs table has {len(pairs)} rows; {n_models} models have {expected} pairs")
    i, j = pairs["i"].to_numpy(dtype=np.int64), pairs["j"].to_numpy(dtype=np.int64)
    matrix = np.full((n_models, n_models), np.nan)
    matrix[i, j] = matrix[j, i] = pairs["loss"].to_numpy(dtype=np.float64)
    matrix[i, i] = pairs["loss_a"].to_numpy(dtype=np.float64)
    matrix[j, j] = pairs["loss_b"].to_numpy(dtype=np.float64)
    if np.isnan(matrix).any():
        raise ValueError("pairs table does not cover every pair (i < j) and every single model")
    return matrix


def family_win_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per group: number of pairs, mean gain over the best member (nats), share of pairs where both members win >= 10%."""
    if "win_share_a" not in pairs:
        raise ValueError("pairs table has no win shares; build it with win_share=oracle.pair_win_shares(L)")
    minority = np.minimum(pairs["win_share_a"], pairs["win_share_b"])
    return (
        pairs.assign(minority_share=minority, both_win_10pct=minority >= 0.10)
        .groupby("group", sort=False)
        .agg(pairs=("loss", "size"), mean_gain_nats=("gain", "mean"), median_minority_share=("minority_share", "median"),
             share_both_win_10pct=("both_win_10pct", "mean"))
        .reset_index()
    )


def frontiers_table(groups: Mapping[str, pd.DataFrame], model_names: Any, params_unit: float = 1e9) -> pd.DataFrame:
    """Long table of all raw points of the groups of ``frontier.collaboration_groups`` (§3.4).

    Columns: group, members (list of model indices), models (" + "-joined ids), params (raw),
    params_scaled (params / params_unit), loss (nats), on_frontier.
    """
    names = list(model_names)
    parts = []
    for group, frame in groups.items():
        members = [list(map(int, m)) for m in frame["members"]]
        parts.append(
            pd.DataFrame(
                {
                    "group": group,
                    "members": members,
                    "models": [" + ".join(names[i] for i in m) for m in members],
                    "params": frame["params"].to_numpy(dtype=np.int64),
                    "params_scaled": frame["params"].to_numpy(dtype=np.float64) / params_unit,
                    "loss": frame["loss"].to_numpy(dtype=np.float64),
                    "on_frontier": frame["on_frontier"].to_numpy(dtype=bool),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def groups_from_frontiers_table(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Inverse of :func:`frontiers_table`: group -> frame with members (tuple), params, loss, on_frontier."""
    out = {}
    for group in table["group"].unique():
        frame = table[table["group"] == group].reset_index(drop=True)
        out[group] = pd.DataFrame(
            {
                "members": [tuple(int(i) for i in m) for m in frame["members"]],
                "params": frame["params"].to_numpy(dtype=np.int64),
                "loss": frame["loss"].to_numpy(dtype=np.float64),
                "on_frontier": frame["on_frontier"].to_numpy(dtype=bool),
            }
        )
    return out


def table1_frame(
    groups: Mapping[str, pd.DataFrame],
    fits: Mapping[str, Any],
    boot: pd.DataFrame | None = None,
    level: float = 0.95,
    uncertainty: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Table 1 (§4.2): per group raw and Pareto points, fitted L_inf, A, alpha with intervals, and the paper's values.

    ``groups`` from ``frontier.collaboration_groups``; ``fits`` group -> ScalingFit (or dict);
    ``boot`` from ``bootstrap.bootstrap_group_fits`` (None: CI columns are NaN). With ``uncertainty``
    (analysis/uncertainty.py), each interval is the envelope of its methods (lowest lo, highest hi) and ``<name>_method`` names the methods setting its ends;
    otherwise it is the text bootstrap's.
    """
    from mmlaw_utils.analysis.bootstrap import bootstrap_ci
    from mmlaw_utils.analysis.uncertainty import envelope_intervals

    intervals = bootstrap_ci(boot, level).set_index("group") if boot is not None and len(boot) else None
    envelope = (envelope_intervals(uncertainty).set_index(["group", "parameter"])
                if uncertainty is not None and len(uncertainty) else None)
    paper = PAPER_TABLE1.set_index("group")
    rows = []
    for group in [g for g in GROUPS if g in groups] + [g for g in groups if g not in GROUPS]:
        frame, fit = groups[group], fits.get(group)
        row: dict[str, Any] = {
            "group": group,
            "setting": GROUP_LABELS.get(group, group),
            "raw_points": int(len(frame)),
            "pareto_points": int(frame["on_frontier"].sum()),
        }
        for name in LAW_PARAMS:
            row[name] = float(fit_value(fit, name)) if fit is not None else np.nan
            has_ci = intervals is not None and group in intervals.index
            if envelope is not None and (group, name) in envelope.index:
                chosen = envelope.loc[(group, name)]
                row[f"{name}_lo"], row[f"{name}_hi"] = float(chosen["lo"]), float(chosen["hi"])
                row[f"{name}_method"] = str(chosen["method"])
            else:
                row[f"{name}_lo"] = float(intervals.loc[group, f"{name}_lo"]) if has_ci else np.nan
                row[f"{name}_hi"] = float(intervals.loc[group, f"{name}_hi"]) if has_ci else np.nan
                row[f"{name}_method"] = "text_bootstrap" if has_ci else ""
        row["r2"] = float(fit_value(fit, "r2")) if fit is not None else np.nan
        row["rmse"] = float(fit_value(fit, "rmse")) if fit is not None else np.nan
        row["fit_status"] = str(fit_value(fit, "status")) if fit is not None else "not fitted"
        row["n_bootstrap_ok"] = int(intervals.loc[group, "n_ok"]) if intervals is not None and group in intervals.index else 0
        for name in ("raw_points", "pareto_points", *LAW_PARAMS):
            row[f"paper_{name}"] = paper.loc[group, name] if group in paper.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def _fmt(value: float, spec: str) -> str:
    return "—" if value is None or not np.isfinite(value) else format(value, spec)


def _with_ci(row: pd.Series, name: str, spec: str) -> str:
    text = _fmt(row[name], spec)
    if np.isfinite(row[f"{name}_lo"]) and np.isfinite(row[f"{name}_hi"]):
        text += f" [{_fmt(row[f'{name}_lo'], spec)}, {_fmt(row[f'{name}_hi'], spec)}]"
    return text


def _methods(row: pd.Series) -> str:
    """Which method gave each interval of a Table 1 row, e.g. "model jackknife" or "L∞: …; A: …; α: …"."""
    names = {name: str(row.get(f"{name}_method", "") or "").replace("_", " ") for name in LAW_PARAMS}
    names = {k: v for k, v in names.items() if v and v != "nan"}
    if not names:
        return "—"
    if len(set(names.values())) == 1:
        return next(iter(names.values()))
    symbols = {"L_inf": "L∞", "A": "A", "alpha": "α"}
    return "; ".join(f"{symbols[k]}: {v}" for k, v in names.items())


def table1_markdown(table: pd.DataFrame, caption: str = "") -> str:
    """Markdown of Table 1: this pool's fits with their intervals (the paper's values are a table of their own)."""
    header = (
        "| Collaboration setting | Raw points | Pareto points | L∞ [interval] | A [interval] | α [interval] "
        "| interval method | fit status |\n"
        "|---|---:|---:|---:|---:|---:|---|---|\n"
    )
    lines = []
    for _, row in table.iterrows():
        lines.append(
            f"| {row['setting']} | {row['raw_points']} | {row['pareto_points']} | {_with_ci(row, 'L_inf', '.2f')} "
            # A depends on the unit of P (tiny in billions for small pools): significant digits
            f"| {_with_ci(row, 'A', '.4g')} | {_with_ci(row, 'alpha', '.4f')} | {_methods(row)} | {row['fit_status']} |"
        )
    text = header + "\n".join(lines) + "\n"
    return (caption.strip() + "\n\n" + text) if caption else text


def write_table1(table: pd.DataFrame, data_dir: str | Path, caption: str = "") -> tuple[Path, Path]:
    """Write ``table1.csv`` and ``table1.md`` into ``data_dir`` atomically; return their paths."""
    data_dir = Path(data_dir)
    csv_path, md_path = data_dir / OUTPUT_FILES["table1_csv"], data_dir / OUTPUT_FILES["table1_md"]
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(md_path, table1_markdown(table, caption))
    return csv_path, md_path


def model_comparison_markdown(comparison: pd.DataFrame) -> str:
    """Which law each frontier supports (eq. 7, eq. 7 without a floor, log-linear), from model_comparison.csv."""
    from mmlaw_utils.analysis.model_selection import support_sentence

    lines = ["Which law do the Pareto points support? (AICc and leave-one-point-out error; `model_comparison.csv`)", ""]
    for group in [g for g in GROUPS if g in set(comparison["group"])]:
        lines.append(f"- {GROUP_LABELS[group]}: {support_sentence(comparison[comparison['group'] == group])}.")
    return "\n".join(lines) + "\n"


def verdicts_markdown(claims: pd.DataFrame) -> str:
    """The README paragraph on the paper's claims: one verdict per claim, from a run's claims.csv."""
    from mmlaw_utils.analysis.claims import VERDICTS

    counts = claims["verdict"].value_counts()
    summary = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)
    lines = [
        f"How this run compares with the paper's claims ({summary}; `claims.csv`). An exponent claim is *explained "
        "by padding* when the padding null (singles plus the cheapest partner their group allows, at zero gain) "
        "reproduces it inside the interval envelopes; a claim resting on a floor is *rejected at the paper's "
        "relative size* when a likelihood-ratio test rejects L∞ = ρ × the loss at the largest P, ρ from the paper's "
        "fits; *not identified* when a fit holds a parameter at its bound and no test decides; *inconclusive* when "
        "the envelopes overlap; equal-budget claims rest on both curves with simultaneous bands (rules: "
        "`mmlaw_utils/analysis/claims.py`):",
        "",
    ]
    for number, row in enumerate(claims.itertuples(index=False), start=1):
        lines.append(f"{number}. *{row.claim}*: **{row.verdict}**. {row.evidence}.")
    return "\n".join(lines) + "\n"


def _share(value: float) -> str:
    return f"{value:.0%}" if np.isfinite(value) else "—"


SHORT_LABELS = {"single": "single models", "same_family": "same-family pairs", "cross_family": "cross-family pairs"}


def _variant_label(variant: str) -> str:
    """Plain words for a floor-test variant of analysis/floor.py."""
    if variant.startswith("min_params>="):
        return f"without models below {variant.split('>=')[1]} parameters"
    return {"nonembed": "with non-embedding parameters", "bits_per_byte": "bits per byte"}.get(variant, variant)


def _alpha(value: float) -> str:
    return f"{value:.4g}" if np.isfinite(value) else "not fitted (too few points)"


def support_markdown(padding: pd.DataFrame | None, floor_tests: pd.DataFrame | None,
                     budget_summary: pd.DataFrame | None, claims: pd.DataFrame | None = None) -> str:
    """What the data support, in plain words, from padding.csv, floor_tests.csv, equal_budget_summary.csv and claims.csv."""
    lines = ["**What the data support** (generated from `padding.csv`, `floor_tests.csv` and "
             "`equal_budget_summary.csv`):", ""]
    if floor_tests is not None and len(floor_tests):
        main = floor_tests[floor_tests["variant"] == "all"]
        rejected = main[main["lr_rejects"].astype(bool)]
        per_group = "; ".join(f"{SHORT_LABELS.get(r.group, r.group)}: ρ = {r.rho:.3f}, LR {r.lr:.3g}, "
                              f"{r.curvature_outcome}" for r in main.itertuples(index=False))
        verb = "is rejected" if len(rejected) == len(main) else "is not rejected" if rejected.empty else "is rejected"
        scope = ("on every frontier" if len(rejected) == len(main) else "on no frontier" if rejected.empty
                 else f"on {len(rejected)} of {len(main)} frontiers")
        text = (f"- **Floors.** A loss floor of the paper's relative size (L∞ = ρ × the loss at the largest P) {verb} "
                f"{scope} at the {float(main['level'].iloc[0]):.0%} level ({per_group}; curvature of the frontier "
                "in ln P).")
        others = []
        for variant, rows in floor_tests[floor_tests["variant"] != "all"].groupby("variant", sort=False):
            others.append(f"{_variant_label(variant)}: rejected on {int(rows['lr_rejects'].astype(bool).sum())} of "
                          f"{len(rows)}")
        if others:
            text += " Sensitivity fits: " + "; ".join(others) + "."
        lines.append(text)
    if padding is not None and len(padding):
        parts = []
        for r in padding.itertuples(index=False):
            parts.append(f"{SHORT_LABELS.get(r.group, r.group)}: {r.padded_points} of {r.pareto_points} Pareto "
                         f"points padded; α {_alpha(r.alpha_all)} on all pairs, {_alpha(r.alpha_effective)} on pairs "
                         f"of effective members only, {_alpha(r.alpha_null)} on the padding null")
        explained = ([] if claims is None else
                     claims.loc[claims["verdict"] == "explained by padding", "claim"].tolist())
        text = (f"- **Padding** (a member is effective when removing it costs at least "
                f"{float(padding['min_gain'].iloc[0]):g} nats per text): " + "; ".join(parts) + ".")
        if explained:
            text += " The padding null alone reproduces: " + "; ".join(f"*{c}*" for c in explained) + "."
        elif claims is not None:
            text += " No exponent claim is reproduced by the padding null alone."
        lines.append(text)
    if budget_summary is not None and len(budget_summary):
        parts = []
        for name, rows in budget_summary.groupby("comparison", sort=False):
            rows = rows.set_index("axis")
            v, h = rows.loc["vertical"], rows.loc["horizontal"]
            label = {"pairs_vs_single": "pairs against single models",
                     "cross_vs_same": "cross- against same-family pairs"}.get(name, name)
            parts.append(f"{label}: better on {_share(v['share_better'])} of the ln P range, worse on "
                         f"{_share(v['share_worse'])}, tied on {_share(v['share_tied'])}, behind only by the cheapest "
                         f"extra model on {_share(v['share_extra_model_cost'])}; for the same loss the ensemble needs "
                         f"fewer parameters on {_share(h['share_better'])} of the loss range and more on "
                         f"{_share(h['share_worse'] + h['share_extra_model_cost'])} (of which "
                         f"{_share(h['share_extra_model_cost'])} only the cheapest extra model), median ratio "
                         f"{h['median']:.3g}")
        level = float(budget_summary["level"].iloc[0])
        lines.append(f"- **Equal budget** ({level:.0%} simultaneous bands): " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def paper_table1_markdown() -> str:
    """The paper's own Table 1 (§4.2) as a markdown table of its own: P in billions, losses in nats per text."""
    lines = ["| Collaboration setting (the paper's 71 models) | raw points | Pareto points | L∞ | A | α |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in PAPER_TABLE1.itertuples(index=False):
        lines.append(f"| {GROUP_LABELS[row.group]} | {row.raw_points} | {row.pareto_points} | {row.L_inf:.2f} "
                     f"| {row.A:.2f} | {row.alpha:.4f} |")
    return "\n".join(lines)


def summary_markdown(profile_name: str, data_dir: Path, relative_to: Path | None = None) -> str:
    """The README's first-screen verdict summary: counts per verdict and which claims, from a run's claims.csv
    (its path shown relative to ``relative_to``, the README's folder)."""
    from mmlaw_utils.analysis.claims import VERDICTS

    claims_path = data_dir / OUTPUT_FILES["claims"]
    if not claims_path.is_file():
        raise FileNotFoundError(f"{claims_path} does not exist; run the pipeline for profile {profile_name!r} first")
    claims = pd.read_csv(claims_path)
    fits_path = data_dir / OUTPUT_FILES["fits"]
    meta = read_fits_json(fits_path) if fits_path.is_file() else {}
    size = (f": {meta['n_models']} models x {meta['n_texts']} texts" if {"n_models", "n_texts"} <= set(meta) else "")
    counts = claims["verdict"].value_counts()
    summary = ", ".join(f"{int(counts[v])} {v}" for v in VERDICTS if v in counts)
    lines = [f"**Verdicts on the paper's {len(claims)} claims** (profile `{profile_name}`{size}; generated from "
             f"`{os.path.relpath(claims_path, relative_to) if relative_to else claims_path.name}` by "
             f"`python -m mmlaw_utils readme`): {summary}."]
    for verdict in VERDICTS:
        which = [f"{number}. {claim}" for number, (claim, v) in enumerate(zip(claims["claim"], claims["verdict"]), 1)
                 if v == verdict]
        if which:
            lines.append(f"- *{verdict}*: " + "; ".join(which))
    arms_path = data_dir / OUTPUT_FILES["arms_verdicts"]
    if arms_path.is_file():
        lines += ["", routing_markdown(pd.read_csv(arms_path))]
    granularity_path = data_dir / OUTPUT_FILES["granularity_summary"]
    if granularity_path.is_file():
        lines += ["", granularity_markdown(pd.read_csv(granularity_path))]
    return "\n".join(lines) + "\n"


def granularity_markdown(summary: pd.DataFrame) -> str:
    """One first-screen sentence on how the oracle gain and what a switching mixture keeps of it change from the
    coarsest to the finest segmentation, from granularity_summary.csv (nats per text)."""
    coarse, fine = summary.iloc[0], summary.iloc[-1]

    def kept(row: pd.Series) -> str:
        return f"{row['gain_switching']:.2f} nats" if pd.isna(row["kept_share"]) else f"{100 * row['kept_share']:.0f}%"

    return (f"**Where the gains live** (notebook 10, {int(coarse['members'])} models, nats per text on the evaluation "
            f"half): the oracle's gain over the best single model is {coarse['gain_oracle']:.2f} per {coarse['granularity']} "
            f"and {fine['gain_oracle']:.2f} per {fine['granularity']}; a fixed-share switching mixture, a real probability "
            f"model, keeps {kept(coarse)} of it per {coarse['granularity']} and {kept(fine)} per {fine['granularity']}.")


def routing_markdown(arms_verdicts: pd.DataFrame) -> str:
    """One first-screen sentence on how much of the diversity gain is domain routing, from arms_verdicts.csv (nats)."""
    rows = arms_verdicts[arms_verdicts["selection"] == "all_pairs"].set_index(["contrast", "gain"])

    def cell(contrast: str, gain: str) -> str:
        row = rows.loc[(contrast, gain)]
        return f"{row['estimate']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}] ({row['verdict']})"

    text = ("**Diversity or routing** (notebook 09, nats per text, equal-size cross-family pairs, intervals over "
            "documents and seed replicas): what different training data add to a pair's oracle gain "
            f"(main − same_data) is {cell('main - same_data', 'oracle')}, of which a router that picks the better "
            f"member per domain already gets {cell('main - same_data', 'router')}; the within-domain rest is "
            f"{cell('main - same_data', 'within')}.")
    if ("same_data - seed(same_data)", "within") in rows.index:
        text += (" What architecture and tokenizer add beyond retraining noise (same_data − seed(same_data)): "
                 f"oracle {cell('same_data - seed(same_data)', 'oracle')}, within-domain "
                 f"{cell('same_data - seed(same_data)', 'within')}.")
    return text


def results_markdown(profile_name: str, data_dir: Path, figures_dir: Path, relative_to: Path) -> str:
    """The README results block of a profile: Table 1, verdicts, figures, beyond pairs (07) and the arms (09)."""
    md_path = data_dir / OUTPUT_FILES["table1_md"]
    if not md_path.is_file():
        raise FileNotFoundError(f"{md_path} does not exist; run the pipeline for profile {profile_name!r} first")
    fits_path = data_dir / OUTPUT_FILES["fits"]
    meta = read_fits_json(fits_path) if fits_path.is_file() else {}
    lines = [
        f"Generated by `python -m mmlaw_utils readme --profile {profile_name}` from the run of profile "
        f"`{profile_name}`"
        + (f" ({meta['n_texts']} texts, {meta['n_models']} models, {meta['n_bootstrap']} bootstrap resamples)"
           if {"n_texts", "n_models", "n_bootstrap"} <= set(meta) else "")
        + ". Losses are summed nats per text (eq. 1); P in billions of parameters.",
        "",
        md_path.read_text().strip(),
        "",
    ]
    found = {key: pd.read_csv(data_dir / OUTPUT_FILES[key]) if (data_dir / OUTPUT_FILES[key]).is_file() else None
             for key in ("padding", "floor_tests", "equal_budget_summary")}
    if any(frame is not None for frame in found.values()):
        claims_path = data_dir / OUTPUT_FILES["claims"]
        lines += [support_markdown(found["padding"], found["floor_tests"], found["equal_budget_summary"],
                                   pd.read_csv(claims_path) if claims_path.is_file() else None), ""]
    claims_path = data_dir / OUTPUT_FILES["claims"]
    if claims_path.is_file():
        lines += [verdicts_markdown(pd.read_csv(claims_path)), ""]
    comparison_path = data_dir / OUTPUT_FILES["model_comparison"]
    if comparison_path.is_file():
        lines += [model_comparison_markdown(pd.read_csv(comparison_path)), ""]
    for stem, title in ((FIGURE_STEMS["fig1"], "Figure 1"), (FIGURE_STEMS["fig2"], "Figure 2"),
                        (FIGURE_STEMS["budget"], "Equal-budget gain")):
        png = figures_dir / f"{stem}.png"
        if png.is_file():
            rel = os.path.relpath(png, relative_to)
            lines += [f"![{title}: {stem}]({rel})", ""]
    beyond = data_dir / OUTPUT_FILES["beyond_pairs"]
    if beyond.is_file():  # written by notebook 07
        lines += [beyond.read_text().strip(), ""]
        for key in ("fig3", "fig4", "fig5", "fig6"):
            png = figures_dir / f"{FIGURE_STEMS[key]}.png"
            if png.is_file():
                lines += [f"![{png.stem}]({os.path.relpath(png, relative_to)})", ""]
    arms = data_dir / OUTPUT_FILES["arms_md"]
    if arms.is_file():  # written by notebook 09
        lines += ["### Which diversity pays: data or architecture (notebook 09, every arm)", "",
                  arms.read_text().strip(), ""]
        png = figures_dir / f"{FIGURE_STEMS['arms_gain']}.png"
        if png.is_file():
            lines += [f"![{png.stem}]({os.path.relpath(png, relative_to)})", ""]
    return "\n".join(lines).rstrip() + "\n"


def update_readme(readme: str | Path, profile_name: str, data_dir: Path, figures_dir: Path) -> None:
    """Rewrite the results region of ``readme`` from the profile's outputs (atomic)."""
    readme = Path(readme)
    block = results_markdown(profile_name, Path(data_dir), Path(figures_dir), readme.parent)
    write_marked_region(readme, block, RESULTS_START, RESULTS_END)
    if SUMMARY_START in readme.read_text() and (Path(data_dir) / OUTPUT_FILES["claims"]).is_file():
        summary = (summary_markdown(profile_name, Path(data_dir), readme.parent) + "\n**The paper's own values** "
                   "(its Table 1: P in billions of parameters, losses in nats per text; not comparable with the "
                   "miniature pool's):\n\n" + paper_table1_markdown())
        write_marked_region(readme, summary, SUMMARY_START, SUMMARY_END)
