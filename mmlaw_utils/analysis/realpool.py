"""A small pool of real models (profile ``real``): every subset's oracle, per-domain wins, family pairs.

Numbers only (frames); ``report/realpool.py`` writes and draws them. ``L`` is K models x N texts
of summed NLL (nats, eq. 1, each model under its own tokenizer); ``n_bytes`` the texts' UTF-8
lengths. Oracle losses (eq. 4) use ``subsets.subset_losses`` (the canonical summation order), so
they equal the frontier's bit for bit. Bits per byte = total nats / total bytes / ln 2.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmlaw_utils.analysis.groups import CROSS_FAMILY, SAME_FAMILY, SINGLE
from mmlaw_utils.analysis.oracle import _as_loss_matrix, win_shares
from mmlaw_utils.analysis.subsets import frontier_of, subset_losses

# Sources of the mixed-domain held-out set (minipool/sources.py names) whose text was public long
# before these models were trained, so it was very likely in their pretraining data: results on the
# domains they make up measure recall as much as generalisation. "possible": public corpora that
# circulate less widely as raw web text.
PRETRAINING_EXPOSURE: dict[str, str] = {
    "wiki": "likely",  # Wikipedia is in every web-scale pretraining mix
    "kjv": "likely",  # King James Bible (Project Gutenberg and countless web copies)
    "web_bible": "likely",  # World English Bible (public domain, widely mirrored)
    "shakespeare": "likely",
    "moby_dick": "likely",  # Project Gutenberg
    "sotu": "likely",  # State of the Union addresses (public record)
    "python_stdlib": "likely",  # CPython source is on GitHub: in every code pretraining mix
    "python_core": "likely",  # CPython too
    "python_docs": "likely",  # docs.python.org
    "brown": "possible",  # Brown corpus (1961 samples; distributed with NLTK)
    "spamassassin": "possible",  # SpamAssassin public mail corpus
}


def bits_per_byte(nll_nats: np.ndarray, n_bytes: np.ndarray) -> float:
    """Total nats / total UTF-8 bytes / ln 2 (bits per byte)."""
    return float(np.sum(nll_nats) / np.sum(n_bytes) / math.log(2))


def _check(L: np.ndarray, n_bytes: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    array = _as_loss_matrix(L)
    b = np.asarray(n_bytes, dtype=np.float64)
    if b.shape != (array.shape[1],) or (b <= 0).any():
        raise ValueError(f"n_bytes must be positive with shape ({array.shape[1]},), got shape {b.shape}")
    if len(names) != array.shape[0]:
        raise ValueError(f"{len(names)} model names for {array.shape[0]} loss-matrix rows")
    return array, b


def pair_group(families: Sequence[str]) -> str:
    """"single", "same_family" (all members one family) or "cross_family" of a subset's member families."""
    if len(families) == 1:
        return SINGLE
    return SAME_FAMILY if len(set(families)) == 1 else CROSS_FAMILY


def all_subsets(n_models: int, min_size: int = 1) -> list[tuple[int, ...]]:
    """Every subset of ``range(n_models)`` with at least ``min_size`` members, by size then lexicographically."""
    return [s for k in range(min_size, n_models + 1) for s in itertools.combinations(range(n_models), k)]


def subset_table(L: np.ndarray, n_bytes: np.ndarray, params: Sequence[int], names: Sequence[str],
                 families: Sequence[str], min_size: int = 1) -> pd.DataFrame:
    """Each subset's oracle (eq. 4): nats per text, bits per byte, gain over its best member, frontier flag.

    Columns: subset (row tuple), models ("a + b"), size, group (single / same_family / cross_family),
    params (raw count, eq. 5), loss (nats per text), bits_per_byte, best_member, best_member_loss,
    gain_vs_best_member (1 - loss / best member's loss), on_frontier (Pareto frontier over *all*
    subsets of the pool, §2.5).
    """
    array, b = _check(L, n_bytes, names)
    p = np.asarray(params, dtype=np.int64)
    subsets = all_subsets(array.shape[0], 1)
    losses = subset_losses(array, subsets)
    single = array.mean(axis=1)
    rows = []
    for subset, loss in zip(subsets, losses):
        best = min(subset, key=lambda i: single[i])
        rows.append({
            "subset": subset,
            "models": " + ".join(names[i] for i in subset),
            "size": len(subset),
            "group": pair_group([families[i] for i in subset]),
            "params": int(p[list(subset)].sum()),
            "loss": float(loss),
            "bits_per_byte": bits_per_byte(array[list(subset)].min(axis=0), b),
            "best_member": names[best],
            "best_member_loss": float(single[best]),
            "gain_vs_best_member": 1.0 - float(loss) / float(single[best]),
        })
    table = pd.DataFrame(rows)
    front = frontier_of(table[["params", "loss"]].assign(row=np.arange(len(table))))
    table["on_frontier"] = np.isin(np.arange(len(table)), front["row"].to_numpy())
    return table[table["size"] >= min_size].reset_index(drop=True)


def domain_table(L: np.ndarray, n_bytes: np.ndarray, domains: Sequence[str], names: Sequence[str]) -> pd.DataFrame:
    """Per domain and model: texts, mean nats per text, bits per byte, win share in the all-model oracle.

    Win shares (ties split) are over the domain's texts, so each domain's shares sum to 1.
    """
    array, b = _check(L, n_bytes, names)
    dom = np.asarray(domains, dtype=object).astype(str)
    if dom.shape != (array.shape[1],):
        raise ValueError(f"domains must have one label per text ({array.shape[1]}), got shape {dom.shape}")
    rows = []
    for domain in sorted(set(dom)):
        cols = dom == domain
        shares = win_shares(array[:, cols])
        for i, name in enumerate(names):
            rows.append({
                "domain": domain, "model": name, "n_texts": int(cols.sum()),
                "mean_nll": float(array[i, cols].mean()),
                "bits_per_byte": bits_per_byte(array[i, cols], b[cols]),
                "win_share": float(shares[i]),
            })
    return pd.DataFrame(rows)


def domain_summary(L: np.ndarray, n_bytes: np.ndarray, domains: Sequence[str], names: Sequence[str],
                   exposure: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per domain: best single model, most frequent oracle pick, oracle gain, pretraining exposure.

    ``oracle_gain`` = 1 - (all-model oracle nats) / (domain's best single model's nats), on the
    domain's texts. ``exposure`` maps domain -> "likely"/"possible"/"" (see :func:`domain_exposure`).
    """
    per = domain_table(L, n_bytes, domains, names)
    array, b = _check(L, n_bytes, names)
    dom = np.asarray(domains, dtype=object).astype(str)
    rows = []
    for domain, group in per.groupby("domain", sort=True):
        cols = dom == domain
        best = group.loc[group["mean_nll"].idxmin()]
        top = group.loc[group["win_share"].idxmax()]
        oracle = array[:, cols].min(axis=0)
        rows.append({
            "domain": domain, "n_texts": int(cols.sum()),
            "best_single": best["model"], "best_single_bpb": float(best["bits_per_byte"]),
            "oracle_bpb": bits_per_byte(oracle, b[cols]),
            "oracle_gain": 1.0 - float(oracle.mean()) / float(best["mean_nll"]),
            "top_winner": top["model"], "top_winner_share": float(top["win_share"]),
            "pretraining_exposure": (exposure or {}).get(domain, ""),
        })
    return pd.DataFrame(rows)


def domain_exposure(domains: Sequence[str], sources: Sequence[str],
                    flags: Mapping[str, str] = PRETRAINING_EXPOSURE) -> dict[str, str]:
    """Per domain, the sources flagged as probably seen in pretraining: "likely: kjv, sotu" ("" when none).

    ``sources`` are the texts' source-document ids ``<source>:<document>``; ``flags`` maps a source
    name to "likely" or "possible". A domain is labelled by its most severe flag.
    """
    found: dict[str, dict[str, set[str]]] = {}
    for domain, source in zip(domains, sources, strict=True):
        name = str(source).split(":", 1)[0]
        level = flags.get(name)
        found.setdefault(str(domain), {})
        if level:
            found[str(domain)].setdefault(level, set()).add(name)
    out = {}
    for domain, levels in found.items():
        level = "likely" if "likely" in levels else ("possible" if "possible" in levels else "")
        out[domain] = f"{level}: {', '.join(sorted(levels[level]))}" if level else ""
    return out


def family_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Same-family pairs against the cross-family pairs at equal budget (from :func:`subset_table`).

    One row per same-family pair: its params, oracle loss and gain over its better member, and the
    best cross-family pair with no more parameters (``cross_*`` columns); ``cross_minus_same`` < 0
    means that cross-family pair has the lower oracle loss (nats per text) on a no-larger budget.
    """
    pairs = table[table["size"] == 2]
    same, cross = pairs[pairs["group"] == SAME_FAMILY], pairs[pairs["group"] == CROSS_FAMILY]
    rows = []
    for row in same.itertuples():
        within = cross[cross["params"] <= row.params]
        best = within.loc[within["loss"].idxmin()] if not within.empty else None
        rows.append({
            "same_family_pair": row.models, "params": row.params, "loss": row.loss,
            "bits_per_byte": row.bits_per_byte, "gain_vs_best_member": row.gain_vs_best_member,
            "n_cross_within_budget": len(within),
            "cross_pair": None if best is None else best["models"],
            "cross_params": None if best is None else int(best["params"]),
            "cross_loss": math.nan if best is None else float(best["loss"]),
            "cross_bits_per_byte": math.nan if best is None else float(best["bits_per_byte"]),
            "cross_gain_vs_best_member": math.nan if best is None else float(best["gain_vs_best_member"]),
            "cross_minus_same": math.nan if best is None else float(best["loss"]) - float(row.loss),
        })
    return pd.DataFrame(rows)


def mixture_table(L: np.ndarray, n_bytes: np.ndarray, params: Sequence[int], names: Sequence[str],
                  min_size: int = 2, seed: int = 0) -> pd.DataFrame:
    """Bayesian mixture (§6.1) vs oracle for every subset of ``min_size``+ models, on the held-out half of the texts.

    Columns of ``mixture.subset_mixture_losses`` (nats per held-out text; weights fitted by EM on the
    other half) plus ``models``, ``*_bpb`` (bits per byte of the held-out half) and ``mix_minus_oracle``.
    """
    from mmlaw_utils.analysis.mixture import split_texts, subset_mixture_losses

    array, b = _check(L, n_bytes, names)
    subsets = all_subsets(array.shape[0], min_size)
    table = subset_mixture_losses(array, subsets, np.asarray(params, dtype=np.int64), seed=seed)
    _, eval_idx = split_texts(array.shape[1], seed)
    to_bpb = len(eval_idx) / b[eval_idx].sum() / math.log(2)
    table.insert(1, "models", [" + ".join(names[i] for i in s) for s in table["subset"]])
    for column in ("best_single", "oracle", "mix_uniform", "mix_fitted"):
        table[f"{column}_bpb"] = table[column] * to_bpb
    table["mix_minus_oracle"] = table["mix_fitted"] - table["oracle"]
    return table


# ----------------------------------------------------------------------------- scoring prefix per model
PREFIX_TOLERANCE = 0.02  # a documented separator within 2% of the best prefix's loss (tokens 2..n) is kept


def choose_prefix(table: pd.DataFrame, tolerance: float = PREFIX_TOLERANCE) -> tuple[str, str]:
    """(scoring prefix token, one-sentence reason) of one model from its prefix-sensitivity rows.

    ``table``: candidate, token (None/NaN = no prefix), separator (bool), nll_sum (nats of tokens 2..n
    of the calibration texts). The documented separator is kept unless its loss exceeds the lowest of
    every candidate (no prefix included) by more than ``tolerance`` (relative): then it breaks the model,
    and the token with the lowest loss is chosen (eq. 1 needs one token in front to score token 1).
    """
    if table.empty:
        raise ValueError("no prefix-sensitivity rows to choose from")
    best = table.loc[table["nll_sum"].idxmin()]
    separator = table[table["separator"].astype(bool)]
    if len(separator) != 1:
        raise ValueError(f"expected one documented-separator row, got {len(separator)}")
    sep = separator.iloc[0]
    excess = float(sep["nll_sum"]) / float(best["nll_sum"]) - 1.0
    if excess == 0.0:
        return str(sep["token"]), (f"the documented separator `{_shown(sep['token'])}` has the lowest loss of every "
                                    "candidate on tokens 2..n, so it is kept")
    if excess <= tolerance:
        return str(sep["token"]), (f"the documented separator `{_shown(sep['token'])}` is within {100 * excess:.1f}% of the "
                                    f"best prefix ({best['candidate']}) on tokens 2..n, so it is kept")
    tokens = table[table["token"].notna()]
    pick = tokens.loc[tokens["nll_sum"].idxmin()]
    pick_excess = float(pick["nll_sum"]) / float(best["nll_sum"]) - 1
    return str(pick["token"]), (f"the documented separator `{_shown(sep['token'])}` costs {100 * excess:+.1f}% on tokens 2..n "
                                f"against the best prefix ({best['candidate']}): it breaks the model, so the lowest-loss "
                                f"token `{_shown(pick['token'])}` is used ("
                                + (f"{pick['candidate']}, {100 * pick_excess:+.1f}% over the best)" if pick_excess > 0
                                   else "the best candidate)"))


def _shown(token: Any) -> str:
    """A prefix token as printed in tables (a newline as \\n)."""
    return str(token).replace("\n", "\\n")


def prefix_choices(table: pd.DataFrame, tolerance: float = PREFIX_TOLERANCE) -> pd.DataFrame:
    """Every model's rows with ``vs_none`` and ``vs_best`` (relative loss of tokens 2..n) and ``chosen``; one
    ``reason`` per model (on its chosen row)."""
    out = []
    for model, rows in table.groupby("model", sort=False):
        token, reason = choose_prefix(rows, tolerance)
        none = rows.loc[rows["token"].isna(), "nll_sum"]
        rows = rows.assign(
            vs_none=rows["nll_sum"] / float(none.iloc[0]) - 1.0 if len(none) else math.nan,
            vs_best=rows["nll_sum"] / float(rows["nll_sum"].min()) - 1.0,
            chosen=rows["token"].astype(object).eq(token),
        )
        rows["reason"] = np.where(rows["chosen"], reason, "")
        out.append(rows)
    return pd.concat(out, ignore_index=True)


def dominated_models(L: np.ndarray, params: Sequence[int]) -> list[int]:
    """Rows whose mean loss alone (nats per text) is above that of a model with fewer parameters (off the
    singles' size-loss frontier)."""
    mean = _as_loss_matrix(L).mean(axis=1)
    p = np.asarray(params, dtype=np.int64)
    return [i for i in range(len(mean)) if bool(((p < p[i]) & (mean < mean[i])).any())]
