"""Eq. (1) kernel against independent references: plain unbatched float64 forwards, lm-eval's windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tiny_models
from conftest import TINY_CASES
from mmlaw_utils.scoring import kernel, models


def reference_nll(model, tokens: list[int], prefix: int) -> float:
    """One unbatched forward over [prefix] + tokens, float64 log-softmax, summed NLL in nats."""
    ids = torch.tensor([[prefix] + tokens[:-1]])
    with torch.no_grad():
        logprobs = model(input_ids=ids).logits[0].double().log_softmax(-1)
    return float(-logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].sum())


def windowed_reference_nll(model, tokens: list[int], prefix: int, windows: np.ndarray) -> float:
    """Sum over windows of separate unbatched float64 forwards, scoring each window's last n tokens."""
    seq = [prefix] + tokens
    total = 0.0
    for start, length, n_scored in windows:
        ids = torch.tensor([seq[start : start + length]])
        with torch.no_grad():
            logprobs = model(input_ids=ids).logits[0].double().log_softmax(-1)
        targets = torch.tensor(seq[start + 1 : start + length + 1])
        per_token = logprobs[torch.arange(length), targets]
        total -= float(per_token[length - n_scored :].sum())
    return total


# ------------------------------------------------------------------ pure window logic
def test_windows_match_lm_eval_gold_case():
    # lm-evaluation-harness test_get_rolling_token_windows_v1: 34 tokens, max_seq_len 10, context_len 1;
    # its inputs [-100,0..8], [9..18], [19..28], [23..32] are sequence positions 0, 10, 20, 24 here
    windows = kernel.rolling_windows(34, 10, context_tokens=1)
    assert windows.tolist() == [[0, 10, 10], [10, 10, 10], [20, 10, 10], [24, 10, 4]]


def test_windows_default_policy_hand_computed():
    # L=8, default context 4 -> stride 5: targets 1-8, 9-13 (inputs 5-12), 14-18 (10-17), 19-20 (12-19)
    windows = kernel.rolling_windows(20, 8)
    assert windows.tolist() == [[0, 8, 8], [5, 8, 5], [10, 8, 5], [12, 8, 2]]


def test_text_that_fits_is_one_window():
    assert kernel.rolling_windows(7, 8).tolist() == [[0, 7, 7]]
    assert kernel.rolling_windows(8, 8).tolist() == [[0, 8, 8]]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 400), length=st.integers(1, 64), data=st.data())
def test_windows_score_every_token_once_with_enough_context(n, length, data):
    context = data.draw(st.integers(1, length))
    windows = kernel.rolling_windows(n, length, context)
    scored = []
    for i, (start, width, n_scored) in enumerate(windows):
        assert 1 <= width <= length and 1 <= n_scored <= width and start >= 0
        assert start + width <= n  # the last input predicts a real token
        targets = list(range(start + width - n_scored + 1, start + width + 1))
        if i > 0:  # each new token conditions on >= context tokens (capped by what exists)
            assert targets[0] - start >= min(context, targets[0])
        scored += targets
    assert scored == list(range(1, n + 1))


def test_window_argument_errors():
    with pytest.raises(ValueError, match="context_tokens"):
        kernel.rolling_windows(10, 8, context_tokens=9)
    with pytest.raises(ValueError, match="context_tokens"):
        kernel.rolling_windows(10, 8, context_tokens=0)


def test_pack_batches_respects_budget_and_covers_all():
    lengths = np.array([5, 17, 3, 17, 9, 40, 1, 8])
    batches = kernel.pack_batches(lengths, batch_tokens=34)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 34
    assert batches[0].tolist() == [5]  # 40 tokens exceeds the budget: alone
    # hand-packed: [40] | [17, 17] (34 <= 34) | [9, 8] (18 <= 1.1*17) | [5] (3*9 > 34) ...
    assert [b.tolist() for b in batches] == [[5], [1, 3], [4, 7], [0], [2], [6]]
    loose = kernel.pack_batches(lengths, batch_tokens=34, max_padding=10.0)
    assert [b.tolist() for b in loose] == [[5], [1, 3], [4, 7, 0], [2, 6]]


# ------------------------------------------------------------------ prefix and tokens
def test_prefix_policy(tiny_tokenizers):
    assert models.prefix_token(tiny_tokenizers["bos"])[0] == tiny_tokenizers["bos"].bos_token_id
    assert models.prefix_token(tiny_tokenizers["eos_only"])[0] == tiny_tokenizers["eos_only"].eos_token_id
    assert models.prefix_token(tiny_tokenizers["eos_only"])[1].startswith("eos:")


def test_auto_bos_tokenizer_gets_no_second_bos(tiny_tokenizers):
    tokenizer = tiny_tokenizers["auto_bos"]
    text = "The river city was ancient."
    with_specials = tokenizer(text)["input_ids"]
    assert with_specials[0] == tokenizer.bos_token_id  # the post-processor adds BOS by itself
    (tokens,) = kernel.tokenize_texts(tokenizer, [text])
    assert tokens.tolist() == with_specials[1:]
    assert tokenizer.bos_token_id not in tokens.tolist()


# ------------------------------------------------------------------ kernel vs reference
@pytest.mark.parametrize("case", TINY_CASES, ids=["-".join(c) for c in TINY_CASES])
def test_matches_unbatched_float64_reference(tiny_lms, case):
    model, tokenizer = tiny_lms[case]
    texts = tiny_models.sample_texts(6, seed=11)
    result = kernel.score_texts(model, tokenizer, texts, batch_tokens=300)
    prefix = models.prefix_token(tokenizer)[0]
    for text, (_, row) in zip(texts, result.iterrows()):
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        if case[1] == "auto_bos":
            assert tokenizer(text)["input_ids"] == [prefix] + tokens
        assert row["n_tokens"] == len(tokens)
        assert row["n_bytes"] == len(text.encode("utf-8"))
        assert row["nll"] == pytest.approx(reference_nll(model, tokens, prefix), rel=1e-5)
    assert result["nll"].dtype == np.float64
    assert list(result.columns) == ["nll", "n_tokens", "n_bytes"]


def test_rolling_windows_fit_equals_full_and_long_texts_use_windows(tiny_lms):
    model, tokenizer = tiny_lms[("llama", "bos")]
    texts = tiny_models.sample_texts(4, seed=5, min_sentences=4, max_sentences=6)
    prefix = models.prefix_token(tokenizer)[0]
    tokens = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    longest = max(len(t) for t in tokens)
    fits = kernel.score_texts(model, tokenizer, texts, max_length=longest, batch_tokens=4 * longest)
    for row, toks in zip(fits["nll"], tokens):
        assert row == pytest.approx(reference_nll(model, toks, prefix), rel=1e-5)
    for context in (None, 1, 16):
        rolled = kernel.score_texts(model, tokenizer, texts, max_length=24, context_tokens=context, batch_tokens=100)
        for row, n, toks in zip(rolled["nll"], rolled["n_tokens"], tokens):
            windows = kernel.rolling_windows(len(toks), 24, context)
            assert len(windows) > 1 and n == len(toks)
            assert row == pytest.approx(windowed_reference_nll(model, toks, prefix, windows), rel=1e-5)
        # less context cannot be what the full-context run computed
        assert not np.allclose(rolled["nll"], fits["nll"], rtol=1e-3)


def test_chunked_head_over_large_vocab(tiny_lms, monkeypatch):
    model, tokenizer = tiny_lms[("qwen2", "bos")]
    assert model.get_output_embeddings().weight.shape[0] == 32768
    texts = tiny_models.sample_texts(3, seed=8)
    whole = kernel.score_texts(model, tokenizer, texts)
    monkeypatch.setattr(kernel, "_LOGITS_TILE_BYTES", 4 * 1000 * 7)
    monkeypatch.setattr(kernel, "_MIN_VOCAB_TILE", 1000)
    assert kernel._tile_shape(100, 32768, True) == (7, 1000)  # 7 positions x 33 vocabulary tiles
    chunked = kernel.score_texts(model, tokenizer, texts)
    np.testing.assert_allclose(chunked["nll"], whole["nll"], rtol=1e-6)


def test_batch_invariance_and_input_order(tiny_lms):
    model, tokenizer = tiny_lms[("gpt_neox", "auto_bos")]
    texts = tiny_models.sample_texts(12, seed=21)
    ids = [f"t{i}" for i in range(len(texts))]
    base = kernel.score_texts(model, tokenizer, texts, text_ids=ids, batch_tokens=1)  # one window per forward
    packed = kernel.score_texts(model, tokenizer, texts, text_ids=ids, batch_tokens=2000, max_length=40)
    permutation = np.random.default_rng(0).permutation(len(texts))
    shuffled = kernel.score_texts(
        model, tokenizer, [texts[i] for i in permutation], text_ids=[ids[i] for i in permutation], batch_tokens=500
    )
    assert list(base.index) == ids and list(shuffled.index) == [ids[i] for i in permutation]
    np.testing.assert_allclose(shuffled.loc[ids, "nll"], base["nll"], rtol=1e-4)
    rolled_single = kernel.score_texts(model, tokenizer, texts, text_ids=ids, batch_tokens=1, max_length=40)
    np.testing.assert_allclose(packed["nll"], rolled_single["nll"], rtol=1e-4)


def test_gemma_softcapping_is_applied(tiny_lms):
    model, tokenizer = tiny_lms[("gemma2", "auto_bos")]
    settings_ = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer))
    assert settings_.head_mode == "chunked"
    head = kernel._output_head(model)
    assert head.softcap == pytest.approx(3.0)


def test_non_finite_loss_names_model_and_texts(tiny_tokenizers):
    tokenizer = tiny_tokenizers["bos"]
    model = tiny_models.build_model("llama", tokenizer, seed=9)
    model.name_or_path = "broken-llama"
    texts = ["The river.", "A city of music and museum."]
    only_in_b = set(tokenizer(texts[1], add_special_tokens=False)["input_ids"]) - set(
        tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    )
    with torch.no_grad():  # a NaN embedding poisons every later position of text 'b' only
        model.get_input_embeddings().weight[sorted(only_in_b)[0]] = float("nan")
    with pytest.raises(FloatingPointError, match=r"broken-llama.*'b'") as error:
        kernel.score_texts(model, tokenizer, texts, text_ids=["a", "b"])
    assert "'a'" not in str(error.value)


# ------------------------------------------------------------------ parameter counts
def test_count_parameters_hand_computed(tiny_lms):
    model, _ = tiny_lms[("gpt2", "eos_only")]  # tied head, learned positions
    h, v, p, layers = 32, 400, 256, 2
    per_layer = 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + 2 * h + (h * 4 * h + 4 * h) + (4 * h * h + h)
    total = v * h + p * h + layers * per_layer + 2 * h
    assert models.count_parameters(model) == {
        "params_total": total, "params_nonembed": total - v * h - p * h, "head_tied": True, "params_stored": total
    }
    llama, _ = tiny_lms[("llama", "bos")]  # untied head
    counts = models.count_parameters(llama)
    assert counts["params_total"] == sum(p.numel() for p in llama.parameters())
    assert counts["params_total"] - counts["params_nonembed"] == 2 * 400 * 32
    assert counts["head_tied"] is False


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("texts", "ids", "error", "match"),
    [
        (["fine", ""], None, ValueError, "text '1' is empty"),
        (["fine", "   "], ["x", "y"], ValueError, "text 'y' is empty"),
        (["fine", 3], ["x", "y"], TypeError, "text 'y' is int"),
        (["a b", "c d"], ["x", "x"], ValueError, r"duplicate text id\(s\) \['x'\]"),
    ],
)
def test_bad_texts_are_clear_errors(tiny_lms, texts, ids, error, match):
    model, tokenizer = tiny_lms[("llama", "bos")]
    with pytest.raises(error, match=match):
        kernel.score_texts(model, tokenizer, texts, text_ids=ids)


def test_load_errors(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        models.load_model_and_tokenizer(str(missing))
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        models.resolve_dtype("float8", "cpu")
    assert models.resolve_dtype("auto", "cpu") == torch.float32
    assert models.resolve_dtype("bf16", "cpu") == torch.bfloat16


def test_load_local_model_round_trip(tiny_model_dirs):
    model, tokenizer = models.load_model_and_tokenizer(tiny_model_dirs["tiny-gpt2"], device="cpu", dtype="float32")
    assert model.dtype == torch.float32 and not model.training
    assert tokenizer.bos_token_id is None
    result = kernel.score_texts(model, tokenizer, ["The museum of the river."])
    tokens = tokenizer("The museum of the river.", add_special_tokens=False)["input_ids"]
    assert result["nll"].iloc[0] == pytest.approx(reference_nll(model, tokens, tokenizer.eos_token_id), rel=1e-5)
    with pytest.raises(ValueError, match="unknown dtype"):
        models.load_model_and_tokenizer(tiny_model_dirs["tiny-gpt2"], dtype="int3")


# ------------------------------------------------------------------ tiled head details
@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16])
def test_tiled_head_with_bias_scale_softcap_equals_full_log_softmax(monkeypatch, weight_dtype):
    """Ragged position and vocabulary tiles written into the reused buffer give the full-matrix log-softmax."""
    generator = torch.Generator().manual_seed(3)
    linear = torch.nn.Linear(24, 1003, bias=True)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(1003, 24, generator=generator))
        linear.bias.copy_(torch.randn(1003, generator=generator))
    linear = linear.to(weight_dtype)
    head = kernel._Head(linear=linear, softcap=7.0, scale=0.5)
    hidden = torch.randn(37, 24, generator=generator).to(weight_dtype)
    targets = torch.randint(0, 1003, (37,), generator=generator)
    targets[:3] = torch.tensor([0, 1002, 500])  # first and last vocabulary entries, ragged last tile
    # reference: the whole logits matrix at once, postprocessed by hand, float64 log-softmax
    with torch.no_grad():
        logits = torch.nn.functional.linear(hidden, linear.weight, linear.bias).double()
    logits = torch.tanh(logits * 0.5 / 7.0) * 7.0
    expected = logits.log_softmax(-1)[torch.arange(37), targets]
    monkeypatch.setattr(kernel, "_LOGITS_TILE_BYTES", 4 * 10 * 100)
    monkeypatch.setattr(kernel, "_MIN_VOCAB_TILE", 100)
    assert kernel._tile_shape(37, 1003, True) == (10, 100)  # 4 position tiles x 11 vocabulary tiles, both ragged
    got = kernel._target_logprobs(head, hidden, targets, 1003)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


_HEAP_PROBE = """
import sys, torch
from mmlaw_utils.scoring import kernel
if sys.argv[1] == "tuned":
    assert kernel.reuse_freed_cpu_memory()
activation = torch.empty(5 * 2**20)  # 20 MiB, about one MLP activation of a 2,048-token batch
heap = [line.split()[0].split("-") for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
print(any(int(lo, 16) <= activation.data_ptr() < int(hi, 16) for lo, hi in heap))
"""


def test_reuse_freed_cpu_memory_serves_activations_from_the_heap():
    """In a fresh process a 20 MiB tensor is a fresh mapping (faulted page by page on every allocation);
    after ``reuse_freed_cpu_memory`` it comes from the heap, whose freed memory is kept for the next one."""
    import platform
    import subprocess
    import sys

    from mmlaw_utils.config import REPO_ROOT

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc malloc only")

    def on_heap(mode: str) -> bool:
        out = subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], capture_output=True, text=True, check=True,
                             cwd=REPO_ROOT)
        return out.stdout.strip().splitlines()[-1] == "True"

    assert not on_heap("default")
    assert on_heap("tuned")


def test_bf16_weights_on_cpu_score_close_to_fp32_but_not_equal(tiny_lms):
    """The bf16 path (weights in bfloat16, fp32 log-sum-exp) deviates from fp32 by bf16 rounding, not more."""
    import copy

    model, tokenizer = tiny_lms[("llama", "bos")]
    texts = tiny_models.sample_texts(6, seed=12)
    fp32 = kernel.score_texts(model, tokenizer, texts, max_length=32)["nll"].to_numpy()
    bf16 = kernel.score_texts(copy.deepcopy(model).to(torch.bfloat16), tokenizer, texts, max_length=32)["nll"].to_numpy()
    relative = np.abs(bf16 - fp32) / fp32
    assert relative.max() < 2e-2 and relative.max() > 1e-6
