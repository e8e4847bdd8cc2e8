"""Score a whole pool on a cluster with submitit: one job per model, GPUs sized from its parameters.

    python -m mmlaw_utils.scoring.launch --profile paper71 --executor slurm --partition gpu --account myproj
    python -m mmlaw_utils.scoring.launch --profile minipool --executor local          # same, as local subprocesses

Each job runs ``mmlaw_utils.scoring.run.score_from_settings`` for one model (exactly what
``python -m mmlaw_utils.scoring.run --profile P --model ID`` does), so a job that dies is simply
relaunched: it resumes from the model's last finished chunk, and models whose cache is
already complete and matching are skipped (``--all`` submits them anyway; ``--force``
rescores). Job logs go to ``--folder`` (default ``runs/submitit``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmlaw_utils.config import REPO_ROOT

BYTES_PER_PARAM = {"auto": 2, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 4, "fp32": 4}


def gpus_for_params(params: float, dtype: str = "auto", gpu_memory_gb: float = 80.0, overhead: float = 1.2) -> int:
    """GPUs one model needs: weight bytes (bf16 = 2 per parameter) x overhead over one GPU's memory, at least 1."""
    per_param = BYTES_PER_PARAM.get(str(dtype).lower(), 2)
    return max(1, math.ceil(float(params) * per_param * overhead / (gpu_memory_gb * 1e9)))


def score_job(settings: dict[str, Any]) -> dict[str, Any]:
    """Body of one job: score one model (settings as for score_from_settings) and return its summary row."""
    from mmlaw_utils.scoring.run import score_from_settings, summarize_run

    run = score_from_settings(progress=True, **settings)
    return summarize_run(run).iloc[0].to_dict()


def job_plan(pool: pd.DataFrame, settings: dict[str, Any], *, use_gpus: bool, dtype: str = "auto",
             gpu_memory_gb: float = 80.0) -> pd.DataFrame:
    """One row per model: ``model``, ``gpus`` (0 without GPUs) and the job's score settings."""
    rows = []
    for record in pool.to_dict("records"):
        params = record.get("params_nominal") or 0
        gpus = gpus_for_params(params, dtype, gpu_memory_gb) if use_gpus else 0
        job_settings = {**settings, "model": str(record["model"])}
        revision = record.get("revision")
        if revision is not None and not pd.isna(revision):
            job_settings.setdefault("revision", str(revision))
        rows.append({"model": str(record["model"]), "params_nominal": params, "gpus": gpus, "settings": job_settings})
    return pd.DataFrame(rows, columns=["model", "params_nominal", "gpus", "settings"])


def submit(plan: pd.DataFrame, *, executor: str = "local", folder: str | Path = REPO_ROOT / "runs" / "submitit",
           timeout_min: int = 240, cpus_per_task: int = 8, mem_gb_per_gpu: float = 64.0,
           slurm_partition: str | None = None, slurm_account: str | None = None,
           slurm_extra: dict[str, Any] | None = None) -> list:
    """Submit one submitit job per plan row (``executor`` "slurm" or "local"); return the jobs."""
    import submitit

    if executor not in ("slurm", "local"):
        raise ValueError(f"unknown executor {executor!r}; use slurm or local")
    runner = submitit.AutoExecutor(folder=str(folder), cluster=executor)
    jobs = []
    for row in plan.itertuples(index=False):
        parameters: dict[str, Any] = {
            "name": f"mmlaw-score-{Path(row.model).name}"[:60],
            "timeout_min": timeout_min,
            "gpus_per_node": int(row.gpus),
            "cpus_per_task": cpus_per_task,
            "nodes": 1,
            "tasks_per_node": 1,
        }
        if executor == "slurm":
            parameters["mem_gb"] = max(16.0, mem_gb_per_gpu * max(1, int(row.gpus)))
            if slurm_partition:
                parameters["slurm_partition"] = slurm_partition
            if slurm_account:
                parameters["slurm_account"] = slurm_account
            if slurm_extra:
                parameters["slurm_additional_parameters"] = slurm_extra
        runner.update_parameters(**parameters)
        jobs.append(runner.submit(score_job, row.settings))
    return jobs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmlaw_utils.scoring.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", required=True, help="configs/profiles/<NAME>.yaml (pool, texts, cache dir, settings)")
    parser.add_argument("--executor", choices=["slurm", "local"], default="slurm")
    parser.add_argument("--models", nargs="*", help="only these pool ids (default: the whole pool)")
    parser.add_argument("--all", action="store_true", help="submit every model, not only those with a missing/stale cache")
    parser.add_argument("--force", action="store_true", help="rescore even when a matching cache exists")
    parser.add_argument("--folder", default=str(REPO_ROOT / "runs" / "submitit"), help="submitit logs and pickles")
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--account", help="SLURM account")
    parser.add_argument("--timeout-min", type=int, default=240)
    parser.add_argument("--cpus-per-task", type=int, default=8)
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0, help="memory of one GPU (sizes GPUs per job)")
    parser.add_argument("--max-gpus-per-node", type=int, default=8, help="models needing more GPUs are skipped")
    parser.add_argument("--mem-gb-per-gpu", type=float, default=64.0, help="host memory per GPU requested from SLURM")
    parser.add_argument("--threads", type=int, help="torch CPU threads per job (local executor: default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the job plan, submit nothing")
    parser.add_argument("--wait", action="store_true", help="wait for the jobs and print their summaries")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    from mmlaw_utils.config import load_profile
    from mmlaw_utils.scoring.run import _pool_models, stale_models

    args = _parser().parse_args(argv)
    profile = load_profile(args.profile)
    if profile.pool is None:
        print(f"mmlaw_utils.scoring.launch: error: profile {args.profile!r} has no pool", file=sys.stderr)
        return 1
    pool = _pool_models(profile.pool)
    if args.models:
        unknown = sorted(set(args.models) - set(pool["model"]))
        if unknown:
            print(f"mmlaw_utils.scoring.launch: error: not in the pool of {args.profile!r}: {unknown}", file=sys.stderr)
            return 1
        pool = pool[pool["model"].isin(args.models)]
    if not (args.all or args.force):
        pool = pool[pool["model"].isin(stale_models(args.profile))]
    threads = args.threads if args.threads else (1 if args.executor == "local" else None)
    settings = {"profile": args.profile, "force": args.force, "threads": threads}
    plan = job_plan(pool, settings, use_gpus=args.executor == "slurm", dtype=str(profile.scoring.get("dtype", "auto")),
                    gpu_memory_gb=args.gpu_memory_gb)
    print(plan[["model", "params_nominal", "gpus"]].to_string(index=False))
    too_big = plan[plan["gpus"] > args.max_gpus_per_node]
    for row in too_big.itertuples(index=False):
        # device_map="auto" shards within one node only
        print(f"mmlaw_utils.scoring.launch: skipping {row.model}: needs {row.gpus} GPUs of {args.gpu_memory_gb:g} GB, more than "
              f"one node's {args.max_gpus_per_node}; use larger GPUs (--gpu-memory-gb) or score it by hand", file=sys.stderr)
    plan = plan[plan["gpus"] <= args.max_gpus_per_node].reset_index(drop=True)
    if args.dry_run or plan.empty:
        return 0
    jobs = submit(plan, executor=args.executor, folder=args.folder, timeout_min=args.timeout_min,
                  cpus_per_task=args.cpus_per_task, mem_gb_per_gpu=args.mem_gb_per_gpu,
                  slurm_partition=args.partition, slurm_account=args.account)
    for model, job in zip(plan["model"], jobs):
        print(f"submitted {model}: job {job.job_id}")
    if args.wait:
        failed = 0
        for model, job in zip(plan["model"], jobs):
            try:
                print(pd.Series(job.result()).to_string())
            except Exception as error:  # a failed job: report it, keep collecting the others
                failed += 1
                print(f"job for {model} failed: {error}", file=sys.stderr)
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
