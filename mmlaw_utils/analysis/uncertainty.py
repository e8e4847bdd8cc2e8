"""Four kinds of interval for A, alpha and L_inf of eq. 7, and the leave-one-model-out sensitivity table.

Methods (column ``method`` of the uncertainty table):

- ``text_bootstrap``: percentile interval over resamples of texts (analysis/bootstrap.py).
- ``cluster_bootstrap``: percentile interval over resamples of whole source documents
  (:func:`text_clusters` states which texts share a document).
- ``model_jackknife``: leave each model out, recompute the three frontiers and refit; the
  interval is estimate -/+ z * the jackknife standard error, sqrt((K-1)/K * sum (theta_-k - mean)^2),
  clipped to the parameter's bounds. It carries the uncertainty of which models are in the pool.
- ``profile_likelihood``: analysis/profile.py.

The parameters are in the fit's units: A and L_inf in nats per text (A for P in ``params_unit``
parameters, billions by default), alpha unit-free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from mmlaw_utils.analysis.bootstrap import FIT_COLUMNS, bootstrap_ci
from mmlaw_utils.analysis.forecast import group_frontiers
from mmlaw_utils.analysis.fit import fit_points, predict
from mmlaw_utils.analysis.groups import GROUPS
from mmlaw_utils.analysis.oracle import _as_loss_matrix, pair_index, pair_oracle_losses
from mmlaw_utils.analysis.profile import ProfileInterval

METHODS = ("text_bootstrap", "cluster_bootstrap", "model_jackknife", "profile_likelihood")
UNCERTAINTY_COLUMNS = ["group", "parameter", "method", "estimate", "lo", "hi", "level"]
CLUSTER_RULE = (
    "clusters: the text set's `source` field when it names at least two sources; otherwise the document "
    "encoded in every text_id of the form <prefix>-<document>-<number> (wiki_heldout: wiki-<article>-NNN); "
    "otherwise one text per cluster"
)
_ID_DOCUMENT = re.compile(r"^(?P<document>.+)-\d+$")


def text_clusters(text_ids: Sequence[str], sources: Sequence[Any] | None = None) -> tuple[np.ndarray, str]:
    """Source document of each text, and which rule found it ("source", "text_id" or "text")."""
    ids = [str(t) for t in text_ids]
    if sources is not None:
        if len(sources) != len(ids):
            raise ValueError(f"sources has {len(sources)} entries for {len(ids)} texts")
        labels = [None if s is None or (isinstance(s, float) and math.isnan(s)) else str(s) for s in sources]
        if all(label is not None for label in labels) and len(set(labels)) >= 2:
            return np.asarray(labels, dtype=object), "source"
    matches = [_ID_DOCUMENT.match(text_id) for text_id in ids]
    if ids and all(matches):
        documents = [m.group("document") for m in matches]
        if 2 <= len(set(documents)) < len(ids):
            return np.asarray(documents, dtype=object), "text_id"
    return np.asarray(ids, dtype=object), "text"


def is_fitted(fit: Any) -> bool:
    """True for a ScalingFit whose parameters were estimated (not None, a plain dict or a too-few-points fit)."""
    return fit is not None and not isinstance(fit, Mapping) and bool(getattr(fit, "fitted", True))


def leave_one_model_out(
    L: np.ndarray,
    params: np.ndarray,
    families: np.ndarray,
    params_unit: float = 1e9,
    *,
    fit_kwargs: dict | None = None,
    pair_losses: np.ndarray | None = None,
) -> pd.DataFrame:
    """Refit the three laws with each model left out in turn (frontiers recomputed without it).

    ``L`` is K x N nats, ``params`` raw counts. One row per (left-out model row ``left_out``, group):
    ``A``, ``alpha``, ``L_inf`` (NaN when the frontier has too few points), ``r2``, ``rmse``,
    ``n_frontier`` and ``status``.
    """
    array = _as_loss_matrix(L)
    n_models = array.shape[0]
    p = np.asarray(params, dtype=np.int64)
    fam = np.asarray(families).astype(str)
    if p.shape != (n_models,) or fam.shape != (n_models,):
        raise ValueError(f"params and families need one entry per model ({n_models})")
    full = pair_oracle_losses(array) if pair_losses is None else np.asarray(pair_losses, dtype=np.float64)
    records = []
    for left_out in range(n_models):
        keep = np.delete(np.arange(n_models), left_out)
        sub = full[np.ix_(keep, keep)]
        index = pair_index(fam[keep])
        fronts = group_frontiers(np.diag(sub), sub[index.i, index.j], p[keep], fam[keep])
        for group in GROUPS:
            front_params, front_losses = fronts.get(group, (np.zeros(0), np.zeros(0)))
            fit = fit_points(np.asarray(front_params, dtype=np.float64) / params_unit,
                             np.asarray(front_losses, dtype=np.float64), **(fit_kwargs or {}))
            records.append({"left_out": left_out, "group": group, "A": fit.A, "alpha": fit.alpha, "L_inf": fit.L_inf,
                            "r2": fit.r2, "rmse": fit.rmse, "n_frontier": int(len(front_params)),
                            "status": fit.status})
    return pd.DataFrame.from_records(
        records, columns=["left_out", "group", *FIT_COLUMNS, "r2", "rmse", "n_frontier", "status"])


def parameter_bounds(fit: Any, parameter: str) -> tuple[float, float]:
    """Bounds of ``parameter`` in ``fit`` (A: [0, inf))."""
    if parameter == "alpha":
        return tuple(float(v) for v in fit.alpha_bounds)
    if parameter == "L_inf":
        return tuple(float(v) for v in fit.L_inf_bounds)
    return 0.0, math.inf


def jackknife_interval(estimate: float, loo_values: np.ndarray, level: float,
                       bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    """estimate -/+ z_{(1+level)/2} * jackknife SE of the finite leave-one-out values, clipped to ``bounds``."""
    values = np.asarray(loo_values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or not math.isfinite(estimate):
        return math.nan, math.nan
    k = values.size
    se = math.sqrt((k - 1) / k * float(((values - values.mean()) ** 2).sum()))
    z = float(norm.ppf((1 + level) / 2))
    return max(estimate - z * se, bounds[0]), min(estimate + z * se, bounds[1])


def uncertainty_table(
    fits: Mapping[str, Any],
    *,
    level: float,
    text_boot: pd.DataFrame | None = None,
    cluster_boot: pd.DataFrame | None = None,
    jackknife: pd.DataFrame | None = None,
    profiles: Mapping[str, Mapping[str, ProfileInterval]] | None = None,
) -> pd.DataFrame:
    """Long table (group, parameter, method, estimate, lo, hi, level) of every fitted group and available method.

    ``fits`` maps group -> ScalingFit (groups that were not fitted are skipped); ``text_boot`` and
    ``cluster_boot`` come from ``bootstrap_group_fits``, ``jackknife`` from :func:`leave_one_model_out`,
    ``profiles`` group -> parameter -> ProfileInterval.
    """
    boots = {"text_bootstrap": text_boot, "cluster_bootstrap": cluster_boot}
    cis = {method: bootstrap_ci(frame, level).set_index("group") for method, frame in boots.items()
           if frame is not None and len(frame)}
    records = []
    for group in [g for g in GROUPS if g in fits] + [g for g in fits if g not in GROUPS]:
        fit = fits[group]
        if not is_fitted(fit):
            continue
        for parameter in ("alpha", "L_inf", "A"):
            estimate = float(getattr(fit, parameter))
            for method in METHODS:
                lo = hi = math.nan
                if method in cis and group in cis[method].index:
                    lo, hi = (float(cis[method].loc[group, f"{parameter}_{end}"]) for end in ("lo", "hi"))
                elif method == "model_jackknife" and jackknife is not None:
                    values = jackknife.loc[jackknife["group"] == group, parameter].to_numpy(dtype=np.float64)
                    lo, hi = jackknife_interval(estimate, values, level, parameter_bounds(fit, parameter))
                elif method == "profile_likelihood" and profiles is not None and group in profiles:
                    interval = profiles[group][parameter]
                    lo, hi = interval.lo, interval.hi
                else:
                    continue
                records.append({"group": group, "parameter": parameter, "method": method, "estimate": estimate,
                                "lo": lo, "hi": hi, "level": level})
    return pd.DataFrame.from_records(records, columns=UNCERTAINTY_COLUMNS)


def envelope_intervals(uncertainty: pd.DataFrame) -> pd.DataFrame:
    """Per (group, parameter) the envelope of every method's interval: lowest lo, highest hi, and the methods setting each.

    Columns: group, parameter, estimate, lo, hi, lo_method, hi_method, method ("<lo method>" when one
    method sets both ends, else "lo: <method>; hi: <method>"), level. NaN ends never set an end.
    """
    records = []
    for (group, parameter), rows in uncertainty.groupby(["group", "parameter"], sort=False):
        lows, highs = rows.dropna(subset=["lo"]), rows.dropna(subset=["hi"])
        if lows.empty or highs.empty:
            continue
        low, high = lows.loc[lows["lo"].idxmin()], highs.loc[highs["hi"].idxmax()]
        lo_method, hi_method = str(low["method"]), str(high["method"])
        records.append({"group": group, "parameter": parameter, "estimate": float(rows["estimate"].iloc[0]),
                        "lo": float(low["lo"]), "hi": float(high["hi"]), "lo_method": lo_method,
                        "hi_method": hi_method,
                        "method": lo_method if lo_method == hi_method else f"lo: {lo_method}; hi: {hi_method}",
                        "level": float(rows["level"].iloc[0])})
    return pd.DataFrame.from_records(records, columns=["group", "parameter", "estimate", "lo", "hi", "lo_method",
                                                       "hi_method", "method", "level"])


def reaches_bound(lo: float, hi: float, bounds: tuple[float, float], rtol: float = 1e-6) -> bool:
    """True when [lo, hi] touches a bound (within ``rtol``) or is unbounded."""
    b_lo, b_hi = bounds
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return True
    return (math.isfinite(b_lo) and lo - b_lo <= rtol * max(1.0, abs(b_lo))) or (
        math.isfinite(b_hi) and b_hi - hi <= rtol * max(1.0, abs(b_hi)))


def sensitivity_table(
    jackknife: pd.DataFrame,
    fits: Mapping[str, Any],
    profiles: Mapping[str, Mapping[str, ProfileInterval]],
    model_names: Sequence[str],
) -> pd.DataFrame:
    """Leave-one-model-out alpha and L_inf per group, with influential models flagged.

    Rule: leaving a model out is *influential* when the refit's alpha or L_inf falls outside the
    full fit's profile-likelihood interval (the move is larger than the statistical uncertainty of
    the fit itself), or when the refit fails or lands on a bound that the full fit was not on.
    """
    names = list(model_names)
    records = []
    for row in jackknife.itertuples(index=False):
        fit = fits.get(row.group)
        if not is_fitted(fit):
            continue
        record: dict[str, Any] = {"group": row.group, "left_out": names[int(row.left_out)],
                                  "n_frontier": int(row.n_frontier), "status": row.status}
        reasons = []
        for parameter in ("alpha", "L_inf"):
            value = float(getattr(row, parameter))
            interval = profiles[row.group][parameter]
            record[parameter] = value
            record[f"{parameter}_full"] = float(getattr(fit, parameter))
            record[f"{parameter}_change"] = value - float(getattr(fit, parameter))
            if math.isfinite(value) and not interval.lo <= value <= interval.hi:
                reasons.append(f"{parameter} outside the profile interval [{interval.lo:.4g}, {interval.hi:.4g}]")
        status = str(row.status)
        if not math.isfinite(float(row.alpha)):
            reasons.append(f"refit not possible ({status})")
        else:
            new_flags = set(status.split(",")) - set(str(fit.status).split(",")) - {"ok", "se_unavailable"}
            if new_flags & {"alpha_at_bound", "L_inf_at_bound", "A_at_zero"}:
                reasons.append("refit at a bound: " + ", ".join(sorted(new_flags)))
        record["influential"] = bool(reasons)
        record["reason"] = "; ".join(reasons)
        records.append(record)
    return pd.DataFrame.from_records(records, columns=[
        "group", "left_out", "alpha", "alpha_full", "alpha_change", "L_inf", "L_inf_full", "L_inf_change",
        "n_frontier", "status", "influential", "reason"])


def curve_band(fit: Any, draws: Mapping[str, pd.DataFrame], group: str, params: np.ndarray,
               level: float = 0.95) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pointwise band (nats) of the fitted law of ``group`` at ``params`` (the fit's unit): the envelope of the methods.

    ``draws`` maps a method to its refits (columns group, A, alpha, L_inf): bootstrap methods give
    percentile bands, ``model_jackknife`` the fitted curve -/+ z * the jackknife SE of the curve,
    ``profile_likelihood`` the hull of the curves accepted along the profile path (:func:`profile_draws`).
    Returns (lo, hi, methods used); NaN bands when no method has two finite refits.
    """
    p = np.asarray(params, dtype=np.float64)
    center = predict(fit, p)
    lows, highs, used = [], [], []
    for method, frame in draws.items():
        sub = frame[frame["group"] == group].dropna(subset=list(FIT_COLUMNS))
        if len(sub) < 2:
            continue
        with np.errstate(over="ignore"):
            curves = predict(tuple(sub[name].to_numpy()[:, None] for name in FIT_COLUMNS), p[None, :])
        if method == "profile_likelihood":  # the accepted curves of the profile path: their hull
            lo, hi = curves.min(axis=0), curves.max(axis=0)
        elif method == "model_jackknife":
            k = curves.shape[0]
            se = np.sqrt((k - 1) / k * ((curves - curves.mean(axis=0)) ** 2).sum(axis=0))
            z = float(norm.ppf((1 + level) / 2))
            lo, hi = center - z * se, center + z * se
        else:
            lo, hi = np.quantile(curves, [(1 - level) / 2, (1 + level) / 2], axis=0)
        lows.append(lo)
        highs.append(hi)
        used.append(method)
    if not used:
        nan = np.full(p.shape, np.nan)
        return nan, nan, []
    return np.min(lows, axis=0), np.max(highs, axis=0), used


def profile_draws(fits: Mapping[str, Any], fronts: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  level: float = 0.95) -> pd.DataFrame:
    """Curves (group, A, alpha, L_inf) accepted along each fit's alpha profile, for the profile-likelihood band.

    ``fronts`` maps group -> (params in the fit's unit, losses in nats) of the Pareto points fitted.
    """
    from mmlaw_utils.analysis.profile import profile_path

    parts = []
    for group, fit in fits.items():
        if is_fitted(fit) and group in fronts:
            path = profile_path(fit, *fronts[group], level=level)
            parts.append(path.assign(group=group))
    if not parts:
        return pd.DataFrame(columns=["group", *FIT_COLUMNS])
    return pd.concat(parts, ignore_index=True)[["group", *FIT_COLUMNS]]
