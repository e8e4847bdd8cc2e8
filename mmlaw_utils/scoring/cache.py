"""Per-model score files: one parquet per (model, dataset), provenance in its metadata.

Layout of a cache file: columns ``text_id`` (str), ``nll`` (float64, summed nats),
``n_tokens`` (int64), ``n_bytes`` (int64), one row per text in dataset order; the
provenance dict is JSON under the parquet schema metadata key ``mmlaw.provenance``.
Every write is atomic (``mmlaw_utils.io``): a temp file in the same folder, fsync, then ``os.replace``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import posixpath
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmlaw_utils.config import is_whole
from mmlaw_utils.io import ExclusiveLock, atomic_write_table, atomic_write_text

CACHE_COLUMNS = ["text_id", "nll", "n_tokens", "n_bytes"]
PROVENANCE_KEY = b"mmlaw.provenance"
ROWS_CHECKSUM = "rows_sha256"  # provenance key: checksum of the rows the provenance describes
PARAMS_MAX = 10**15  # parameters: far beyond any model, well inside float64's exact integers


def normalise_model_id(model: str) -> str:
    """One spelling per model id: ``./x``, ``x/`` and ``x`` are the same id; hub ids stay as given."""
    name = str(model).strip()
    if not name:
        raise ValueError("empty model id")
    # posixpath.normpath is string-only, so the result never depends on the working directory
    return posixpath.normpath(name)


def model_slug(model: str) -> str:
    """File-name-safe, readable and unique form of a model id: a stem plus 8 hex digits of its hash.

    E.g. ``Qwen/Qwen2.5-0.5B`` -> ``Qwen--Qwen2.5-0.5B-<hash>``; a local path keeps only its last
    part in the stem, so the hash (of the full normalised id) tells ``famx/small`` from ``famy/small``.
    """
    name = normalise_model_id(model)
    stem = name
    if stem.startswith(("/", ".", "~")) or stem.count("/") > 1:
        stem = Path(stem).name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem.replace("/", "--")).strip("-.") or "model"
    return f"{stem}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def cache_path(cache_dir: str | Path, model: str, dataset_fingerprint: str) -> Path:
    """Path of the score file of ``model`` on the text set with ``dataset_fingerprint``."""
    return Path(cache_dir) / f"{model_slug(model)}__{dataset_fingerprint[:12]}.parquet"


def _check_counts(results: pd.DataFrame, where: str) -> None:
    """``n_tokens`` and ``n_bytes`` hold whole numbers (81.7 tokens is an error, not 81)."""
    for column in ("n_tokens", "n_bytes"):
        values = results[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            raise ValueError(f"{where}: column {column!r} must hold whole numbers, got {values.dtype} values")
        numbers = values.to_numpy(dtype="float64")
        bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
        if bad.any():
            raise ValueError(f"{where}: {column} is not a whole number for text(s) "
                             f"{results['text_id'][bad].astype(str).tolist()[:10]} (e.g. {float(numbers[bad][0])!r})")


def _check_frame(results: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in CACHE_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    _check_counts(results, where)
    try:
        frame = results[CACHE_COLUMNS].astype(
            {"text_id": str, "nll": "float64", "n_tokens": "int64", "n_bytes": "int64"}
        ).reset_index(drop=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: column 'nll' must hold numbers ({error})") from None
    bad = ~np.isfinite(frame["nll"].to_numpy())
    if bad.any():
        raise ValueError(f"{where}: non-finite nll for text(s) {frame['text_id'][bad].tolist()[:10]}")
    # a summed negative log-likelihood is >= 0 nats, and every scored text has a token and a byte
    for column, low in (("nll", 0), ("n_tokens", 1), ("n_bytes", 1)):
        bad = frame[column].to_numpy() < low
        if bad.any():
            raise ValueError(f"{where}: {column} below {low} for text(s) {frame['text_id'][bad].tolist()[:10]}")
    if results["text_id"].isna().any():
        raise ValueError(f"{where}: {int(results['text_id'].isna().sum())} row(s) without a text_id")
    duplicated = frame["text_id"][frame["text_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{where}: duplicate text_id(s) {duplicated[:10]}")
    return frame


def rows_checksum(frame: pd.DataFrame) -> str:
    """SHA-256 hex digest of a cache's rows in order: text ids (length-prefixed UTF-8), nll bits, token and byte counts."""
    digest = hashlib.sha256()
    for text_id in frame["text_id"]:
        raw = str(text_id).encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    digest.update(frame["nll"].to_numpy(dtype="<f8").tobytes())
    for column in ("n_tokens", "n_bytes"):
        digest.update(frame[column].to_numpy(dtype="<i8").tobytes())
    return digest.hexdigest()


def validate_provenance(provenance: Any, where: str) -> dict[str, Any]:
    """``provenance`` if its keys have their types (``complete`` a bool, parameter counts whole numbers in range,
    ``n_texts`` a whole number, ids and checksums strings); otherwise a ValueError naming ``where`` and the key."""
    if not isinstance(provenance, dict):
        raise ValueError(f"{where}: provenance must be a JSON object, got {type(provenance).__name__}")
    if "complete" in provenance and not isinstance(provenance["complete"], bool):
        raise ValueError(f"{where}: provenance key 'complete' must be true or false, got {provenance['complete']!r}")
    for key, low in (("params_total", 1), ("params_nonembed", 0), ("n_texts", 0)):
        value = provenance.get(key)
        if value is not None and not (is_whole(value, low) and value <= PARAMS_MAX):
            raise ValueError(f"{where}: provenance key {key!r} must be a whole number from {low} to {PARAMS_MAX:.0e}, "
                             f"got {value!r}")
    for key in ("model", "dataset_fingerprint", ROWS_CHECKSUM):
        if provenance.get(key) is not None and not isinstance(provenance[key], str):
            raise ValueError(f"{where}: provenance key {key!r} must be a string, got {provenance[key]!r}")
    return provenance


def check_rows(frame: pd.DataFrame, provenance: dict[str, Any], where: str) -> None:
    """A complete cache holds exactly the provenance's ``n_texts`` rows (rows removed later are caught)."""
    expected = provenance.get("n_texts")
    if provenance.get("complete", False) and expected is not None and len(frame) != int(expected):
        raise ValueError(
            f"{where}: {len(frame)} rows but its provenance says n_texts={expected} (rows removed or added "
            "after scoring); rescore this model with --force"
        )


def write_cache(path: str | Path, results: pd.DataFrame, provenance: dict[str, Any]) -> None:
    """Atomically write per-text results (nats) with their provenance, plus the rows' checksum, to ``path``."""
    frame = _check_frame(results, str(path))
    provenance = {**validate_provenance(provenance, str(path)), ROWS_CHECKSUM: rows_checksum(frame)}
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True, default=str).encode()
    atomic_write_table(table.replace_schema_metadata(metadata), path)


def read_cache(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a score file: (results frame with CACHE_COLUMNS, provenance dict), checking the provenance's types and,
    when it has one, the rows' checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score cache {str(path)!r} does not exist")
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise ValueError(f"score cache {str(path)!r} is not a readable parquet file: {error}") from error
    raw = (table.schema.metadata or {}).get(PROVENANCE_KEY)
    if raw is None:
        raise ValueError(f"score cache {str(path)!r} has no mmlaw provenance metadata")
    try:
        provenance = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"score cache {str(path)!r} has damaged provenance metadata: {error}") from error
    where = f"score cache {str(path)!r}"
    validate_provenance(provenance, where)
    frame = _check_frame(table.to_pandas(), str(path))
    check_rows(frame, provenance, where)
    # caches written before the checksum existed have none; any cache that has one must match it
    if provenance.get(ROWS_CHECKSUM) is not None and provenance[ROWS_CHECKSUM] != rows_checksum(frame):
        raise ValueError(f"{where}: its rows do not match the checksum in its provenance (rows edited, or swapped "
                         "with another cache's, after scoring); rescore this model with --force")
    return frame, provenance


# ----------------------------------------------------------------------------- resumable runs
# A run in progress keeps finished chunks in ``<cache>.partial/`` (chunk_00000.parquet, ...)
# next to a ``manifest.json`` of its settings; both are written atomically, so a run killed
# at any instant (kill -9) leaves only whole chunks. The final cache is assembled from them.


def partial_dir(path: str | Path) -> Path:
    """Folder of the finished chunks of an interrupted or running scoring of ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


def lock_path(path: str | Path) -> Path:
    """Lock file guarding the scoring of ``path`` (one process per model and text set)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


class CacheLock(ExclusiveLock):
    """Exclusive, non-blocking lock on ``<cache>.lock``: one process scores a model into a cache at a time."""

    def __init__(self, path: str | Path, model: str):
        lock = lock_path(path)
        super().__init__(lock, f"model {model!r} is already being scored into {str(lock)[:-5]!r} by another "
                               f"process (pid {{holder}}; lock {str(lock)!r} is held); wait for it or stop it")
        self.model = model
        self.cache = Path(path)

    def __enter__(self) -> "CacheLock":
        try:
            super().__enter__()
        except OSError as error:
            # a read-only folder: nobody can write the cache there, so a finished cache is read without the lock
            if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            if not self.cache.is_file():
                raise RuntimeError(f"model {self.model!r}: cannot score into read-only folder {str(self.cache.parent)!r} "
                                   f"({error.strerror}); give it a writable cache_dir") from None
        return self


def chunk_path(partial: str | Path, index: int) -> Path:
    """Path of chunk ``index`` in a partial folder."""
    return Path(partial) / f"chunk_{index:05d}.parquet"


def write_chunk(partial: str | Path, index: int, results: pd.DataFrame) -> None:
    """Atomically write the finished results (CACHE_COLUMNS) of chunk ``index``."""
    frame = _check_frame(results, f"{partial} chunk {index}")
    atomic_write_table(pa.Table.from_pandas(frame, preserve_index=False), chunk_path(partial, index))


def read_chunks(partial: str | Path) -> dict[int, pd.DataFrame]:
    """Finished chunks of a partial folder: {index: results frame}; temp files are ignored."""
    chunks = {}
    for file in sorted(Path(partial).glob("chunk_*.parquet")):
        match = re.fullmatch(r"chunk_(\d+)\.parquet", file.name)
        if match is None:
            raise ValueError(
                f"stray file {str(file)!r} in the partial folder (chunks are chunk_NNNNN.parquet); "
                "remove it, or rescore with --force to start over"
            )
        try:
            table = pq.read_table(file)
        except Exception as error:  # pyarrow raises several types for a damaged file
            raise ValueError(
                f"chunk {str(file)!r} is not a readable parquet file ({error}); remove it to rescore that chunk"
            ) from error
        chunks[int(match.group(1))] = _check_frame(table.to_pandas(), str(file))
    return chunks


def write_manifest(partial: str | Path, manifest: dict[str, Any]) -> None:
    """Atomically record the settings of a run in progress."""
    atomic_write_text(Path(partial) / "manifest.json", json.dumps(manifest, sort_keys=True, default=str, indent=1))


def read_manifest(partial: str | Path) -> dict[str, Any] | None:
    """Settings of a run in progress, or None when there is none."""
    file = Path(partial) / "manifest.json"
    if not file.is_file():
        return None
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"manifest {str(file)!r} of an interrupted run is damaged ({error}); rescore with --force to start over"
        ) from error
    if not isinstance(manifest, dict):
        raise ValueError(f"manifest {str(file)!r} is not a JSON object; rescore with --force to start over")
    return manifest


def remove_leftovers(path: str | Path) -> list[Path]:
    """Delete temp files a killed write of cache ``path`` (or of its chunks) left behind; return them.

    Call only while holding the cache's lock: then no other writer of these files is alive.
    """
    path = Path(path)
    leftovers = list(path.parent.glob(f".{path.name}.*.tmp")) + list(partial_dir(path).glob(".*.tmp"))
    for file in leftovers:
        file.unlink(missing_ok=True)
    return leftovers


def remove_partial(partial: str | Path) -> None:
    """Delete a partial folder (after consolidation, or when forced to start over)."""
    import shutil

    shutil.rmtree(partial, ignore_errors=True)


def provenance_mismatches(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Human-readable differences between a cache's provenance and the expected values (JSON-normalised)."""
    normalise = lambda value: json.loads(json.dumps(value, default=str))  # noqa: E731
    return [
        f"{key}: cache has {stored.get(key)!r}, requested {normalise(value)!r}"
        for key, value in expected.items()
        if normalise(stored.get(key)) != normalise(value)
    ]
