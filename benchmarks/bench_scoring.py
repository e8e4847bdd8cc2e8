"""Scoring kernel benchmark: tokens/s and peak memory of ``score_texts`` vs lm-evaluation-harness.

    nice -n 10 .venv/bin/python benchmarks/bench_scoring.py --write-readme

1. Throughput: seeded random-init Llama-style models (CONFIGS: a miniature-pool-like one with
   context 128, and a d=256 / context-256 one; BPE vocabularies trained on the held-out
   texts) score the first ``--n-texts`` texts of
   data/texts/wiki_heldout.jsonl with (a) ``score_texts`` using lm-eval's disjoint windows
   (``context_tokens=1``), (b) ``score_texts`` with its default overlapping windows, and
   (c) lm-eval's HF backend ``loglikelihood_rolling`` at several batch sizes, all in one
   process on the same threads; (a) and (c) use identical windows, so their per-text losses
   are compared. Tokens/s counts the texts' own tokens (what eq. 1 sums over).
2. Memory: a 262,144-vocab model scores one 4,096-token window, in a fresh subprocess per
   method: the kernel (tiled fp32 head) vs naive full fp32 logits ([4096 x 262144] =
   4.3 GB). Peak = VmHWM growth over the resident size after loading (Linux /proc).
3. ``--peak``: scoring FLOPs (2·P per token) of a random-init SmolLM2-135M-shaped model as a
   fraction of the measured fp32 ``torch.mm`` peak (2048² blocks, same threads, same run), and the
   ceiling the body's large matmuls alone reach; below 0.8 the torch profiler splits the time (body:
   large and small matmuls, attention, other ops, Python overhead; head: logits matmuls and the
   log-sum-exp; batching). The same model with bf16 weights (AMX where the CPU has it) against the bf16
   mm peak, with its per-text deviation from fp32, also for a trained miniature-pool model on held-out
   texts when its weights are built (``--trained-model``); fp32 scoring once more in a fresh process with
   glibc's default allocator settings (what ``kernel.reuse_freed_cpu_memory`` changes); with ``--compile``,
   ``torch.compile`` of the body (compile time, speed, deviation). Writes its own README section.
Needs the optional extra ``bench`` (``pip install -e .[bench]``: lm-eval).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from mmlaw_utils.scoring import kernel, models  # noqa: E402

README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- scoring:start -->", "<!-- scoring:end -->"
TEXTS = REPO_ROOT / "data" / "texts" / "wiki_heldout.jsonl"


# ----------------------------------------------------------------------------- memory probes
def _status_kb(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak() -> int:
    """Reset the peak-RSS counter (VmHWM) and return the current resident size in kB."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return _status_kb("VmRSS")


def peak_growth_mb(baseline_kb: int) -> float:
    """Peak resident memory since the last reset, above ``baseline_kb``, in MiB."""
    return (_status_kb("VmHWM") - baseline_kb) / 1024


# ----------------------------------------------------------------------------- throughput
def load_texts(n_texts: int) -> list[str]:
    """First n held-out texts (the artifact's text set), or generated ones if it is absent."""
    if TEXTS.is_file():
        with open(TEXTS) as handle:
            return [json.loads(line)["text"] for line in handle][:n_texts]
    import tiny_models

    return tiny_models.sample_texts(n_texts, seed=0, min_sentences=10, max_sentences=30)


def build_tokenizer(corpus: list[str], vocab_size: int):
    """Byte-level BPE with BOS/EOS trained on ``corpus`` (no post-processor: lm-eval adds nothing)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   model_max_length=100_000)


def build_model(vocab_size: int, hidden: int, layers: int, max_positions: int):
    """Seeded random-init Llama-style causal LM in fp32."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=int(hidden * 2.75), num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 32), num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=max_positions, bos_token_id=0, eos_token_id=1, pad_token_id=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa").eval()


def timed(fn):
    """(result, seconds, peak MiB above the resident size before the call)."""
    baseline = reset_peak()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start, peak_growth_mb(baseline)


CONFIGS = {
    # like a mid-size model of the miniature pool (context 128, small BPE): many short windows
    "minipool-like": {"hidden": 128, "layers": 4, "vocab": 4096, "max_length": 128},
    # a wider model with a longer context: fewer, longer windows, heavier head per token
    "d256-ctx256": {"hidden": 256, "layers": 4, "vocab": 8192, "max_length": 256},
}
SMOKE_CONFIG = {"smoke": {"hidden": 32, "layers": 1, "vocab": 512, "max_length": 64}}
LM_EVAL = "lm-eval HFLM.loglikelihood_rolling"
SAME_WINDOWS = "score_texts, lm-eval windows (context_tokens=1)"


def throughput(config_name: str, args) -> dict:
    """Tokens/s, peak memory and agreement of the kernel vs lm-eval on the same model and texts."""
    config = {**CONFIGS, **SMOKE_CONFIG}[config_name]
    max_length = config["max_length"]
    texts = load_texts(args.n_texts)
    tokenizer = build_tokenizer(load_texts(200 if config_name == "smoke" else 10_000), config["vocab"])
    model = build_model(len(tokenizer), config["hidden"], config["layers"], max_positions=max_length)
    n_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    rows, outputs = [], {}

    def run_kernel(context):
        return lambda: kernel.score_texts(
            model, tokenizer, texts, max_length=max_length, context_tokens=context, batch_tokens=args.batch_tokens
        )["nll"].to_numpy()

    kernel.score_texts(model, tokenizer, texts[:4], max_length=max_length)  # warm-up
    for name, context in ((SAME_WINDOWS, 1), (f"score_texts, default windows (context_tokens={max_length // 2})", None)):
        nll, seconds, peak = timed(run_kernel(context))
        outputs[name] = nll
        cpu_batch = min(args.batch_tokens, kernel._CPU_MAX_BATCH_TOKENS)  # the kernel caps CPU batches
        rows.append({"method": name, "batch": f"{cpu_batch} tokens", "seconds": seconds, "peak_mb": peak})
    if args.lm_eval_batch_sizes:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    for batch_size in args.lm_eval_batch_sizes:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length, device="cpu")
        requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]
        lm.loglikelihood_rolling(requests[:4], disable_tqdm=True)  # warm-up
        loglik, seconds, peak = timed(lambda: lm.loglikelihood_rolling(requests, disable_tqdm=True))
        outputs[f"bs{batch_size}"] = -np.asarray(loglik, dtype=np.float64)
        rows.append({"method": LM_EVAL, "batch": f"{batch_size} windows", "seconds": seconds, "peak_mb": peak})
    for row in rows:
        row["tokens_per_s"] = n_tokens / row["seconds"]
    reference = outputs[SAME_WINDOWS]
    agreement = {
        f"lm-eval {key}": float(np.max(np.abs(value - reference) / np.abs(reference)))
        for key, value in outputs.items() if key.startswith("bs")
    }
    params = models.count_parameters(model)["params_total"]
    return {"config": config_name, **config, "rows": rows, "n_texts": len(texts), "n_tokens": n_tokens,
            "agreement_max_rel": agreement, "params": params, "vocab_size": len(tokenizer)}


# ----------------------------------------------------------------------------- large-vocab memory
def memory_case(method: str, vocab: int, length: int) -> dict:
    """Peak memory of scoring one ``length``-token window with a ``vocab``-entry head (run in a fresh process)."""
    model = build_model(vocab, hidden=64, layers=1, max_positions=length)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, vocab, (length,), generator=generator).numpy()  # text tokens; prefix added
    settings = kernel.ScoreSettings(length, 1, 0, "bos", "rolling", "chunked")

    def chunked():
        return float(kernel.score_token_sequences(model, [tokens[: length]], settings, batch_tokens=length)[0])

    def naive():
        # the usual recipe: full fp32 logits [T x V] from the model, then log-softmax over them
        ids = torch.from_numpy(np.concatenate([[0], tokens[: length - 1]]))[None]
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            return float(-logprobs.gather(1, torch.from_numpy(tokens[:length])[:, None]).sum())

    with torch.inference_mode():  # warm-up on a short input so lazy allocations are in the baseline
        model(input_ids=torch.zeros(1, 8, dtype=torch.long))
    fn = chunked if method == "chunked" else naive
    nll, seconds, peak = timed(fn)
    return {"method": method, "nll": nll, "seconds": seconds, "peak_mb": peak, "vocab": vocab, "length": length}


def run_memory_case(method: str, vocab: int, length: int) -> dict:
    """Run ``memory_case`` in a fresh subprocess (so peaks of one method never hide in the other's)."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-case", method, "--memory-vocab", str(vocab), "--memory-length", str(length)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- fraction of the matmul peak
PEAK_START, PEAK_END = "<!-- scoring-peak:start -->", "<!-- scoring-peak:end -->"
# SmolLM2-135M's shape (hidden 576, 30 layers, 9 heads / 3 KV heads, MLP 1536, vocab 49,152, tied head)
SMOL_SHAPE = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
              "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True}
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm"}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best ``dtype`` torch.mm rate on n x n blocks (GFLOP/s, 2 n^3 per product) with the current thread count."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(dtype) for _ in range(2))
    torch.mm(a, b)  # warm-up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _matmul_flops(shapes: list) -> float:
    """FLOPs of one mm/addmm/bmm call from its recorded input shapes (bias and ``out=`` operands skipped)."""
    mats = [s for s in shapes if len(s) in (2, 3)]
    for a, b in zip(mats, mats[1:]):
        if a[-1] == b[-2]:  # the two factors: inner dimensions agree
            batch = a[0] if len(a) == 3 else 1
            return 2.0 * batch * a[-2] * a[-1] * b[-1]
    return 0.0


# --smoke: the same code on a tiny Llama shape, in seconds
SMOKE_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
               "num_key_value_heads": 1, "vocab_size": 1024, "tie_word_embeddings": True}
# the peak table is written only on a quiet machine: under load the peak itself is depressed and flatters the fraction
MAX_LOAD_FOR_TABLE = 1.5
MINIPOOL_MODELS = REPO_ROOT / "models" / "minipool"


def largest_built_llama(folder: Path = MINIPOOL_MODELS) -> Path | None:
    """The widest main-arm Llama of the miniature pool whose weights are built here (for the bf16 deviation), or None."""
    import re

    built = [(int(m.group(1)), p) for p in folder.glob("llama-d*l*")
             if (m := re.fullmatch(r"llama-d(\d+)l\d+", p.name)) and (p / "config.json").is_file()]
    return max(built)[1] if built else None


def _page_faults() -> int:
    """Minor page faults of this process so far (each is a freshly mapped page touched for the first time)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _profile_self_seconds(fn) -> tuple[float, list]:
    """(profiled wall seconds, key averages grouped by input shape) of one call of ``fn`` under the torch profiler."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            fn()
        wall = time.perf_counter() - start
    return wall, prof.key_averages(group_by_input_shape=True)


def _split_body_profile(events) -> dict:
    """Self seconds (and matmul FLOPs) of the body's op classes: large/small matmuls, attention, other ops."""
    out = {"large_mm_s": 0.0, "large_mm_flops": 0.0, "small_mm_s": 0.0, "small_mm_flops": 0.0, "attention_s": 0.0,
           "ops_s": 0.0}
    for event in events:
        self_s = event.self_cpu_time_total / 1e6
        out["ops_s"] += self_s
        if event.key in MATMUL_OPS:
            flops = _matmul_flops(event.input_shapes) * event.count
            mats = [s for s in event.input_shapes if len(s) in (2, 3)]
            kind = "small" if len(mats) >= 2 and min(mats[-2][-1], mats[-1][-1]) < 512 else "large"  # inner or output dim
            out[f"{kind}_mm_s"] += self_s
            out[f"{kind}_mm_flops"] += flops
        elif "scaled_dot_product" in event.key or "attention" in event.key:
            out["attention_s"] += self_s
    out["other_ops_s"] = out["ops_s"] - out["large_mm_s"] - out["small_mm_s"] - out["attention_s"]
    return out


def _timed_scoring(model, sequences, settings, batch_tokens: int, repeats: int) -> tuple[np.ndarray, float, int]:
    """(summed NLL per sequence, best wall seconds of ``repeats`` calls, page faults of the last call)."""
    best = np.inf
    for _ in range(repeats):
        faults = _page_faults()
        start = time.perf_counter()
        nll = kernel.score_token_sequences(model, sequences, settings, batch_tokens=batch_tokens)
        best = min(best, time.perf_counter() - start)
        faults = _page_faults() - faults
    return nll, best, faults


def relative_deviation(values: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(median, max) of |values - reference| / |reference| per text."""
    rel = np.abs(np.asarray(values) - np.asarray(reference)) / np.abs(np.asarray(reference))
    return float(np.median(rel)), float(np.max(rel))


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def trained_bf16_deviation(model_dir: Path, n_texts: int) -> dict | None:
    """Per-text relative deviation of bf16 from fp32 scoring on CPU for a trained model and held-out texts (None if absent)."""
    if not model_dir.is_dir():
        return None
    model, tokenizer = models.load_model_and_tokenizer(str(model_dir), device="cpu", dtype="float32")
    texts = load_texts(n_texts)
    fp32 = kernel.score_texts(model, tokenizer, texts)["nll"].to_numpy()
    bf16 = kernel.score_texts(model.to(torch.bfloat16), tokenizer, texts)["nll"].to_numpy()
    median, worst = relative_deviation(bf16, fp32)
    return {"model": _shown_path(model_dir),
            "n_texts": len(texts), "median": median, "max": worst}


def peak_case(n_sequences: int, length: int, shape: dict) -> tuple:
    """(seeded random-init fp32 Llama of ``shape``, random token sequences filling windows of ``length``, settings)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**shape, max_position_embeddings=max(2048, length), bos_token_id=0, eos_token_id=1,
                         pad_token_id=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="sdpa").eval()
    generator = torch.Generator().manual_seed(1)
    sequences = [torch.randint(3, shape["vocab_size"], (length - 1,), generator=generator).numpy()
                 for _ in range(n_sequences)]
    return model, sequences, kernel.ScoreSettings(length, 1, 0, "bos", "rolling", "chunked")


def without_heap_reuse(n_sequences: int, length: int, shape: dict, repeats: int) -> dict:
    """fp32 scoring seconds and page faults with glibc's default allocator settings (run in a fresh process)."""
    kernel.reuse_freed_cpu_memory = lambda: False  # this process only: the comparison case
    model, sequences, settings = peak_case(n_sequences, length, shape)
    kernel.score_token_sequences(model, sequences[:1], settings)  # warm-up
    _, seconds, faults = _timed_scoring(model, sequences, settings, n_sequences * length, repeats)
    return {"seconds": seconds, "page_faults": faults}


def run_without_heap_reuse(n_sequences: int, length: int, shape: dict, repeats: int) -> dict:
    """``without_heap_reuse`` in a fresh subprocess with this process's torch threads."""
    case = json.dumps({"n_sequences": n_sequences, "length": length, "shape": shape, "repeats": repeats})
    out = subprocess.run([sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--no-heap-reuse-case", case],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def compiled_body(model, ids: torch.Tensor, head, targets: torch.Tensor, repeats: int) -> dict:
    """``torch.compile`` of the base model: compile seconds, best body seconds, per-text NLL deviation from eager."""
    vocab = int(head.linear.weight.shape[0])

    def per_text_nll(base) -> np.ndarray:
        hidden = base(input_ids=ids, use_cache=False).last_hidden_state[:, :-1]
        logprobs = kernel._target_logprobs(head, hidden.reshape(-1, hidden.shape[-1]).contiguous(), targets, vocab)
        return -logprobs.double().reshape(ids.shape[0], -1).sum(1).numpy()

    with torch.inference_mode():
        eager = per_text_nll(model.base_model)
        start = time.perf_counter()
        compiled = torch.compile(model.base_model, dynamic=False)
        compiled(input_ids=ids, use_cache=False)
        compile_seconds = time.perf_counter() - start
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            compiled(input_ids=ids, use_cache=False)
            best = min(best, time.perf_counter() - start)
        median, worst = relative_deviation(per_text_nll(compiled), eager)
    return {"compile_seconds": compile_seconds, "body_seconds": best, "median_rel": median, "max_rel": worst}


def peak_fraction(n_sequences: int, length: int, shape: dict | None = None, mm_size: int = 2048, repeats: int = 2,
                  trained_model: Path | None = None, trained_texts: int = 200, compile_body: bool = False) -> dict:
    """Scoring rate of a random-init SmolLM2-135M-shaped model as a fraction of the measured fp32 mm peak,
    where the scoring time goes (torch profiler), and the same in bf16 against the bf16 mm peak."""
    import copy

    shape = shape or SMOL_SHAPE
    model, sequences, settings = peak_case(n_sequences, length, shape)
    params = models.count_parameters(model)["params_total"]
    n_tokens = sum(len(s) for s in sequences)
    batch_tokens = n_sequences * length
    kernel.score_token_sequences(model, sequences[:1], settings)  # warm-up
    load_start = os.getloadavg()[0]
    peak_before = matmul_peak_gflops(mm_size)
    nll_fp32, seconds, faults = _timed_scoring(model, sequences, settings, batch_tokens, repeats)
    peak_after = matmul_peak_gflops(mm_size)
    peak = max(peak_before, peak_after)
    default_malloc = run_without_heap_reuse(n_sequences, length, shape, repeats)
    # where the time goes: the body and the head, each timed alone and once more under the profiler
    ids = torch.from_numpy(np.stack([np.concatenate([[0], s]) for s in sequences]))
    head = kernel._output_head(model)
    targets = torch.from_numpy(np.concatenate([s for s in sequences]))
    with torch.inference_mode():
        body_seconds, head_seconds = np.inf, np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            hidden = kernel._hidden_states(model, ids)
            body_seconds = min(body_seconds, time.perf_counter() - start)
        hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1]).contiguous()  # the scored positions, as the kernel picks
        for _ in range(repeats):
            start = time.perf_counter()
            kernel._target_logprobs(head, hidden, targets, shape["vocab_size"])
            head_seconds = min(head_seconds, time.perf_counter() - start)
    body_wall, body_events = _profile_self_seconds(lambda: kernel._hidden_states(model, ids))
    head_wall, head_events = _profile_self_seconds(
        lambda: kernel._target_logprobs(head, hidden, targets, shape["vocab_size"]))
    head_mm_s = sum(e.self_cpu_time_total / 1e6 for e in head_events if e.key in MATMUL_OPS)
    head_mm_flops = sum(_matmul_flops(e.input_shapes) * e.count for e in head_events if e.key in MATMUL_OPS)
    head_ops_s = sum(e.self_cpu_time_total / 1e6 for e in head_events)
    compiled = compiled_body(model, ids, head, targets, repeats) if compile_body else None
    # bf16 weights (AMX on CPUs that have it): same model, texts and batch, against the bf16 mm peak
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    kernel.score_token_sequences(model_bf16, sequences[:1], settings)  # warm-up
    bf16_peak_before = matmul_peak_gflops(mm_size, dtype=torch.bfloat16)
    nll_bf16, bf16_seconds, _ = _timed_scoring(model_bf16, sequences, settings, batch_tokens, repeats)
    bf16_peak = max(bf16_peak_before, matmul_peak_gflops(mm_size, dtype=torch.bfloat16))
    bf16_median, bf16_max = relative_deviation(nll_bf16, nll_fp32)
    load_end = os.getloadavg()[0]
    trained_model = trained_model or largest_built_llama()
    trained = trained_bf16_deviation(trained_model, trained_texts) if trained_model is not None else None
    return {
        "params": params, "n_tokens": n_tokens, "length": length, "seconds": seconds, "peak_gflops": peak,
        "peak_before": peak_before, "peak_after": peak_after, "threads": torch.get_num_threads(),
        "achieved_gflops": 2 * params * n_tokens / seconds / 1e9, "page_faults": faults,
        "default_malloc_seconds": default_malloc["seconds"], "default_malloc_page_faults": default_malloc["page_faults"],
        "body_seconds": body_seconds, "head_seconds": head_seconds, "body_profiled_wall": body_wall,
        "head_profiled_wall": head_wall, **_split_body_profile(body_events),
        "head_mm_s": head_mm_s, "head_mm_flops": head_mm_flops, "head_other_s": head_ops_s - head_mm_s,
        "bf16_seconds": bf16_seconds, "bf16_gflops": 2 * params * n_tokens / bf16_seconds / 1e9,
        "bf16_peak_gflops": bf16_peak, "bf16_median_rel": bf16_median, "bf16_max_rel": bf16_max,
        "trained_bf16": trained, "compiled": compiled, "trained_model": None if trained_model is None else _shown_path(trained_model),
        "load_start": load_start, "load_end": load_end, "mm_size": mm_size,
    }


def peak_markdown(r: dict, command: str) -> str:
    """The README section for ``peak_fraction``."""
    frac = r["achieved_gflops"] / r["peak_gflops"]
    total = r["seconds"]
    # profiled seconds are scaled to the unprofiled wall time of their part (body, head)
    body_scale = r["body_seconds"] / r["body_profiled_wall"]
    head_scale = r["head_seconds"] / r["head_profiled_wall"]
    overhead = max(r["body_profiled_wall"] - r["ops_s"], 0.0)
    glue = max(total - r["body_seconds"] - r["head_seconds"], 0.0)

    def rate(flops: float, secs: float) -> str:
        return f"{flops / secs / 1e9:,.1f}" if secs > 0 and flops > 0 else ""

    def fraction(flops: float, secs: float) -> str:
        return f"{flops / secs / 1e9 / r['peak_gflops']:.2f}" if secs > 0 and flops > 0 else ""

    rows = [
        ("body: matmuls, inner and output dimension >= 512 (Q/O projections, MLP)", r["large_mm_s"] * body_scale,
         r["large_mm_flops"], r["large_mm_s"]),
        ("body: matmuls with a dimension < 512 (K/V projections, 3 heads x 64)", r["small_mm_s"] * body_scale,
         r["small_mm_flops"], r["small_mm_s"]),
        ("body: attention (SDPA)", r["attention_s"] * body_scale, 0.0, 0.0),
        ("body: other ops (norms, rotary, SiLU, adds, copies)", r["other_ops_s"] * body_scale, 0.0, 0.0),
        ("body: Python / dispatch overhead (profiled wall - op self times)", overhead * body_scale, 0.0, 0.0),
        ("head: logits tiles (matmuls)", r["head_mm_s"] * head_scale, r["head_mm_flops"], r["head_mm_s"]),
        ("head: log-sum-exp, target pick, Python", max(r["head_seconds"] - r["head_mm_s"] * head_scale, 0.0), 0.0, 0.0),
        ("batching and glue (scoring wall - body wall - head wall)", glue, 0.0, 0.0),
    ]
    ceiling = r["large_mm_flops"] / r["large_mm_s"] / 1e9 / r["peak_gflops"] if r["large_mm_s"] > 0 else float("nan")
    bf16_frac = r["bf16_gflops"] / r["bf16_peak_gflops"]
    lines = [
        PEAK_START, "## Scoring against the machine's matmul peak", "",
        f"Command: `{command}` (torch {torch.__version__}, {r['threads']} thread(s), load average "
        f"{r['load_start']:.1f} at start and {r['load_end']:.1f} at the end; the table is written only below "
        f"{MAX_LOAD_FOR_TABLE}). Random-init model of SmolLM2-135M's shape ({r['params'] / 1e6:.1f} M parameters, "
        f"SDPA), {r['n_tokens']:,} random tokens in windows of {r['length']}, one batch, best of the timed calls; "
        f"scoring FLOPs = 2·P per token. Peak: best `torch.mm` of {r['mm_size']}² blocks in the same dtype, same "
        f"threads, measured just before and after (fp32 {r['peak_before']:,.1f} and {r['peak_after']:,.1f} GFLOP/s; "
        "the higher is used).", "",
        "| scoring | tokens/s | achieved GFLOP/s | mm peak GFLOP/s | fraction of peak | per-text deviation from fp32 (median / max) |",
        "|---|---:|---:|---:|---:|---|",
        f"| `score_token_sequences`, fp32 (default, exact) | {r['n_tokens'] / total:,.0f} | {r['achieved_gflops']:,.1f} | "
        f"{r['peak_gflops']:,.1f} | **{frac:.2f}** | reference |",
        f"| ceiling: the body's large matmuls alone (profiled), fp32 | | {rate(r['large_mm_flops'], r['large_mm_s'])} | "
        f"{r['peak_gflops']:,.1f} | {'' if np.isnan(ceiling) else f'{ceiling:.2f}'} | |",
        f"| `score_token_sequences`, bf16 weights (`--dtype bfloat16`) | {r['n_tokens'] / r['bf16_seconds']:,.0f} | "
        f"{r['bf16_gflops']:,.1f} | {r['bf16_peak_gflops']:,.1f} (bf16) | {bf16_frac:.2f} of bf16, "
        f"{r['bf16_gflops'] / r['peak_gflops']:.2f} of fp32 | {r['bf16_median_rel']:.1e} / {r['bf16_max_rel']:.1e} "
        "(random weights and tokens) |",
    ]
    trained = r.get("trained_bf16")
    if trained:
        lines.append(f"| bf16 deviation of a trained model: `{trained['model']}`, first {trained['n_texts']} held-out "
                     f"texts | | | | | {trained['median']:.1e} / {trained['max']:.1e} |")
    lines += ["", f"bf16 is {total / r['bf16_seconds']:.1f}x the fp32 rate. Its deviation on random weights and tokens "
              "(near-uniform predictions) understates a trained model's; "
              + ("the trained row above measures that." if trained else
                 "no trained model was measured (no miniature-pool Llama is built here).")]
    lines += ["", f"Heap reuse (`kernel.reuse_freed_cpu_memory`): one fp32 scoring call page-faults {r['page_faults']:,} "
              f"times and takes {total:.2f} s; with glibc's default settings (fresh process, same threads) "
              f"{r['default_malloc_page_faults']:,} times and {r['default_malloc_seconds']:.2f} s "
              f"({r['default_malloc_seconds'] / total:.2f}x)."]
    compiled = r.get("compiled")
    if compiled:
        lines += ["", f"`torch.compile` of the body (fuses the elementwise ops; opt-in `--compile`, not used by the "
                  f"kernel): {compiled['compile_seconds']:.0f} s to compile (less when inductor's on-disk cache holds an earlier run's code), then the body takes "
                  f"{compiled['body_seconds']:.2f} s against {r['body_seconds']:.2f} s eager "
                  f"({r['body_seconds'] / compiled['body_seconds']:.2f}x); per-text NLL deviation from eager "
                  f"{compiled['median_rel']:.1e} median, {compiled['max_rel']:.1e} max."]
    if frac < 0.8:
        lines += ["", f"Below 0.8: where the {total:.2f} s of fp32 scoring go. Body and head: each timed alone, then once "
                  "more under the torch profiler (self CPU times, scaled to the part's unprofiled wall time); GFLOP/s "
                  "and fraction of the fp32 peak of the matmul rows from their recorded shapes:", "",
                  "| component | seconds | share of scoring time | GFLOP/s | fraction of peak |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {secs:.2f} | {secs / total:.0%} | {rate(flops, raw)} | {fraction(flops, raw)} |"
                  for name, secs, flops, raw in rows]
        if ceiling < 0.8:
            lines += ["", f"The body's large matmuls, {r['large_mm_flops'] / (r['large_mm_flops'] + r['small_mm_flops'] + r['head_mm_flops']):.0%} "
                      f"of the matmul FLOPs, reach only {ceiling:.2f} of the square {r['mm_size']}² peak at these shapes, "
                      "so 0.8 overall is out of reach in fp32 here: attention, the elementwise ops and the head's "
                      "log-sum-exp only add time to that. bf16 weights (AMX) change the picture; see its row."]
    lines.append(PEAK_END)
    return "\n".join(lines) + "\n"


def write_marked_section(section: str, start: str, end: str) -> None:
    """Replace (or append) one marked section of benchmarks/README.md, atomically."""
    from mmlaw_utils.scoring.cache import atomic_write_text

    text = README.read_text() if README.is_file() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write_text(README, text)


# ----------------------------------------------------------------------------- report
def markdown(results: list[dict], memory: list[dict], args, command: str) -> str:
    """The README section: environment, throughput tables, agreement, memory table, GPU row."""
    load = os.getloadavg()[0]
    lines = [
        START,
        "## Scoring",
        "",
        f"Command: `{command}` (x86_64, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}, "
        f"load average {load:.1f} at the end, torch {torch.__version__}, python {platform.python_version()}). "
        "The machine is shared with other jobs, so absolute figures are noisy; all methods ran in the same "
        "process back to back on the same model object and texts.",
    ]
    for result in results:
        lines += [
            "",
            f"**Throughput, {result['config']}**: random-init Llama-style model ({result['params'] / 1e6:.2f} M "
            f"parameters, d={result['hidden']}, {result['layers']} layers, vocab {result['vocab_size']:,}), first "
            f"{result['n_texts']} held-out texts ({result['n_tokens']:,} tokens), max_length {result['max_length']}, "
            "fp32 on CPU:",
            "",
            "| method | batching | seconds | tokens/s | peak extra memory (MiB) |",
            "|---|---|---:|---:|---:|",
        ]
        for row in result["rows"]:
            lines.append(f"| {row['method']} | {row['batch']} | {row['seconds']:.2f} | {row['tokens_per_s']:,.0f} | {max(row['peak_mb'], 0):.0f} |")
        kernel = result["rows"][0]["tokens_per_s"]
        lm_rates = [r["tokens_per_s"] for r in result["rows"] if r["method"] == LM_EVAL]
        if not lm_rates:
            lines += ["", "lm-eval not run (not installed: `pip install -e .[bench]`)."]
            continue
        best_lm = max(lm_rates)
        lines += [
            "",
            f"Speed-up of `score_texts` over the fastest lm-eval setting, same windows: **{kernel / best_lm:.2f}x** "
            "(target >= 2x). Per-text agreement on identical windows (max relative difference of summed NLL): "
            + ", ".join(f"{k}: {v:.1e}" for k, v in result["agreement_max_rel"].items()) + ".",
        ]
    lines += [
        "",
        "**Memory** — one 4,096-token window through a 262,144-vocab head (d=64, 1 layer), fp32 CPU, fresh "
        "process per method; naive fp32 logits alone are 4096 x 262144 x 4 B = 4.29 GB:",
        "",
        "| method | seconds | peak extra memory (MiB) | share of the 4.29 GB logits | summed NLL (nats) |",
        "|---|---:|---:|---:|---:|",
    ]
    logits_mb = 4096 * 262144 * 4 / 2**20
    for case in memory:
        label = "score_texts kernel (tiled fp32 head, online log-sum-exp)" if case["method"] == "chunked" else "naive: full fp32 logits + log_softmax"
        lines.append(f"| {label} | {case['seconds']:.2f} | {case['peak_mb']:.0f} | {case['peak_mb'] / logits_mb:.2f} | {case['nll']:.3f} |")
    lines += [
        "",
        "| GPU | tokens/s and MFU for a >= 1B-parameter random-init model in bf16 |",
        "|---|---|",
        "| none | not measured: no GPU was lent to the session that wrote this benchmark |",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_readme_section(section: str) -> None:
    """Replace (or append) the scoring section of benchmarks/README.md, atomically."""
    from mmlaw_utils.io import write_marked_region

    body = section.strip("\n").removeprefix(START).removesuffix(END)
    write_marked_region(README, body, START, END, append_if_missing=True, new_file_text="# Benchmarks\n")


def smoke(args) -> int:
    """Every part of the benchmark on tiny inputs (CI: a refactor that breaks it fails here); prints, writes nothing."""
    import importlib.util

    args.n_texts = 6
    args.lm_eval_batch_sizes = [1] if importlib.util.find_spec("lm_eval") else []
    memory = [run_memory_case(m, 4096, 256) for m in ("chunked", "naive")]
    if abs(memory[0]["nll"] - memory[1]["nll"]) > 1e-4 * abs(memory[1]["nll"]):
        print(f"bench_scoring --smoke: chunked {memory[0]['nll']} != naive {memory[1]['nll']}", file=sys.stderr)
        return 1
    print(markdown([throughput("smoke", args)], memory, args, "bench_scoring.py --smoke"))
    print(peak_markdown(peak_fraction(2, 64, SMOKE_SHAPE, mm_size=256, repeats=1, trained_texts=4), "bench_scoring.py --smoke"))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-texts", type=int, default=120)
    parser.add_argument("--configs", nargs="*", choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    parser.add_argument("--lm-eval-batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-vocab", type=int, default=262144)
    parser.add_argument("--memory-length", type=int, default=4096)
    parser.add_argument("--memory-case", choices=["chunked", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--no-heap-reuse-case", help=argparse.SUPPRESS)
    parser.add_argument("--peak", action="store_true", help="only: fraction of the fp32 matmul peak (SmolLM2-135M shape)")
    parser.add_argument("--peak-sequences", type=int, default=4)
    parser.add_argument("--peak-length", type=int, default=512)
    parser.add_argument("--trained-model", type=Path,
                        help="--peak: trained model folder for the bf16 deviation on held-out texts "
                             "(default: the widest built main-arm Llama in models/minipool; none: skipped)")
    parser.add_argument("--trained-texts", type=int, default=200)
    parser.add_argument("--compile", action="store_true", help="--peak: also time torch.compile of the body (minutes)")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: throughput, memory and --peak on tiny shapes (lm-eval only if installed); no README")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        return smoke(args)
    if args.peak:
        command = f"nice -n {os.nice(0)} .venv/bin/python benchmarks/bench_scoring.py " + " ".join(argv if argv is not None else sys.argv[1:])
        result = peak_fraction(args.peak_sequences, args.peak_length, trained_model=args.trained_model,
                               trained_texts=args.trained_texts, compile_body=args.compile)
        section = peak_markdown(result, command.strip())
        print(section)
        if args.write_readme:
            load = max(result["load_start"], result["load_end"])
            if load > MAX_LOAD_FOR_TABLE:
                print(f"bench_scoring: load average {load:.1f} > {MAX_LOAD_FOR_TABLE}: the peak table is not written "
                      "(under load the measured peak is depressed and flatters the fraction)", file=sys.stderr)
                return 2
            write_marked_section(section, PEAK_START, PEAK_END)
        return 0
    if args.no_heap_reuse_case:
        print(json.dumps(without_heap_reuse(**json.loads(args.no_heap_reuse_case))))
        return 0
    if args.memory_case:
        print(json.dumps(memory_case(args.memory_case, args.memory_vocab, args.memory_length)))
        return 0
    memory = [] if args.skip_memory else [run_memory_case(m, args.memory_vocab, args.memory_length) for m in ("chunked", "naive")]
    results = [throughput(name, args) for name in args.configs]
    command = "nice -n 10 .venv/bin/python benchmarks/bench_scoring.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = markdown(results, memory, args, command.strip())
    print(section)
    if args.write_readme:
        write_readme_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
