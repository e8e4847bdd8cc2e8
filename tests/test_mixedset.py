"""Mixed-domain held-out set: the committed file's shape, provenance and split, and the chunking rules.

The committed file is checked without network or the source packages. Rebuilding it needs the
downloaded archives (``sources.documents``); that test is ``slow`` and skips when they are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest

from mmlaw_utils import cli
from mmlaw_utils.minipool import mixedset, rdata, sources, textset
from mmlaw_utils.texts import dataset_fingerprint, load_texts

COMMITTED = mixedset.DEFAULT_OUT
MANIFEST = textset.manifest_path_for(COMMITTED)
TEXTS_DIR = COMMITTED.parent


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return load_texts(COMMITTED)


def _cache_complete() -> bool:
    return all(s.archive is None or (sources.cache_root() / "dl" / s.archive.kind / s.archive.filename).is_file()
               for s in sources.SOURCES.values())


# ------------------------------------------------------------------ the committed file


def test_committed_file_matches_manifest_and_check_cli(committed, tmp_path, capsys):
    manifest = _manifest()
    assert hashlib.sha256(COMMITTED.read_bytes()).hexdigest() == manifest["sha256"]
    assert dataset_fingerprint(committed["text_id"], committed["text"]) == manifest["dataset_fingerprint"]
    assert cli.main(["textset", "check", "--set", "mixed"]) == 0
    assert manifest["sha256"] in capsys.readouterr().out
    copy = tmp_path / COMMITTED.name
    copy.write_bytes(COMMITTED.read_bytes().replace(b"the", b"teh", 1))
    shutil.copy(MANIFEST, textset.manifest_path_for(copy))
    assert cli.main(["textset", "check", "--set", "mixed", "--out", str(copy)]) == 1


def test_size_domains_documents_and_word_counts(committed):
    raw = [json.loads(line) for line in COMMITTED.read_text(encoding="utf-8").splitlines()]
    assert [list(r) for r in raw[:1]] == [["text_id", "text", "domain", "source"]]
    assert len(committed) >= 2000
    assert committed["text_id"].is_unique
    domains = {r["domain"] for r in raw}
    assert len(domains) >= 6 and domains <= set(mixedset.HELDOUT_DOMAINS)
    assert len({r["source"] for r in raw}) >= 300
    n_words = [len(r["text"].split()) for r in raw]
    assert min(n_words) >= 100 and max(n_words) <= 500
    per_doc = pd.Series([r["source"] for r in raw]).value_counts()
    assert per_doc.max() <= mixedset.MAX_TEXTS_PER_DOC
    per_domain = pd.Series([r["domain"] for r in raw]).value_counts()
    assert per_domain.max() <= mixedset.DOMAIN_TARGET and per_domain.min() >= 0.5 * mixedset.DOMAIN_TARGET


def test_no_exact_duplicates_after_normalisation(committed):
    keys = [" ".join(re.findall(r"\w+", t.lower())) for t in committed["text"]]
    assert len(set(keys)) == len(keys)


def test_every_text_comes_from_a_redistributable_heldout_document(committed):
    """Recompute the document split independently: hashed doc ids for packaged sources, titles for wiki."""
    manifest = _manifest()
    wiki_titles = json.loads((TEXTS_DIR / "wiki_heldout.manifest.json").read_text())["eval_articles"]
    wiki_eval_slugs = {re.sub(r"[^a-z0-9]+", "-", a["title"].lower()).strip("-") for a in wiki_titles}
    for doc_id in sorted(set(committed["source"])):
        name = doc_id.split(":", 1)[0]
        assert sources.SOURCES[name].redistributable, doc_id
        assert manifest["sources"][name]["redistributable"], doc_id
        if name == "wiki":
            assert doc_id.split(":", 1)[1] in wiki_eval_slugs, doc_id
            continue
        digest = hashlib.sha256(f"{manifest['build']['split_seed']}\x1f{doc_id}".encode()).digest()
        score = int.from_bytes(digest[:8], "big") / 2.0**64
        assert score < manifest["build"]["heldout_fraction"][name], doc_id
        # the same rule in the code that hands documents to the trainer
        assert sources.is_heldout_doc({"doc_id": doc_id, "source": name, "title": "",
                                       "domain": committed.loc[committed["source"] == doc_id, "domain"].iloc[0]})


def test_attribution_and_readme_credit_every_source_used(committed):
    attribution = (TEXTS_DIR / "ATTRIBUTION.md").read_text(encoding="utf-8")
    readme = (TEXTS_DIR / "README.md").read_text(encoding="utf-8")
    manifest = _manifest()
    for name in sorted({s.split(":", 1)[0] for s in committed["source"]}):
        assert f"`{name}`" in attribution and sources.SOURCES[name].licence in attribution, name
    assert manifest["sha256"] in attribution and manifest["sha256"] in readme
    for domain, count in committed["domain"].value_counts().items():
        assert re.search(rf"^\| {domain} \| {count} \|", readme, re.MULTILINE), domain


# ------------------------------------------------------------------ chunking


def test_sentence_and_paragraph_spans_keep_exact_text():
    text = 'One two. "Three four!" Five?\n\n  Indented para.\n\n\n\nLast one'
    sentences = [text[a:b] for a, b in mixedset.sentence_spans(text, 0, 28)]
    assert sentences == ["One two.", '"Three four!"', "Five?"]
    assert [text[a:b] for a, b in mixedset.prose_spans(text)] == [
        'One two. "Three four!" Five?', "  Indented para.", "Last one"]


def test_group_spans_make_contiguous_passages_within_limits(monkeypatch):
    monkeypatch.setattr(mixedset, "MIN_WORDS", 4)
    monkeypatch.setattr(mixedset, "TARGET_WORDS", 6)
    monkeypatch.setattr(mixedset, "MAX_WORDS", 9)
    text = "a b c.\n\nd e f g.\n\nh i j k l m n o p q r.\n\ns t u v.\n\nw."
    spans = mixedset.prose_spans(text)
    out = mixedset.group_spans(text, spans)
    # 3+4 words close at >= 6; the 11-word paragraph exceeds 9 and is skipped; 4+1 words pass the minimum
    assert out == ["a b c.\n\nd e f g.", "s t u v.\n\nw."]
    assert all(p in text for p in out)


def test_code_spans_cut_at_top_level_definitions():
    code = "import os\n\n\n@decorator\ndef f():\n    return 1\n\n\nclass A:\n    x = 1\n\n    def g(self):\n        pass\n"
    assert [code[a:b] for a, b in mixedset.code_spans(code)] == [
        "import os", "@decorator\ndef f():\n    return 1", "class A:\n    x = 1\n\n    def g(self):\n        pass"]


def test_big_class_is_cut_at_methods(monkeypatch):
    monkeypatch.setattr(mixedset, "MAX_WORDS", 12)
    code = "class A:\n    '''doc'''\n    def f(self):\n        return 1 + 2 + 3\n    def g(self):\n        return 4\n"
    assert [code[a:b] for a, b in mixedset.code_spans(code)] == [
        "class A:\n    '''doc'''", "    def f(self):\n        return 1 + 2 + 3", "    def g(self):\n        return 4"]


def test_round_robin_alternates_sources_then_documents():
    frame = pd.DataFrame({
        "text_id": ["a1", "a2", "b1", "c1", "c2"],
        "text": ["x"] * 5,
        "domain": ["d"] * 5,
        "source": ["s1:a", "s1:a", "s1:b", "s2:c", "s2:c"],
        "round": [0, 1, 0, 0, 1],
        "doc_rank": ["1", "1", "2", "3", "3"],
    })
    assert mixedset.select_round_robin(frame, target=4)["text_id"].tolist() == ["a1", "c1", "b1", "c2"]


# ------------------------------------------------------------------ extractors


def test_detag_brown():
    tagged = "\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n\n\tIt/pps did/dod n't/* ./."
    assert sources.detag_brown(tagged) == 'The jury said "no".\n\nIt didn\'t.'


def test_email_body_drops_quotes_signature_and_footer():
    raw = ("From: a@example.org\nSubject: hi\nContent-Type: text/plain\n\n"
           "Hello there.\n\nOn Mon, Bob wrote:\n> quoted line\nMy answer.\n-- \nSig line\n")
    assert sources.email_body(raw) == "Hello there.\n\nMy answer."
    footer = "From: a@b.c\n\nBody text.\n_______________________________________________\nlist footer\n"
    assert sources.email_body(footer) == "Body text."


# ------------------------------------------------------------------ split, cache and download checks


def test_training_and_heldout_documents_partition_a_source(tmp_path, monkeypatch):
    monkeypatch.setenv("MMLAW_CACHE", str(tmp_path))
    docs = [{"doc_id": f"toy:{i}", "source": "toy", "domain": "news", "title": str(i), "text": f"text {i}"}
            for i in range(400)]
    toy = sources.Source("toy", "news", "public domain", True, 0.25, lambda _: iter(docs))
    monkeypatch.setitem(sources.SOURCES, "toy", toy)
    held = {d["doc_id"] for d in sources.heldout_documents("toy")}
    train = {doc_id for doc_id, _ in sources.training_documents("toy")}
    assert [d["doc_id"] for d in sources.training_records("toy")] == sorted(train, key=lambda i: int(i[4:]))
    assert held.isdisjoint(train) and held | train == {d["doc_id"] for d in docs}
    assert 0.18 < len(held) / len(docs) < 0.32
    assert sources.docs_path("toy").is_file()  # cached as jsonl
    closed = sources.Source("toy", "news", "research use", False, 0.25, lambda _: iter(docs))
    monkeypatch.setitem(sources.SOURCES, "toy", closed)
    assert sources.heldout_documents("toy") == []  # not redistributable: training only


def test_fetch_rejects_an_archive_with_the_wrong_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("MMLAW_CACHE", str(tmp_path))
    archive = sources.Archive("pip", "toy==1.0", "toy-1.0.tar.gz", hashlib.sha256(b"good").hexdigest(), 4)
    path = tmp_path / "corpora" / "dl" / "pip" / "toy-1.0.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"good")
    assert sources.fetch_archive(archive) == path
    path.write_bytes(b"evil")
    with pytest.raises(ValueError, match="toy==1.0"):
        sources.fetch_archive(archive)


@pytest.mark.slow
@pytest.mark.skipif(not _cache_complete(), reason="source archives not downloaded (run the mixed build once)")
def test_rebuild_is_bit_for_bit_identical(tmp_path):
    out = tmp_path / "mixed_heldout.jsonl"
    mixedset.build(out)
    assert out.read_bytes() == COMMITTED.read_bytes()
    assert textset.manifest_path_for(out).read_bytes() == MANIFEST.read_bytes()
    assert (tmp_path / "ATTRIBUTION.md").read_bytes() == (TEXTS_DIR / "ATTRIBUTION.md").read_bytes()
    assert (tmp_path / "README.md").read_bytes() == (TEXTS_DIR / "README.md").read_bytes()


# ------------------------------------------------------------------ R lazy-load and OSIS readers


def _xdr_header() -> bytes:
    return b"X\n" + struct.pack(">iii", 3, 0x040201, 0x030500) + struct.pack(">i", 5) + b"UTF-8"


def _xdr_chars(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">ii", 0x00000009, -1)
    raw = value.encode()
    return struct.pack(">ii", 0x00040009, len(raw)) + raw


def _xdr_names_attr(names: list[str]) -> bytes:
    """Pairlist of one tagged attribute ``names`` (symbol written once), ended by NULL."""
    body = struct.pack(">i", 0x00000402) + struct.pack(">i", 1) + _xdr_chars("names")
    body += struct.pack(">ii", 16, len(names)) + b"".join(_xdr_chars(n) for n in names)
    return body + struct.pack(">i", 254)


def test_rdata_reads_a_hand_encoded_lazyload_database():
    """c(first="Call me Ishmael.", second=NA) and an integer vector, stored as R stores package data."""
    strings = _xdr_header() + struct.pack(">ii", 0x00000210, 2) + _xdr_chars("Call me Ishmael.") + \
        _xdr_chars(None) + _xdr_names_attr(["first", "second"])
    integers = _xdr_header() + struct.pack(">ii", 13, 3) + struct.pack(">iii", 1, -2, 3)
    chunks = [struct.pack(">i", len(x)) + zlib.compress(x) for x in (strings, integers)]
    rdb = b"".join(chunks)
    offsets = [0, len(chunks[0])]
    # index: list(variables = list(s = c(offset, length), i = ...)) with names, gzip'd
    variables = struct.pack(">ii", 0x00000213, 2) + b"".join(
        struct.pack(">ii", 13, 2) + struct.pack(">ii", off, len(c)) for off, c in zip(offsets, chunks)) + \
        _xdr_names_attr(["s", "i"])
    index = _xdr_header() + struct.pack(">ii", 0x00000213, 1) + variables + _xdr_names_attr(["variables"])
    out = rdata.read_lazyload(gzip.compress(index), rdb)
    assert out == {"s": {"first": "Call me Ishmael.", "second": None}, "i": [1, -2, 3]}


def test_osis_to_text():
    xml = ('<chapter n="23" osisID="Ps.23" sID="Ps.23"/><title type="x-s">Psalm 23</title> <div sID="g1" '
           'type="x-p"/> The <hi type="italic">Lord</hi> is my shepherd &amp; guide. <div eID="g1" type="x-p"/>')
    assert sources.osis_to_text(xml) == "Psalm 23\n\nThe Lord is my shepherd & guide."


def test_late_sources_are_training_only_and_kept_out_of_the_build_record():
    manifest = _manifest()
    for name, spec in sources.SOURCES.items():
        if spec.late:
            assert spec.heldout_fraction == 0 and name not in manifest["sources"], name
            assert not sources.is_heldout_doc({"doc_id": f"{name}:x", "source": name, "domain": spec.domain,
                                               "title": "x"})


def test_brown_documents_outside_the_heldout_domains_stay_on_the_training_side():
    """A Brown sample of a domain the set does not evaluate is never held out, whatever its hash."""
    brown = sources.SOURCES["brown"]
    ids = [f"brown:c{k:04d}" for k in range(200)]
    low_hash = [i for i in ids if sources.heldout_score(i) < brown.heldout_fraction]
    assert low_hash  # some ids would be held out by hash alone
    for doc_id in low_hash:
        assert sources.is_heldout_doc({"doc_id": doc_id, "source": "brown", "domain": "news", "title": ""})
        assert not sources.is_heldout_doc({"doc_id": doc_id, "source": "brown", "domain": "academic", "title": ""})
