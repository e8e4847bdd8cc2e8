"""Cost of keeping byte-aligned token losses (issue 21): scoring with spans vs plain scoring.

    nice -n 10 .venv/bin/python benchmarks/bench_spans.py --write-readme
    .venv/bin/python benchmarks/bench_spans.py --smoke          # a few texts, no README

Seeded random-init Llama-style models (a miniature-pool-like one and a bigger one, same shapes as
benchmarks/bench_scoring.py) score the first ``--n-texts`` texts of data/texts/mixed_heldout.jsonl:

* plain: ``tokenize_texts`` + ``score_token_sequences`` (what a score cache needs);
* spans: ``tokenize_with_char_spans`` + ``score_token_sequences(token_nll=...)`` + the token rows
  of a token-loss file (``segment_cache.token_frame``: char -> byte offsets, attribution rule).

The two runs alternate ``--repeats`` times in one process on the same model and threads; the
ratio is best spans over best plain (the target is <= 1.10). Small models are the hard case:
their forwards are cheap, so the bookkeeping weighs most.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from mmlaw_utils.io import write_marked_region  # noqa: E402
from mmlaw_utils.scoring import kernel, segment_cache  # noqa: E402
from mmlaw_utils.texts import load_texts  # noqa: E402

README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- spans:start -->", "<!-- spans:end -->"
TEXTS = REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"
# (name, hidden size, layers, context): minipool-like and a bigger model
CONFIGS = [("minipool-like", 128, 4, 128), ("d=256", 256, 6, 256)]


def build(hidden: int, layers: int, context: int, tokenizer):
    """A seeded random-init Llama-style model for ``tokenizer``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=max(1, hidden // 32), num_key_value_heads=max(1, hidden // 64),
                         max_position_embeddings=context, vocab_size=len(tokenizer),
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def plain(model, tokenizer, settings, texts, ids) -> float:
    """Seconds of tokenize + score (per-text sums only)."""
    start = time.perf_counter()
    sequences = kernel.tokenize_texts(tokenizer, texts, ids)
    kernel.score_token_sequences(model, sequences, settings, text_ids=ids)
    return time.perf_counter() - start


def with_spans(model, tokenizer, settings, texts, ids) -> float:
    """Seconds of tokenize with offsets + score keeping token losses + token rows with byte ends."""
    start = time.perf_counter()
    sequences, spans = kernel.tokenize_with_char_spans(tokenizer, texts, ids)
    token_nll: list = []
    kernel.score_token_sequences(model, sequences, settings, text_ids=ids, token_nll=token_nll)
    segment_cache.token_frame(ids, texts, spans, token_nll)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="3 texts, 1 repeat, no README")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_texts, repeats = (3, 1) if args.smoke else (args.n_texts, args.repeats)
    import tiny_models

    frame = load_texts(TEXTS, n_texts)
    texts, ids = frame["text"].tolist(), frame["text_id"].astype(str).tolist()
    tokenizer = tiny_models.build_tokenizer("bos", vocab_size=4096)
    rows = []
    for name, hidden, layers, context in CONFIGS:
        model = build(hidden, layers, context, tokenizer)
        settings = kernel.resolve_settings(model, tokenizer, context_tokens=context // 2)
        n_tokens = sum(len(s) for s in kernel.tokenize_texts(tokenizer, texts, ids))
        plain(model, tokenizer, settings, texts[:2], ids[:2])  # warm-up
        times = {"plain": [], "spans": []}
        for _ in range(repeats):
            times["plain"].append(plain(model, tokenizer, settings, texts, ids))
            times["spans"].append(with_spans(model, tokenizer, settings, texts, ids))
        best = {k: min(v) for k, v in times.items()}
        rows.append((name, n_tokens, best["plain"], best["spans"], best["spans"] / best["plain"]))
        print(f"{name}: {n_tokens:,} tokens, plain {best['plain']:.2f} s, spans {best['spans']:.2f} s, "
              f"ratio {best['spans'] / best['plain']:.3f}", flush=True)
    if args.write_readme and not args.smoke:
        load = os.getloadavg()[0]
        lines = [
            "## Token spans (issue 21)", "",
            f"Command: `nice -n 10 .venv/bin/python benchmarks/bench_spans.py --n-texts {n_texts} --repeats {repeats} "
            f"--write-readme` ({platform.machine()}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}, "
            f"load average {load:.1f} at the end, torch {torch.__version__}). Random-init Llama-style models, first "
            f"{n_texts} texts of data/texts/mixed_heldout.jsonl, fp32 on CPU; best of {repeats} alternating runs.", "",
            "| model | tokens | plain (s) | with spans (s) | ratio (target <= 1.10) |", "|---|---:|---:|---:|---:|",
            *[f"| {n} | {t:,} | {p:.2f} | {s:.2f} | {r:.3f} |" for n, t, p, s, r in rows],
        ]
        if any(r < 1 for *_, r in rows):
            lines += ["", "A ratio below 1 means the extra work (offsets, byte conversion, per-token copies) is smaller "
                          "than the run-to-run noise of this shared machine at that load."]
        write_marked_region(README, "\n".join(lines), START, END, append_if_missing=True)


if __name__ == "__main__":
    main()
