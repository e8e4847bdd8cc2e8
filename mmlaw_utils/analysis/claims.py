"""One verdict per claim of the paper (§4.1-§4.4): agrees, disagrees, explained by padding, rejected at the
paper's relative size, not identified or inconclusive.

Rules (``explained by padding`` is checked first, then the others in this order):

- ``not identified``: a fit the claim rests on failed, has a parameter at its bound (alpha at a
  bound, L_inf at its bound, A at zero), or the profile-likelihood interval of the compared
  parameter reaches a bound (or is unbounded). A floor held at 0 is therefore never "agrees".
- ordering claims (theta of one group above/below another): ``inconclusive`` when the envelopes of
  the four intervals of the two groups overlap; otherwise ``agrees`` or ``disagrees`` with the
  claimed order.
- "a power law on each frontier": ``agrees`` when eq. 7 is the form the model comparison
  supports, ``disagrees`` when another form beats it by more than 2 AICc, else ``inconclusive``.
- ``explained by padding`` (exponent claims, before all else): each group's padding-null exponent
  (analysis/padding.py: singles plus the cheapest partner their group allows, at zero gain) lies
  inside that group's interval envelope, and the nulls are ordered as the claim says; the claimed
  difference is then what padding alone produces.
- ``rejected at the paper's relative size`` (claims 1-8, in place of ``not identified``): the
  likelihood-ratio test of analysis/floor.py rejects a floor of the paper's relative size on a
  frontier the claim rests on (variant ``all``). ``not identified`` stays for flat likelihoods.
- equal-budget claims, from the curves of analysis/budget.py (simultaneous bands): ``agrees`` when on
  both the vertical (ln P range) and horizontal (loss-target range) comparisons the ensemble is better
  on a larger share than it is worse (extra-model-cost steps not counted as worse) and better on at
  least half of one range; ``disagrees`` when it is worse on a larger share than better on both;
  else ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mmlaw_utils.analysis.groups import CROSS_FAMILY, GROUPS, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.uncertainty import envelope_intervals, is_fitted, parameter_bounds, reaches_bound

VERDICTS = ("agrees", "disagrees", "explained by padding", "rejected at the paper's relative size", "not identified",
            "inconclusive")
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


def floor_rejections(floor_tests: pd.DataFrame | None, groups: tuple[str, ...]) -> list[str]:
    """Evidence lines for each of ``groups`` whose relative floor the LR test rejects (variant ``all``)."""
    if floor_tests is None or not len(floor_tests):
        return []
    rows = floor_tests[(floor_tests["variant"] == "all") & floor_tests["group"].isin(groups) & floor_tests["lr_rejects"]]
    return [f"{row.group}: L∞ = {row.rho:.3f} × the loss at the largest P ({row.L_inf_null:.5g} nats) rejected, "
            f"LR {row.lr:.3g} (p = {row.lr_p:.2g}); curvature in ln P: {row.curvature_outcome}"
            for row in rows.itertuples(index=False)]


def padding_explanation(claim: OrderingClaim, fits: Mapping[str, Any], envelope: pd.DataFrame,
                        padding: pd.DataFrame | None) -> str | None:
    """Evidence that the padding null reproduces an exponent claim (module doc), or None."""
    if claim.parameter != "alpha" or padding is None or not len(padding):
        return None
    by_group = padding.set_index("group")
    nulls = {}
    for group in (claim.first, claim.second):
        if group == SINGLE:  # a single model needs no partner: its own fit is its null
            nulls[group] = float(getattr(fits.get(group), "alpha", float("nan")))
        elif group in by_group.index:
            nulls[group] = float(by_group.loc[group, "alpha_null"])
        else:
            return None
        key = (group, "alpha")
        if key not in envelope.index or not envelope.loc[key, "lo"] <= nulls[group] <= envelope.loc[key, "hi"]:
            return None
    if (nulls[claim.first] > nulls[claim.second]) != claim.larger or nulls[claim.first] == nulls[claim.second]:
        return None
    shown = "; ".join(f"{g}: null α {nulls[g]:.4g} inside the envelope {_interval_text(envelope.loc[(g, 'alpha')])}"
                      for g in (claim.first, claim.second))
    return f"the padding null reproduces the ordering: {shown}"


def ordering_verdict(claim: OrderingClaim, fits: Mapping[str, Any], uncertainty: pd.DataFrame,
                     padding: pd.DataFrame | None = None, floor_tests: pd.DataFrame | None = None) -> dict[str, str]:
    """Verdict of one ordering claim from the fits, the uncertainty table, padding and floor tests (see module doc)."""
    groups = f"{claim.first}, {claim.second}"
    problems = [p for g in (claim.first, claim.second)
                for p in identification_problems(fits.get(g), g, claim.parameter, uncertainty)]
    envelope = envelope_intervals(uncertainty).set_index(["group", "parameter"])
    keys = [(g, claim.parameter) for g in (claim.first, claim.second)]
    shown = "; ".join(f"{g} {SYMBOLS[claim.parameter]} = {_interval_text(envelope.loc[k])}"
                      for g, k in zip((claim.first, claim.second), keys) if k in envelope.index)
    padded = padding_explanation(claim, fits, envelope, padding)
    if padded:
        return {"claim": claim.claim, "groups": groups, "verdict": "explained by padding", "evidence": padded}
    if problems:
        rejected = floor_rejections(floor_tests, (claim.first, claim.second))
        if rejected:
            return {"claim": claim.claim, "groups": groups, "verdict": "rejected at the paper's relative size",
                    "evidence": "; ".join(rejected) + (f". Envelopes: {shown}" if shown else "")}
        return {"claim": claim.claim, "groups": groups, "verdict": "not identified",
                "evidence": "; ".join(problems) + (f". Envelopes: {shown}" if shown else "")}
    if not all(k in envelope.index for k in keys):
        return {"claim": claim.claim, "groups": groups, "verdict": "not identified",
                "evidence": "no interval for one of the groups"}
    first, second = (envelope.loc[k] for k in keys)
    if first["lo"] <= second["hi"] and second["lo"] <= first["hi"]:
        verdict = "inconclusive"
        reason = "the interval envelopes overlap"
    else:
        first_above = first["lo"] > second["hi"]
        verdict = "agrees" if first_above == claim.larger else "disagrees"
        reason = "the interval envelopes are disjoint"
    return {"claim": claim.claim, "groups": groups, "verdict": verdict, "evidence": f"{reason}: {shown}"}


def power_law_verdict(group: str, fit: Any, uncertainty: pd.DataFrame, comparison: pd.DataFrame | None,
                      sensitivity: pd.DataFrame | None = None, floor_tests: pd.DataFrame | None = None) -> dict[str, str]:
    """Verdict of "eq. 7 describes the <group> frontier" from identification and the model comparison.

    ``sensitivity`` (leave-one-model-out table) adds the number of influential models to the evidence.
    """
    claim = f"§4.1: the {group.replace('_', '-')} frontier follows the power law of eq. 7"
    problems = [p for parameter in ("alpha", "L_inf", "A") for p in identification_problems(fit, group, parameter, uncertainty)]
    problems = list(dict.fromkeys(problems))
    if problems:
        rejected = floor_rejections(floor_tests, (group,))
        if rejected:
            return {"claim": claim, "groups": group, "verdict": "rejected at the paper's relative size",
                    "evidence": "; ".join(rejected + problems)}
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


def budget_verdict(name: str, summary: pd.DataFrame) -> dict[str, str]:
    """Verdict of an equal-budget claim from the vertical and horizontal summaries (see module doc)."""
    claim, groups = BUDGET_CLAIMS[name]
    rows = summary[summary["comparison"] == name].set_index("axis")
    if not {"vertical", "horizontal"} <= set(rows.index) or rows[["share_better", "share_worse"]].isna().any().any():
        return {"claim": claim, "groups": groups, "verdict": "inconclusive",
                "evidence": "no simultaneous band on one of the two comparisons"}
    better = rows["share_better"] > rows["share_worse"]
    if better.all() and (rows["share_better"] >= 0.5).any():
        verdict = "agrees"
    elif (rows["share_worse"] > rows["share_better"]).all():
        verdict = "disagrees"
    else:
        verdict = "inconclusive"
    vertical, horizontal = rows.loc["vertical"], rows.loc["horizontal"]
    level = float(vertical["level"])
    evidence = (f"over the ln P range ({vertical['range_lo']:.4g}–{vertical['range_hi']:.4g} parameters) the ensemble is "
                f"better on {vertical['share_better']:.0%}, worse on {vertical['share_worse']:.0%}, tied on "
                f"{vertical['share_tied']:.0%}, and behind only by the cost of the cheapest extra model on "
                f"{vertical['share_extra_model_cost']:.0%}; at loss targets {horizontal['range_lo']:.5g}–"
                f"{horizontal['range_hi']:.5g} nats it needs fewer parameters on {horizontal['share_better']:.0%}, more on "
                f"{horizontal['share_worse']:.0%} (plus {horizontal['share_extra_model_cost']:.0%} by only the cheapest "
                f"extra model), the same within the band on {horizontal['share_tied']:.0%} (median ratio "
                f"{horizontal['median']:.3g}); {level:.0%} sup-t simultaneous bands over {int(vertical['n_resamples'])} "
                "resamples of source documents")
    return {"claim": claim, "groups": groups, "verdict": verdict, "evidence": evidence}


def claims_table(fits: Mapping[str, Any], uncertainty: pd.DataFrame, comparison: pd.DataFrame | None = None,
                 budget_summary: pd.DataFrame | None = None, sensitivity: pd.DataFrame | None = None, *,
                 padding: pd.DataFrame | None = None, floor_tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every claim with exactly one verdict: (claim, groups, verdict, evidence).

    ``budget_summary`` from ``budget.equal_budget_analysis``, ``padding`` from ``padding.padding_table``,
    ``floor_tests`` from ``floor.floor_tests_table``.
    """
    rows = [power_law_verdict(g, fits.get(g), uncertainty, comparison, sensitivity, floor_tests)
            for g in GROUPS if g in fits]
    rows += [ordering_verdict(c, fits, uncertainty, padding, floor_tests)
             for c in ORDERING_CLAIMS if c.first in fits and c.second in fits]
    if budget_summary is not None:
        rows += [budget_verdict(name, budget_summary) for name in BUDGET_CLAIMS
                 if name in set(budget_summary["comparison"])]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """How many claims got each verdict (every verdict a key)."""
    counts = claims["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}

