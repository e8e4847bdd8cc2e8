"""Held-out text sets (§3.2): loading through ``datasets`` and fingerprinting."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

TEXT_COLUMNS = ["text_id", "text", "source"]
OPTIONAL_COLUMNS = ["domain"]  # kept when the text set has them (the mixed-domain set does)
_LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def dataset_fingerprint(text_ids: Iterable[str], texts: Iterable[str]) -> str:
    """SHA-256 hex digest of the ordered (text_id, text) pairs; identifies a text set exactly."""
    digest = hashlib.sha256()
    for text_id, text in zip(text_ids, texts, strict=True):
        for field in (str(text_id), text):
            raw = field.encode("utf-8")
            # length-prefixing makes the encoding unambiguous (no separator collisions)
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)
    return digest.hexdigest()


def validate_texts(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check a text table has unique string ids and non-empty string texts; return it unchanged."""
    missing = [c for c in ("text_id", "text") if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; have {list(frame.columns)}")
    duplicated = frame["text_id"][frame["text_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{where}: duplicate text_id(s) {duplicated[:10]}")
    for text_id, text in zip(frame["text_id"], frame["text"]):
        if not isinstance(text, str):
            raise TypeError(f"{where}: text {text_id!r} is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"{where}: text {text_id!r} is empty")
    return frame


def load_texts(dataset: str | Path, n_texts: int | None = None, split: str = "train") -> pd.DataFrame:
    """Load a text set as a frame with ``text_id``, ``text``, ``source``, in file order.

    ``dataset`` is a local .jsonl/.json/.parquet/.csv file or a Hugging Face hub dataset
    name; both go through ``datasets.load_dataset``. ``n_texts`` keeps the first n.
    """
    import datasets  # heavy import, only when loading

    path = Path(dataset)
    if path.suffix in _LOCAL_FORMATS:
        if not path.is_file():
            raise FileNotFoundError(f"text set {str(path)!r} does not exist")
        loaded = datasets.load_dataset(_LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
        where = str(path)
    else:
        loaded = datasets.load_dataset(str(dataset), split=split)
        where = f"hub dataset {dataset!r} (split {split!r})"
    frame = loaded.to_pandas()
    if "text_id" not in frame.columns:
        frame.insert(0, "text_id", [f"{i:06d}" for i in range(len(frame))])
    frame["text_id"] = frame["text_id"].astype(str)
    if "source" not in frame.columns:
        frame["source"] = str(dataset)
    if n_texts is not None:
        frame = frame.iloc[:n_texts]
    columns = TEXT_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    return validate_texts(frame[columns].reset_index(drop=True), where)
