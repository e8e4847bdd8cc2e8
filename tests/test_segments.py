"""Byte-aligned token losses, segmentations and segment files (issue 21 §1-§3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tiny_models
from mmlaw_utils.scoring import cache, kernel, segment_cache, segment_files, segments
from mmlaw_utils.scoring import run as scoring_run


def pieces(text: str, ends: np.ndarray) -> list[str]:
    """The text's byte slices between consecutive segment ends, decoded."""
    raw = text.encode("utf-8")
    return [raw[s:e].decode("utf-8") for s, e in zip(np.concatenate([[0], ends[:-1]]), ends)]


# ----------------------------------------------------------------------------- pure rules, hand-made cases
def test_char_to_byte_hand_computed():
    assert segments.char_to_byte("aé日😀").tolist() == [0, 1, 3, 6, 10]
    assert segments.char_to_byte("").tolist() == [0]


@pytest.mark.parametrize("text, spans, expected", [
    ("ab cd", [(0, 2), (2, 5)], [2, 5]),
    # byte-level BPE splits é (2 bytes) over two tokens, each reporting the whole character: both end after it
    ("aé b", [(0, 2), (1, 2), (2, 4)], [3, 3, 5]),
    # empty spans (special token, byte fallback piece) take the next non-empty end; trailing ones the text's end
    ("ab cd", [(0, 0), (0, 2), (2, 2), (2, 5), (5, 5)], [2, 2, 5, 5, 5]),
    # offsets that skip trailing whitespace still cover the text
    ("ab  ", [(0, 2)], [4]),
    # a 4-byte character split over three tokens, sentencepiece-style offsets that start after the space
    ("x 😀", [(0, 1), (2, 3), (2, 3), (2, 3)], [1, 6, 6, 6]),
])
def test_token_byte_ends_rule(text, spans, expected):
    assert segments.token_byte_ends(text, np.array(spans)).tolist() == expected


def test_word_line_sentence_hand_cases():
    assert pieces("  Hello  wide\tworld \n", segments.word_ends("  Hello  wide\tworld \n")) == ["  Hello", "  wide", "\tworld \n"]
    assert segments.word_ends("Zürich café").tolist() == [7, 13]
    assert pieces("a\r\nb\n\nc", segments.line_ends("a\r\nb\n\nc")) == ["a\r\n", "b\n", "\n", "c"]
    assert pieces("a\nb\n", segments.line_ends("a\nb\n")) == ["a\n", "b\n"]
    text = 'Hi there. How are you?  Fine!\nNext line\nHe said "stop." Then e.g. x'
    assert pieces(text, segments.sentence_ends(text)) == [
        "Hi there.", " How are you?", "  Fine!", "\nNext line", '\nHe said "stop."', " Then e.g.", " x"]
    assert segments.sentence_ends("日本語。テキスト。").tolist() == [12, 27]
    assert segments.text_ends("aé").tolist() == [3]


def test_common_token_ends_hand_case():
    assert segments.common_token_ends([np.array([2, 4, 6]), np.array([3, 4, 6])], 6).tolist() == [4, 6]
    assert segments.common_token_ends([np.array([1, 1, 3])], 3).tolist() == [1, 3]
    with pytest.raises(ValueError, match="at least one model"):
        segments.common_token_ends([], 3)


def test_segment_losses_tokens_crossing_words_and_multibyte():
    # "ab cd": token "ab " ends on the space, which starts word " cd": its loss goes there
    words = segments.word_ends("ab cd")
    assert segments.segment_losses(np.array([3, 5]), np.array([1.5, 2.0]), words).tolist() == [0.0, 3.5]
    # "aé b": the two tokens holding é's bytes both end in word "aé"
    ends = segments.token_byte_ends("aé b", np.array([(0, 2), (1, 2), (2, 4)]))
    assert segments.segment_losses(ends, np.array([1.0, 2.0, 4.0]), segments.word_ends("aé b")).tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="outside the text"):
        segments.segment_losses(np.array([9]), np.array([1.0]), np.array([5]))
    with pytest.raises(ValueError, match="unknown segmentation"):
        segments.segment_ends("ab", "paragraph")


# ----------------------------------------------------------------------------- kernel: per-token losses
def reference_token_nll(model, tokens: np.ndarray, prefix_id: int) -> np.ndarray:
    """-log p(token | prefix, earlier tokens) from one plain full forward in float64 (independent of the kernel)."""
    ids = torch.tensor(np.concatenate([[prefix_id], tokens]))[None]
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].double()
    return -(logits[:-1].log_softmax(-1).gather(1, ids[0, 1:, None]).squeeze(1)).numpy()


@pytest.mark.parametrize("case", [("llama", "bos"), ("gpt2", "eos_only")])
def test_token_losses_match_full_forward_and_text_sums(tiny_lms, case):
    model, tokenizer = tiny_lms[case]
    texts = tiny_models.sample_texts(6, seed=5)
    sequences, spans = kernel.tokenize_with_char_spans(tokenizer, texts)
    assert all((a == b).all() for a, b in zip(sequences, kernel.tokenize_texts(tokenizer, texts)))
    assert all(len(s) == len(p) for s, p in zip(sequences, spans))
    # short windows so long texts are scored over several rolling windows and batches
    settings = kernel.resolve_settings(model, tokenizer, max_length=24, context_tokens=8)
    plain = kernel.score_token_sequences(model, sequences, settings, batch_tokens=64)
    per_token: list[np.ndarray] = []
    with_tokens = kernel.score_token_sequences(model, sequences, settings, batch_tokens=64, token_nll=per_token)
    np.testing.assert_array_equal(plain, with_tokens)  # the optional output changes nothing
    for tokens, nll, total in zip(sequences, per_token, plain):
        assert abs(nll.sum() - total) <= 1e-9 * total
    full = kernel.resolve_settings(model, tokenizer)
    per_token_full: list[np.ndarray] = []
    kernel.score_token_sequences(model, sequences, full, token_nll=per_token_full)
    for tokens, nll in zip(sequences, per_token_full):
        np.testing.assert_allclose(nll, reference_token_nll(model, tokens, full.prefix_id), rtol=1e-4, atol=1e-4)


def test_segments_tile_and_sum_to_text_loss(tiny_lms):
    texts = tiny_models.sample_texts(10, seed=9) + ["  lead space\n\nand\ttabs  ", "Ελληνικά 123. 日本語のテキスト。x"]
    ends_per_model, losses_per_model = [], []
    for case in [("llama", "bos"), ("gpt2", "eos_only")]:
        model, tokenizer = tiny_lms[case]
        sequences, spans = kernel.tokenize_with_char_spans(tokenizer, texts)
        per_token: list[np.ndarray] = []
        totals = kernel.score_token_sequences(model, sequences, kernel.resolve_settings(model, tokenizer), token_nll=per_token)
        ends_per_model.append([segments.token_byte_ends(t, s) for t, s in zip(texts, spans)])
        losses_per_model.append((per_token, totals))
    for i, text in enumerate(texts):
        n_bytes = len(text.encode("utf-8"))
        for segmentation in segments.SEGMENTATIONS:
            ends = segments.segment_ends(text, segmentation, [e[i] for e in ends_per_model])
            assert ends[-1] == n_bytes and (np.diff(ends) > 0).all() and ends[0] > 0  # segments tile the bytes
            assert "".join(pieces(text, ends)) == text
            for model_ends, (per_token, totals) in zip(ends_per_model, losses_per_model):
                seg = segments.segment_losses(model_ends[i], per_token[i], ends)
                assert abs(seg.sum() - totals[i]) <= 1e-9 * totals[i]
        # common-token boundaries are token boundaries of both tokenizers, and every such shared boundary is one
        common = segments.segment_ends(text, "common_token", [e[i] for e in ends_per_model])
        shared = set(ends_per_model[0][i]) & set(ends_per_model[1][i])
        assert set(common) == shared | {n_bytes}


def test_identical_tokenizers_common_token_is_the_tokens(tiny_tokenizers):
    tokenizer = tiny_tokenizers["bos"]
    texts = tiny_models.sample_texts(8, seed=2)
    _, spans = kernel.tokenize_with_char_spans(tokenizer, texts)
    for text, span in zip(texts, spans):
        ends = segments.token_byte_ends(text, span)
        common = segments.segment_ends(text, "common_token", [ends, ends.copy()])
        if text.isascii():  # no token splits a character, so every token is its own segment
            assert common.tolist() == ends.tolist()
        assert common.tolist() == np.unique(ends).tolist()


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False
        name_or_path = "slow-tok"

    with pytest.raises(ValueError, match="slow-tok.*not a fast tokenizer"):
        kernel.tokenize_with_char_spans(Slow(), ["some text"])


# ----------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    """9 texts (some multi-byte) as a local jsonl text set."""
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    with open(path, "w") as handle:
        for i, text in enumerate(tiny_models.sample_texts(9, seed=41, max_sentences=7)):
            handle.write(json.dumps({"text_id": f"doc{i}", "text": text}) + "\n")
    return path


def test_files_round_trip_match_score_cache_and_go_stale(tiny_model_dirs, text_file, tmp_path):
    cache_dir = tmp_path / "scores"
    requests = {name: scoring_run.ScoreRequest(model=str(path), dataset=str(text_file), cache_dir=cache_dir,
                                               chunk_texts=4, batch_tokens=128, device="cpu")
                for name, path in tiny_model_dirs.items()}
    scores = {name: scoring_run.score_model(r, progress=False) for name, r in requests.items()}
    token_files = {}
    for name, request in requests.items():
        path = segment_cache.score_token_losses(request, progress=False)
        assert path.parent == tmp_path / "segments" / "tokens"
        tokens, provenance = segment_files.read_token_losses(path)
        assert provenance["complete"] and provenance["model"] == request.model
        assert provenance["score_cache_max_rel_diff"] is not None and provenance["score_cache_max_rel_diff"] <= 1e-6
        sums = tokens.groupby("text_id", sort=False)["nll"].sum()
        expected = scores[name].results.set_index("text_id")["nll"]
        np.testing.assert_allclose(sums.reindex(expected.index), expected, rtol=1e-6)
        assert segment_cache.score_token_losses(request, progress=False) == path  # current: reused
        token_files[str(request.model)] = path
    texts = pd.read_json(text_file, lines=True, dtype={"text_id": str})
    fingerprint = scores["tiny-llama"].provenance["dataset_fingerprint"]
    seg_dir = tmp_path / "segments"
    written = segment_cache.write_segment_files(texts, token_files, seg_dir, fingerprint, segments.SEGMENTATIONS)
    assert len(written) == 2 * len(segments.SEGMENTATIONS)
    assert segment_cache.write_segment_files(texts, token_files, seg_dir, fingerprint, segments.SEGMENTATIONS) == []
    n_bytes = {t: len(x.encode("utf-8")) for t, x in zip(texts["text_id"], texts["text"])}
    for model, run in zip(token_files, scores.values()):
        for segmentation in segments.SEGMENTATIONS:
            frame, provenance = segment_files.read_segment_file(segment_files.segment_path(seg_dir, segmentation, model, fingerprint))
            assert list(frame.columns) == segment_files.SEGMENT_COLUMNS and frame["nll"].dtype == np.float64
            assert provenance["segmentation"] == segmentation and set(frame["model"]) == {model}
            segment_files.check_segment_frame(frame, n_bytes, run.results.set_index("text_id")["nll"], "test")
        text_level = segment_files.read_segment_file(segment_files.segment_path(seg_dir, "text", model, fingerprint))[0]
        assert len(text_level) == len(texts)
    # a token file that changes makes its segment files and every common_token file stale
    llama = str(requests["tiny-llama"].model)
    tokens, provenance = segment_files.read_token_losses(token_files[llama])
    segment_files.write_with_provenance(token_files[llama], tokens.assign(nll=tokens["nll"] * 1.01), provenance)
    rewritten = segment_cache.write_segment_files(texts, token_files, seg_dir, fingerprint, segments.SEGMENTATIONS)
    assert len(rewritten) == len(segments.SEGMENTATIONS) + 1
    with pytest.raises(ValueError, match="text.*differ from the score cache"):
        frame = segment_files.read_segment_file(segment_files.segment_path(seg_dir, "word", llama, fingerprint))[0]
        segment_files.check_segment_frame(frame, n_bytes, scores["tiny-llama"].results.set_index("text_id")["nll"], "w")


def test_check_segment_frame_catches_gaps(tiny_model_dirs):
    frame = pd.DataFrame({"model": "m", "text_id": ["a", "a"], "segment": [0, 1], "byte_start": [0, 3],
                          "byte_end": [2, 5], "nll": [1.0, 2.0]})
    with pytest.raises(ValueError, match="text 'a' do not tile its 5 bytes"):
        segment_files.check_segment_frame(frame, {"a": 5}, pd.Series({"a": 3.0}), "f")


def test_small_models_token_losses_equal_the_chunked_ones(tiny_model_dirs, text_file, tmp_path, monkeypatch):
    from mmlaw_utils.scoring import batched

    def tokens(folder: str, small: bool) -> pd.DataFrame:
        monkeypatch.setattr(batched, "is_small_model", lambda request: small)
        request = scoring_run.ScoreRequest(model=str(tiny_model_dirs["tiny-llama"]), dataset=str(text_file),
                                           cache_dir=tmp_path / folder / "scores", chunk_texts=4, device="cpu")
        return segment_files.read_token_losses(segment_cache.score_token_losses(request, progress=False))[0]

    small, chunked = tokens("small", True), tokens("chunked", False)
    pd.testing.assert_frame_equal(small[["text_id", "byte_end"]], chunked[["text_id", "byte_end"]])
    np.testing.assert_allclose(small["nll"], chunked["nll"], rtol=1e-5, atol=1e-7)


def test_interrupted_token_scoring_resumes_from_its_chunks(tiny_model_dirs, text_file, tmp_path, monkeypatch):
    from mmlaw_utils.scoring import batched

    monkeypatch.setattr(batched, "is_small_model", lambda request: False)  # large models go chunk by chunk
    request = scoring_run.ScoreRequest(model=str(tiny_model_dirs["tiny-gpt2"]), dataset=str(text_file),
                                       cache_dir=tmp_path / "scores", chunk_texts=4, device="cpu")
    path = segment_cache.score_token_losses(request, progress=False)
    tokens, _ = segment_files.read_token_losses(path)
    # fake a run killed after its first chunk, whose saved chunk we mark: a resumed run must keep it
    partial = cache.partial_dir(path)
    calls = []
    original = kernel.score_token_sequences

    def crash_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args, **kwargs)

    path.unlink()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernel, "score_token_sequences", crash_after_first)
        with pytest.raises(KeyboardInterrupt):
            segment_cache.score_token_losses(request, progress=False)
    chunk = cache.chunk_path(partial, 0)
    assert chunk.is_file() and not path.exists()
    marked = pd.read_parquet(chunk).assign(nll=lambda f: f["nll"] + 1.0)
    marked.to_parquet(chunk, index=False)
    resumed, provenance = segment_files.read_token_losses(segment_cache.score_token_losses(request, progress=False))
    assert not partial.exists() and provenance["complete"]
    changed = resumed["text_id"].isin(marked["text_id"])
    np.testing.assert_allclose(resumed.loc[changed, "nll"], tokens.loc[changed, "nll"] + 1.0)
    np.testing.assert_array_equal(resumed.loc[~changed, "nll"], tokens.loc[~changed, "nll"])


def test_token_sums_reproduce_a_committed_minipool_cache():
    """Per-text token sums of a committed miniature-pool model equal its committed cache (relative 1e-6).

    Needs the model's weights (models/ is gitignored: present after a build); skipped without them.
    """
    from mmlaw_utils.config import REPO_ROOT, load_profile
    from mmlaw_utils.texts import dataset_fingerprint, load_texts

    model_id = "models/minipool/gemma-d4l2"
    folder = REPO_ROOT / model_id
    if not folder.is_dir():
        pytest.skip(f"weights of {model_id} are not built here")
    profile = load_profile("minipool")
    texts = load_texts(profile.dataset)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    scores, provenance = cache.read_cache(cache.cache_path(profile.cache_dir, model_id, fingerprint))
    from mmlaw_utils.scoring import models

    if models.hash_model_files(folder) != provenance["model_hash"]:
        pytest.skip(f"weights of {model_id} differ from those that scored the committed cache")
    model, tokenizer = models.load_model_and_tokenizer(folder, device="cpu", dtype=provenance["dtype"])
    settings = kernel.resolve_settings(model, tokenizer, provenance["max_length"], provenance["context_tokens"])
    subset = texts.iloc[:: len(texts) // 60]  # 60 texts over every domain, long ones in rolling windows
    sequences, spans = kernel.tokenize_with_char_spans(tokenizer, subset["text"].tolist(), subset["text_id"].tolist())
    per_token: list[np.ndarray] = []
    kernel.score_token_sequences(model, sequences, settings, token_nll=per_token)
    expected = scores.set_index("text_id").loc[subset["text_id"]]
    assert [len(s) for s in sequences] == expected["n_tokens"].tolist()
    np.testing.assert_allclose([t.sum() for t in per_token], expected["nll"], rtol=1e-6)
    assert max(len(s) for s in sequences) > provenance["max_length"]  # rolling windows were exercised


def test_weights_on_disk_needs_a_local_models_config(tmp_path, tiny_model_dirs):
    assert segment_cache.weights_on_disk(str(tiny_model_dirs["tiny-gpt2"]))
    (tmp_path / "gone").mkdir()
    assert not segment_cache.weights_on_disk(str(tmp_path / "gone"))
    assert not segment_cache.weights_on_disk(str(tmp_path / "never-built"))
    assert segment_cache.weights_on_disk("HuggingFaceTB/SmolLM2-135M")  # hub ids are fetched when loaded
