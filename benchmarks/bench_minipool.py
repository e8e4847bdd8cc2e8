"""Miniature pool build cost: CPU time per training token of every shape of configs/pools/minipool.yaml, the
estimated build time of every model and of the whole build, and the measured time of each finished model.

    nice -n 5 .venv/bin/python benchmarks/bench_minipool.py [--steps 8] [--write-readme]
    nice -n 5 .venv/bin/python benchmarks/bench_minipool.py --refresh --write-readme   # only the finished columns

For each distinct (family, size) shape, ``--steps`` optimiser steps (after 2 warm-up steps) of a random-init
model with the pool's batch shape, vocabulary and thread count run on random tokens; the process CPU time
(user + system, not wall time, so other jobs on the machine inflate it little) gives CPU seconds per
1,000 training tokens. A model's estimated build CPU time is that rate times its training tokens. Finished
models (data/minipool/train_logs/*.json) add their measured wall time (the build runs one thread per
worker, so wall time >= CPU time; the gap is time lost to other jobs). The measured table is kept in
benchmarks/minipool_build.csv; ``--refresh`` reuses its rates and re-reads only the finished models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmlaw_utils.io import atomic_write_text, write_marked_region  # noqa: E402
from mmlaw_utils.minipool import recipe, train  # noqa: E402

README = REPO / "benchmarks" / "README.md"
POOL = REPO / "configs" / "pools" / "minipool.yaml"
LOGS = REPO / "data" / "minipool" / "train_logs"
RATES = REPO / "benchmarks" / "minipool_build.csv"
START, END = "<!-- minipool-build:start -->", "<!-- minipool-build:end -->"


def write_section(lines: list[str], start: str, end: str) -> None:
    """Replace (or append) the README section between ``start`` and ``end``, atomically."""
    body = [line for line in lines if line not in (start, end)]
    write_marked_region(README, "\n".join(body), start, end, append_if_missing=True, new_file_text="# Benchmarks\n")


def cpu_seconds_per_token(pool: dict, entry: dict, steps: int) -> float:
    """Process CPU seconds per training token of one pool entry (random tokens, the pool's batch shape)."""
    family = train.base_family(entry)
    spec = pool["families"][family]
    settings = spec["training"]
    vocab = recipe.vocab_size_of(spec["tokenizer"])
    torch.set_num_threads(int(settings["threads"]))
    config = train.model_config(spec["architecture"], vocab, entry["d_model"], entry["n_layers"], entry["n_heads"],
                                int(settings["context"]), 0, 1, spec.get("tie_embeddings"))
    model = train.build_model(config, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, vocab, (int(entry["train_batch_size"]), int(settings["context"]) + 1))
    for i in range(steps + 2):
        if i == 2:
            start = time.process_time()
        loss = train._loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.process_time() - start) / (steps * batch.shape[0] * (batch.shape[1] - 1))


def forward_cpu_seconds_per_token(pool: dict, entry: dict, steps: int, batch_tokens: int = 8192) -> float:
    """Process CPU seconds per token of a no-grad forward pass (the scorer's work) in batches of ``batch_tokens``."""
    family = train.base_family(entry)
    spec = pool["families"][family]
    context = int(spec["training"]["context"])
    vocab = recipe.vocab_size_of(spec["tokenizer"])
    config = train.model_config(spec["architecture"], vocab, entry["d_model"], entry["n_layers"], entry["n_heads"],
                                context, 0, 1, spec.get("tie_embeddings"))
    model = train.build_model(config, seed=0).eval()
    batch = torch.randint(0, vocab, (max(1, batch_tokens // context), context))
    with torch.no_grad():
        model(input_ids=batch)
        start = time.process_time()
        for _ in range(steps):
            model(input_ids=batch)
    return (time.process_time() - start) / (steps * batch.numel())


def heldout_tokens(pool: dict, family: str, heldout_bytes: int) -> float:
    """Tokens the scorer feeds for the held-out set: bytes / the family stream's bytes per token, times the
    rolling-window overlap (256-token windows that score 192 new tokens); 2 bytes per token before the
    stream exists."""
    manifest = REPO / pool["models_root"] / "_family" / family / "manifest.json"
    spec = pool["families"][family]["tokenizer"]
    if manifest.is_file():
        bytes_per_token = json.loads(manifest.read_text())["bytes_per_token"]
    else:
        bytes_per_token = 1.0 if spec["kind"] == "bytes" else 2.0
    return heldout_bytes / bytes_per_token * 256 / 192


def measure(pool: dict, steps: int) -> pd.DataFrame:
    """One row per pool model: shape, tokens, measured CPU s per 1k tokens, estimated and finished build time."""
    from tqdm.auto import tqdm

    from mmlaw_utils.texts import load_texts

    texts = load_texts(str(REPO / pool["eval_dataset"]))
    heldout_bytes = int(texts["text"].map(lambda t: len(t.encode("utf-8"))).sum())
    rates: dict[tuple[str, int, int], float] = {}
    forward: dict[tuple[str, int, int], float] = {}
    rows = []
    for entry in tqdm(pool["models"], desc="shapes", unit="model"):
        shape = (train.base_family(entry), entry["d_model"], entry["n_layers"])
        if shape not in rates:
            rates[shape] = cpu_seconds_per_token(pool, entry, steps)
            forward[shape] = forward_cpu_seconds_per_token(pool, entry, max(2, steps // 4))
        name = train.model_name(entry)
        summary_path = LOGS / f"{name}.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        rows.append({"model": name, "arm": entry.get("arm", "main"), "family": entry["family"],
                     "params": int(round(entry["params_b"] * 1e9)), "d_model": entry["d_model"],
                     "n_layers": entry["n_layers"], "train_tokens": entry["train_tokens"],
                     "cpu_s_per_1k_tokens": 1000 * rates[shape],
                     "est_cpu_s": rates[shape] * entry["train_tokens"],
                     "est_score_cpu_s": forward[shape] * heldout_tokens(pool, shape[0], heldout_bytes),
                     "finished_wall_s": summary.get("train_seconds"),
                     "finished_score_wall_s": summary.get("score_seconds")})
    return pd.DataFrame(rows)


def refresh_finished(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its finished-model columns re-read from the build's run summaries."""
    table = table.copy()
    for column, key in (("finished_wall_s", "train_seconds"), ("finished_score_wall_s", "score_seconds")):
        values = []
        for name in table["model"]:
            path = LOGS / f"{name}.json"
            values.append(json.loads(path.read_text()).get(key) if path.is_file() else None)
        table[column] = pd.to_numeric(pd.Series(values, index=table.index, dtype=object))
    return table


def readme_lines(table: pd.DataFrame, steps: int, refreshed: bool = False) -> list[str]:
    """The benchmarks/README.md section (markdown table and totals)."""
    train_h = table["est_cpu_s"].sum() / 3600
    score_h = table["est_score_cpu_s"].sum() / 3600
    total_h = train_h + score_h
    by_arm = (table.groupby("arm")["est_cpu_s"].sum() + table.groupby("arm")["est_score_cpu_s"].sum()) / 3600
    finished = table.dropna(subset=["finished_wall_s"])
    lines = [START, "## Miniature pool build (configs/pools/minipool.yaml)", "",
             f"Command: `nice -n 5 .venv/bin/python benchmarks/bench_minipool.py --steps {steps} --write-readme` "
             + ("(rates as measured in benchmarks/minipool_build.csv; finished columns refreshed with `--refresh` at "
                f"load average {os.getloadavg()[0]:.1f}; " if refreshed else
                f"(load average {os.getloadavg()[0]:.1f} at the end; ")
             + "1 thread per model, the pool's setting). "
             "CPU s / 1k tokens: process CPU time of a short training run on random tokens with the pool's batch; "
             "est. CPU s = that rate x the model's training tokens (20 per parameter); est. score CPU s = the CPU time "
             "of a no-grad forward pass per token x the held-out set's tokens (with the rolling-window overlap). "
             "Finished wall s: the build's own measurement of training and scoring (includes time lost to other jobs "
             "on this shared 2-core machine).", "",
             f"**Estimated build: {total_h:.1f} CPU-hours** ({train_h:.1f} training, {score_h:.1f} scoring) for "
             f"{len(table)} models "
             f"({', '.join(f'{arm} {h:.1f} h' for arm, h in by_arm.items())}); on the 2-core machine with two build "
             f"workers that is about {total_h / 2:.1f} hours of wall time when nothing else runs. "
             f"Finished: {len(finished)} of {len(table)} models."
             + (f" Their scoring took {finished['finished_score_wall_s'].mean():.0f} s of wall time on average "
                f"(tokenizing 2,398 texts, per-batch overhead and other jobs come on top of the forward passes the "
                f"estimate counts); at that rate scoring all {len(table)} models adds "
                f"{finished['finished_score_wall_s'].mean() * len(table) / 3600:.1f} hours."
                if finished["finished_score_wall_s"].notna().any() else "")
             + (f" Sum of the finished models' measured wall times: {finished['finished_wall_s'].sum() / 3600:.1f} h "
                f"training + {finished['finished_score_wall_s'].sum() / 3600:.1f} h scoring, one thread each (workers "
                "shared the two cores with each other and with other jobs, so this bounds their CPU time from above)."
                if not finished.empty else ""), "",
             "| model | arm | params | layers | d_model | tokens | CPU s / 1k tokens | est. CPU s | est. score CPU s "
             "| finished wall s | finished score wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in table.itertuples():
        done = "" if pd.isna(row.finished_wall_s) else f"{row.finished_wall_s:,.0f}"
        scored = "" if pd.isna(row.finished_score_wall_s) else f"{row.finished_score_wall_s:,.0f}"
        lines.append(f"| {row.model} | {row.arm} | {row.params:,} | {row.n_layers} | {row.d_model} | "
                     f"{row.train_tokens:,} | {row.cpu_s_per_1k_tokens:.3f} | {row.est_cpu_s:,.0f} | "
                     f"{row.est_score_cpu_s:,.0f} | {done} | {scored} |")
    return lines + [END]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed optimiser steps per shape")
    parser.add_argument("--write-readme", action="store_true", help="write the table into benchmarks/README.md")
    parser.add_argument("--smoke", action="store_true", help="seconds: the first two shapes, 1 step, no files written")
    parser.add_argument("--refresh", action="store_true",
                        help="reuse the measured rates in benchmarks/minipool_build.csv; only re-read finished models")
    args = parser.parse_args()
    if args.smoke:
        pool = train.load_pool_config(POOL)
        print("\n".join(readme_lines(measure({**pool, "models": pool["models"][:2]}, 1), 1)))
        return 0
    if args.refresh:
        table = refresh_finished(pd.read_csv(RATES))
    else:
        table = measure(train.load_pool_config(POOL), args.steps)
    atomic_write_text(RATES, table.to_csv(index=False, float_format="%.6g"))
    lines = readme_lines(table, args.steps, refreshed=args.refresh)
    print("\n".join(lines))
    if args.write_readme:
        write_section(lines, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
