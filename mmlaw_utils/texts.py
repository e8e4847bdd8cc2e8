"""Held-out text sets (§3.2): loading (local files with pandas, hub names through ``datasets``) and fingerprinting."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

TEXT_COLUMNS = ["text_id", "text", "source"]
OPTIONAL_COLUMNS = ["domain"]  # kept when the text set has them (the mixed-domain set does)
# local files are read without ``datasets`` (a [score] extra), so the base install can load a text set
_LOCAL_READERS = {
    ".jsonl": lambda path: pd.read_json(path, lines=True, dtype=False),
    ".json": lambda path: pd.read_json(path, dtype=False),
    ".parquet": pd.read_parquet,
    ".csv": pd.read_csv,
}


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


def _row_label(where: str, row: int, lines: list[int] | None) -> str:
    """``file line N`` when the file's line numbers are known, else ``source row N`` (1-based)."""
    return f"{where} line {lines[row]}" if lines is not None and row < len(lines) else f"{where} row {row + 1}"


def validate_texts(frame: pd.DataFrame, where: str, lines: list[int] | None = None) -> pd.DataFrame:
    """Check a text table has unique string ids and non-empty, valid-Unicode texts; return it unchanged.

    ``lines`` (1-based file line of each row) makes errors point at the line.
    """
    missing = [c for c in ("text_id", "text") if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; have {list(frame.columns)}")
    duplicated = frame["text_id"][frame["text_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{where}: duplicate text_id(s) {duplicated[:10]}")
    for row, (text_id, text) in enumerate(zip(frame["text_id"], frame["text"])):
        label = _row_label(where, row, lines)
        if not isinstance(text, str):
            raise TypeError(f"{label}: text {text_id!r} is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"{label}: text {text_id!r} is empty")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{label}: text {text_id!r} is not valid Unicode ({error.reason} at character {error.start})") from None
    return frame


def _decode_utf8(raw: bytes, where: str) -> str:
    """``raw`` as UTF-8 text; an error names the line of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(f"{where} line {line}: not valid UTF-8 (byte {raw[error.start]:#04x})") from None


def _check_jsonl(raw: bytes, where: str) -> list[int]:
    """Check every non-blank line of a JSON-lines file is an object with a valid ``text``; return their line numbers."""
    lines = []
    for number, line in enumerate(_decode_utf8(raw, where).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where} line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where} line {number}: a row is a JSON object, got {type(record).__name__}")
        if "text" not in record:
            raise ValueError(f"{where} line {number}: no 'text' field (have {sorted(record)})")
        if "text_id" in record and (record["text_id"] is None or str(record["text_id"]).strip() == ""):
            raise ValueError(f"{where} line {number}: empty text_id")
        for key, value in record.items():
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as error:
                    raise ValueError(f"{where} line {number}: field {key!r} is not valid Unicode ({error.reason})") from None
        lines.append(number)
    return lines


def _check_local_file(path: Path) -> list[int] | None:
    """Refuse an empty or undecodable text file naming the file and line; JSON-lines row -> line numbers."""
    if path.stat().st_size == 0:
        raise ValueError(f"text set {str(path)!r} is empty (no rows)")
    if path.suffix not in (".jsonl", ".json", ".csv"):
        return None  # binary formats: the reader's own errors, wrapped with the file name
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"text set {str(path)!r} is empty (no rows)")
    if path.suffix == ".jsonl":
        lines = _check_jsonl(raw, str(path))
        if not lines:
            raise ValueError(f"text set {str(path)!r} is empty (no rows)")
        return lines
    _decode_utf8(raw, str(path))
    return None


def check_n_texts(n_texts: object, where: str) -> int | None:
    """``n_texts`` as an int >= 1 (None = all texts); anything else is an error naming ``where``."""
    if n_texts is None:
        return None
    if isinstance(n_texts, bool) or not isinstance(n_texts, int) or n_texts < 1:
        raise ValueError(f"{where}: n_texts must be a whole number >= 1 (or null for all texts), got {n_texts!r}")
    return n_texts


def load_texts(dataset: str | Path, n_texts: int | None = None, split: str = "train") -> pd.DataFrame:
    """Load a text set as a frame with ``text_id``, ``text``, ``source``, in file order.

    ``dataset`` is a local .jsonl/.json/.parquet/.csv file (read with pandas) or a Hugging Face hub
    dataset name (read with ``datasets.load_dataset``, of the ``[score]`` extra). ``n_texts`` keeps the first n (>= 1, and
    no more than the set holds). Bad input is an error naming the file and, where known, the line.
    """
    path = Path(dataset)
    n_texts = check_n_texts(n_texts, f"text set {str(dataset)!r}")
    lines = None
    if path.suffix in _LOCAL_READERS:
        if not path.is_file():
            raise FileNotFoundError(f"text set {str(path)!r} does not exist")
        where = str(path)
        lines = _check_local_file(path)
        try:
            frame = _LOCAL_READERS[path.suffix](path)
        except Exception as error:  # the parsers raise many types
            raise ValueError(f"text set {where!r} could not be read: {type(error).__name__}: {error}") from error
    else:
        import datasets  # heavy import, only for a hub dataset

        where = f"hub dataset {dataset!r} (split {split!r})"
        frame = datasets.load_dataset(str(dataset), split=split).to_pandas()
    if frame.empty:
        raise ValueError(f"{where}: the text set is empty (no rows)")
    if "text" not in frame.columns:
        raise ValueError(f"{where}: no 'text' column; have {list(frame.columns)}")
    if "text_id" not in frame.columns:
        frame.insert(0, "text_id", [f"{i:06d}" for i in range(len(frame))])
    missing_ids = np.flatnonzero(frame["text_id"].isna().to_numpy())
    if missing_ids.size:
        raise ValueError(f"{_row_label(where, int(missing_ids[0]), lines)}: empty text_id ({missing_ids.size} row(s))")
    frame["text_id"] = frame["text_id"].astype(str)
    if "source" not in frame.columns:
        frame["source"] = str(dataset)
    if n_texts is not None:
        if n_texts > len(frame):
            raise ValueError(f"{where}: n_texts={n_texts} but the text set holds only {len(frame)} texts")
        frame = frame.iloc[:n_texts]
    columns = TEXT_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    return validate_texts(frame[columns].reset_index(drop=True), where, lines)


def text_field(dataset: str | Path, text_ids: Iterable[str], field: str) -> list[str | None] | None:
    """The ``field`` (``source``, ``domain``, ...) of each of ``text_ids`` in a local text file, in that order;
    None when the file or the field is absent (a hub dataset name, a set without the field).

    Unlike :func:`load_texts`, a missing field is not filled in, so callers can tell "no labels" apart.
    """
    path = Path(dataset)
    readers = {".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False), ".json": lambda p: pd.read_json(p, dtype=False),
               ".parquet": pd.read_parquet, ".csv": lambda p: pd.read_csv(p, dtype=str)}
    if path.suffix not in readers or not path.is_file():
        return None
    frame = readers[path.suffix](path)
    if field not in frame.columns or "text_id" not in frame.columns:
        return None
    by_id = dict(zip(frame["text_id"].astype(str), frame[field]))
    ids = [str(t) for t in text_ids]
    missing = [t for t in ids if t not in by_id]
    if missing:
        raise KeyError(f"text set {str(path)!r} has no text_id(s) {missing[:5]} of the loss matrix")
    return [None if pd.isna(by_id[t]) else str(by_id[t]) for t in ids]
