"""Scoring the miniature pool: wall time per model on the held-out texts, the chunked path vs the batched path.

    nice -n 5 .venv/bin/python benchmarks/bench_tiny_scoring.py --old --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --rescore-present --workers 2 --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --batch-sweep 2048 4096 8192 --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --smoke        # seconds: 2 shapes, 40 texts, no README

``--match REGEX`` keeps the pool models whose name matches (``re.fullmatch``), e.g. the issue's original 56:
``'(gemma|gpt2|llama|neox|opt)(-same)?-d[0-9]+l[0-9]+|llama-seed[23]-d[0-9]+l[0-9]+'``.

``--batch-sweep`` times the one-pass path (``batched.score_windows``) at each padded batch size on trained
models (default: every family at sizes 0, 3, 4 and 5), best of ``--repeats`` runs in one process, and checks
that every size gives the same losses; it is the measurement behind ``batched.SMALL_MODEL_CPU_BATCH_TOKENS``.

``--rescore-present`` is the pool's real rescoring: every pool model whose weights are on disk, scored by
``batched.score_models`` (what ``minipool score`` runs) with ``--workers`` processes into an empty cache
folder (so each tokenizer's ids are computed inside the timing), every result compared with its committed
cache. Its wall time is one measured run, not an extrapolation.

Each distinct model shape of the pool (family architecture and tokenizer, d_model, layers, heads) is
scored once per path in one process on the same threads: a trained model from models/minipool/ when its
weights are there (then also compared with its committed score cache), else a seeded random-init model of
that shape with the family's committed tokenizer. A random-init model has the same tokens, windows and
FLOPs as the trained one, so its time stands for every pool model of that shape; the pool's total is the
sum over its models of their shape's time (weights of most pool models are not on disk, so the total is an
extrapolation from shapes, stated as such). Old path: ``run.score_model`` (the chunked kernel, tokenizing
per model). New path: ``batched.score_one`` (token ids cached per tokenizer; a tokenizer's first model pays
the tokenization, reported apart). Imports are paid before timing starts.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from mmlaw_utils.io import write_marked_region  # noqa: E402
from mmlaw_utils.minipool.train import load_pool_config, model_config, build_model, base_family  # noqa: E402
from mmlaw_utils.scoring import batched, cache, run  # noqa: E402
from mmlaw_utils.texts import dataset_fingerprint, load_texts  # noqa: E402

README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- tiny-scoring:start -->", "<!-- tiny-scoring:end -->"
RESCORE_START, RESCORE_END = "<!-- tiny-rescore:start -->", "<!-- tiny-rescore:end -->"
SWEEP_START, SWEEP_END = "<!-- tiny-batch:start -->", "<!-- tiny-batch:end -->"
SWEEP_DEFAULT_MATCH = r"(gemma|gpt2|llama|neox|opt)-d[0-9]+l[2567]"  # the main arm's sizes 0, 3, 4 and 5
POOL = REPO_ROOT / "configs" / "pools" / "minipool.yaml"
TOKENIZERS = REPO_ROOT / "data" / "minipool" / "tokenizers"
COMMITTED = REPO_ROOT / "data" / "minipool" / "scores"


def shape_key(entry: dict) -> tuple:
    """What a model's scoring time depends on: its family (architecture, tokenizer) and dimensions."""
    return (base_family(entry), int(entry["d_model"]), int(entry["n_layers"]), int(entry["n_heads"]))


def shape_model(pool: dict, entry: dict, folder: Path) -> Path:
    """The trained model of ``entry`` when its weights exist, else a random-init one of its shape saved in ``folder``."""
    trained = REPO_ROOT / entry["id"]
    if (trained / "config.json").is_file():
        return trained
    from transformers import PreTrainedTokenizerFast

    family = base_family(entry)
    spec = pool["families"][family]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(TOKENIZERS / family)
    config = model_config(spec["architecture"], len(tokenizer), entry["d_model"], entry["n_layers"], entry["n_heads"],
                          int(spec["training"]["context"]), tokenizer.bos_token_id, tokenizer.eos_token_id,
                          spec.get("tie_embeddings"))
    out = folder / Path(entry["id"]).name
    build_model(config, seed=0).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def load_average() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


def committed_difference(entry: dict, results) -> float | None:
    """Max relative |nll - committed nll| when ``results`` come from the trained model with a committed cache."""
    if not (REPO_ROOT / entry["id"] / "config.json").is_file():
        return None
    found = sorted(COMMITTED.glob(f"{Path(entry['id']).name}-*.parquet"))
    if not found:
        return None
    committed, _ = cache.read_cache(found[0])
    by_id = committed.set_index("text_id")["nll"]
    if not results["text_id"].isin(by_id.index).all():
        return None  # another text set
    reference = by_id.loc[results["text_id"]].to_numpy()  # --n-texts: the committed cache's first texts
    return float(np.max(np.abs(results["nll"].to_numpy() - reference) / np.abs(reference)))


def time_shapes(args) -> dict:
    """Per distinct shape: tokens, old and new wall seconds, agreement; the pool's models per shape."""
    pool = load_pool_config(POOL)
    entries = pool["models"]
    shapes: dict[tuple, list[dict]] = {}
    for entry in entries:
        shapes.setdefault(shape_key(entry), []).append(entry)
    chosen = [k for k in shapes if (not args.families or k[0] in args.families)
              and (args.sizes is None or int(shapes[k][0]["size_index"]) in args.sizes)]
    texts = load_texts(REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl", args.n_texts)
    work = Path(tempfile.mkdtemp(prefix="bench_tiny_"))
    rows, tokenized = [], set()
    try:
        models_dir = work / "models"
        warm = run.ScoreRequest(model=str(shape_model(pool, shapes[chosen[0]][0], models_dir)), dataset=str(
            REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"), cache_dir=work / "warm" / "scores", n_texts=4,
            max_length=64)
        run.score_model(warm, progress=False, texts=texts.head(4))  # imports and first-call costs, outside the timings
        for key in chosen:
            entry = shapes[key][0]
            folder = shape_model(pool, entry, models_dir)
            request = run.request_from_settings("minipool", str(folder), cache_dir=work / "new" / "scores",
                                                n_texts=args.n_texts)
            first_of_tokenizer = key[0] not in tokenized
            start = time.perf_counter()
            new = batched.score_one(request, force=True, progress=False, texts=texts)
            new_s = time.perf_counter() - start
            tokenized.add(key[0])
            arms: dict[str, int] = {}
            for member in shapes[key]:
                arms[member.get("arm", "main")] = arms.get(member.get("arm", "main"), 0) + 1
            row = {"shape": key, "model": Path(entry["id"]).name, "n_models": len(shapes[key]), "arms": arms,
                   "trained": folder == REPO_ROOT / entry["id"], "params": int(new.provenance["params_total"]),
                   "tokens": int(new.results["n_tokens"].sum()), "new_s": new_s, "tokenized": first_of_tokenizer,
                   "committed_rel": committed_difference(entry, new.results), "old_s": None, "old_rel": None}
            if first_of_tokenizer:  # the same model again with the ids cached: what every later model pays
                start = time.perf_counter()
                batched.score_one(request, force=True, progress=False, texts=texts)
                row["new_cached_s"] = time.perf_counter() - start
            if args.old or (args.old_sizes and int(entry["size_index"]) in args.old_sizes):
                old_request = run.request_from_settings("minipool", str(folder), cache_dir=work / "old" / "scores",
                                                        n_texts=args.n_texts)
                start = time.perf_counter()
                old = run.score_model(old_request, force=True, progress=False, texts=texts)
                row["old_s"] = time.perf_counter() - start
                row["old_rel"] = float(np.max(np.abs(new.results["nll"].to_numpy() - old.results["nll"].to_numpy())
                                              / np.abs(old.results["nll"].to_numpy())))
            rows.append(row)
            print(f"{row['model']}: new {new_s:.1f}s" + (f", old {row['old_s']:.1f}s" if args.old else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"rows": rows, "n_pool_models": len(entries), "n_shapes": len(shapes), "n_texts": len(texts),
            "fingerprint": dataset_fingerprint(texts["text_id"], texts["text"])}


def pool_estimate(result: dict) -> dict:
    """Extrapolated single-process wall time (s) of the pool's models whose shape was timed, on each path."""
    rows = result["rows"]
    seconds = sum(r["new_s"] + (r["n_models"] - 1) * r.get("new_cached_s", r["new_s"]) for r in rows)
    old = sum(r["n_models"] * r["old_s"] for r in rows) if all(r["old_s"] is not None for r in rows) else None
    arms: dict[str, int] = {}
    for r in rows:
        for arm, count in r["arms"].items():
            arms[arm] = arms.get(arm, 0) + count
    return {"new_s": seconds, "old_s": old, "n_models": sum(r["n_models"] for r in rows), "arms": arms}


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """A table cell: ``value`` formatted, or empty when not measured."""
    return "" if value is None else f"{value:{spec}}{suffix}"


def markdown(result: dict, command: str, load_start: float, load_end: float) -> str:
    """The README section: environment, one row per shape, the pool extrapolation."""
    lines = [START, "## Scoring the miniature pool (tiny models)", "",
             f"Command: `{command}` ({platform.machine()}, {len(os.sched_getaffinity(0))} cores visible, torch threads "
             f"{torch.get_num_threads()}, load average {load_start:.1f} at start and {load_end:.1f} at the end, torch "
             f"{torch.__version__}). {result['n_texts']:,} held-out texts (mixed_heldout.jsonl), the profile's windows "
             "(256 tokens, 64 of context), fp32 on CPU, one process. Wall seconds per model; a loaded machine "
             "inflates every figure, old and new alike (both paths ran back to back on the same model).", "",
             "| model (shape) | pool models of this shape | weights | params | tokens | old path (s) | new path (s) "
             "| new, ids cached (s) | speed-up | max rel. diff new vs old | vs committed cache |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        cached = r.get("new_cached_s")
        best_new = cached if cached is not None else r["new_s"]
        speedup = None if r["old_s"] is None else r["old_s"] / best_new
        cells = [r["model"], str(r["n_models"]), "trained" if r["trained"] else "random-init", f"{r['params']:,}",
                 f"{r['tokens']:,}", _fmt(r["old_s"], ".1f"), _fmt(r["new_s"], ".1f"), _fmt(cached, ".1f"),
                 _fmt(speedup, ".1f", "x"), _fmt(r["old_rel"], ".1e"), _fmt(r["committed_rel"], ".1e")]
        lines.append("| " + " | ".join(cells) + " |")
    estimate = pool_estimate(result)
    old = "" if estimate["old_s"] is None else f" (old path: {estimate['old_s'] / 60:.1f} min)"
    arms = ", ".join(f"{arm} {count}" for arm, count in sorted(estimate["arms"].items()))
    lines += ["", f"**Extrapolated from the {len(result['rows'])} timed shapes (of the pool's {result['n_shapes']}) to "
              f"the {estimate['n_models']} pool models of those shapes** ({arms}; the pool has {result['n_pool_models']}): "
              f"{estimate['new_s'] / 60:.1f} min of wall time in one process on the new path{old}, each tokenizer's "
              "ids computed once, at the load average above. Most weights are not on disk, so this is time per "
              "shape x models of that shape, not a run of the pool."]
    lines.append(END)
    return "\n".join(lines) + "\n"


def trained_entries(pool: dict, pattern: str | None, limit: int | None) -> list[dict]:
    """The pool's models with weights on disk whose name matches ``pattern`` (``re.fullmatch``; None: all), the
    first ``limit`` of them."""
    entries = [e for e in pool["models"] if (REPO_ROOT / e["id"] / "config.json").is_file()
               and (pattern is None or re.fullmatch(pattern, Path(e["id"]).name))]
    if not entries:
        raise SystemExit(f"bench_tiny_scoring: no pool model with weights on disk matches {pattern!r}")
    return entries[:limit] if limit else entries


def rescore_present(args) -> dict:
    """Wall seconds of ``batched.score_models`` over every pool model with weights on disk, and each model's agreement."""
    pool = load_pool_config(POOL)
    entries = trained_entries(pool, args.match, args.limit)
    work = Path(tempfile.mkdtemp(prefix="bench_tiny_rescore_"))
    try:
        requests = [run.request_from_settings("minipool", str(REPO_ROOT / e["id"]), cache_dir=work / "scores",
                                              n_texts=args.n_texts) for e in entries]
        start = time.perf_counter()
        outcomes = batched.score_models(requests, force=True, progress=False, workers=args.workers)
        wall_s = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    differences = {Path(e["id"]).name: committed_difference(e, o.results) for e, o in zip(entries, outcomes)}
    arms: dict[str, int] = {}
    for e in entries:
        arms[e.get("arm", "main")] = arms.get(e.get("arm", "main"), 0) + 1
    return {"wall_s": wall_s, "n_models": len(entries), "n_pool_models": len(pool["models"]), "arms": arms,
            "tokens": int(sum(o.results["n_tokens"].sum() for o in outcomes)), "n_texts": len(outcomes[0].results),
            "differences": differences, "workers": args.workers, "match": args.match}


def batch_sweep(args) -> dict:
    """Per trained model: best-of-``repeats`` wall seconds of ``batched.score_windows`` at each batch size."""
    from mmlaw_utils.scoring import kernel
    from mmlaw_utils.texts import load_texts

    entries = trained_entries(load_pool_config(POOL), args.match or SWEEP_DEFAULT_MATCH, args.limit)
    rows = []
    for entry in entries:
        request = run.request_from_settings("minipool", str(REPO_ROOT / entry["id"]), n_texts=args.n_texts)
        model, tokenizer, _ = batched.load_small_model(request)
        settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, request.max_length,
                                                                               request.context_tokens))
        frame = load_texts(request.dataset, request.n_texts)
        texts = frame["text"].tolist()
        sequences = kernel.tokenize_texts(tokenizer, texts, frame["text_id"].astype(str).tolist())
        seconds: dict[int, float] = {}
        reference = None
        for size in args.batch_sweep:
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                nll = batched.score_windows(model, sequences, settings, batch_tokens=size)
                best = min(best, time.perf_counter() - start)
            seconds[size] = best
            reference = nll if reference is None else reference
            worst = float(np.max(np.abs(nll - reference) / np.abs(reference)))
            if worst > 1e-6:
                raise SystemExit(f"bench_tiny_scoring: {entry['id']}: batch {size} differs from batch "
                                 f"{args.batch_sweep[0]} by {worst:.1e} (relative)")
        rows.append({"model": Path(entry["id"]).name, "d_model": int(entry["d_model"]),
                     "tokens": int(sum(len(q) for q in sequences)), "seconds": seconds})
    return {"rows": rows, "sizes": list(args.batch_sweep), "n_texts": len(texts), "repeats": args.repeats}


def sweep_markdown(result: dict, command: str, load_start: float, load_end: float) -> str:
    """The README section of a batch-size sweep: seconds per model and size, and each size relative to the first."""
    sizes = result["sizes"]
    lines = [SWEEP_START, "## Padded tokens per forward on the one-pass path (CPU, one thread)", "",
             f"Command: `{command}` ({platform.machine()}, torch threads {torch.get_num_threads()}, load average "
             f"{load_start:.1f} at start and {load_end:.1f} at the end, torch {torch.__version__}). First "
             f"{result['n_texts']:,} held-out texts, best of {result['repeats']} runs per size in one process; every "
             f"size gave the first size's losses within 1e-6. The one-pass path's CPU batch "
             f"(`batched.SMALL_MODEL_CPU_BATCH_TOKENS`) is {batched.SMALL_MODEL_CPU_BATCH_TOKENS:,} tokens.", "",
             "| model | d_model | tokens | " + " | ".join(f"{s:,} (s)" for s in sizes) + " | "
             + " | ".join(f"{s:,} / {sizes[0]:,}" for s in sizes[1:]) + " |",
             "|---|---:|---:|" + "---:|" * (2 * len(sizes) - 1)]
    for r in result["rows"]:
        t = r["seconds"]
        lines.append(f"| {r['model']} | {r['d_model']} | {r['tokens']:,} | "
                     + " | ".join(f"{t[s]:.2f}" for s in sizes) + " | "
                     + " | ".join(f"{t[s] / t[sizes[0]]:.2f}" for s in sizes[1:]) + " |")
    totals = {s: sum(r["seconds"][s] for r in result["rows"]) for s in sizes}
    lines.append(f"| **all** | | | " + " | ".join(f"{totals[s]:.2f}" for s in sizes) + " | "
                 + " | ".join(f"{totals[s] / totals[sizes[0]]:.2f}" for s in sizes[1:]) + " |")
    lines.append(SWEEP_END)
    return "\n".join(lines) + "\n"


def rescore_markdown(result: dict, command: str, load_start: float, load_end: float) -> str:
    """The README section of a real rescoring run: environment, wall time, agreement with the committed caches."""
    compared = [d for d in result["differences"].values() if d is not None]
    arms = ", ".join(f"{arm} {count}" for arm, count in sorted(result["arms"].items()))
    worst = max(compared) if compared else None
    # a pipe inside a table cell ends the cell, even inside a code span, unless escaped
    matching = ", name matching `" + result["match"].replace("|", r"\|") + "`" if result["match"] else ""
    lines = [RESCORE_START, "## Rescoring the miniature pool's trained models (one real run)", "",
             f"Command: `{command}` ({platform.machine()}, {len(os.sched_getaffinity(0))} cores visible, "
             f"{result['workers']} worker process(es) with one torch thread each, load average {load_start:.1f} at "
             f"start and {load_end:.1f} at the end, torch {torch.__version__}).", "",
             "| models rescored | arms | texts | tokens scored | wall time | models per minute | compared with committed "
             "caches | max rel. diff |", "|---:|---|---:|---:|---:|---:|---:|---:|",
             f"| {result['n_models']} of the pool's {result['n_pool_models']} (those with weights on disk"
             f"{matching}) | {arms} | "
             f"{result['n_texts']:,} | {result['tokens']:,} | {result['wall_s']:.0f} s ({result['wall_s'] / 60:.1f} min) | "
             f"{60 * result['n_models'] / result['wall_s']:.1f} | {len(compared)} | {_fmt(worst, '.1e')} |",
             RESCORE_END]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds: two smallest shapes, 40 texts, old and new, no README")
    parser.add_argument("--n-texts", type=int, default=None, help="first N held-out texts (default: all 2,398)")
    parser.add_argument("--families", nargs="*", help="only these families (default: all)")
    parser.add_argument("--sizes", type=int, nargs="*", help="only these size indices (default: all)")
    parser.add_argument("--old", action="store_true", help="also time the chunked path (slow) on every shape")
    parser.add_argument("--old-sizes", type=int, nargs="*", help="time the chunked path on these size indices only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s, the pool's)")
    parser.add_argument("--rescore-present", action="store_true",
                        help="rescore every pool model with weights on disk (batched.score_models), one timed run")
    parser.add_argument("--workers", type=int, default=1, help="--rescore-present: worker processes (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="--rescore-present, --batch-sweep: only the first N models")
    parser.add_argument("--match", default=None, help="--rescore-present, --batch-sweep: only pool models whose name "
                                                      "matches this regular expression (re.fullmatch)")
    parser.add_argument("--batch-sweep", type=int, nargs="+", default=None,
                        help="time the one-pass path at these padded batch sizes (tokens) on trained models")
    parser.add_argument("--repeats", type=int, default=3, help="--batch-sweep: runs per size (default: %(default)s)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_tiny_scoring.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.batch_sweep:
        if args.smoke:
            args.limit, args.n_texts, args.repeats, args.write_readme = 2, 20, 1, False
        args.n_texts = 100 if args.n_texts is None else args.n_texts
        torch.set_num_threads(args.threads)
        load_start = load_average()
        section = sweep_markdown(batch_sweep(args), command.strip(), load_start, load_average())
        print(section)
        if args.write_readme:
            body = section.strip().removeprefix(SWEEP_START).removesuffix(SWEEP_END).strip()
            write_marked_region(README, body, SWEEP_START, SWEEP_END, append_if_missing=True)
        return 0
    if args.rescore_present:
        if args.smoke:
            args.limit, args.n_texts, args.workers, args.write_readme = 2, 40, 2, False
        torch.set_num_threads(args.threads)
        load_start = load_average()
        result = rescore_present(args)
        section = rescore_markdown(result, command.strip(), load_start, load_average())
        print(section)
        bad = {m: d for m, d in result["differences"].items() if d is not None and d > 1e-6}
        if bad:
            print(f"bench_tiny_scoring: differences above 1e-6 from the committed caches: {bad}", file=sys.stderr)
            return 1
        if args.write_readme:
            body = section.strip().removeprefix(RESCORE_START).removesuffix(RESCORE_END).strip()
            write_marked_region(README, body, RESCORE_START, RESCORE_END, append_if_missing=True)
        return 0
    if args.smoke:
        args.n_texts, args.families, args.sizes, args.old, args.write_readme = 40, ["gemma", "neox"], [0], True, False
    torch.set_num_threads(args.threads)
    load_start = load_average()
    result = time_shapes(args)
    section = markdown(result, command.strip(), load_start, load_average())
    print(section)
    for r in result["rows"]:
        for key in ("old_rel", "committed_rel"):
            if r[key] is not None and r[key] > 1e-6:
                print(f"bench_tiny_scoring: {r['model']}: {key} {r[key]:.1e} exceeds 1e-6", file=sys.stderr)
                return 1
    if args.write_readme:
        body = section.strip().removeprefix(START).removesuffix(END).strip()  # the markers stay in the README
        write_marked_region(README, body, START, END, append_if_missing=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
