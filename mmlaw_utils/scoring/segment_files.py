"""Token and segment loss files on disk (issue 21): paths, columns, reading, checks. Torch-free.

The one owner of the format that ``scoring/segment_cache.py`` writes and that the granularity report and
the explorer read. Under ``<data_dir>/segments/``, one parquet per model named like its score cache
(``cache.cache_path``: model slug + dataset fingerprint), provenance as JSON under the schema metadata key
``mmlaw.provenance``:

* ``tokens/<slug>__<fp12>.parquet``: one row per scored token, ``TOKEN_COLUMNS``: ``text_id`` (str),
  ``byte_end`` (int32, the token's end byte by ``scoring.segments``' attribution rule), ``nll`` (float64 nats).
* ``<segmentation>/<slug>__<fp12>.parquet``: ``SEGMENT_COLUMNS``: ``model``, ``text_id`` (str), ``segment``
  (int32, 0.. within a text), ``byte_start``, ``byte_end`` (int32, ``[start, end)`` UTF-8 bytes tiling the
  text) and ``nll`` (float64, summed nats of the tokens whose last byte lies in the segment).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmlaw_utils.io import atomic_write_table
from mmlaw_utils.scoring import cache
from mmlaw_utils.scoring.segments import SEGMENTATIONS

TOKEN_COLUMNS = ["text_id", "byte_end", "nll"]
SEGMENT_COLUMNS = ["model", "text_id", "segment", "byte_start", "byte_end", "nll"]
# per-text token sums may differ from the kernel's per-text sums only by float64 summation order
SUM_TOLERANCE = 1e-6
# segmentations that read as text when coloured by winner, preferred first
READABLE_SEGMENTATIONS = ("word", "sentence", "line")


def segments_dir(data_dir: str | Path) -> Path:
    """Folder of a profile's token and segment files."""
    return Path(data_dir) / "segments"


def token_path(seg_dir: str | Path, model: str, fingerprint: str) -> Path:
    """Token-loss file of ``model`` on the text set with ``fingerprint``."""
    return cache.cache_path(Path(seg_dir) / "tokens", model, fingerprint)


def segment_path(seg_dir: str | Path, segmentation: str, model: str, fingerprint: str) -> Path:
    """Segment-loss file of ``model`` under ``segmentation``."""
    if segmentation not in SEGMENTATIONS:
        raise ValueError(f"unknown segmentation {segmentation!r}; choose from {list(SEGMENTATIONS)}")
    return cache.cache_path(Path(seg_dir) / segmentation, model, fingerprint)


def compact_parquet_options(table: pa.Table) -> dict[str, Any]:
    """Lossless parquet options for long loss tables: delta-coded integers, byte-split floats, zstd (about half the size)."""
    integers = [f.name for f in table.schema if pa.types.is_integer(f.type)]
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    return {"compression": "zstd", "compression_level": 9, "use_byte_stream_split": floats,
            "use_dictionary": [f.name for f in table.schema if f.name not in integers + floats],
            "column_encoding": {name: "DELTA_BINARY_PACKED" for name in integers}}


def write_with_provenance(path: Path, frame: pd.DataFrame, provenance: dict[str, Any]) -> None:
    """Atomically write ``frame`` (compactly, losslessly) with its provenance in the parquet metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), cache.PROVENANCE_KEY: json.dumps(provenance, sort_keys=True, default=str).encode()}
    table = table.replace_schema_metadata(metadata)
    atomic_write_table(table, path, **compact_parquet_options(table))


def _read(path: Path, columns: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(frame, provenance) of a token or segment file; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"segment-loss file {str(path)!r} does not exist")
    try:
        table = pq.read_table(path)
        provenance = json.loads((table.schema.metadata or {})[cache.PROVENANCE_KEY])
    except Exception as error:  # damaged parquet or metadata
        raise ValueError(f"segment-loss file {str(path)!r} is unreadable or lacks provenance: {error}") from error
    frame = table.to_pandas()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"segment-loss file {str(path)!r} lacks column(s) {missing}")
    frame["text_id"] = frame["text_id"].astype(str)
    return frame[columns], provenance


def read_token_losses(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(token frame with TOKEN_COLUMNS, provenance) of a token-loss file."""
    return _read(Path(path), TOKEN_COLUMNS)


def read_segment_file(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(long-form frame with SEGMENT_COLUMNS, provenance) of one model's segment file."""
    return _read(Path(path), SEGMENT_COLUMNS)


def segmentation_files(data_dir: str | Path, segmentation: str) -> list[Path]:
    """The parquet files of ``segmentation`` under ``data_dir/segments/<segmentation>/`` (one per model)."""
    folder = segments_dir(data_dir) / segmentation
    return sorted(p for p in folder.glob("*.parquet") if p.is_file()) if folder.is_dir() else []


def available_segmentations(data_dir: str | Path) -> list[str]:
    """The segmentations (coarse to fine) with segment files under ``data_dir/segments``."""
    return [s for s in SEGMENTATIONS if segmentation_files(data_dir, s)]


def segmented_models(data_dir: str | Path, segmentation: str) -> set[str]:
    """The models with rows in ``segmentation``'s files (reads the model column only)."""
    found: set[str] = set()
    for path in segmentation_files(data_dir, segmentation):
        found.update(str(m) for m in pq.read_table(path, columns=["model"]).column("model").unique().to_pylist())
    return found


def readable_segmentation(data_dir: str | Path) -> str | None:
    """The segmentation to colour texts by (word, else sentence, else line), or None when none has files."""
    found = available_segmentations(data_dir)
    return next((s for s in READABLE_SEGMENTATIONS if s in found), None)


def read_segment_table(data_dir: str | Path, segmentation: str, model_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Long-form segment losses (SEGMENT_COLUMNS, nats) of ``model_names`` (default all) from every file of ``segmentation``.

    Model and text ids come back categorical: a pivot then maps a few thousand labels, not millions of strings.
    """
    files = segmentation_files(data_dir, segmentation)
    if not files:
        raise FileNotFoundError(f"no {segmentation!r} segment files in {segments_dir(data_dir) / segmentation}; run: "
                                f"python -m mmlaw_utils segments --profile <profile> --segmentation {segmentation}")
    filters = None if model_names is None else [("model", "in", [str(m) for m in model_names])]
    tables = []
    for path in files:
        try:
            tables.append(pq.read_table(path, columns=SEGMENT_COLUMNS, filters=filters, read_dictionary=["model", "text_id"]))
        except Exception as error:  # damaged parquet or missing column
            raise ValueError(f"segment-loss file {str(path)!r} is unreadable or lacks a column of {SEGMENT_COLUMNS}: "
                             f"{error}") from error
    return pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().to_pandas()


def check_segment_frame(frame: pd.DataFrame, n_bytes: dict[str, int], text_nll: pd.Series, where: str,
                        tolerance: float = SUM_TOLERANCE) -> None:
    """Raise unless segments tile each text's bytes in order and sum to ``text_nll`` (nats, relative ``tolerance``)."""
    for text_id, group in frame.groupby("text_id", sort=False, observed=True):
        starts, ends = group["byte_start"].to_numpy(), group["byte_end"].to_numpy()
        if starts[0] != 0 or ends[-1] != n_bytes.get(text_id) or (starts[1:] != ends[:-1]).any() or (ends <= starts).any():
            raise ValueError(f"{where}: segments of text {text_id!r} do not tile its {n_bytes.get(text_id)} bytes")
    if set(frame["text_id"]) != set(n_bytes):
        raise ValueError(f"{where}: texts differ from the text set ({len(set(frame['text_id']))} vs {len(n_bytes)})")
    sums = frame.groupby("text_id", sort=False, observed=True)["nll"].sum().reindex(text_nll.index)
    rel = np.abs(sums.to_numpy() - text_nll.to_numpy()) / np.abs(text_nll.to_numpy())
    if (rel > tolerance).any():
        bad = text_nll.index[rel > tolerance].tolist()
        raise ValueError(f"{where}: segment losses of text(s) {bad[:5]} differ from the score cache by up to {rel.max():.2e} relative")
