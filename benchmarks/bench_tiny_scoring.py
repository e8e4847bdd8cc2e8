"""Scoring the miniature pool: wall time per model on the held-out texts, the chunked path vs the batched path.

    nice -n 5 .venv/bin/python benchmarks/bench_tiny_scoring.py --old --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --rescore-present --workers 2 --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --batch-sweep 2048 4096 8192 --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --kernel-floor --compile-match '[a-z0-9]+-d1[12][02]l7' --repeats 5 --write-readme
    .venv/bin/python benchmarks/bench_tiny_scoring.py --smoke        # seconds: 2 shapes, 40 texts, no README

``--match REGEX`` keeps the pool models whose name matches (``re.fullmatch``), e.g. the issue's original 56:
``'(gemma|gpt2|llama|neox|opt)(-same)?-d[0-9]+l[0-9]+|llama-seed[23]-d[0-9]+l[0-9]+'``.

``--batch-sweep`` times the one-pass path (``batched.score_windows``) at each padded batch size on trained
models (default: every family at sizes 0, 3, 4 and 5), best of ``--repeats`` runs in one process, and checks
that every size gives the same losses; it is the measurement behind ``batched.SMALL_MODEL_CPU_BATCH_TOKENS``.

``--kernel-floor`` asks how fast the one-pass path could be at all. For each trained model (default: the issue's 56)
it times, best of ``--repeats`` alternating runs on one padded batch of full windows: the base model's forward plus
the head (what each batch of ``batched.score_windows`` computes), the model's weight products alone (every
``Linear`` / ``Conv1D`` of the base model on inputs of that batch's size, and the head on its scored positions),
and torch's causal attention kernel alone at the model's head shape, once per layer. Products and attention are
work that no rewrite of the rest can remove (exact fp32, same windows), so their share of the forward is a floor
on what fusing, compiling or trimming the rest could reach. With ``--compile-match REGEX`` the models that match
are also timed through ``torch.compile`` (inductor), and their hidden states compared with the eager forward's.
The shares are applied to the last measured rescoring run (the ``tiny-rescore`` block of the README).

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
from typing import Any

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
FLOOR_START, FLOOR_END = "<!-- tiny-floor:start -->", "<!-- tiny-floor:end -->"
# the issue's 56 models: the main arm, the same-data arm and the two extra llama seeds
ISSUE_MATCH = r"(gemma|gpt2|llama|neox|opt)(-same)?-d[0-9]+l[0-9]+|llama-seed[23]-d[0-9]+l[0-9]+"
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


def committed_scores(name: str):
    """The committed score cache (frame) of pool model ``name``, or None when there is none."""
    found = sorted(COMMITTED.glob(f"{name}-*.parquet"))
    return cache.read_cache(found[0])[0] if found else None


def committed_difference(entry: dict, results) -> float | None:
    """Max relative |nll - committed nll| when ``results`` come from the trained model with a committed cache."""
    if not (REPO_ROOT / entry["id"] / "config.json").is_file():
        return None
    committed = committed_scores(Path(entry["id"]).name)
    if committed is None:
        return None
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


def _best_seconds(functions: dict[str, Any], repeats: int) -> dict[str, float]:
    """Best wall seconds of each callable over ``repeats`` rounds, the callables alternating within a round."""
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def weight_products(model) -> list[tuple[torch.nn.Module, int]]:
    """The base model's weight products: (module, input width) of every ``nn.Linear`` and GPT-2 ``Conv1D``."""
    from transformers.pytorch_utils import Conv1D

    found = []
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.Linear):
            found.append((module, int(module.in_features)))
        elif isinstance(module, Conv1D):
            found.append((module, int(module.weight.shape[0])))
    return found


def attention_shape(model) -> tuple[int, int, int]:
    """(layers, query heads, head size) of a model's self-attention."""
    config = model.config
    heads = int(config.num_attention_heads)
    head_size = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return int(config.num_hidden_layers), heads, head_size


def padded_tokens(n_tokens: np.ndarray, max_length: int, context_tokens: int, batch_tokens: int) -> int:
    """Padded tokens of the one-pass path's batches (rows x longest window, summed) for texts of ``n_tokens`` tokens."""
    from mmlaw_utils.scoring import kernel

    lengths = np.concatenate([kernel.rolling_windows(int(n), max_length, context_tokens)[:, 1] for n in n_tokens])
    batches = kernel.pack_batches(lengths, batch_tokens)
    return int(sum(len(b) * int(lengths[b].max()) for b in batches))


def kernel_floor_row(entry: dict, rows: int, width: int, repeats: int, compile_model: bool) -> dict:
    """One model's seconds per padded batch: forward + head, weight products alone, attention alone (and compiled)."""
    import torch.nn.functional as F

    from mmlaw_utils.scoring import kernel

    request = run.request_from_settings("minipool", str(REPO_ROOT / entry["id"]))
    model, tokenizer, _ = batched.load_small_model(request)
    settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, request.max_length,
                                                                           request.context_tokens))
    width = min(width, settings.max_length)
    head = kernel._output_head(model)
    vocab_size = int(head.linear.weight.shape[0])
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab_size, (rows, width), generator=generator)
    n_scored = rows * (width - settings.context_tokens + 1) if width == settings.max_length else rows * width
    targets = torch.randint(0, vocab_size, (n_scored,), generator=generator)
    products = weight_products(model)
    inputs = {id(m): torch.randn(rows * width, n_in, generator=generator) for m, n_in in products}
    head_input = torch.randn(n_scored, head.linear.weight.shape[1], generator=generator)
    layers, heads, head_size = attention_shape(model)
    q, k, v = (torch.randn(rows, heads, width, head_size, generator=generator) for _ in range(3))

    def forward():
        hidden = kernel._hidden_states(model, input_ids)
        batched._fused_logprobs(head, hidden.reshape(-1, hidden.shape[-1])[:n_scored], targets, vocab_size)

    def weights_alone():
        for module, _ in products:
            module(inputs[id(module)])
        F.linear(head_input, head.linear.weight)

    def attention_alone():
        for _ in range(layers):
            F.scaled_dot_product_attention(q, k, v, is_causal=True)

    functions = {"forward": forward, "weights": weights_alone, "attention": attention_alone}
    compiled_diff = None
    with torch.inference_mode():
        if compile_model:
            compiled = torch.compile(model.base_model, dynamic=False)
            out = compiled(input_ids=input_ids, use_cache=False)  # compiles; not timed
            eager = kernel._hidden_states(model, input_ids)
            # relative to the largest hidden value: elementwise ratios explode where a hidden value is near 0
            compiled_diff = float((out.last_hidden_state - eager).abs().max() / eager.abs().max())

            def forward_compiled():
                hidden = compiled(input_ids=input_ids, use_cache=False).last_hidden_state
                batched._fused_logprobs(head, hidden.reshape(-1, hidden.shape[-1])[:n_scored], targets, vocab_size)

            functions["compiled"] = forward_compiled
        seconds = _best_seconds(functions, repeats)
    name = Path(entry["id"]).name
    committed = committed_scores(name)
    padded = (padded_tokens(committed["n_tokens"].to_numpy(), settings.max_length, settings.context_tokens,
                            batched.windows_batch_tokens(model, request.batch_tokens))
              if committed is not None else None)
    return {"model": name, "d_model": int(entry["d_model"]), "layers": layers, "heads": heads, "head_size": head_size,
            "batch": (rows, width), "seconds": seconds, "compiled_diff": compiled_diff, "padded_tokens": padded}


def committed_rescore(match: str) -> dict | None:
    """Wall seconds and model count of the README's tiny-rescore run, when it rescored the models ``match`` selects."""
    text = README.read_text(encoding="utf-8")
    if RESCORE_START not in text:
        return None
    block = text.split(RESCORE_START, 1)[1].split(RESCORE_END, 1)[0]
    wall = re.search(r"\| (\d+) s \(", block)
    count = re.search(r"\| (\d+) of the pool's", block)
    run_match = re.search(r"name matching `(.+?)`\)", block)
    if not (wall and count and run_match) or run_match.group(1).replace(r"\|", "|") != match:
        return None
    return {"wall_s": float(wall.group(1)), "n_models": int(count.group(1))}


def kernel_floor(args) -> dict:
    """Per model: seconds per padded batch of the forward, its weight products and its attention; pooled shares."""
    match = args.match or ISSUE_MATCH
    entries = trained_entries(load_pool_config(POOL), match, args.limit)
    rows_out = []
    for k, entry in enumerate(entries, start=1):
        compile_model = bool(args.compile_match and re.fullmatch(args.compile_match, Path(entry["id"]).name))
        row = kernel_floor_row(entry, args.floor_rows, args.floor_width, args.repeats, compile_model)
        rows_out.append(row)
        t = row["seconds"]
        print(f"[{k}/{len(entries)}] {row['model']}: forward {t['forward'] * 1e3:.1f} ms, weights "
              f"{t['weights'] * 1e3:.1f} ms, attention {t['attention'] * 1e3:.1f} ms", flush=True)
    return {"rows": rows_out, "repeats": args.repeats, "match": match, "reference": committed_rescore(match)}


def floor_summary(result: dict) -> dict:
    """Pooled over models, each weighted by its forwards on the text set: forward and floor seconds, floor share."""
    rows = [r for r in result["rows"] if r["padded_tokens"] is not None]

    def over_text_set(r: dict, key: str) -> float:  # seconds per padded token x the text set's padded tokens
        return r["seconds"][key] / (r["batch"][0] * r["batch"][1]) * r["padded_tokens"]

    forward = sum(over_text_set(r, "forward") for r in rows)
    floor = sum(over_text_set(r, "weights") + over_text_set(r, "attention") for r in rows)
    share = floor / forward if forward else float("nan")
    reference = result["reference"]
    if reference is not None and reference["n_models"] != len(rows):
        reference = None  # another set of models than the rescoring run timed
    return {"n_models": len(rows), "forward_s": forward, "floor_s": floor, "share": share,
            "reference_wall_s": reference and reference["wall_s"],
            "projected_floor_s": share * reference["wall_s"] if reference else None}


def floor_markdown(result: dict, command: str, load_start: float, load_end: float) -> str:
    """The README section of ``--kernel-floor``: per-model seconds per batch, shares, and the pooled floor."""
    summary = floor_summary(result)
    rows_, width = result["rows"][0]["batch"]
    lines = [FLOOR_START, "## How fast could exact fp32 scoring of the tiny models be? (kernel floor)", "",
             f"Command: `{command}` ({platform.machine()}, torch threads {torch.get_num_threads()}, load average "
             f"{load_start:.1f} at start and {load_end:.1f} at the end, torch {torch.__version__}). One padded batch of "
             f"{rows_} full windows of {width} tokens per model (the one-pass path's CPU batch), best of "
             f"{result['repeats']} alternating runs. *Forward*: base model and fp32 head, as each batch of "
             "`batched.score_windows`. *Weights*: every weight product alone (the base model's `Linear` / `Conv1D` "
             "modules and the head, on inputs of the batch's size). *Attention*: torch's causal attention kernel "
             "alone at the model's head shape, once per layer. Weights and attention are work an exact rewrite "
             "cannot drop, so their sum over the forward is a floor on the time left after fusing or removing "
             "everything else.", "",
             "| model | d_model | layers x heads x head size | forward (ms) | weights (ms) | attention (ms) | "
             "floor share | compiled (ms) | compiled / eager | compiled max diff / max hidden |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        t = r["seconds"]
        compiled = t.get("compiled")
        lines.append(f"| {r['model']} | {r['d_model']} | {r['layers']} x {r['heads']} x {r['head_size']} | "
                     f"{t['forward'] * 1e3:.1f} | {t['weights'] * 1e3:.1f} | {t['attention'] * 1e3:.1f} | "
                     f"{(t['weights'] + t['attention']) / t['forward']:.2f} | {_fmt(compiled and compiled * 1e3, '.1f')} | "
                     f"{_fmt(compiled and compiled / t['forward'], '.2f')} | {_fmt(r['compiled_diff'], '.1e')} |")
    lines += ["", f"Pooled over the {summary['n_models']} models, each weighted by the padded tokens of its own "
              f"windows on the 2,398 texts (from its committed cache's token counts): the forwards take "
              f"{summary['forward_s']:.0f} s in one thread at this run's speed, of which weight products and attention "
              f"are {summary['floor_s']:.0f} s, a floor share of **{summary['share']:.2f}**."]
    if summary["projected_floor_s"] is not None:
        lines.append(f"Applied to the measured rescoring run of the same models above "
                     f"({summary['reference_wall_s']:.0f} s), that share leaves at least **{summary['projected_floor_s']:.0f} s "
                     f"({summary['projected_floor_s'] / 60:.1f} min)** for the products and attention alone, "
                     "whatever else is fused or removed.")
    lines.append(FLOOR_END)
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


def write_section(section: str, start: str, end: str) -> None:
    """Replace the README's block between ``start`` and ``end`` (the markers stay) with ``section``'s body."""
    body = section.strip().removeprefix(start).removesuffix(end).strip()
    write_marked_region(README, body, start, end, append_if_missing=True)


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
    parser.add_argument("--kernel-floor", action="store_true",
                        help="time each trained model's forward, its weight products and its attention on one batch")
    parser.add_argument("--compile-match", default=None,
                        help="--kernel-floor: also time torch.compile on the models whose name matches")
    parser.add_argument("--floor-rows", type=int, default=16, help="--kernel-floor: windows per batch (default: %(default)s)")
    parser.add_argument("--floor-width", type=int, default=256, help="--kernel-floor: tokens per window (default: %(default)s)")
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
            write_section(section, SWEEP_START, SWEEP_END)
        return 0
    if args.kernel_floor:
        if args.smoke:
            args.limit, args.repeats, args.floor_rows, args.floor_width, args.write_readme = 2, 1, 2, 64, False
            args.match, args.compile_match = r"(gemma|neox)-d4l2", None
        torch.set_num_threads(args.threads)
        load_start = load_average()
        section = floor_markdown(kernel_floor(args), command.strip(), load_start, load_average())
        print(section)
        if args.write_readme:
            write_section(section, FLOOR_START, FLOOR_END)
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
            write_section(section, RESCORE_START, RESCORE_END)
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
        write_section(section, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
