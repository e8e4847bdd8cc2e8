"""Score a whole pool on a cluster with submitit: one job per model, GPUs sized from its parameters.

    python -m mmlaw_utils launch --profile paper71 --executor slurm --partition gpu --account myproj
    python -m mmlaw_utils launch --profile minipool --executor local          # same, as local subprocesses

Each job runs ``mmlaw_utils.scoring.run.score_from_settings`` for one model (exactly what
``python -m mmlaw_utils score --profile P --model ID`` does), so a job that dies is simply
relaunched: it resumes from the model's last finished chunk, and models whose cache is
already complete and matching are skipped (``--all`` submits them anyway; ``--force``
rescores). Job logs go to ``--folder`` (default ``runs/submitit``).
"""

from __future__ import annotations

import math
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
