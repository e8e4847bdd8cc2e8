"""Can the miniature-pool build go faster on this CPU? CPU seconds per 1,000 training tokens of one miniature-pool shape in
fp32 (the recipe), under bf16 autocast (oneDNN, AMX where the CPU has it) and with ``torch.compile``.

    nice -n 5 .venv/bin/python benchmarks/bench_train_precision.py [--model llama-d112l7] [--steps 6] [--write-readme]

Each mode builds the model from the pool's recipe (configs/pools/minipool.yaml), runs 2 warm-up steps
(compilation included for ``compile``), then ``--steps`` AdamW steps on random tokens with the pool's batch
shape and thread count; the rate is process CPU time (user + system) per training token, so other jobs on
the shared machine inflate it little. Rates are compared within one run (fp32 is measured first and last).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmlaw_utils.minipool import recipe, train  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_minipool import write_section  # noqa: E402

POOL = REPO / "configs" / "pools" / "minipool.yaml"
START, END = "<!-- train-precision:start -->", "<!-- train-precision:end -->"
MODES = ("fp32", "bf16_autocast", "compile", "fp32")


def cpu_seconds_per_1k_tokens(pool: dict, name: str, mode: str, steps: int) -> float:
    """Process CPU seconds per 1,000 training tokens of pool model ``name`` in ``mode``."""
    entry = next(e for e in pool["models"] if train.model_name(e) == name)
    spec = pool["families"][train.base_family(entry)]
    settings = spec["training"]
    vocab = recipe.vocab_size_of(spec["tokenizer"])
    torch.set_num_threads(int(settings["threads"]))
    config = train.model_config(spec["architecture"], vocab, entry["d_model"], entry["n_layers"], entry["n_heads"],
                                int(settings["context"]), 0, 1, spec.get("tie_embeddings"))
    model = train.build_model(config, seed=0)
    runner = torch.compile(model) if mode == "compile" else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(0, vocab, (int(entry["train_batch_size"]), int(settings["context"]) + 1))
    for step in range(steps + 2):
        if step == 2:
            start = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16_autocast"):
            loss = train._loss(runner, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 1000 * (time.process_time() - start) / (steps * batch.shape[0] * (batch.shape[1] - 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-d112l7", help="a model name of the miniature pool")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="seconds: the smallest pool model, 1 step, no README")
    args = parser.parse_args()
    pool = train.load_pool_config(POOL)
    if args.smoke:
        args.model, args.steps, args.write_readme = train.model_name(pool["models"][0]), 1, False
    modes = [m for m in MODES if not (args.smoke and m == "compile")]  # compiling takes a minute, not seconds
    rates = [(mode, cpu_seconds_per_1k_tokens(pool, args.model, mode, args.steps)) for mode in modes]
    fp32 = sum(rate for mode, rate in rates if mode == "fp32") / 2
    load = os.getloadavg()[0]
    lines = [START, "## Training precision and compilation (miniature-pool build)", "",
             f"Command: `nice -n 5 .venv/bin/python benchmarks/bench_train_precision.py --model {args.model} "
             f"--steps {args.steps} --write-readme` (torch {torch.__version__}, 1 thread, the pool's batch; load "
             f"average {load:.1f}). fp32 is the recipe; a mode is worth switching the build to only if its rate is "
             "well below fp32's.", "",
             "| mode | CPU s / 1k training tokens | relative to fp32 |", "|---|---:|---:|"]
    lines += [f"| {mode} | {rate:.4f} | {rate / fp32:.2f} |" for mode, rate in rates]
    first, last = (rate for mode, rate in rates if mode == "fp32")
    lines += ["", f"The two fp32 runs differ by {abs(first - last) / fp32:.0%} of their mean: on this shared machine a "
              "mode closer to fp32 than that is not measurably faster.", END]
    print("\n".join(lines))
    if args.write_readme:
        write_section(lines, START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
