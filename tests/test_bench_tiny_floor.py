"""The kernel-floor mode of benchmarks/bench_tiny_scoring.py: its window accounting, the weight products it times,
the rescoring run it reads back, and the pooled floor share, each against a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_tiny_scoring")


def test_padded_tokens_counts_the_packed_windows_by_hand(bench):
    # 10 tokens: one window (0, 10). 300 tokens, 256 / 64: (0, 256) then (44, 256), stride 193.
    # Longest first at 512 tokens per forward: [256, 256] then [10] -> 512 + 10 padded tokens.
    assert bench.padded_tokens(np.array([10, 300]), 256, 64, 512) == 522
    # 400 tokens: (0, 256) and (144, 256); with 30 tokens (0, 30): one forward [256, 256], then [30]
    assert bench.padded_tokens(np.array([400, 30]), 256, 64, 512) == 542
    # a 30-token window beside a 256-token one would be mostly padding: packed apart even at a large budget
    assert bench.padded_tokens(np.array([300, 30]), 256, 64, 4096) == 512 + 30


@pytest.mark.parametrize("architecture, per_layer", [("gpt2", 4), ("llama", 7)])
def test_weight_products_find_every_linear_and_conv1d(bench, architecture, per_layer):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if architecture == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=3, n_head=2, n_positions=32))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=3,
                                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    products = bench.weight_products(model)
    assert len(products) == 3 * per_layer  # the head is timed apart, on the scored positions only
    for module, n_in in products:
        assert module(torch.randn(5, n_in)).shape[0] == 5
    assert bench.attention_shape(model) == (3, 2, 8)


def test_committed_rescore_reads_the_block_only_for_the_same_models(bench, tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("\n".join([
        "intro", bench.RESCORE_START, "| models rescored | ... |", "|---:|",
        r"| 3 of the pool's 9 (those with weights on disk, name matching `a\|b`) | main 3 | 10 | 99 | 125 s (2.1 min) |",
        bench.RESCORE_END, ""]), encoding="utf-8")
    monkeypatch.setattr(bench, "README", readme)
    assert bench.committed_rescore("a|b") == {"wall_s": 125.0, "n_models": 3}
    assert bench.committed_rescore("a|c") is None


def test_floor_summary_weights_each_model_by_its_padded_tokens(bench):
    def row(forward, weights, attention, padded):
        return {"seconds": {"forward": forward, "weights": weights, "attention": attention}, "batch": (2, 5),
                "padded_tokens": padded}

    # per padded token: model 1 forward 0.1, floor 0.05; model 2 forward 0.2, floor 0.18
    result = {"rows": [row(1.0, 0.3, 0.2, 100), row(2.0, 1.0, 0.8, 50)], "reference": {"wall_s": 60.0, "n_models": 2}}
    summary = bench.floor_summary(result)
    assert summary["forward_s"] == pytest.approx(0.1 * 100 + 0.2 * 50)
    assert summary["floor_s"] == pytest.approx(0.05 * 100 + 0.18 * 50)
    assert summary["share"] == pytest.approx(14 / 20)
    assert summary["projected_floor_s"] == pytest.approx(60.0 * 14 / 20)
    # a rescoring run of another number of models is not projected
    result["reference"] = {"wall_s": 60.0, "n_models": 56}
    assert bench.floor_summary(result)["projected_floor_s"] is None
    assert not math.isnan(bench.floor_summary(result)["share"])
