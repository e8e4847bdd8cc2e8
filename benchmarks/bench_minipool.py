"""Miniature-pool build cost: a from-scratch build of the whole pool, timed, plus a live tokens/s
measurement of each family's smallest and largest configuration.

    nice -n 5 .venv/bin/python benchmarks/bench_minipool.py --full-build /tmp/minipool-bench [--threads 1] [--write-readme]
    nice -n 5 .venv/bin/python benchmarks/bench_minipool.py --score-all /tmp/minipool-scores [--write-readme]

``--full-build DIR`` trains every model of configs/pools/minipool.yaml from nothing into DIR (mixtures,
decontamination, tokenizers, 30 models; the same code path as ``python -m mmlaw_utils minipool build``), reports
the wall time per family and in total, and checks that every model's weights equal those in
models/minipool/ where those exist (the build is deterministic). Without it, the per-model times
recorded in data/minipool/models_table.csv are summarised instead. The live part trains ``--steps``
optimiser steps (after 2 warm-up steps) of random-init models with the pool's batch shape.
``--score-all DIR`` instead scores every trained model (models/minipool/) in one process, timed, and
compares each cache with the committed one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmlaw_utils.io import sha256_file, write_marked_region  # noqa: E402
from mmlaw_utils.minipool import train  # noqa: E402

POOL = REPO / "configs" / "pools" / "minipool.yaml"
TABLE = REPO / "data" / "minipool" / "models_table.csv"
README = REPO / "benchmarks" / "README.md"
START, END = "<!-- minipool:start -->", "<!-- minipool:end -->"
START_SCORING, END_SCORING = "<!-- minipool-scoring:start -->", "<!-- minipool-scoring:end -->"


def live_tokens_per_s(pool: dict, entry: dict, steps: int) -> float:
    """Training tokens/s of one pool entry (random tokens, the pool's batch and context)."""
    spec = pool["families"][entry["family"]]
    tok = spec["tokenizer"]
    vocab = tok.get("vocab_size") or 257
    settings = spec["training"]
    config = train.model_config(spec["architecture"], vocab, entry["d_model"], entry["n_layers"], entry["n_heads"],
                                settings["context"], 0, 0)
    model = train.build_model(config, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, vocab, (settings["batch_size"], settings["context"] + 1))
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        loss = train._loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * settings["batch_size"] * settings["context"] / (time.perf_counter() - start)


def full_build(folder: Path, threads: int) -> tuple[float, int, int, Path]:
    """Train the pool from scratch into ``folder``; (wall seconds, models with identical weights, compared, table)."""
    import shutil

    import yaml

    if folder.exists():
        shutil.rmtree(folder)
    pool = yaml.safe_load(POOL.read_text())
    for entry in pool["models"]:
        entry["id"] = str(folder / "models" / Path(entry["id"]).name)
    pool["log_dir"] = str(folder / "train_logs")
    folder.mkdir(parents=True)
    pool_path = folder / "pool.yaml"
    pool_path.write_text(yaml.safe_dump(pool, sort_keys=False))
    start = time.perf_counter()
    train.build_pool(pool_path, threads=threads)
    wall = time.perf_counter() - start
    same = compared = 0
    for entry in pool["models"]:
        reference = REPO / "models" / "minipool" / Path(entry["id"]).name / "model.safetensors"
        if reference.is_file():
            compared += 1
            digest = [sha256_file(p) for p in (reference, Path(entry["id"]) / "model.safetensors")]
            same += digest[0] == digest[1]
    return wall, same, compared, folder / "models_table.csv"


def score_all(folder: Path, threads: int) -> list[str]:
    """Score every trained pool model into ``folder`` (one process, the profile's settings), timed, and
    compare each cache with the committed one; returns the README section lines."""
    import shutil

    from mmlaw_utils.scoring import cache, run
    from mmlaw_utils.config import load_profile

    shutil.rmtree(folder, ignore_errors=True)
    profile = load_profile("minipool")
    pool = train.load_pool_config(POOL)
    rows, total = [], 0.0
    for entry in pool["models"]:
        if not (REPO / entry["id"] / "config.json").is_file():
            continue
        settings = profile.scoring
        request = run.request_from_settings(
            None, str(entry["id"]), dataset=profile.dataset, cache_dir=folder, max_length=settings.get("max_length"),
            context_tokens=settings.get("context_tokens"), batch_tokens=settings.get("batch_tokens"),
            device=settings.get("device"), dtype=settings.get("dtype"))
        start = time.perf_counter()
        run = run.score_model(request, progress=False)
        seconds = time.perf_counter() - start
        total += seconds
        committed, _ = cache.read_cache(profile.cache_dir / run.path.name)
        diff = float((run.results["nll"].to_numpy() - committed["nll"].to_numpy()).__abs__().max())
        rows.append(f"| {Path(entry['id']).name} | {int(run.results['n_tokens'].sum()):,} | {seconds:.1f} | {diff:.2g} |")
    return ([START_SCORING, "## Miniature pool scoring", "",
             f"Command: `nice -n 5 .venv/bin/python benchmarks/bench_minipool.py --threads {threads} --score-all {folder} "
             f"--write-readme` (load average {os.getloadavg()[0]:.1f} at start, {threads} thread(s)): every model of the "
             f"pool scored on the 1,186 held-out texts in one process with the `minipool` profile's settings: "
             f"**{total:.0f} s ({total / 60:.1f} min)** for {len(rows)} models; max |NLL − committed cache| per model "
             "(nats per text) in the last column.", "",
             "| model | tokens scored | seconds | max abs diff |", "|---|---:|---:|---:|", *rows, END_SCORING])


def write_section(lines: list[str], start: str, end: str) -> None:
    """Replace (or append) the README section between ``start`` and ``end``, atomically."""
    body = [line for line in lines if line not in (start, end)]
    write_marked_region(README, "\n".join(body), start, end, append_if_missing=True, new_file_text="# Benchmarks\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--full-build", metavar="DIR", help="train the whole pool from scratch into DIR, timed")
    parser.add_argument("--score-all", metavar="DIR", help="only: score every trained model into DIR, timed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.score_all:
        lines = score_all(Path(args.score_all), args.threads)
        print("\n".join(lines))
        if args.write_readme:
            write_section(lines, START_SCORING, END_SCORING)
        return 0
    pool = train.load_pool_config(POOL)
    load = os.getloadavg()[0]
    lines = [START, "## Miniature pool build", "",
             f"Command: `nice -n 5 .venv/bin/python benchmarks/bench_minipool.py --steps {args.steps} "
             f"--threads {args.threads}{f' --full-build {args.full_build}' if args.full_build else ''}"
             f"{' --write-readme' if args.write_readme else ''}` "
             f"({platform.machine()}, {os.cpu_count()} cores visible, load average {load:.1f} at start, "
             f"torch {torch.__version__}, {args.threads} thread(s)). The machine is shared, so times are upper bounds.", ""]
    table_path, source = TABLE, "per-model training times recorded in data/minipool/models_table.csv"
    if args.full_build:
        wall, same, compared, table_path = full_build(Path(args.full_build), args.threads)
        source = (f"a from-scratch build into `{args.full_build}`: **{wall:.0f} s wall ({wall / 60:.1f} min)** for the "
                  f"whole pool including mixtures, decontamination and tokenizers; weights identical to "
                  f"models/minipool/ for {same} of {compared} models compared")
    if table_path.is_file():
        table = pd.read_csv(table_path)
        lines += [f"Training (`python -m mmlaw_utils minipool build --pool configs/pools/minipool.yaml`), from {source}:", "",
                  "| family | models | params (min-max) | tokens/model | train time (s) | tokens/s (smallest, largest) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for family, group in table.groupby("family", sort=False):
            group = group.sort_values("params")
            rate = group["tokens_trained"] / group["train_seconds"]
            lines.append(f"| {family} | {len(group)} | {group['params'].min():,}-{group['params'].max():,} | "
                         f"{group['tokens_trained'].min():,}-{group['tokens_trained'].max():,} | "
                         f"{group['train_seconds'].sum():.0f} | {rate.iloc[0]:,.0f}, {rate.iloc[-1]:,.0f} |")
        lines += [f"| **all** | {len(table)} | | {table['tokens_trained'].sum():,} (total) | "
                  f"**{table['train_seconds'].sum():.0f}** ({table['train_seconds'].sum() / 60:.1f} min) | |", ""]
    lines += [f"Live training throughput ({args.steps} steps after 2 warm-up steps, random tokens):", "",
              "| model | params | tokens/s |", "|---|---:|---:|"]
    models = pd.DataFrame(pool["models"])
    for family, group in models.groupby("family", sort=False):
        for entry in (group.sort_values("params_b").iloc[0], group.sort_values("params_b").iloc[-1]):
            rate = live_tokens_per_s(pool, entry.to_dict(), args.steps)
            lines.append(f"| {Path(entry['id']).name} | {round(entry['params_b'] * 1e9):,} | {rate:,.0f} |")
    lines.append(END)
    section = "\n".join(lines)
    print(section)
    if args.write_readme:
        write_section(lines, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
