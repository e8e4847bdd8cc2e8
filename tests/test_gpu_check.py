"""benchmarks/gpu_check.py runs end to end on CPU (--smoke), and every benchmark script has a --smoke mode for CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmlaw_utils.config import REPO_ROOT


def test_gpu_check_smoke_on_cpu_writes_a_passing_summary(tmp_path):
    # the device runs it as `PYTHONPATH=. python3 benchmarks/gpu_check.py`: same invocation, from the repository root
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OUT": str(tmp_path / "unused")}
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--smoke", "--out",
                           str(tmp_path)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    exact = results["exactness"]
    assert len(exact) == 5 and all(row["pass"] for row in exact)  # one size-0 model of each family
    # on one device the kernel and the batched path reproduce the CPU reference; bf16 deviates, but not wildly
    assert all(row["fp32_kernel_max_rel"] <= 1e-5 and 0 < row["bf16_max_rel"] < 0.1 for row in exact)
    speed = results["speed"]
    assert speed["tokens"] == 192 and speed["kernel_tokens_per_s"] > 0 and 0 < speed["kernel_mfu"]
    # the tiled kernel and the plain full-logits forward score the same windows of the same bf16 model
    assert speed["kernel_vs_plain_max_rel"] < 1e-2
    assert "| plain HF forward" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "unused").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_refuses_a_missing_cuda_device(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cuda", "--out", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "sees no CUDA device" in done.stderr


def test_every_benchmark_has_a_smoke_mode_that_ci_runs():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "for bench in benchmarks/bench_*.py" in ci and '"$bench" --smoke' in ci
    assert "gpu_check.py --device cpu --smoke" in ci and "gpu_travel.py --smoke" in ci
    assert '"bench_tiny_scoring.py --kernel-floor"' in ci
    scripts = sorted(Path(REPO_ROOT / "benchmarks").glob("bench_*.py"))
    assert scripts
    missing = [s.name for s in scripts if '"--smoke"' not in s.read_text()]
    assert not missing, f"benchmarks without a --smoke mode: {missing}"
