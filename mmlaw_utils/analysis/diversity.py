"""Diversity behind the pair gains (paper §4.3-§4.5: "diversity drives gains", shown directly).

For a pair {i, j} the oracle gain over its better member is
    gain_ij = min(L(M_i), L(M_j)) - L_oracle({i, j})          (nats per text, >= 0),
and it is zero exactly when the better member wins every text. Complementarity is the weaker
member's win share in the pair (0: never useful; 0.5: they split the texts). Everything is
computed from the K x N loss matrix with ``oracle.pair_oracle_losses`` / ``pair_win_shares``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mmlaw_utils.analysis.oracle import _as_loss_matrix, pair_index, pair_oracle_losses, pair_win_shares


def pair_gain_matrix(L: np.ndarray, pair_losses: np.ndarray | None = None) -> np.ndarray:
    """K x K gains of each pair's oracle over its better member (nats per text); diagonal 0."""
    array = _as_loss_matrix(L)
    pairs = pair_oracle_losses(array) if pair_losses is None else np.asarray(pair_losses, dtype=np.float64)
    single = np.diag(pairs)
    gain = np.minimum(single[:, None], single[None, :]) - pairs
    np.fill_diagonal(gain, 0.0)
    return gain


def pair_diversity_table(L: np.ndarray, params: np.ndarray, families: np.ndarray,
                         pair_losses: np.ndarray | None = None) -> pd.DataFrame:
    """One row per pair i < j: families, same_family, params (total), size_ratio (larger / smaller),
    better (row of the better member), gain (nats), rel_gain (gain / better member's loss), and
    weaker_win_share (share of texts the weaker member wins; ties count 1/2)."""
    array = _as_loss_matrix(L)
    fam = np.asarray(families).astype(str)
    p = np.asarray(params, dtype=np.int64)
    pairs = pair_oracle_losses(array) if pair_losses is None else np.asarray(pair_losses, dtype=np.float64)
    gain = pair_gain_matrix(array, pairs)
    shares = pair_win_shares(array)
    single = np.diag(pairs)
    index = pair_index(fam)
    i, j = index.i, index.j
    better = np.where(single[i] <= single[j], i, j)
    weaker = np.where(better == i, j, i)
    return pd.DataFrame({
        "i": i, "j": j, "family_i": fam[i], "family_j": fam[j], "same_family": index.same_family,
        "params": p[i] + p[j],
        "size_ratio": np.maximum(p[i], p[j]) / np.minimum(p[i], p[j]),
        "better": better,
        "gain": gain[i, j],
        "rel_gain": gain[i, j] / single[better],
        "weaker_win_share": shares[weaker, better],
    })


def family_gain_matrix(table: pd.DataFrame, value: str = "gain") -> pd.DataFrame:
    """Family x family mean of ``value`` over pairs (symmetric; the diagonal is within-family pairs)."""
    direct = table[["family_i", "family_j", value]]
    cross = table["family_i"].to_numpy() != table["family_j"].to_numpy()
    # cross-family pairs fill both (f, g) and (g, f); within-family pairs sit once on the diagonal
    mirror = direct[cross].set_axis(["family_j", "family_i", value], axis=1)[["family_i", "family_j", value]]
    both = pd.concat([direct, mirror], ignore_index=True)
    return both.pivot_table(index="family_i", columns="family_j", values=value, aggfunc="mean").rename_axis(
        index="family", columns="family")


def gain_by_relation(table: pd.DataFrame) -> pd.DataFrame:
    """Per relation (same/cross family): pairs, mean and median gain (nats), mean relative gain,
    mean weaker-member win share, and Spearman rho of gain vs log size ratio (with its p-value)."""
    rows = []
    for same, sub in table.groupby("same_family"):
        rho, pval = (spearmanr(np.log(sub["size_ratio"]), sub["gain"]) if len(sub) > 2 and sub["size_ratio"].nunique() > 1
                     else (np.nan, np.nan))
        rows.append({
            "relation": "same_family" if same else "cross_family", "n_pairs": len(sub),
            "mean_gain": sub["gain"].mean(), "median_gain": sub["gain"].median(),
            "mean_rel_gain": sub["rel_gain"].mean(), "mean_weaker_win_share": sub["weaker_win_share"].mean(),
            "spearman_gain_vs_log_ratio": float(rho), "spearman_p": float(pval),
        })
    return pd.DataFrame(rows)


def gain_regression(table: pd.DataFrame) -> pd.DataFrame:
    """OLS of rel_gain on [1, log10 size ratio, cross_family, weaker_win_share]: coefficient, SE per term."""
    X = np.column_stack([np.ones(len(table)), np.log10(table["size_ratio"]), (~table["same_family"]).astype(float),
                         table["weaker_win_share"]])
    y = table["rel_gain"].to_numpy()
    names = ["intercept", "log10_size_ratio", "cross_family", "weaker_win_share"]
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = max(len(y) - X.shape[1], 1)
    resid = y - X @ coef
    cov = np.linalg.pinv(X.T @ X) * (resid @ resid) / dof
    return pd.DataFrame({"term": names, "coef": coef, "se": np.sqrt(np.clip(np.diag(cov), 0, None))})
