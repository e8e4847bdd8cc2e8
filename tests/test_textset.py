"""Held-out text set: deterministic build, size and shape, cleanliness, split and decontamination."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from mmlaw_utils import cli
from mmlaw_utils.minipool import textset
from mmlaw_utils.texts import dataset_fingerprint, load_texts

COMMITTED = Path(__file__).resolve().parent.parent / "data" / "texts" / "wiki_heldout.jsonl"
MANIFEST = COMMITTED.with_name("wiki_heldout.manifest.json")
ATTRIBUTION = COMMITTED.with_name("wiki_heldout.ATTRIBUTION.md")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _words(text: str) -> list[str]:
    # independent of textset.normalised_words: same rule, written out here
    return re.findall(r"\w+", text.lower())


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    """A fresh build into a temporary folder (the dump is parsed once per test session)."""
    out = tmp_path_factory.mktemp("textset") / "wiki_heldout.jsonl"
    textset.build_textset(out)
    return out


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return load_texts(COMMITTED)


# ------------------------------------------------------------------ the committed file


def test_build_is_bit_for_bit_identical_to_committed_file(rebuilt):
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert _sha256(rebuilt) == manifest["sha256"] == _sha256(COMMITTED)
    assert rebuilt.read_bytes() == COMMITTED.read_bytes()
    assert textset.manifest_path_for(rebuilt).read_bytes() == MANIFEST.read_bytes()
    assert rebuilt.with_name("wiki_heldout.ATTRIBUTION.md").read_bytes() == ATTRIBUTION.read_bytes()


def test_check_cli_accepts_committed_and_rejects_tampered(tmp_path, capsys):
    assert cli.main(["textset", "check"]) == 0
    assert _sha256(COMMITTED) in capsys.readouterr().out
    copy = tmp_path / COMMITTED.name
    shutil.copy(COMMITTED, copy)
    shutil.copy(MANIFEST, textset.manifest_path_for(copy))
    assert textset.check_textset(copy) == _sha256(COMMITTED)
    copy.write_bytes(COMMITTED.read_bytes().replace(b"Anarchism", b"Anarchisn", 1))
    with pytest.raises(ValueError, match="does not match"):
        textset.check_textset(copy)
    assert cli.main(["textset", "check", "--out", str(copy)]) == 1


def test_loads_through_datasets_and_matches_manifest(committed):
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    raw = [json.loads(line) for line in COMMITTED.read_text(encoding="utf-8").splitlines()]
    assert list(committed.columns) == ["text_id", "text", "source"]
    assert committed["text_id"].tolist() == [r["text_id"] for r in raw]
    assert committed["text"].tolist() == [r["text"] for r in raw]
    assert len(committed) == manifest["n_texts"]
    assert dataset_fingerprint(committed["text_id"], committed["text"]) == manifest["dataset_fingerprint"]


def test_size_word_counts_and_ids(committed):
    assert len(committed) >= 1000
    n_words = committed["text"].str.split().str.len()
    assert n_words.min() >= 50 and n_words.max() <= 500
    assert committed["text_id"].is_unique and committed["text"].is_unique
    for text_id, source in zip(committed["text_id"], committed["source"]):
        assert re.fullmatch(r"wiki-[a-z0-9-]+-\d{3}", text_id), text_id
        title = source.removeprefix("wikipedia:")
        assert source.startswith("wikipedia:") and text_id.startswith(f"wiki-{textset.title_slug(title)}-")


def test_no_markup_remnants(committed):
    remnants = re.compile(
        r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|\||''|==|<ref|</|<br|<math|&[a-z]+;|https?:|www\.|"
        r"\bthumb\||\d+px\b|\bCategory:|\bFile:|\bImage:|[\x00-\x08\x0b-\x1f]"
    )
    bad = [(i, m.group(0)) for i, t in zip(committed["text_id"], committed["text"])
           if (m := remnants.search(t))]
    assert bad == []
    # paragraphs are clean prose: no list bullets, headings or leftover empty parentheses
    for text in committed["text"]:
        for paragraph in text.split("\n\n"):
            assert paragraph == paragraph.strip() and paragraph
            assert not re.match(r"[*#:;]", paragraph)
            assert "()" not in paragraph and "  " not in paragraph


def test_no_exact_or_near_duplicates(committed):
    normalised = [" ".join(_words(t)) for t in committed["text"]]
    assert len(set(normalised)) == len(normalised)
    shingles = [{" ".join(w[i:i + 5]) for i in range(len(w) - 4)} for w in map(_words, committed["text"])]
    index = defaultdict(set)
    for k, s in enumerate(shingles):
        for g in s:
            index[g].add(k)
    worst = 0.0
    for k, s in enumerate(shingles):
        partners = set().union(*(index[g] for g in s)) - {k}
        for j in partners:
            worst = max(worst, len(s & shingles[j]) / len(s | shingles[j]))
    assert worst < textset.DEDUP_JACCARD


def test_eval_and_train_articles_are_disjoint(committed):
    train = textset.train_articles()
    train_titles = {title for title, _ in train}
    eval_titles = set(committed["source"].str.removeprefix("wikipedia:"))
    assert eval_titles and train_titles and not eval_titles & train_titles
    assert all(textset.is_eval_title(t) for t in eval_titles)
    assert not any(textset.is_eval_title(t) for t in train_titles)
    assert sum(len(text.split()) for _, text in train) > 100_000  # a usable training prose core


def test_no_13gram_contamination_between_eval_and_train(committed):
    train_grams = set()
    for _, text in textset.train_articles():
        w = _words(text)
        train_grams.update(" ".join(w[i:i + 13]) for i in range(len(w) - 12))
    leaked = [text_id for text_id, text in zip(committed["text_id"], committed["text"])
              if any(" ".join(w[i:i + 13]) in train_grams for w in [_words(text)] for i in range(len(w) - 12))]
    assert leaked == []
    assert textset.find_contamination(committed, textset.train_articles()).empty


def test_pinned_sample_hash_is_enforced(monkeypatch):
    monkeypatch.setattr(textset, "SAMPLE_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="pinned sample"):
        textset.build_frame()


# ------------------------------------------------------------------ units on hand-made input

WIKITEXT = """{{Infobox thing|name=Foo|size=3}}
'''Foo''' ({{IPAc-en|f|uː}}; from [[Latin]] ''fuus'') is a [[metasyntactic variable|placeholder]] used in \
[[computer science]].<ref>{{cite book|title=Foo}}</ref> It is {{convert|15|km|mi}} long.<ref name="x"/>

[[File:Foo.png|thumb|A [[picture]] of foo]]
== History ==
The word was first used at the [[Massachusetts Institute of Technology]] in the 1960s by students.<!-- hidden -->

{| class="wikitable"
|-
| cell one || cell two
|}
* a list item about foo
# a numbered item

The area is given by <math>A = \\pi r^2</math> for every circle that foo describes here.

See [http://example.com the example site] for more about foo and its many friends today.

== References ==
Never seen: this paragraph is after the references heading of the article.
[[Category:Placeholders]]
"""


def test_clean_wikitext_on_hand_made_article():
    cleaned = textset.clean_wikitext(WIKITEXT)
    assert cleaned.split("\n\n") == [
        "Foo (from Latin fuus) is a placeholder used in computer science. It is 15 km long.",
        "The word was first used at the Massachusetts Institute of Technology in the 1960s by students.",
        "See the example site for more about foo and its many friends today.",
    ]


def test_chunk_paragraphs_respects_word_range():
    para = lambda n, w="word": " ".join([w] * (n - 1) + [w + "."])  # noqa: E731
    chunks = textset.chunk_paragraphs([para(30), para(30), para(40), para(20)],
                                      min_words=50, max_words=500, target_words=55)
    assert [len(c.split()) for c in chunks] == [60, 60]  # 30+30, then 40 + the short 20 tail
    assert chunks[0] == para(30) + "\n\n" + para(30)
    sentence = "This is a sentence of eight words here. "
    long_paragraph = (sentence * 100).strip()  # 800 words
    pieces = textset.chunk_paragraphs([long_paragraph], min_words=50, max_words=500, target_words=70)
    assert [len(p.split()) for p in pieces] == [400, 400]
    assert all(p.endswith("here.") for p in pieces)
    assert textset.chunk_paragraphs([para(20)], min_words=50) == []


def test_find_contamination_flags_13gram_overlap_only():
    base = "the quick brown fox jumps over the lazy dog while the cat sleeps on the mat all day"
    eval_texts = pd.DataFrame({"text_id": ["a", "b", "c"], "text": [
        base,  # shares 13+ words with the training doc, modulo case and punctuation
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
        "Completely unrelated words that never occur in the training document at all, ever again.",
    ]})
    train = [("doc1", "Intro. The QUICK brown fox, jumps over the lazy dog; while the cat sleeps! End."),
             ("doc2", "one two three four five six seven eight nine ten eleven twelve stop")]
    found = textset.find_contamination(eval_texts, train, ngram=13)
    assert found[["text_id", "doc_id"]].values.tolist() == [["a", "doc1"]]
    # "the quick ... sleeps" is 13 words -> exactly one shared 13-gram
    assert found["n_shared"].tolist() == [1]
    assert found["example"].iloc[0] == "the quick brown fox jumps over the lazy dog while the cat sleeps"
    # the 12-word overlap of text b is below the threshold, but caught at ngram=12
    at12 = textset.find_contamination({"b": eval_texts.text[1]}, {"doc2": train[1][1]}, ngram=12)
    assert at12["text_id"].tolist() == ["b"]
    assert textset.find_contamination(["short text"], ["a short text here"], ngram=13)["n_shared"].tolist() == [1]


def test_find_near_duplicates_hand_cases():
    a = " ".join(f"w{i}" for i in range(100))
    near = " ".join(f"w{i}" for i in range(5, 100))  # Jaccard (91/96) ~ 0.95
    far = " ".join(f"w{i}" for i in range(60, 160))  # Jaccard 36/160 < 0.5
    found = textset.find_near_duplicates([a, a.upper() + "!", near, far])
    assert [(later, earlier) for later, earlier, _ in found] == [(1, 0), (2, 0)]
    assert found[0][2] == 1.0 and found[1][2] == pytest.approx(91 / 96)


def test_split_is_a_seeded_title_hash():
    digest = hashlib.sha256(f"{textset.SPLIT_SEED}\x1fAlbedo".encode()).digest()
    expected = int.from_bytes(digest[:8], "big") / 2.0**64
    assert textset.split_score("Albedo") == expected
    assert textset.is_eval_title("Albedo") == (expected < textset.EVAL_FRACTION)
    assert textset.split_score("Albedo", seed="other") != expected
