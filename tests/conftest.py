"""Shared pytest fixtures: tiny locally built models and tokenizers (see tests/tiny_models.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:  # the base install has no torch: the explorer and analysis tests run there (tests/test_explorer.py)
    import torch
except ImportError:
    torch = None
else:
    # Tiny models run fastest single-threaded, and on a shared machine OpenMP threads spinning
    # against other processes make multi-threaded forwards ~40x slower.
    torch.set_num_threads(1)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str):
    """A script of benchmarks/ (not a package) imported as a module, e.g. ``load_benchmark("gpu_travel")``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# (architecture, tokenizer kind) pairs covering GPT-2, Llama, GPT-NeoX, a Qwen2-style 32k tied
# vocabulary and Gemma2 softcapping, with BOS / EOS-only / post-processor-BOS tokenizers.
TINY_CASES = [("gpt2", "eos_only"), ("llama", "bos"), ("gpt_neox", "auto_bos"), ("qwen2", "bos"), ("gemma2", "auto_bos")]


@pytest.fixture(scope="session")
def tiny_tokenizers():
    """Dict kind -> trained tokenizer."""
    import tiny_models

    return {kind: tiny_models.build_tokenizer(kind) for kind in ("bos", "eos_only", "auto_bos")}


@pytest.fixture(scope="session")
def tiny_lms(tiny_tokenizers):
    """Dict (arch, tokenizer kind) -> (model, tokenizer) for every case in TINY_CASES."""
    import tiny_models

    return {
        (arch, kind): (tiny_models.build_model(arch, tiny_tokenizers[kind], seed=i), tiny_tokenizers[kind])
        for i, (arch, kind) in enumerate(TINY_CASES)
    }


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """Two saved tiny models (llama/BOS, gpt2/EOS-only) as local folders: dict name -> Path."""
    import tiny_models

    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "tiny-llama": tiny_models.save_tiny_model(root / "tiny-llama", "llama", "bos", seed=3, max_positions=64),
        "tiny-gpt2": tiny_models.save_tiny_model(root / "tiny-gpt2", "gpt2", "eos_only", seed=4, max_positions=64),
    }
