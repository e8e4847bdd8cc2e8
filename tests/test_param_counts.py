"""P of a model whose tied output head is stored as a separate copy (GGUF files store ``output.weight``)."""

from __future__ import annotations

import math

import pytest
import torch

import tiny_models
from mmlaw_utils.scoring import models


def _untied_copy(tied, folder, head_weight):
    """Save ``tied``'s weights as an untied model whose lm_head is ``head_weight``; reload it from disk."""
    from transformers import AutoModelForCausalLM

    config = tied.config.__class__.from_dict({**tied.config.to_dict(), "tie_word_embeddings": False})
    untied = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {k: v for k, v in tied.state_dict().items() if k != "lm_head.weight"}
    untied.load_state_dict({**state, "lm_head.weight": head_weight.clone()}, strict=True)
    untied.save_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tied_qwen():
    tokenizer = tiny_models.build_tokenizer("bos")
    return tiny_models.build_model("qwen2", tokenizer, seed=5)


def test_head_saved_as_a_copy_of_the_embedding_is_counted_once(tied_qwen, tmp_path):
    tied_counts = models.count_parameters(tied_qwen)
    embedding = tied_qwen.get_input_embeddings().weight
    assert tied_qwen.get_output_embeddings().weight is embedding and tied_counts["head_tied"] is True
    vocab, hidden = embedding.shape
    # hand count of the tiny Qwen2 (hidden 32, 2 layers, 4 heads of 8, 2 kv heads, mlp 64, qkv biases)
    per_layer = (32 * 32 + 32) + 2 * (32 * 16 + 16) + 32 * 32 + 3 * 32 * 64 + 2 * 32
    assert tied_counts["params_total"] == vocab * hidden + 2 * per_layer + 32

    untied = _untied_copy(tied_qwen, tmp_path / "untied", embedding.detach())
    assert untied.get_output_embeddings().weight is not untied.get_input_embeddings().weight
    counts = models.count_parameters(untied)
    assert counts == {**tied_counts, "params_stored": tied_counts["params_total"] + vocab * hidden}


def test_quantisation_sized_head_differences_still_count_once_but_an_independent_head_twice(tied_qwen, tmp_path):
    embedding = tied_qwen.get_input_embeddings().weight.detach()
    torch.manual_seed(0)
    # a head re-quantised at another precision: ~5% relative error (Q4_K vs Q6_K is of that order)
    requantised = embedding + 0.05 * embedding.std() * torch.randn_like(embedding)
    counts = models.count_parameters(_untied_copy(tied_qwen, tmp_path / "requantised", requantised))
    assert counts["head_tied"] is True and counts["params_stored"] - counts["params_total"] == embedding.numel()

    independent = embedding.std() * torch.randn_like(embedding)
    counts = models.count_parameters(_untied_copy(tied_qwen, tmp_path / "independent", independent))
    assert counts["head_tied"] is False and counts["params_total"] == counts["params_stored"]


def test_relative_difference_hand_computed():
    a = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    assert models.relative_difference(a, b, rows_per_block=1) == pytest.approx(3 / 4)
    assert models.relative_difference(b, b) == 0.0
    assert models.relative_difference(a, torch.zeros(2, 2)) == math.inf
    with pytest.raises(ValueError, match="equal shapes"):
        models.relative_difference(a, torch.zeros(3, 2))
