"""Padding on the pair frontiers: members that do no work, and the padding null (issue 20, part 1).

A pair sits on a Pareto frontier either because its members complement each other or because
the cheapest model its group allows was added to a strong single model at (almost) no gain: the
pair then costs a little more than the single and has the same loss. Such *padded* points move
the fitted exponent mechanically. Definitions (losses in nats per text, parameters raw counts):

- a member of a pair is *effective* when removing it raises the oracle loss by at least
  ``min_gain`` nats per text, or (when ``min_win_share`` is given) when it wins at least that
  share of the texts against its partner (``oracle.pair_win_shares``: ties count half);
- a Pareto point is *padded* when one of its members is not effective;
- the *padding null* of a pair group holds, for every single model, that model plus the
  cheapest partner the group allows (same family, or another family) at zero gain: the single's
  loss at the pair's parameters. Its frontier is fitted like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.fit import ScalingFit, fit_points, predict
from mmlaw_utils.analysis.frontier import pareto_front
from mmlaw_utils.analysis.groups import CROSS_FAMILY, PAIR_GROUPS, SAME_FAMILY

DEFAULT_MIN_GAIN = 1.0  # nats per text
PADDING_COLUMNS = ["group", "pareto_points", "padded_points", "padded_share", "effective_pareto_points",
                   "alpha_all", "L_inf_all", "status_all", "alpha_effective", "L_inf_effective", "status_effective",
                   "alpha_null", "L_inf_null", "status_null", "null_pareto_points", "min_gain", "min_win_share"]
# Assumed sizes (billions) of the paper's single frontier when padding eq. 8: Qwen2.5 and Llama base sizes.
PAPER_ASSUMED_SIZES_B = {"qwen2.5": (0.5, 1.5, 3.0, 7.0, 14.0, 32.0, 72.0), "llama": (1.0, 3.0, 8.0, 13.0, 70.0)}


def member_gains(pair_losses: np.ndarray, members: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per pair (i, j), the rise of the oracle loss (nats per text) when removing i and when removing j: shape (n, 2)."""
    full = np.asarray(pair_losses, dtype=np.float64)
    pairs = np.asarray(list(members), dtype=np.int64).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    pair = full[i, j]
    # removing i leaves j alone, and vice versa
    return np.column_stack([np.diag(full)[j] - pair, np.diag(full)[i] - pair])


def effective_mask(pair_losses: np.ndarray, members: Sequence[tuple[int, int]], *,
                   win_shares: np.ndarray | None = None, min_gain: float = DEFAULT_MIN_GAIN,
                   min_win_share: float | None = None) -> np.ndarray:
    """Per pair, whether both members are effective (module doc); ``win_shares`` from ``oracle.pair_win_shares``."""
    gains = member_gains(pair_losses, members)
    effective = gains >= min_gain
    if min_win_share is not None:
        if win_shares is None:
            raise ValueError("min_win_share needs win_shares (K x K share of texts row beats column)")
        pairs = np.asarray(list(members), dtype=np.int64).reshape(-1, 2)
        shares = np.asarray(win_shares, dtype=np.float64)
        wins = np.column_stack([shares[pairs[:, 0], pairs[:, 1]], shares[pairs[:, 1], pairs[:, 0]]])
        effective |= wins >= min_win_share
    return effective.all(axis=1)


def cheapest_partner(params: np.ndarray, families: np.ndarray, group: str) -> np.ndarray:
    """Per model, the row of the cheapest other model that ``group`` allows as its partner (-1: none)."""
    p = np.asarray(params, dtype=np.float64)
    fam = np.asarray(families).astype(str)
    if group not in (SAME_FAMILY, CROSS_FAMILY):
        raise ValueError(f"padding null of group {group!r}: expected one of {PAIR_GROUPS}")
    out = np.full(p.size, -1, dtype=np.int64)
    for row in range(p.size):
        allowed = (fam == fam[row]) if group == SAME_FAMILY else (fam != fam[row])
        allowed[row] = False
        if allowed.any():
            candidates = np.flatnonzero(allowed)
            out[row] = candidates[np.lexsort((candidates, p[candidates]))[0]]
    return out


def padding_null_points(single_params: np.ndarray, single_losses: np.ndarray,
                        partner_params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frontier (params, loss) of singles padded with a zero-gain partner: params + partner, the single's loss."""
    p = np.asarray(single_params, dtype=np.float64) + np.asarray(partner_params, dtype=np.float64)
    y = np.asarray(single_losses, dtype=np.float64)
    keep = np.isfinite(p)
    p, y = p[keep], y[keep]
    front = pareto_front(p, y)
    return p[front], y[front]


def _fit_front(params: np.ndarray, losses: np.ndarray, params_unit: float, fit_kwargs: Mapping[str, Any]) -> ScalingFit:
    front = pareto_front(params, losses)
    return fit_points(np.asarray(params, dtype=np.float64)[front] / params_unit,
                      np.asarray(losses, dtype=np.float64)[front], **fit_kwargs)


def padding_table(groups: Mapping[str, pd.DataFrame], pair_losses: np.ndarray, params: np.ndarray,
                  families: np.ndarray, *, params_unit: float = 1e9, win_shares: np.ndarray | None = None,
                  min_gain: float = DEFAULT_MIN_GAIN, min_win_share: float | None = None,
                  fit_kwargs: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, dict[str, ScalingFit]]]:
    """Per pair group: padded Pareto points and eq. 7 on all / effective-only / padding-null frontiers.

    ``groups`` from ``frontier.collaboration_groups`` (members are model rows); ``params`` raw counts;
    α unit-free, L∞ in nats. Returns the table (``PADDING_COLUMNS``) and group -> {"all", "effective",
    "null"} -> ScalingFit.
    """
    kwargs = dict(fit_kwargs or {})
    p = np.asarray(params, dtype=np.float64)
    singles = np.diag(np.asarray(pair_losses, dtype=np.float64))
    rows, fits = [], {}
    for group in [g for g in PAIR_GROUPS if g in groups and len(groups[g])]:
        frame = groups[group]
        members = list(frame["members"])
        effective = effective_mask(pair_losses, members, win_shares=win_shares, min_gain=min_gain,
                                   min_win_share=min_win_share)
        on_front = frame["on_frontier"].to_numpy(dtype=bool)
        group_params = frame["params"].to_numpy(dtype=np.float64)
        group_losses = frame["loss"].to_numpy(dtype=np.float64)
        partner = cheapest_partner(p, families, group)
        has_partner = partner >= 0
        null_params, null_losses = padding_null_points(p[has_partner], singles[has_partner], p[partner[has_partner]])
        group_fits = {
            "all": _fit_front(group_params, group_losses, params_unit, kwargs),
            "effective": (_fit_front(group_params[effective], group_losses[effective], params_unit, kwargs)
                          if effective.any() else fit_points(np.zeros(0), np.zeros(0), **kwargs)),
            "null": fit_points(null_params / params_unit, null_losses, **kwargs),
        }
        fits[group] = group_fits
        effective_front = pareto_front(group_params[effective], group_losses[effective]).size if effective.any() else 0
        n_front = int(on_front.sum())
        n_padded = int((on_front & ~effective).sum())
        row = {"group": group, "pareto_points": n_front, "padded_points": n_padded,
               "padded_share": n_padded / n_front if n_front else np.nan,
               "effective_pareto_points": int(effective_front), "null_pareto_points": int(null_params.size),
               "min_gain": min_gain, "min_win_share": np.nan if min_win_share is None else min_win_share}
        for name, fit in group_fits.items():
            row[f"alpha_{name}"], row[f"L_inf_{name}"], row[f"status_{name}"] = fit.alpha, fit.L_inf, fit.status
        rows.append(row)
    return pd.DataFrame(rows, columns=PADDING_COLUMNS), fits


def paper_padding_null(law: Any, sizes_b: Sequence[float], sibling_b: float,
                       fit_kwargs: Mapping[str, Any] | None = None) -> ScalingFit:
    """Eq. 7 fitted to a published single law padded with a zero-gain sibling: points (s + sibling, law(s)), P in billions."""
    sizes = np.asarray(sorted(sizes_b), dtype=np.float64)
    losses = predict(law, sizes)
    params, front_losses = padding_null_points(sizes, losses, np.full(sizes.size, float(sibling_b)))
    return fit_points(params, front_losses, **dict(fit_kwargs or {}))


def paper_padding_table(siblings_b: Sequence[float] = (0.1, 0.5, 1.5),
                        sizes_by_family: Mapping[str, Sequence[float]] = PAPER_ASSUMED_SIZES_B) -> pd.DataFrame:
    """The padding null of the paper's eq. 8 per sibling size (billions), against the paper's Table 1 patterns.

    ``reproduces_alpha`` / ``reproduces_L_inf``: the null, like the paper's same-family fit (eq. 9),
    has a larger α than eq. 8 / an L∞ not below eq. 8's. L∞ in nats per text.
    """
    from mmlaw_utils.analysis.groups import PAPER_TABLE1, SINGLE

    laws = PAPER_TABLE1.set_index("group")
    single, same = laws.loc[SINGLE], laws.loc[SAME_FAMILY]
    sizes = [s for family_sizes in sizes_by_family.values() for s in family_sizes]
    rows = []
    for sibling in siblings_b:
        fit = paper_padding_null(single, sizes, sibling)
        rows.append({"sibling_b": float(sibling), "n_singles": len(sizes), "alpha_null": fit.alpha,
                     "L_inf_null": fit.L_inf, "status": fit.status, "paper_alpha_single": float(single["alpha"]),
                     "paper_alpha_same": float(same["alpha"]), "paper_L_inf_single": float(single["L_inf"]),
                     "paper_L_inf_same": float(same["L_inf"]),
                     "reproduces_alpha": bool(fit.alpha > single["alpha"]),
                     "reproduces_L_inf": bool(fit.L_inf >= single["L_inf"])})
    return pd.DataFrame(rows)
