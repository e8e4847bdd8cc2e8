"""The batched small-model scoring path (scoring.batched): same losses as the kernel, token ids cached per tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tiny_models
from conftest import TINY_CASES
from mmlaw_utils.config import REPO_ROOT
from mmlaw_utils.scoring import batched, cache, kernel, run

RTOL = 1e-6


def _settings(model, tokenizer, max_length=24, context_tokens=6):
    return kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, max_length, context_tokens))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("case", TINY_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_score_windows_equals_kernel_with_rolling_windows(tiny_lms, case):
    model, tokenizer = tiny_lms[case]
    texts = tiny_models.sample_texts(25, seed=7, max_sentences=8)  # many texts span several 24-token windows
    sequences = kernel.tokenize_texts(tokenizer, texts)
    settings = _settings(model, tokenizer)
    assert max(len(s) for s in sequences) > 3 * settings.max_length
    expected = kernel.score_token_sequences(model, sequences, settings)
    got = batched.score_windows(model, sequences, settings)
    assert _relative(got, expected) <= RTOL
    # the batch composition does not matter: one window per forward gives the same sums
    assert _relative(batched.score_windows(model, sequences, settings, batch_tokens=1), expected) <= RTOL


@pytest.mark.parametrize("case", TINY_CASES[:2], ids=lambda c: f"{c[0]}-{c[1]}")
def test_score_windows_hands_back_the_kernels_token_losses(tiny_lms, case):
    model, tokenizer = tiny_lms[case]
    sequences = kernel.tokenize_texts(tokenizer, tiny_models.sample_texts(12, seed=3, max_sentences=8))
    settings = _settings(model, tokenizer)
    expected: list[np.ndarray] = []
    kernel.score_token_sequences(model, sequences, settings, token_nll=expected)
    got: list[np.ndarray] = []
    sums = batched.score_windows(model, sequences, settings, token_nll=got, batch_tokens=64)
    assert [len(g) for g in got] == [len(s) for s in sequences]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose([g.sum() for g in got], sums, rtol=1e-12)


def test_score_windows_equals_a_plain_forward_for_short_texts(tiny_lms):
    model, tokenizer = tiny_lms[("llama", "bos")]
    texts = tiny_models.sample_texts(6, seed=3, max_sentences=1)
    sequences = kernel.tokenize_texts(tokenizer, texts)
    settings = _settings(model, tokenizer, max_length=256, context_tokens=None)
    reference = []
    with torch.no_grad():
        for tokens in sequences:  # independent: full logits, log_softmax, the text's own tokens
            ids = torch.tensor([[tokenizer.bos_token_id, *tokens.tolist()]])
            logprobs = model(input_ids=ids).logits[0, :-1].double().log_softmax(-1)
            reference.append(-float(logprobs[torch.arange(len(tokens)), torch.from_numpy(tokens)].sum()))
    assert _relative(batched.score_windows(model, sequences, settings), np.array(reference)) <= RTOL


def test_score_windows_names_the_texts_of_non_finite_losses(tiny_lms):
    model, tokenizer = tiny_lms[("gpt2", "eos_only")]
    texts = tiny_models.sample_texts(3, seed=2)
    sequences = kernel.tokenize_texts(tokenizer, texts)
    settings = _settings(model, tokenizer)
    broken = type(model)(model.config).eval()
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.get_output_embeddings().weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"text id\(s\) \['a', 'b', 'c'\]"):
        batched.score_windows(broken, sequences, settings, text_ids=["a", "b", "c"])


def test_token_ids_are_cached_per_tokenizer_and_text_set(tmp_path, tiny_tokenizers, monkeypatch):
    texts = tiny_models.sample_texts(12, seed=5)
    ids = [f"t{i}" for i in range(len(texts))]
    bos, eos_only = tiny_tokenizers["bos"], tiny_tokenizers["eos_only"]
    first = batched.cached_token_ids(bos, texts, ids, "fp1", tmp_path)
    path = batched.token_ids_path(tmp_path, batched.tokenizer_hash(bos), "fp1")
    assert path.is_file()
    expected = kernel.tokenize_texts(bos, texts, ids)
    assert all(np.array_equal(a, b) for a, b in zip(first, expected))

    calls = []
    monkeypatch.setattr(kernel, "tokenize_texts", lambda *a: calls.append(a) or expected)
    again = batched.cached_token_ids(bos, texts, ids, "fp1", tmp_path)
    assert calls == [] and all(np.array_equal(a, b) for a, b in zip(again, expected))
    # another tokenizer or another text set is tokenized afresh into its own file
    batched.cached_token_ids(eos_only, texts, ids, "fp1", tmp_path)
    batched.cached_token_ids(bos, texts, ids, "fp2", tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 3
    assert batched.tokenizer_hash(bos) != batched.tokenizer_hash(eos_only)
    # a damaged file is rewritten, not trusted
    path.write_bytes(path.read_bytes()[:40])
    batched.cached_token_ids(bos, texts, ids, "fp1", tmp_path)
    assert len(calls) == 3
    with np.load(path) as stored:
        assert stored["offsets"][-1] == sum(len(s) for s in expected)


def _texts_file(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "texts.jsonl"
    frame = pd.DataFrame({"text_id": [f"x-{i}" for i in range(n)], "text": tiny_models.sample_texts(n, seed=11, max_sentences=9)})
    frame.to_json(path, orient="records", lines=True)
    return path


def test_score_one_writes_the_cache_the_chunked_run_writes(tmp_path, tiny_model_dirs):
    texts = _texts_file(tmp_path)
    model = str(tiny_model_dirs["tiny-llama"])
    chunked = run.score_model(run.ScoreRequest(model=model, dataset=str(texts), cache_dir=tmp_path / "a" / "scores",
                                               max_length=32, chunk_texts=4), progress=False)
    request = run.ScoreRequest(model=model, dataset=str(texts), cache_dir=tmp_path / "b" / "scores", max_length=32)
    fast = batched.score_one(request, progress=False)
    assert fast.computed and fast.provenance["scoring_path"] == "batched"
    assert fast.results["text_id"].tolist() == chunked.results["text_id"].tolist()
    assert fast.results["n_tokens"].tolist() == chunked.results["n_tokens"].tolist()
    assert _relative(fast.results["nll"].to_numpy(), chunked.results["nll"].to_numpy()) <= RTOL
    assert (tmp_path / "b" / batched.TOKEN_IDS_FOLDER).is_dir()
    for key in ("model_hash", "dataset_fingerprint", "max_length", "context_tokens", "prefix_policy", "params_total"):
        assert fast.provenance[key] == chunked.provenance[key], key
    # the cache answers the same request: reused, not recomputed; the chunked path reuses it too
    assert not batched.score_one(request, progress=False).computed
    assert not run.score_model(request, progress=False).computed


def test_large_models_keep_the_resumable_chunks(tmp_path, tiny_model_dirs, monkeypatch):
    monkeypatch.setattr(batched, "SMALL_MODEL_BYTES", 0)
    request = run.ScoreRequest(model=str(tiny_model_dirs["tiny-gpt2"]), dataset=str(_texts_file(tmp_path, 5)),
                               cache_dir=tmp_path / "scores", max_length=32)
    assert not batched.is_small_model(request)
    assert "scoring_path" not in batched.score_one(request, progress=False).provenance


def test_worker_processes_give_the_same_caches(tmp_path, tiny_model_dirs):
    texts = _texts_file(tmp_path, 8)

    def requests(folder):
        return [run.ScoreRequest(model=str(p), dataset=str(texts), cache_dir=tmp_path / folder / "scores", max_length=32)
                for p in tiny_model_dirs.values()]

    one = batched.score_models(requests("one"), progress=False)
    two = batched.score_models(requests("two"), progress=False, workers=2)
    assert [r.provenance["model"] for r in two] == [r.provenance["model"] for r in one]
    for a, b in zip(one, two):
        assert b.path.is_file() and _relative(b.results["nll"].to_numpy(), a.results["nll"].to_numpy()) <= RTOL


def test_fused_gelu_scores_gpt2_as_its_python_gelu(tmp_path, tiny_model_dirs):
    from transformers.activations import GELUTanh, NewGELUActivation

    request = run.ScoreRequest(model=str(tiny_model_dirs["tiny-gpt2"]), dataset=str(_texts_file(tmp_path, 12)),
                               cache_dir=tmp_path / "scores", max_length=32)
    plain, tokenizer, _ = run.load_for_scoring(request)
    fused, _, _ = batched.load_small_model(request)
    n_layers = plain.config.n_layer
    assert sum(type(m) is NewGELUActivation for m in plain.modules()) == n_layers
    assert sum(type(m) is GELUTanh for m in fused.modules()) == n_layers
    assert not any(type(m) is NewGELUActivation for m in fused.modules())
    texts = pd.read_json(request.dataset, lines=True)
    sequences = kernel.tokenize_texts(tokenizer, texts["text"].tolist(), texts["text_id"].tolist())
    settings = _settings(plain, tokenizer, max_length=32, context_tokens=8)
    reference = kernel.score_token_sequences(plain, sequences, settings)
    assert _relative(batched.score_windows(fused, sequences, settings), reference) <= RTOL
    llama, _, _ = run.load_for_scoring(run.ScoreRequest(model=str(tiny_model_dirs["tiny-llama"]), dataset=request.dataset,
                                                        cache_dir=tmp_path / "scores"))
    assert batched.fuse_tanh_gelu(llama) == 0  # SiLU models are left as they are


def test_default_workers_spread_only_small_models_on_cpu(tmp_path, tiny_model_dirs, monkeypatch):
    import os

    texts = str(_texts_file(tmp_path, 2))
    small = [run.ScoreRequest(model=str(p), dataset=texts, cache_dir=tmp_path, device="cpu") for p in tiny_model_dirs.values()]
    cores = len(os.sched_getaffinity(0))
    assert batched.default_workers(small) == min(cores, len(small))
    assert batched.default_workers(small[:1]) == 1
    hub = run.ScoreRequest(model="HuggingFaceTB/SmolLM2-135M", dataset=texts, cache_dir=tmp_path, device="cpu")
    assert batched.default_workers([*small, hub]) == 1  # a model that is not small keeps one process
    monkeypatch.setattr(batched, "SMALL_MODEL_BYTES", 0)
    assert batched.default_workers(small) == 1


def test_cpu_batches_are_capped_and_accelerator_batches_floored(tiny_lms, monkeypatch):
    model, tokenizer = tiny_lms[TINY_CASES[0]]
    assert batched.windows_batch_tokens(model, 65536) == batched.SMALL_MODEL_CPU_BATCH_TOKENS
    seen = []
    real_pack = kernel.pack_batches
    monkeypatch.setattr(kernel, "pack_batches", lambda lengths, size, **kw: seen.append(size) or real_pack(lengths, size, **kw))
    sequences = [np.asarray(tokenizer("a b c d e f g h")["input_ids"], dtype=np.int64)]
    batched.score_all(model, sequences, _settings(model, tokenizer), text_ids=["t"], batch_tokens=65536)
    assert seen == [batched.SMALL_MODEL_CPU_BATCH_TOKENS]  # the one-pass path on CPU ignores the profile's size
    elsewhere = tiny_models.build_model(TINY_CASES[0][0], tokenizer, seed=0).to("meta")  # any device other than the CPU
    assert batched.windows_batch_tokens(elsewhere, 100) == batched.SMALL_MODEL_BATCH_TOKENS
    assert batched.windows_batch_tokens(elsewhere, 65536) == 65536


GEMMA = REPO_ROOT / "models" / "minipool" / "gemma-d4l2"


@pytest.mark.skipif(not (GEMMA / "config.json").is_file(),
                    reason="gemma-d4l2 weights absent (python -m mmlaw_utils minipool build --model gemma-d4l2)")
def test_retrained_pool_model_reproduces_its_committed_cache(tmp_path):
    request = run.request_from_settings("minipool", "models/minipool/gemma-d4l2", cache_dir=tmp_path / "scores")
    committed_path = next((REPO_ROOT / "data" / "minipool" / "scores").glob("gemma-d4l2-*.parquet"))
    committed, _ = cache.read_cache(committed_path)
    fresh = batched.score_one(request, progress=False).results
    assert fresh["text_id"].tolist() == committed["text_id"].tolist()
    assert fresh["n_tokens"].tolist() == committed["n_tokens"].tolist()
    assert _relative(fresh["nll"].to_numpy(), committed["nll"].to_numpy()) <= RTOL
