"""GPU check of the scoring kernel: exactness on the device against CPU, bf16 deviation, bf16 speed and MFU.

    PYTHONPATH=. python3 benchmarks/gpu_check.py                   # on a lent device: one call, well under 8 min
    python benchmarks/gpu_check.py --device cpu --smoke             # CI: tiny shapes, seconds, same code

Runs with the device machine's own python3 (torch, transformers, tokenizers, pandas, pyarrow; no network, no
pip): it reads text with the standard library and imports only the scoring kernel, the batched path and the
pool's model recipe. Results go to ``--out`` (default ``$OUT``, else runs/gpu_check): results.json and
summary.md; the summary table is printed last (it goes into benchmarks/README.md).

1. **Exactness.** The miniature pool's main arm (``--sizes`` of every family) in fp32 on the device, through
   the kernel (``kernel.score_token_sequences``) and the batched path (``batched.score_windows``). A model whose
   trained weights are in models/minipool/ (carried to the device) is compared with its committed CPU score cache;
   otherwise a random-init model of that shape (fixed seed, the family's committed tokenizer) is scored on the
   device machine's CPU in the same call and that is the reference. Pass: every per-text summed NLL within
   1e-5 relative. The same models in bf16 on the device give the bf16 deviation (reported, not a pass criterion).
2. **Speed.** A random-init model of Qwen2.5-1.5B's shape (vocabulary 151,936, tied head) in bf16 scores the
   held-out texts (data/texts/mixed_heldout.jsonl, token ids from the committed GPT-2-style pool tokenizer;
   ids only need to be valid) in windows of 2,048 tokens. Tokens/s and MFU = 2·P·tokens/s over the device's
   bf16 ``torch.mm`` peak measured in the same call (median of timed 8192² products); goal MFU >= 0.5. The
   same windows through a plain HF forward (full bf16 logits, fp32 log-softmax) give the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmlaw_utils.minipool.train import base_family, build_model, load_pool_config, model_config  # noqa: E402
from mmlaw_utils.scoring import batched, kernel  # noqa: E402

POOL = REPO / "configs" / "pools" / "minipool.yaml"
TEXTS = REPO / "data" / "texts" / "mixed_heldout.jsonl"
TOKENIZERS = REPO / "data" / "minipool" / "tokenizers"
COMMITTED = REPO / "data" / "minipool" / "scores"
EXACT_RTOL = 1e-5
MFU_GOAL = 0.5
# Qwen2.5-1.5B (config.json of the released model): 1.54 B parameters with its tied 151,936-entry head
QWEN25_15B = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
              "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True, "rope_theta": 1e6,
              "max_position_embeddings": 32768, "rms_norm_eps": 1e-6}
SMOKE_SHAPE = {**QWEN25_15B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2}


# ----------------------------------------------------------------------------- inputs
def read_texts(n_texts: int | None) -> tuple[list[str], list[str]]:
    """(text ids, texts) of the held-out set, first ``n_texts`` (stdlib json: no datasets needed)."""
    ids, texts = [], []
    with open(TEXTS, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            ids.append(str(row["text_id"]))
            texts.append(row["text"])
            if n_texts is not None and len(texts) == n_texts:
                break
    return ids, texts


def family_tokenizer(family: str):
    """The pool family's committed tokenizer."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(TOKENIZERS / family)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (host clocks then measure it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- exactness
def committed_nll(name: str, text_ids: list[str]) -> np.ndarray | None:
    """Committed CPU score cache of pool model ``name`` on these texts (None when absent)."""
    import pandas as pd

    found = sorted(COMMITTED.glob(f"{name}-*.parquet"))
    if not found:
        return None
    frame = pd.read_parquet(found[0], columns=["text_id", "nll"]).set_index("text_id")
    if not set(text_ids) <= set(frame.index):
        return None
    return frame.loc[text_ids, "nll"].to_numpy(dtype=np.float64)


def pool_model(pool: dict, entry: dict):
    """(model in fp32 on CPU, tokenizer, 'trained' | 'random-init') of one pool entry."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = REPO / entry["id"]
    if (folder / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        return model, AutoTokenizer.from_pretrained(folder), "trained"
    family = base_family(entry)
    spec = pool["families"][family]
    tokenizer = family_tokenizer(family)
    config = model_config(spec["architecture"], len(tokenizer), entry["d_model"], entry["n_layers"], entry["n_heads"],
                          int(spec["training"]["context"]), tokenizer.bos_token_id, tokenizer.eos_token_id,
                          spec.get("tie_embeddings"))
    return build_model(config, seed=1000 + int(entry["size_index"])).eval(), tokenizer, "random-init"


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-text |a - b| / |b|."""
    return np.abs(a - b) / np.abs(b)


def exactness(device: torch.device, sizes: list[int], n_texts: int | None, deadline: float,
              trained_texts: int | None = None) -> list[dict]:
    """One row per main-arm model of the chosen sizes: fp32 (kernel, batched) and bf16 deviations from the reference.

    ``n_texts``: texts per random-init model; ``trained_texts``: per trained model (None: all, as committed).
    """
    pool = load_pool_config(POOL)
    entries = [e for e in pool["models"] if e.get("arm", "main") == "main" and int(e["size_index"]) in sizes]
    rows = []
    for entry in entries:
        if time.time() > deadline:
            rows.append({"model": Path(entry["id"]).name, "skipped": "time limit"})
            continue
        name = Path(entry["id"]).name
        model, tokenizer, source = pool_model(pool, entry)
        text_ids, texts = read_texts(n_texts if source == "random-init" else trained_texts)
        settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, None, 64))
        sequences = kernel.tokenize_texts(tokenizer, texts, text_ids)
        start = time.perf_counter()
        reference = committed_nll(name, text_ids) if source == "trained" else None
        if reference is None:
            source = f"{source}, CPU reference"
            reference = kernel.score_token_sequences(model, sequences, settings)
        cpu_s = time.perf_counter() - start
        on_device = model.to(device)
        start = time.perf_counter()
        fp32 = kernel.score_token_sequences(on_device, sequences, settings, batch_tokens=65536)
        synchronize(device)
        kernel_s = time.perf_counter() - start
        start = time.perf_counter()
        fp32_batched = batched.score_windows(on_device, sequences, settings, batch_tokens=65536)
        synchronize(device)
        batched_s = time.perf_counter() - start
        bf16 = kernel.score_token_sequences(on_device.to(torch.bfloat16), sequences, settings, batch_tokens=65536)
        rel32, rel32b, rel16 = relative(fp32, reference), relative(fp32_batched, reference), relative(bf16, reference)
        rows.append({
            "model": name, "reference": source, "params": sum(p.numel() for p in model.parameters()),
            "texts": len(texts), "tokens": int(sum(len(s) for s in sequences)),
            "fp32_kernel_max_rel": float(rel32.max()), "fp32_batched_max_rel": float(rel32b.max()),
            "bf16_max_rel": float(rel16.max()), "bf16_median_rel": float(np.median(rel16)),
            "pass": bool(rel32.max() <= EXACT_RTOL and rel32b.max() <= EXACT_RTOL),
            "reference_s": cpu_s, "kernel_s": kernel_s, "batched_s": batched_s,
        })
        print(json.dumps(rows[-1]), flush=True)
        del model, on_device
    return rows


# ----------------------------------------------------------------------------- speed
def bf16_mm_peak(device: torch.device, n: int, repeats: int = 10) -> float:
    """Median bf16 torch.mm rate (FLOP/s, 2 n^3 per product) over rotating random operands."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    operands = [torch.randn(n, n, generator=generator).to(device, torch.bfloat16) for _ in range(4)]
    torch.mm(operands[0], operands[1])
    synchronize(device)
    times = []
    for i in range(repeats):
        a, b = operands[i % 4], operands[(i + 1) % 4]
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            torch.mm(a, b)
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.median(times))


def qwen_shaped_model(shape: dict, device: torch.device):
    """Seeded random-init Qwen2 causal LM of ``shape`` in bf16 on ``device`` (SDPA attention)."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**shape, bos_token_id=None, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


def plain_hf_nll(model, sequences: list[np.ndarray], settings: kernel.ScoreSettings, batch_tokens: int) -> np.ndarray:
    """The usual recipe on the kernel's windows: full logits from ``model(...)``, fp32 log_softmax, gather."""
    device = kernel.input_device(model)
    windows = kernel._plan_windows(sequences, settings)
    full = [np.concatenate([[settings.prefix_id], s]) for s in sequences]
    nll = np.zeros(len(sequences))
    with torch.inference_mode():
        for batch in kernel.pack_batches(windows[:, 2], batch_tokens):
            rows = windows[batch]
            width = int(rows[:, 2].max())
            ids = np.full((len(rows), width), settings.prefix_id, dtype=np.int64)
            for r, (_, start, length, _) in enumerate(rows):
                ids[r, :length] = full[rows[r, 0]][start : start + length]
            logprobs = model(input_ids=torch.from_numpy(ids).to(device)).logits.float().log_softmax(-1)
            for r, (text, start, length, n_scored) in enumerate(rows):
                positions = torch.arange(length - n_scored, length, device=device)
                targets = torch.from_numpy(full[text][start + length - n_scored + 1 : start + length + 1]).to(device)
                nll[text] -= float(logprobs[r, positions, targets].double().sum())
            del logprobs
    return nll


def speed(device: torch.device, shape: dict, n_tokens: int, mm_size: int, max_length: int, batch_tokens: int) -> dict:
    """bf16 tokens/s and MFU of the kernel and of a plain HF forward on a Qwen2.5-1.5B-shaped model."""
    peak_before = bf16_mm_peak(device, mm_size)
    tokenizer = family_tokenizer("gpt2")
    text_ids, texts = read_texts(None)
    sequences, total = [], 0
    for tokens in kernel.tokenize_texts(tokenizer, texts, text_ids):
        sequences.append(tokens[: n_tokens - total])  # the last text is cut so the run scores n_tokens exactly
        total += len(sequences[-1])
        if total >= n_tokens:
            break
    model = qwen_shaped_model(shape, device)
    params = sum(p.numel() for p in model.parameters())  # tied head counted once
    settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, max_length))
    kernel.score_token_sequences(model, sequences[:8], settings, batch_tokens=batch_tokens)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    ours = kernel.score_token_sequences(model, sequences, settings, batch_tokens=batch_tokens)
    synchronize(device)
    kernel_s = time.perf_counter() - start
    plain_hf_nll(model, sequences[:8], settings, batch_tokens)
    synchronize(device)
    start = time.perf_counter()
    plain = plain_hf_nll(model, sequences, settings, batch_tokens)
    synchronize(device)
    plain_s = time.perf_counter() - start
    peak = max(peak_before, bf16_mm_peak(device, mm_size))
    tokens = int(sum(len(s) for s in sequences))
    return {"params": params, "tokens": tokens, "texts": len(sequences), "max_length": max_length,
            "batch_tokens": batch_tokens, "peak_flops": peak, "kernel_s": kernel_s, "plain_s": plain_s,
            "kernel_tokens_per_s": tokens / kernel_s, "plain_tokens_per_s": tokens / plain_s,
            "kernel_mfu": 2 * params * tokens / kernel_s / peak, "plain_mfu": 2 * params * tokens / plain_s / peak,
            "kernel_vs_plain_max_rel": float(relative(ours, plain).max()),
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


# ----------------------------------------------------------------------------- report
def environment(device: torch.device) -> str:
    """One line: device, torch and python versions."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})"
    return f"{name}, torch {torch.__version__}, python {platform.python_version()}"


def summary(env: str, exact: list[dict], fast: dict | None, command: str) -> str:
    """The markdown summary (the benchmarks/README.md section)."""
    done = [r for r in exact if "skipped" not in r]
    lines = ["## GPU check", "", f"Command: `{command}` ({env}).", "",
             "| model | reference | texts | tokens | fp32 kernel max rel. | fp32 batched max rel. | bf16 max rel. "
             "| bf16 median rel. | pass (1e-5) |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['model']} | {r['reference']} | {r['texts']:,} | {r['tokens']:,} | {r['fp32_kernel_max_rel']:.1e} | "
              f"{r['fp32_batched_max_rel']:.1e} | {r['bf16_max_rel']:.1e} | {r['bf16_median_rel']:.1e} | "
              f"{'yes' if r['pass'] else 'NO'} |" for r in done]
    skipped = [r["model"] for r in exact if "skipped" in r]
    lines += ["", f"Exactness: {sum(r['pass'] for r in done)} of {len(done)} models within {EXACT_RTOL:g}"
              + (f"; not run (time limit): {', '.join(skipped)}" if skipped else "") + "."]
    if fast is not None:
        lines += ["", f"Speed: random-init Qwen2.5-1.5B shape ({fast['params'] / 1e9:.3f} B parameters, vocabulary "
                  f"151,936), bf16, {fast['texts']:,} held-out texts ({fast['tokens']:,} tokens), windows of "
                  f"{fast['max_length']}, {fast['batch_tokens']:,} padded tokens per forward; FLOPs = 2·P per token; "
                  f"bf16 torch.mm peak {fast['peak_flops'] / 1e12:,.1f} TFLOP/s measured in the same call.", "",
                  "| method | tokens/s | MFU | seconds |", "|---|---:|---:|---:|",
                  f"| `kernel.score_token_sequences` (tiled fp32 head) | {fast['kernel_tokens_per_s']:,.0f} | "
                  f"**{fast['kernel_mfu']:.2f}** | {fast['kernel_s']:.2f} |",
                  f"| plain HF forward, full logits + fp32 log_softmax | {fast['plain_tokens_per_s']:,.0f} | "
                  f"{fast['plain_mfu']:.2f} | {fast['plain_s']:.2f} |", "",
                  f"Kernel / plain HF: {fast['plain_s'] / fast['kernel_s']:.2f}x; MFU goal {MFU_GOAL}: "
                  f"{'met' if fast['kernel_mfu'] >= MFU_GOAL else 'missed'}; max per-text relative difference between "
                  f"the two: {fast['kernel_vs_plain_max_rel']:.1e}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and few texts: the same code in seconds (CI)")
    parser.add_argument("--out", help="output folder (default: $OUT, else runs/gpu_check)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[0, 2, 5], help="pool size indices of the exactness check")
    parser.add_argument("--n-texts", type=int, default=400, help="texts per random-init exactness model")
    parser.add_argument("--speed-tokens", type=int, default=400_000, help="held-out tokens of the speed run")
    parser.add_argument("--time-limit", type=float, default=420.0, help="seconds; later exactness models are skipped")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: device {args.device!r} requested but torch {torch.__version__} sees no CUDA device",
              file=sys.stderr)
        return 2
    out = Path(args.out or os.environ.get("OUT") or REPO / "runs" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.time_limit
    if args.smoke:
        exact = exactness(device, [0], 4, deadline, trained_texts=4)
        fast = speed(device, SMOKE_SHAPE, 192, 256, 64, 64)
    else:
        exact = exactness(device, args.sizes, args.n_texts, deadline)
        fast = speed(device, QWEN25_15B, args.speed_tokens, 8192, 2048, 32768)
    command = "PYTHONPATH=. python3 benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = environment(device)
    text = summary(env, exact, fast, command.strip())
    (out / "results.json").write_text(json.dumps({"environment": env, "exactness": exact, "speed": fast}, indent=1))
    (out / "summary.md").write_text(text)
    print(text)
    return 0 if all(r.get("pass", True) for r in exact) else 1


if __name__ == "__main__":
    raise SystemExit(main())
