"""Held-out text sets (§3.2): loading (local files read here, ids as written; hub sets through ``datasets``) and fingerprinting."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
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


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's fields; a key given twice is an error (json would keep the last silently)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _loads(text: str, label: str) -> Any:
    """The JSON value of ``text`` (a key repeated in one object is an error); errors name ``label`` and the line."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        where = f"{label} line {error.lineno}" if "\n" in text else label
        raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from None


def _check_record(record: Any, label: str) -> dict[str, Any]:
    """``record`` if it is a JSON object with a ``text`` and valid-Unicode strings; errors name ``label``."""
    if not isinstance(record, dict):
        raise ValueError(f"{label}: a row is a JSON object, got {type(record).__name__}")
    if "text" not in record:
        raise ValueError(f"{label}: no 'text' field (have {sorted(record)})")
    for key, value in record.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(f"{label}: field {key!r} is not valid Unicode ({error.reason})") from None
    return record


def _read_jsonl(raw: bytes, where: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The objects of a JSON-lines file, each with its line number (blank lines skipped)."""
    records, lines = [], []
    for number, line in enumerate(_decode_utf8(raw, where).splitlines(), start=1):
        if line.strip():
            label = f"{where} line {number}"
            records.append(_check_record(_loads(line, label), label))
            lines.append(number)
    return records, lines


def _read_json(raw: bytes, where: str) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The objects of a .json file: one JSON array of objects, else JSON lines."""
    text = _decode_utf8(raw, where)
    if not text.lstrip().startswith("["):
        return _read_jsonl(raw, where)
    return [_check_record(row, f"{where} row {index + 1}") for index, row in enumerate(_loads(text, where))], None


def read_local_texts(path: Path) -> tuple[pd.DataFrame, list[int] | None]:
    """Every row of a local .jsonl/.json/.csv/.parquet text file with its fields as written (CSV fields are strings),
    and each row's file line where known; an empty or undecodable file is an error naming the file and line."""
    where = str(path)
    if path.stat().st_size == 0:
        raise ValueError(f"text set {where!r} is empty (no rows)")
    lines: list[int] | None = None
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise ValueError(f"text set {where!r} could not be read: {type(error).__name__}: {error}") from None
    else:
        raw = path.read_bytes()
        if not raw.strip():
            raise ValueError(f"text set {where!r} is empty (no rows)")
        if path.suffix == ".csv":
            import io

            try:
                # every field as written: "001" stays "001", "None" and "NA" stay text
                frame = pd.read_csv(io.StringIO(_decode_utf8(raw, where)), dtype=str, keep_default_na=False)
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
                raise ValueError(f"text set {where!r} could not be read as CSV: {error}") from None
        else:
            records, lines = (_read_jsonl if path.suffix == ".jsonl" else _read_json)(raw, where)
            frame = pd.DataFrame.from_records(records)
    if frame.empty:
        raise ValueError(f"text set {where!r} is empty (no rows)")
    return frame, lines


def _text_id(value: Any, label: str) -> str:
    """A text id exactly as written: strings as they are, whole numbers in full; floats and other types refused."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{label}: empty text_id")
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise ValueError(f"{label}: empty text_id")
    raise ValueError(f"{label}: text_id {value!r} is a {type(value).__name__}; write text ids as strings "
                     "(or whole numbers), so they are read exactly as written")


def _clean_frame(frame: pd.DataFrame, where: str, lines: list[int] | None, default_source: str) -> pd.DataFrame:
    """Text ids as strings exactly as written, unique across the whole set; every text with a source."""
    if "text" not in frame.columns:
        raise ValueError(f"{where}: no 'text' column; have {list(frame.columns)}")
    frame = frame.reset_index(drop=True)
    if "text_id" not in frame.columns:
        frame.insert(0, "text_id", [f"{i:06d}" for i in range(len(frame))])
    frame["text_id"] = [_text_id(value, _row_label(where, row, lines)) for row, value in enumerate(frame["text_id"])]
    duplicated = frame["text_id"].duplicated(keep=False)
    if duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy())
        text_id = frame["text_id"].iloc[rows[0]]
        places = [_row_label(where, int(row), lines) for row in rows if frame["text_id"].iloc[row] == text_id]
        raise ValueError(f"{where}: duplicate text_id {text_id!r} ({', '.join(places[:3])}); "
                         f"{int(frame['text_id'].duplicated().sum())} duplicate(s) in all")
    if "source" not in frame.columns:
        frame["source"] = default_source
    for row, (text_id, source) in enumerate(zip(frame["text_id"], frame["source"])):
        if not isinstance(source, str) or not source.strip():
            shown = repr(source) if isinstance(source, str) else "null"
            raise ValueError(f"{_row_label(where, row, lines)}: text {text_id!r} has no source ({shown}); "
                             "give every text its source document, or drop the field")
    return frame


def check_n_texts(n_texts: object, where: str) -> int | None:
    """``n_texts`` as an int >= 1 (None = all texts); anything else is an error naming ``where``."""
    if n_texts is None:
        return None
    if isinstance(n_texts, bool) or not isinstance(n_texts, int) or n_texts < 1:
        raise ValueError(f"{where}: n_texts must be a whole number >= 1 (or null for all texts), got {n_texts!r}")
    return n_texts


def load_texts(dataset: str | Path, n_texts: int | None = None, split: str = "train") -> pd.DataFrame:
    """Load a text set as a frame with ``text_id``, ``text``, ``source`` (and ``domain`` when present), in file order.

    ``dataset`` is a local .jsonl/.json/.parquet/.csv file (read here, ids exactly as written) or a Hugging Face
    hub dataset name (through ``datasets``). Ids are unique across the whole file, and every text has a source.
    ``n_texts`` keeps the first n (>= 1, and no more than the set holds). Bad input is an error naming the file
    and, where known, the line.
    """
    path = Path(dataset)
    n_texts = check_n_texts(n_texts, f"text set {str(dataset)!r}")
    if path.suffix in _LOCAL_FORMATS:
        if not path.is_file():
            raise FileNotFoundError(f"text set {str(path)!r} does not exist")
        where = str(path)
        frame, lines = read_local_texts(path)
    else:
        where = f"hub dataset {dataset!r} (split {split!r})"
        lines = None
        try:
            import datasets  # only hub text sets need it

            frame = datasets.load_dataset(str(dataset), split=split).to_pandas()
        except Exception as error:  # offline, unknown name, bad split: datasets raises many types
            first_line = (str(error).splitlines() or [""])[0]
            raise ValueError(f"{where} could not be loaded ({type(error).__name__}: {first_line}); the hub needs "
                             "network access, or give a local .jsonl/.csv/.parquet file") from None
        if frame.empty:
            raise ValueError(f"{where}: the text set is empty (no rows)")
    frame = _clean_frame(frame, where, lines, str(dataset))
    if n_texts is not None:
        if n_texts > len(frame):
            raise ValueError(f"{where}: n_texts={n_texts} but the text set holds only {len(frame)} texts")
        frame = frame.iloc[:n_texts]
    columns = TEXT_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    return validate_texts(frame[columns].reset_index(drop=True), where, lines)


def text_field(dataset: str | Path, text_ids: Iterable[str], field: str) -> list[str | None] | None:
    """The ``field`` (``source``, ``domain``, ...) of each of ``text_ids`` in a local text file, in that order;
    None when the file or the field is absent (a hub dataset name, a set without the field).

    Unlike :func:`load_texts`, a missing field is not filled in, so callers can tell "no labels" apart. The file is
    read as :func:`load_texts` reads it (ids as written, unique, every text with a source); a text without the
    field gets None.
    """
    path = Path(dataset)
    if path.suffix not in _LOCAL_FORMATS or not path.is_file():
        return None
    raw, lines = read_local_texts(path)
    if field not in raw.columns or "text_id" not in raw.columns:
        return None
    frame = _clean_frame(raw, str(path), lines, str(dataset))
    by_id = dict(zip(frame["text_id"], frame[field]))
    ids = [str(t) for t in text_ids]
    missing = [t for t in ids if t not in by_id]
    if missing:
        raise KeyError(f"text set {str(path)!r} has no text_id(s) {missing[:5]} of the loss matrix")
    # sources were checked by _clean_frame (a null one would silently change the cluster bootstrap); other fields
    # may leave a text unlabelled (None)
    return [None if pd.isna(by_id[t]) else str(by_id[t]) for t in ids]
