"""Deterministic stratified subsets of a held-out text set with domains (profile ``real``).

A subset takes up to ``per_domain`` texts of every domain, spread round-robin over the domain's source
documents (so no one document dominates), chosen by sha256 ranks of a seed and the ids: the same
source file, ``per_domain`` and ``seed`` always give the same texts. The subset file keeps the
source's lines byte for byte, in source order, and a manifest records how it was made;
``python -m mmlaw_utils subset check OUT`` rebuilds it and compares.

    python -m mmlaw_utils subset build --source data/texts/mixed_heldout.jsonl --per-domain 100 \\
        --out data/texts/mixed_real.jsonl
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from mmlaw_utils.config import REPO_ROOT

SUBSET_FIELDS = ("text_id", "domain", "source")


def _rank(seed: int, key: str) -> str:
    """Seeded sort key of an id (sha256 hex)."""
    return hashlib.sha256(f"{seed}:{key}".encode("utf-8")).hexdigest()


def stratified_subset(frame: pd.DataFrame, per_domain: int, seed: int = 0) -> pd.DataFrame:
    """Up to ``per_domain`` texts of each domain, round-robin over its source documents; rows keep ``frame``'s order.

    ``frame`` needs ``text_id``, ``domain`` and ``source`` (source document id). Within a domain,
    documents are visited in seeded-hash order and each gives its next text (seeded-hash order) per
    round, so a subset of k texts spans min(k, documents) documents. A domain with fewer texts gives all.
    """
    missing = [c for c in SUBSET_FIELDS if c not in frame.columns]
    if missing:
        raise ValueError(f"stratified_subset needs columns {list(SUBSET_FIELDS)}; missing {missing}")
    if per_domain < 1:
        raise ValueError(f"per_domain must be >= 1, got {per_domain}")
    if frame["text_id"].duplicated().any():
        raise ValueError(f"duplicate text_id(s): {frame['text_id'][frame['text_id'].duplicated()].tolist()[:5]}")
    chosen: set[str] = set()
    for _, domain in frame.groupby("domain", sort=True):
        queues = {
            source: sorted(group["text_id"].astype(str), key=lambda t: _rank(seed, t))
            for source, group in domain.groupby("source", sort=False)
        }
        order = sorted(queues, key=lambda s: _rank(seed, str(s)))
        picked: list[str] = []
        depth = 0
        while len(picked) < per_domain and any(depth < len(queues[s]) for s in order):
            picked += [queues[s][depth] for s in order if depth < len(queues[s])][: per_domain - len(picked)]
            depth += 1
        chosen.update(picked)
    return frame[frame["text_id"].astype(str).isin(chosen)]


def read_jsonl_lines(path: str | Path) -> tuple[list[str], pd.DataFrame]:
    """(raw lines, frame of their parsed records) of a .jsonl text set, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text set {str(path)!r} does not exist")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error})") from None
    return lines, pd.DataFrame.from_records(records)


def subset_text(source: str | Path, per_domain: int, seed: int = 0) -> str:
    """The subset file's content: the chosen lines of ``source``, verbatim, in source order."""
    lines, frame = read_jsonl_lines(source)
    keep = stratified_subset(frame, per_domain, seed).index
    return "".join(lines[i] + "\n" for i in keep)


def _display(path: Path) -> str:
    """``path`` relative to the repository root when inside it (manifests stay machine-independent)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def subset_manifest(source: str | Path, out: str | Path, text: str, per_domain: int, seed: int) -> dict[str, Any]:
    """How a subset was made and what it holds (texts per domain, sha256 of source and subset)."""
    from mmlaw_utils.texts import dataset_fingerprint

    records = [json.loads(line) for line in text.splitlines()]
    frame = pd.DataFrame.from_records(records)
    return {
        "file": Path(out).name,
        "made_by": "python -m mmlaw_utils subset build",
        "source": _display(Path(source)),
        "source_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
        "per_domain": int(per_domain),
        "seed": int(seed),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "n_texts": len(frame),
        "dataset_fingerprint": dataset_fingerprint(frame["text_id"], frame["text"]),
        "domains": {str(k): int(v) for k, v in frame["domain"].value_counts().sort_index().items()},
        "source_docs": int(frame["source"].nunique()),
    }


def manifest_path(out: str | Path) -> Path:
    """``<name>.manifest.json`` beside a subset file."""
    out = Path(out)
    return out.with_name(out.stem + ".manifest.json")


def build(source: str | Path, out: str | Path, per_domain: int, seed: int = 0) -> dict[str, Any]:
    """Write the subset file and its manifest (atomically); return the manifest."""
    from mmlaw_utils.io import atomic_write_text

    text = subset_text(source, per_domain, seed)
    manifest = subset_manifest(source, out, text, per_domain, seed)
    atomic_write_text(out, text)
    atomic_write_text(manifest_path(out), json.dumps(manifest, indent=2) + "\n")
    return manifest


def check(out: str | Path) -> list[str]:
    """Problems of a committed subset against a rebuild from its manifest (empty list = it matches)."""
    out = Path(out)
    manifest = json.loads(manifest_path(out).read_text())
    source = Path(manifest["source"])
    source = source if source.is_absolute() else REPO_ROOT / source
    problems = []
    if hashlib.sha256(source.read_bytes()).hexdigest() != manifest["source_sha256"]:
        problems.append(f"{source} changed since {out.name} was built (sha256 differs from its manifest)")
    rebuilt = subset_text(source, manifest["per_domain"], manifest["seed"])
    if not out.is_file() or out.read_text(encoding="utf-8") != rebuilt:
        problems.append(f"{out} differs from its rebuild (per_domain={manifest['per_domain']}, seed={manifest['seed']})")
    if hashlib.sha256(rebuilt.encode("utf-8")).hexdigest() != manifest["sha256"]:
        problems.append(f"the rebuild of {out.name} does not have the manifest's sha256")
    return problems
