"""Per-model score files: one parquet per (model, dataset), provenance in its metadata.

Layout of a cache file: columns ``text_id`` (str), ``nll`` (float64, summed nats),
``n_tokens`` (int64), ``n_bytes`` (int64), one row per text in dataset order; the
provenance dict is JSON under the parquet schema metadata key ``mmlaw.provenance``.
Every write is atomic: a temp file in the same folder, fsync, then ``os.replace``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CACHE_COLUMNS = ["text_id", "nll", "n_tokens", "n_bytes"]
PROVENANCE_KEY = b"mmlaw.provenance"


def model_slug(model: str) -> str:
    """File-name-safe form of a hub id or local path, e.g. ``Qwen/Qwen2.5-0.5B`` -> ``Qwen--Qwen2.5-0.5B``."""
    name = str(model).rstrip("/")
    if os.sep in name and Path(name).exists():
        name = Path(name).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip("-")


def cache_path(cache_dir: str | Path, model: str, dataset_fingerprint: str) -> Path:
    """Path of the score file of ``model`` on the text set with ``dataset_fingerprint``."""
    return Path(cache_dir) / f"{model_slug(model)}__{dataset_fingerprint[:12]}.parquet"


def _check_frame(results: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in CACHE_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    frame = results[CACHE_COLUMNS].astype(
        {"text_id": str, "nll": "float64", "n_tokens": "int64", "n_bytes": "int64"}
    ).reset_index(drop=True)
    bad = ~np.isfinite(frame["nll"].to_numpy())
    if bad.any():
        raise ValueError(f"{where}: non-finite nll for text(s) {frame['text_id'][bad].tolist()[:10]}")
    return frame


def atomic_write_table(table: pa.Table, path: str | Path) -> None:
    """Write a parquet table so that ``path`` is either absent, the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_cache(path: str | Path, results: pd.DataFrame, provenance: dict[str, Any]) -> None:
    """Atomically write per-text results (nats) with their provenance to ``path``."""
    frame = _check_frame(results, str(path))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True, default=str).encode()
    atomic_write_table(table.replace_schema_metadata(metadata), path)


def read_cache(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a score file: (results frame with CACHE_COLUMNS, provenance dict)."""
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
    return _check_frame(table.to_pandas(), str(path)), json.loads(raw)
