"""No held-out text, nor a near duplicate of one, is in any training stream of the miniature pool.

The check uses ``textset.find_contamination`` (shared normalised 13-word shingles) inside the
mixture builder; these tests re-check the builder's output with an independent shingle
implementation, plant near duplicates to show they are caught, and compare the committed data
manifests with a fresh build (slow: parsing the Wikipedia sample takes ~30 s).
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from mmlaw_utils.minipool import corpora, train
from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.texts import dataset_fingerprint, load_texts

NGRAM = 13
DATA_DIR = REPO_ROOT / "data" / "minipool"
POOL_PATH = REPO_ROOT / "configs" / "pools" / "minipool.yaml"


def shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Independent reference: lower-cased word n-grams as tuples."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def overlapping(eval_texts: pd.DataFrame, docs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(text_id, doc_id) pairs sharing a 13-gram, by brute-force set intersection."""
    index: dict[tuple[str, ...], str] = {}
    for text_id, text in zip(eval_texts["text_id"], eval_texts["text"]):
        for gram in shingles(text):
            index[gram] = text_id
    hits = []
    for doc_id, text in docs:
        for gram in shingles(text):
            if gram in index:
                hits.append((index[gram], doc_id))
                break
    return hits


@pytest.fixture(scope="module")
def eval_texts() -> pd.DataFrame:
    return load_texts(load_profile("minipool").dataset)


def test_planted_near_duplicates_are_dropped():
    """An eval text copied into a training doc with case, punctuation and spacing changed is removed."""
    evaluation = pd.DataFrame({
        "text_id": ["e1", "e2"],
        "text": ["The quick brown fox jumps over the lazy dog while the farmer sleeps in the barn at noon.",
                 "A completely different sentence about rivers, mountains and the long history of trade routes."],
    })
    docs = [
        ("clean", "Nothing here overlaps with the evaluation texts at all, it is about something else entirely."),
        ("planted", "Intro text. THE QUICK, brown fox -- jumps over the   lazy dog; while the farmer sleeps in the barn! More."),
        ("short-overlap", "the long history of trade routes is short"),  # shares fewer than 13 words
    ]
    kept, dropped = corpora.drop_contaminated(docs, evaluation)
    assert dropped == ["planted"]
    assert [d[0] for d in kept] == ["clean", "short-overlap"]
    assert overlapping(evaluation, kept) == []
    assert overlapping(evaluation, docs) == [("e1", "planted")]


@pytest.mark.parametrize("source", ["lee_news", "reviews", "kjv"])
def test_extra_sources_after_filtering_share_no_13gram_with_eval(source, eval_texts):
    """Each extra source, as the mixture builder keeps it, has no 13-gram in common with any eval text."""
    docs, manifest = corpora.build_mixture([{"source": source}], eval_texts)
    assert docs, source
    assert overlapping(eval_texts, docs) == []
    assert manifest["sources"][source]["docs"] == len(docs)


def _streams(pool: dict) -> dict[str, list[dict]]:
    """Every training stream of the pool: each family's own mixture and each family on the shared one."""
    streams = {family: spec["data_mix"] for family, spec in pool["families"].items()}
    shared = {entry["mixture"] for entry in pool["models"] if entry["arm"] == "same_data"}
    for family in pool["families"]:
        for mixture in shared:
            streams[f"{family}--{mixture}"] = pool["mixtures"][mixture]
    return streams


def test_committed_data_manifests_cover_every_stream():
    """train_data/<stream>.json records the mixture each stream was built from, source by source."""
    pool = train.load_pool_config(POOL_PATH)
    for stream, data_mix in _streams(pool).items():
        manifest = json.loads((DATA_DIR / "train_data" / f"{stream}.json").read_text())
        assert manifest["key"]["data_mix"] == data_mix, stream
        assert manifest["key"]["source_registry"] == pool["source_registry"], stream
        assert manifest["data"]["mix"] == corpora.mix_name(data_mix), stream
        assert set(manifest["data"]["sources"]) == {part["source"] for part in data_mix}, stream
        assert all(info["bytes"] > 0 for info in manifest["data"]["sources"].values()), stream


@pytest.mark.slow
def test_every_stream_is_clean_and_matches_its_manifest(eval_texts):
    """Rebuild each training stream exactly as training does and re-check it against every held-out text."""
    pool = train.load_pool_config(POOL_PATH)
    for stream, data_mix in _streams(pool).items():
        missing = [part["source"] for part in data_mix if not _source_cached(part["source"])]
        if missing:
            pytest.skip(f"sources {missing} are not downloaded (run the mixed build once)")
        seed = pool["families"][stream.split("--")[0]]["training"]["seed"]
        docs, manifest = corpora.build_mixture(data_mix, eval_texts, seed=f"mmlaw-minipool:{seed}",
                                               registry=pool["source_registry"])
        assert overlapping(eval_texts, docs) == [], stream
        committed = json.loads((DATA_DIR / "train_data" / f"{stream}.json").read_text())
        assert committed["data"]["sha256"] == manifest["sha256"], stream


# ------------------------------------------------------------------ the mixed-domain set and its sources

MIXED_MANIFEST = REPO_ROOT / "data" / "texts" / "mixed_heldout.manifest.json"


def _source_cached(name: str) -> bool:
    from mmlaw_utils.minipool import sources

    archive = sources.SOURCES[name].archive
    return archive is None or (sources.cache_root() / "dl" / archive.kind / archive.filename).is_file()


def test_mixed_manifest_records_a_clean_check_against_every_source():
    """The build checked the held-out set against the training side of every registered source.

    CI cannot see the training documents (they need a download); this verifies the build's record
    covers the current registry. The re-check itself is test_mixed_set_shares_no_13gram_with_training_side.
    """
    from mmlaw_utils.minipool import sources

    manifest = json.loads(MIXED_MANIFEST.read_text(encoding="utf-8"))
    assert manifest["build"]["contamination_ngram"] == NGRAM
    assert set(manifest["sources"]) == {n for n, s in sources.SOURCES.items() if not s.late}
    for name, info in manifest["sources"].items():
        assert info["training_docs"] + info["heldout_docs"] <= info["docs"], name
        assert re.fullmatch(r"[0-9a-f]{64}", info["training_sha256"]), name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(__import__("mmlaw_utils.minipool.sources", fromlist=["SOURCES"]).SOURCES))
def test_mixed_set_shares_no_13gram_with_training_side(name):
    """Independent brute-force re-check of one source's training documents against every held-out text."""
    from mmlaw_utils.minipool import mixedset, sources

    if not _source_cached(name):
        pytest.skip(f"source {name} is not downloaded (run the mixed build once)")
    texts = load_texts(mixedset.DEFAULT_OUT)
    docs = sources.training_documents(name)
    manifest = json.loads(MIXED_MANIFEST.read_text(encoding="utf-8"))
    if not sources.SOURCES[name].late:  # late sources joined after the build and are not in its record
        assert mixedset._docs_sha256(docs) == manifest["sources"][name]["training_sha256"], \
            f"{name}: training side differs from the build's"
    assert not {doc_id for doc_id, _ in docs} & set(texts["source"]), name
    assert overlapping(texts, docs) == [], name
