"""One verdict per claim of the paper (§4.1-§4.4): agrees, disagrees, not identified or inconclusive.

Rules, applied in this order:

- ``not identified``: a fit the claim rests on failed, has a parameter at its bound (alpha at a
  bound, L_inf at its bound, A at zero), or the profile-likelihood interval of the compared
  parameter reaches a bound (or is unbounded). A floor held at 0 is therefore never "agrees".
- ordering claims (theta of one group above/below another): ``inconclusive`` when the widest of
  the four intervals of the two groups overlap; otherwise ``agrees`` or ``disagrees`` with the
  claimed order.
- "a power law on each frontier": ``agrees`` when eq. 7 is the form the model comparison
  supports, ``disagrees`` when another form beats it by more than 2 AICc, else ``inconclusive``.
- equal-budget claims: ``agrees`` when the ensemble's gain interval lies above 0 at every budget,
  ``disagrees`` when it lies below 0 at some budget, else ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.uncertainty import is_fitted, parameter_bounds, reaches_bound, widest_intervals

VERDICTS = ("agrees", "disagrees", "not identified", "inconclusive")
CLAIM_COLUMNS = ["claim", "groups", "verdict", "evidence"]
SYMBOLS = {"alpha": "α", "L_inf": "L∞", "A": "A"}


@dataclass(frozen=True)
class OrderingClaim:
    """Claim that ``parameter`` of group ``first`` is larger (``larger``) or smaller than that of ``second``."""

    claim: str
    parameter: str
    first: str
    second: str
    larger: bool


ORDERING_CLAIMS = (
    OrderingClaim("§4.2: cross-family ensembles scale with a larger exponent than single models", "alpha",
                  CROSS_FAMILY, SINGLE, True),
    OrderingClaim("§4.2: same-family ensembles scale with a larger exponent than single models", "alpha",
                  SAME_FAMILY, SINGLE, True),
    OrderingClaim("§4.2: same-family ensembles have a larger exponent than cross-family ones", "alpha",
                  SAME_FAMILY, CROSS_FAMILY, True),
    OrderingClaim("§4.3: cross-family ensembles reach a lower loss floor than single models", "L_inf",
                  CROSS_FAMILY, SINGLE, False),
    OrderingClaim("§4.3: cross-family ensembles reach a lower loss floor than same-family ones", "L_inf",
                  CROSS_FAMILY, SAME_FAMILY, False),
)
BUDGET_CLAIMS = {
    "pairs_vs_single": ("Fig. 1: an ensemble (pair) needs fewer parameters than a single model for the same loss",
                        "single, pairs"),
    "cross_vs_same": ("§1/§4.4: cross-family ensembles outperform same-family ones at equal parameter budgets",
                      "same_family, cross_family"),
}
_BOUND_FLAGS = ("alpha_at_bound", "L_inf_at_bound", "A_at_zero")




def identification_problems(fit: Any, group: str, parameter: str, uncertainty: pd.DataFrame) -> list[str]:
    """Why ``parameter`` of ``group`` is not identified: failed fit, a parameter at a bound, a profile at a bound."""
    if not is_fitted(fit):
        status = fit.get("status", "not fitted") if isinstance(fit, Mapping) else getattr(fit, "status", "not fitted")
        return [f"{group}: no fit ({status})"]
    problems = [f"{group}: {flag}" for flag in _BOUND_FLAGS if getattr(fit, flag, False)]
    profile = uncertainty[(uncertainty["group"] == group) & (uncertainty["parameter"] == parameter)
                          & (uncertainty["method"] == "profile_likelihood")]
    if len(profile):
        lo, hi = float(profile["lo"].iloc[0]), float(profile["hi"].iloc[0])
        if reaches_bound(lo, hi, parameter_bounds(fit, parameter)):
            problems.append(f"{group}: profile interval of {SYMBOLS[parameter]} [{lo:.4g}, {hi:.4g}] reaches a bound")
    return problems


def _interval_text(row: pd.Series) -> str:
    return f"{row['estimate']:.4g} [{row['lo']:.4g}, {row['hi']:.4g}] ({row['method']})"


def ordering_verdict(claim: OrderingClaim, fits: Mapping[str, Any], uncertainty: pd.DataFrame) -> dict[str, str]:
    """Verdict of one ordering claim from the fits and the uncertainty table (see module doc)."""
    groups = f"{claim.first}, {claim.second}"
    problems = [p for g in (claim.first, claim.second)
                for p in identification_problems(fits.get(g), g, claim.parameter, uncertainty)]
    widest = widest_intervals(uncertainty).set_index(["group", "parameter"])
    keys = [(g, claim.parameter) for g in (claim.first, claim.second)]
    shown = "; ".join(f"{g} {SYMBOLS[claim.parameter]} = {_interval_text(widest.loc[k])}"
                      for g, k in zip((claim.first, claim.second), keys) if k in widest.index)
    if problems:
        return {"claim": claim.claim, "groups": groups, "verdict": "not identified",
                "evidence": "; ".join(problems) + (f". Widest intervals: {shown}" if shown else "")}
    if not all(k in widest.index for k in keys):
        return {"claim": claim.claim, "groups": groups, "verdict": "not identified",
                "evidence": "no interval for one of the groups"}
    first, second = (widest.loc[k] for k in keys)
    if first["lo"] <= second["hi"] and second["lo"] <= first["hi"]:
        verdict = "inconclusive"
        reason = "the widest intervals overlap"
    else:
        first_above = first["lo"] > second["hi"]
        verdict = "agrees" if first_above == claim.larger else "disagrees"
        reason = "the widest intervals are disjoint"
    return {"claim": claim.claim, "groups": groups, "verdict": verdict, "evidence": f"{reason}: {shown}"}


def power_law_verdict(group: str, fit: Any, uncertainty: pd.DataFrame, comparison: pd.DataFrame | None,
                      sensitivity: pd.DataFrame | None = None) -> dict[str, str]:
    """Verdict of "eq. 7 describes the <group> frontier" from identification and the model comparison.

    ``sensitivity`` (leave-one-model-out table) adds the number of influential models to the evidence.
    """
    claim = f"§4.1: the {group.replace('_', '-')} frontier follows the power law of eq. 7"
    problems = [p for parameter in ("alpha", "L_inf", "A") for p in identification_problems(fit, group, parameter, uncertainty)]
    problems = list(dict.fromkeys(problems))
    if problems:
        return {"claim": claim, "groups": group, "verdict": "not identified", "evidence": "; ".join(problems)}
    rows = comparison[comparison["group"] == group] if comparison is not None else pd.DataFrame()
    if rows.empty:
        return {"claim": claim, "groups": group, "verdict": "inconclusive", "evidence": "no model comparison"}
    by_form = rows.set_index("form")
    text = ", ".join(f"{form} ΔAICc {row['delta_aicc']:.2f}, LOO RMSE {row['loo_rmse']:.4g}"
                     for form, row in by_form.iterrows())
    if bool(by_form.loc["eq7", "supported"]):
        verdict = "agrees"
    elif by_form.loc["eq7", "delta_aicc"] > 2:
        verdict = "disagrees"
    else:
        verdict = "inconclusive"
    if sensitivity is not None and len(sensitivity):
        flagged = sensitivity[(sensitivity["group"] == group) & sensitivity["influential"]]["left_out"].tolist()
        text += f"; influential models (leaving one out moves α or L∞ beyond its profile interval): {len(flagged)}"
        text += f" ({', '.join(map(str, flagged))})" if flagged else ""
    return {"claim": claim, "groups": group, "verdict": verdict, "evidence": text}


def budget_verdict(comparison: str, budget: pd.DataFrame) -> dict[str, str]:
    """Verdict of an equal-budget claim from the gain intervals of ``budget`` (analysis/budget.py)."""
    claim, groups = BUDGET_CLAIMS[comparison]
    rows = budget[budget["comparison"] == comparison]
    if rows.empty:
        return {"claim": claim, "groups": groups, "verdict": "not identified", "evidence": "no budget where both exist"}
    better = int((rows["gain_lo"] > 0).sum())
    worse = int((rows["gain_hi"] < 0).sum())
    total = len(rows)
    if worse:
        verdict = "disagrees"
    elif better == total:
        verdict = "agrees"
    else:
        verdict = "inconclusive"
    level = float(rows["level"].iloc[0])
    evidence = (f"at {total} budgets: ensemble better (gain interval above 0) at {better}, worse (below 0) at "
                f"{worse}, not distinguishable at {total - better - worse}; {level:.0%} intervals over "
                f"{int(rows['n_resamples'].iloc[0])} resamples; largest gain {max(rows['gain'].max(), 0.0) + 0.0:.4g} nats, "
                f"largest shortfall {max(-rows['gain'].min(), 0.0) + 0.0:.4g} nats")
    return {"claim": claim, "groups": groups, "verdict": verdict, "evidence": evidence}


def claims_table(fits: Mapping[str, Any], uncertainty: pd.DataFrame, comparison: pd.DataFrame | None = None,
                 budget: pd.DataFrame | None = None, sensitivity: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim with exactly one verdict: (claim, groups, verdict, evidence)."""
    rows = [power_law_verdict(g, fits.get(g), uncertainty, comparison, sensitivity)
            for g in GROUPS if g in fits]
    rows += [ordering_verdict(c, fits, uncertainty) for c in ORDERING_CLAIMS if c.first in fits and c.second in fits]
    if budget is not None:
        rows += [budget_verdict(name, budget) for name in BUDGET_CLAIMS if name in set(budget["comparison"])]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """How many claims got each verdict (all four keys present)."""
    counts = claims["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}

