"""Writes and draws the real-pool comparison (profile ``real``; numbers from ``analysis/realpool.py``).

Outputs in the run's data folder (names in ``config.OUTPUT_FILES``, keys ``real_*``): ``real_pool.md``
(every table, with the caveats beside them) and one csv per table; figures ``real_pool_frontier`` and
``real_pool_domains`` (``config.FIGURE_STEMS``) in its figures folder. The README's region between
``<!-- real-pool:start -->`` and ``<!-- real-pool:end -->`` is the same markdown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from mmlaw_utils.analysis import realpool
from mmlaw_utils.analysis.groups import CROSS_FAMILY, SAME_FAMILY, SINGLE
from mmlaw_utils.config import FIGURE_STEMS, OUTPUT_FILES

README_START = "<!-- real-pool:start -->"
README_END = "<!-- real-pool:end -->"


@dataclass
class RealPoolResults:
    """Every table of the real-pool comparison (frames from analysis/realpool.py)."""

    names: list[str]
    models: pd.DataFrame  # one row per model: name, model id, upstream, variant, quantization, params, head_tied, ...
    subsets: pd.DataFrame
    frontier: pd.DataFrame
    domains: pd.DataFrame
    domain_summary: pd.DataFrame
    family_pairs: pd.DataFrame
    mixture: pd.DataFrame
    n_texts: int
    dataset: str
    prefixes: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.realpool.prefix_choices rows, with ``name``
    derived: list[str] = field(default_factory=list)  # models whose GGUF was made from another quantised release (AWQ)
    excluded: list[str] = field(default_factory=list)  # derived models that are outliers: left out of the Reading
    conclusions: RealPoolResults | None = None  # the tables without ``excluded`` (what the Reading is built from)


def display_names(models: pd.DataFrame) -> list[str]:
    """Short model names: the pool's ``short_name`` where given, else the model id."""
    if "short_name" not in models.columns:
        return [str(m) for m in models["model"]]
    return [str(s) if isinstance(s, str) and s else str(m) for s, m in zip(models["short_name"], models["model"])]


def derived_from_quantised(models: pd.DataFrame) -> list[bool]:
    """Per model, whether its upstream checkpoint is itself a quantised release (an ``-AWQ`` hub id)."""
    upstream = models["upstream_model"] if "upstream_model" in models.columns else pd.Series([None] * len(models))
    return [isinstance(u, str) and u.upper().endswith("-AWQ") for u in upstream]


def compute_results(L: np.ndarray, n_bytes: np.ndarray, models: pd.DataFrame, domains: Sequence[str],
                    sources: Sequence[str], dataset: str, seed: int = 0,
                    prefix_table: pd.DataFrame | None = None) -> RealPoolResults:
    """All tables for a pool: ``models`` has model, family, params (P) in ``L``'s row order.

    ``prefix_table``: rows of ``real_prefix_sensitivity.csv`` (``real prefix-table``), for the prefix section.
    A model made from another quantised release that is also an outlier (a model with fewer parameters has a
    lower loss alone) is kept in every table but left out of the Reading (``conclusions``).
    """
    from mmlaw_utils.analysis.subsets import named_frontier, subset_frontier

    names = display_names(models)
    derived = derived_from_quantised(models)
    excluded = [i for i in realpool.dominated_models(L, models["params"].astype(np.int64)) if derived[i]]
    keep = [i for i in range(len(names)) if i not in excluded]
    conclusions = None
    if excluded and len(keep) >= 2:
        conclusions = compute_results(np.asarray(L)[keep], n_bytes, models.iloc[keep].reset_index(drop=True), domains,
                                      sources, dataset, seed)
    prefixes = pd.DataFrame()
    if prefix_table is not None and not prefix_table.empty:
        prefixes = realpool.prefix_choices(prefix_table)
        shown = dict(zip(models["model"], names))
        prefixes.insert(1, "name", [shown.get(m, m) for m in prefixes["model"]])
    params = models["params"].astype(np.int64).to_numpy()
    families = models["family"].astype(str).tolist()
    exposure = realpool.domain_exposure(domains, sources)
    front = named_frontier(subset_frontier(L, params, method="brute"), names)
    front["bits_per_byte"] = [realpool.bits_per_byte(np.asarray(L)[list(s)].min(axis=0), n_bytes) for s in front["subset"]]
    subsets = realpool.subset_table(L, n_bytes, params, names, families)
    return RealPoolResults(
        names=names,
        models=models.assign(name=names),
        subsets=subsets,
        frontier=front,
        domains=realpool.domain_table(L, n_bytes, domains, names),
        domain_summary=realpool.domain_summary(L, n_bytes, domains, names, exposure),
        family_pairs=realpool.family_pairs(subsets),
        mixture=realpool.mixture_table(L, n_bytes, params, names, seed=seed) if len(names) > 1 else pd.DataFrame(),
        n_texts=int(np.asarray(L).shape[1]),
        dataset=dataset,
        prefixes=prefixes,
        derived=[n for n, d in zip(names, derived) if d],
        excluded=[names[i] for i in excluded],
        conclusions=conclusions,
    )


def _pct(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:+.1f}%"


def _numeric(cell: Any) -> bool:
    """Whether a table cell reads as a number ("1,234", "+0.5%", "0.933 (85%)", "-"), so it is right-aligned."""
    text = str(cell).replace(",", "").replace("%", "").replace("(", " ").replace(")", " ").split()
    try:
        return bool(text) and all(float(t) == float(t) for t in text)
    except ValueError:
        return str(cell).strip() in ("", "-")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Markdown table; columns whose cells are all numbers are right-aligned."""
    align = "|".join("---:" if rows and all(_numeric(r[i]) for r in rows) else "---" for i in range(len(header)))
    return ["| " + " | ".join(header) + " |", f"|{align}|", *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


def caveats_markdown(results: RealPoolResults) -> list[str]:
    """The caveats that qualify every number of the comparison (stated next to the results)."""
    lines = ["**Caveats.**", ""]
    variants = [f"{n}: {v}" for n, v in zip(results.names, results.models.get("variant", [""] * len(results.names))) if v]
    if variants:
        lines.append("- Variants: " + "; ".join(variants) + ". Instruct and coder fine-tunes are not the base "
                     "models the paper's pools hold, so gains here mix specialisation with scale.")
    quant = [f"{n}: {q}" for n, q in zip(results.names, results.models.get("gguf_quantization", [""] * len(results.names)))
             if isinstance(q, str) and q]
    if quant:
        lines.append("- Every model is a quantised GGUF, de-quantised to fp32 for scoring: the scores are those of "
                     "the quantised checkpoints (" + "; ".join(quant) + ").")
    singles = results.subsets[results.subsets["size"] == 1].set_index("models")
    for name in results.derived:
        upstream = results.models.set_index("name").loc[name, "upstream_model"]
        line = (f"- **{name} is an AWQ-derived GGUF**: it was converted from `{upstream}`, a 4-bit AWQ release, so its "
                "weights were quantised twice, and its losses are not those of the released bf16 model. ")
        if name in results.excluded:
            me = singles.loc[name]
            better = singles[(singles["params"] < me["params"]) & (singles["loss"] < me["loss"])]
            line += (f"It is an outlier here: {', '.join(better.index)} ha{'s' if len(better) == 1 else 've'} fewer parameters "
                     f"and a lower loss alone ({', '.join(f'{b:.4f}' for b in better['bits_per_byte'])} against "
                     f"{me['bits_per_byte']:.4f} bits/byte), so the Reading below leaves it out of which-model-wins "
                     "conclusions; the tables keep it.")
        else:
            line += "It is not an outlier here (no model with fewer parameters has a lower loss alone), so every conclusion keeps it."
        lines.append(line)
    flagged = results.domain_summary[results.domain_summary["pretraining_exposure"] != ""]
    if not flagged.empty:
        lines.append("- Pretraining exposure: the texts of " + ", ".join(
            f"*{r.domain}* ({r.pretraining_exposure})" for r in flagged.itertuples())
            + " come from public sources that were very likely (or possibly) in these models' pretraining data, so "
            "low losses there may be recall. Results are reported per domain below; compare flagged and unflagged domains.")
    return lines + [""]


def reading_markdown(results: RealPoolResults) -> list[str]:
    """What the tables say, in sentences built from them (so they follow the data): the best model's share of
    every domain, the largest oracle gain, same- vs cross-family at equal budget, mixture vs oracle. Built from
    ``results.conclusions`` (the pool without its excluded outliers) when there is one."""
    r = results.conclusions or results
    singles = r.subsets[r.subsets["size"] == 1]
    multi = r.subsets[r.subsets["size"] >= 2]
    if multi.empty:
        return []
    best = singles.loc[singles["loss"].idxmin()]
    winners = r.domain_summary
    best_shares = r.domains[r.domains["model"] == best["models"]]["win_share"]
    lines = ["**Reading.**", ""]
    if results.conclusions is not None:
        lines.append(f"- Without {', '.join(results.excluded)} (an outlier, see the caveats): every sentence below is "
                     f"about the other {len(r.names)} models.")
    lines.append(f"- {best['models']} is the best model alone ({best['bits_per_byte']:.3f} bits/byte) and wins "
                 f"{100 * best_shares.min():.0f}-{100 * best_shares.max():.0f}% of the texts of every domain in the "
                 f"all-model oracle. Domains won mostly by another model: "
                 + (", ".join(f"*{w.domain}* ({w.top_winner}, {100 * w.top_winner_share:.0f}%)"
                              for w in winners.itertuples() if w.top_winner != best["models"]) or "none") + ".")
    others = r.domains[r.domains["model"] != best["models"]]
    if not others.empty:
        runner = others.loc[others["win_share"].idxmax()]
        lines.append(f"- The largest share of a domain that any other model wins is {100 * runner['win_share']:.0f}% "
                     f"({runner['model']}, *{runner['domain']}*).")
    top = multi.loc[multi["gain_vs_best_member"].idxmax()]
    best_row = best["subset"][0]
    with_best = multi[multi["subset"].map(lambda members: best_row in members)]
    lines.append(f"- The largest oracle gain over a subset's best member is {_pct(top['gain_vs_best_member'])} "
                 f"({top['models']}); every subset that holds {best['models']} gains at most "
                 f"{_pct(with_best['gain_vs_best_member'].max())}. The per-domain oracle gain is at most "
                 f"{_pct(winners['oracle_gain'].max())}.")
    for f in r.family_pairs.itertuples():
        if isinstance(f.cross_pair, str) and f.cross_pair:
            verdict = "lower" if f.cross_minus_same < 0 else "higher"
            lines.append(f"- At no more parameters than the same-family pair ({f.same_family_pair}), the best "
                         f"cross-family pair ({f.cross_pair}) has a {verdict} oracle loss ({f.cross_minus_same:+.2f} "
                         f"nats per text, {100 * abs(f.cross_minus_same) / f.loss:.2f}% of the loss; one comparison, "
                         "no interval).")
    if not r.mixture.empty:
        gap = r.mixture["mix_minus_oracle"]
        lines.append(f"- A fitted Bayesian mixture (§6.1) comes within {gap.min():.2f}-{gap.max():.2f} nats per text of "
                     "the oracle on held-out texts.")
    decades = math.log10(singles["params"].max() / singles["params"].min())
    lines.append(f"- {len(singles)} single models spanning {decades:.1f} decade(s) of P give {len(r.frontier)} points on "
                 "the any-size frontier. Eq. 7 is not fitted here: such a pool can show whether real models of "
                 "different families complement each other, not a scaling law.")
    return lines + [""]


def _token_cell(token: Any, in_table: bool = True) -> str:
    """A prefix token as a code span, a newline shown as \\n (pipes escaped in a table cell); "-" for none."""
    if token is None or (isinstance(token, float) and math.isnan(token)) or token == "":
        return "-"
    shown = "`" + str(token).replace("\n", "\\n") + "`"
    return shown.replace("|", "\\|") if in_table else shown


def prefix_markdown(results: RealPoolResults) -> list[str]:
    """The prefix-sensitivity table of every model, the prefix chosen and why, and whether its cache used it."""
    p = results.prefixes
    if p.empty:
        return []
    lines = ["", f"**Scoring prefix per model.** Eq. 1 puts one token in front of each text so that its first token is "
             f"scored too, and which token is part of what eq. 1 means for a model. Below: the loss of tokens 2..n "
             f"(nats per token) of {int(p['n_texts'].iloc[0])} training-side calibration documents "
             "(`data/real/prefix_calibration.jsonl`: the held-out set's own sources, the same number per domain, none "
             f"from a held-out document; {p['n_tokens'].iloc[0] / p['n_texts'].iloc[0]:.0f} scored tokens per text on average) under "
             "each candidate prefix, in all and split "
             "into code (code and technical domains) and prose; *vs none* is the change against no prefix. The "
             "documented separator is kept unless it costs more than 2% over the best candidate; then it breaks the "
             "model and the lowest-loss token is used (`analysis.realpool.choose_prefix`; no prefix cannot be chosen, "
             "since then the first token is not scored). Regenerate with `python -m mmlaw_utils real prefix-table`.", ""]
    lines += _table(["model", "candidate", "token", "nats/token", "code", "prose", "vs none", "chosen"], [
        [q.name, q.candidate.replace("|", "\\|"), _token_cell(q.token), f"{q.nats_per_token:.4f}", f"{q.nats_per_token_code:.4f}",
         f"{q.nats_per_token_prose:.4f}", _pct(q.vs_none), "yes" if q.chosen else ""] for q in p.itertuples()])
    lines.append("")
    recorded = dict(zip(results.models["model"], results.models.get("document_prefix", [None] * len(results.models))))
    for q in p[p["chosen"]].itertuples():
        used = recorded.get(q.model)
        status = ("its score cache was scored after it" if used == q.token else
                  f"**its score cache was scored after {_token_cell(used, False)}: rescore it**" if q.model in recorded else
                  "it has no score cache in this run")
        lines.append(f"- {q.name}: {_token_cell(q.token, False)}; {q.reason}; {status}.")
    for m in results.models[~results.models["model"].isin(p["model"])].itertuples():
        lines.append(f"- {m.name}: no prefix-sensitivity rows yet (`python -m mmlaw_utils real prefix-table {m.model}`); "
                     f"scored after {_token_cell(m.document_prefix, False)}.")
    return lines


def results_markdown(results: RealPoolResults) -> str:
    """Markdown of the whole comparison (``real_pool.md`` and the README region)."""
    r = results
    lines = [
        f"Text set: `{r.dataset}` ({r.n_texts} texts, {r.domains['domain'].nunique()} domain(s)). Loss = summed NLL "
        "of a text under the model's own tokenizer (eq. 1, nats per text); oracle = per-text minimum over a subset "
        "(eqs. 3-4); bits per byte = total nats / total UTF-8 bytes / ln 2; P = parameters with a tied head counted once.",
        "",
        *caveats_markdown(r),
        *reading_markdown(r),
        "**Models alone.**",
        "",
    ]
    models = r.models.reset_index(drop=True)
    singles = r.subsets[r.subsets["size"] == 1].set_index("models")
    rows = []
    for i, m in models.iterrows():
        row = singles.loc[m["name"]]
        tied = m.get("head_tied")
        rows.append([m["name"], f"`{m['model']}`", m.get("gguf_quantization", ""), f"{int(m['params']):,}",
                     "yes" if tied is True else ("no" if tied is False else ""), _token_cell(m.get("document_prefix")),
                     f"{row['loss']:.2f}", f"{row['bits_per_byte']:.4f}"])
    lines += _table(["model", "pool id", "GGUF", "P (measured)", "head tied", "prefix", "nats/text", "bits/byte"], rows)
    lines += prefix_markdown(r)
    multi = r.subsets[r.subsets["size"] >= 2].sort_values(["size", "params"])
    lines += ["", f"**Oracle of each of the {len(multi)} multi-model subsets** (gain = 1 - oracle loss / its best member "
              "alone; * = on the exact any-size Pareto frontier over all subsets, §2.5).", ""]
    lines += _table(["subset", "group", "P", "nats/text", "bits/byte", "gain vs best member"], [
        [s.models + (" *" if s.on_frontier else ""), s.group.replace("_", "-"), f"{s.params:,}", f"{s.loss:.2f}",
         f"{s.bits_per_byte:.4f}", _pct(s.gain_vs_best_member)] for s in multi.itertuples()])
    lines += ["", "**Exact any-size frontier** (`analysis.subsets.subset_frontier`, all subsets):", ""]
    lines += _table(["subset", "P", "nats/text", "bits/byte"], [
        [f.models, f"{f.params:,}", f"{f.loss:.2f}", f"{f.bits_per_byte:.4f}"] for f in r.frontier.itertuples()])
    lines += ["", "**Per domain**: bits per byte of each model alone, the share of the domain's texts each model wins "
              "in the all-model oracle, and the oracle's gain over the domain's best single model.", ""]
    wide = r.domains.pivot(index="domain", columns="model", values="bits_per_byte")[r.names]
    share = r.domains.pivot(index="domain", columns="model", values="win_share")[r.names]
    summary = r.domain_summary.set_index("domain")
    rows = []
    for domain in wide.index:
        s = summary.loc[domain]
        rows.append([domain, int(s["n_texts"]), *(f"{wide.loc[domain, n]:.3f} ({100 * share.loc[domain, n]:.0f}%)" for n in r.names),
                     f"{s['oracle_bpb']:.3f}", _pct(s["oracle_gain"]), s["pretraining_exposure"] or "-"])
    lines += _table(["domain", "texts", *(f"{n} bpb (wins)" for n in r.names), "oracle bpb", "oracle gain", "pretraining exposure"], rows)
    if not r.family_pairs.empty:
        lines += ["", "**Same-family pair vs cross-family pairs at equal budget** (best cross-family pair with no more "
                  "parameters than the same-family pair; nats per text):", ""]
        lines += _table(["same-family pair", "P", "nats/text", "gain", "best cross-family pair within P", "P", "nats/text", "gain", "cross - same"], [
            [f.same_family_pair, f"{f.params:,}", f"{f.loss:.2f}", _pct(f.gain_vs_best_member), f.cross_pair or "-",
             "" if f.cross_params is None or pd.isna(f.cross_params) else f"{int(f.cross_params):,}",
             f"{f.cross_loss:.2f}", _pct(f.cross_gain_vs_best_member), f"{f.cross_minus_same:+.2f}"] for f in r.family_pairs.itertuples()])
    if not r.mixture.empty:
        lines += ["", "**Bayesian mixture vs oracle** (§6.1; held-out half of the texts, weights fitted by EM on the other half; bits per byte):", ""]
        lines += _table(["subset", "best member", "oracle", "uniform mixture", "fitted mixture", "mixture - oracle (nats/text)"], [
            [m.models, f"{m.best_single_bpb:.4f}", f"{m.oracle_bpb:.4f}", f"{m.mix_uniform_bpb:.4f}", f"{m.mix_fitted_bpb:.4f}",
             f"{m.mix_minus_oracle:.2f}"] for m in r.mixture.itertuples()])
    return "\n".join(lines) + "\n"


def report_markdown(results: RealPoolResults, profile: str) -> str:
    """``real_pool.md``: a title, how to reproduce, then :func:`results_markdown`."""
    return (f"# Real pretrained pool ({profile}): each model alone, every subset's oracle, per domain\n\n"
            f"Generated by notebook `08_real_pool` (`./run_all.sh --profile {profile}`); do not edit by hand.\n\n"
            + results_markdown(results))


def write_results(results: RealPoolResults, data_dir: str | Path, profile: str) -> Path:
    """Atomically write ``real_pool.md`` and the csv tables into ``data_dir``; return the .md path."""
    from mmlaw_utils.io import atomic_write_text

    data_dir = Path(data_dir)
    frames = {"subsets": results.subsets, "domains": results.domains, "mixture": results.mixture,
              "domain_summary": results.domain_summary, "family_pairs": results.family_pairs}
    for key, frame in frames.items():
        atomic_write_text(data_dir / OUTPUT_FILES[f"real_{key}"], frame.to_csv(index=False, float_format="%.6f"))
    out = data_dir / OUTPUT_FILES["real_pool_md"]
    atomic_write_text(out, report_markdown(results, profile))
    return out


def update_readme(readme: str | Path, results: RealPoolResults, profile: str) -> bool:
    """Replace the README's real-pool region with the results; False (untouched) when it has no such region."""
    from mmlaw_utils.io import write_marked_region

    if README_START not in Path(readme).read_text():
        return False
    block = (f"_Generated from profile `{profile}` by notebook `08_real_pool`; do not edit by hand._\n\n"
             + results_markdown(results))
    write_marked_region(readme, block, README_START, README_END)
    return True


def frontier_figure(results: RealPoolResults, params_unit: float = 1e9):
    """Every subset's oracle loss (bits per byte) against P, the exact frontier joined, singles labelled."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    colours = {SINGLE: "#4C72B0", SAME_FAMILY: "#DD8452", CROSS_FAMILY: "#55A868"}
    for group, sub in results.subsets.groupby("group"):
        ax.scatter(sub["params"] / params_unit, sub["bits_per_byte"], s=28, color=colours.get(group, "0.5"),
                   label=group.replace("_", "-"), zorder=3)
    for row in results.subsets[results.subsets["size"] == 1].itertuples():
        ax.annotate(row.models, (row.params / params_unit, row.bits_per_byte), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    front = results.frontier.sort_values("params")
    ax.plot(front["params"] / params_unit, front["bits_per_byte"], color="0.2", lw=1.2, ls="--", label="any-size frontier")
    ax.set_xscale("log")
    # plain numbers at 1-2-5 steps: the default minor labels (3x10^-1, 4x10^-1, ...) collide on a short axis
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"total parameters P ({'billions' if params_unit == 1e9 else params_unit})")
    ax.set_ylabel("oracle loss (bits per byte)")
    ax.set_title(f"{len(results.names)} real models, {len(results.subsets)} subsets, {results.n_texts} texts")
    ax.legend(fontsize=8)
    return fig


def domains_figure(results: RealPoolResults):
    """Per domain: bits per byte of each model (bars) and the all-model oracle (black tick)."""
    from matplotlib.figure import Figure

    wide = results.domains.pivot(index="domain", columns="model", values="bits_per_byte")[results.names]
    oracle = results.domain_summary.set_index("domain").loc[wide.index, "oracle_bpb"]
    fig = Figure(figsize=(max(6.4, 1.1 * len(wide)), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(results.names)
    x = np.arange(len(wide))
    for i, name in enumerate(results.names):
        ax.bar(x + (i - (len(results.names) - 1) / 2) * width, wide[name], width, label=name)
    ax.scatter(x, oracle, marker="_", s=400, color="black", zorder=3, label="oracle (all models)")
    flagged = results.domain_summary.set_index("domain").loc[wide.index, "pretraining_exposure"].str.startswith("likely")
    ax.set_xticks(x, [f"{d}{' †' if f else ''}" for d, f in zip(wide.index, flagged)], rotation=20)
    ax.set_ylabel("bits per byte")
    ax.set_title("per domain († = sources likely in pretraining data)")
    ax.legend(fontsize=7, ncols=2)
    return fig


def save_figures(results: RealPoolResults, figures_dir: str | Path) -> list[Path]:
    """Write the frontier and per-domain figures (png, pdf) into ``figures_dir``."""
    from mmlaw_utils.report.figures import save_figure

    return [*save_figure(frontier_figure(results), figures_dir, FIGURE_STEMS["real_pool_frontier"]),
            *save_figure(domains_figure(results), figures_dir, FIGURE_STEMS["real_pool_domains"])]


def text_labels(dataset: str | Path, text_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(domain, source) of each text id of a local text set; "all" / "" where the set has no such field."""
    from mmlaw_utils.texts import text_field

    if not Path(dataset).is_file():
        raise FileNotFoundError(f"text set {str(dataset)!r} does not exist")
    domains = text_field(dataset, text_ids, "domain") or ["all"] * len(text_ids)
    sources = text_field(dataset, text_ids, "source") or [""] * len(text_ids)
    return [d if d is not None else "all" for d in domains], [s if s is not None else "" for s in sources]


def model_table(lm_models: pd.DataFrame, extra: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The loss matrix's model rows with the columns the report shows (missing ones empty)."""
    models = lm_models.copy()
    from mmlaw_utils.scoring.realmodels import recorded_prefix

    for column in ("variant", "gguf_quantization", "head_tied", "short_name", "upstream_model"):
        if column not in models.columns:
            models[column] = None
    models["document_prefix"] = [recorded_prefix(row) for row in models.to_dict("records")]
    if "model_variant" in models.columns:
        models["variant"] = models["model_variant"].where(models["model_variant"].notna(), models["variant"])
    return models.reset_index(drop=True)
