"""Score caches -> the loss-matrix files; their reader and writer (paper §3.2, eq. 1).

Notebook 02 assembles a profile's caches (``assemble_loss_matrix``) and writes
``loss_matrix.parquet`` and ``models.parquet`` into ``data/<profile>/`` (``write_loss_matrix``);
later stages read them back with ``load_loss_matrix``. The data model itself is
``analysis.lossmatrix.LossMatrix``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmlaw_utils.analysis.lossmatrix import MODEL_COLUMNS, LossMatrix
from mmlaw_utils.config import OUTPUT_FILES, REPO_ROOT
from mmlaw_utils.lineage import verify_input
from mmlaw_utils.io import atomic_write_table
from mmlaw_utils.scoring.cache import ROWS_CHECKSUM, model_slug, normalise_model_id, read_cache


def find_cache_file(cache_dir: str | Path, model: str, dataset_fingerprint: str | None = None) -> Path:
    """The one score file of ``model`` in ``cache_dir`` (optionally for one fingerprint); clear error otherwise."""
    cache_dir = Path(cache_dir)
    pattern = f"{model_slug(model)}__{dataset_fingerprint[:12] if dataset_fingerprint else '*'}.parquet"
    found = sorted(cache_dir.glob(pattern))
    if not found:
        raise FileNotFoundError(f"model {model!r} of the pool has no score cache in {cache_dir} (looked for {pattern})")
    if len(found) > 1:
        raise ValueError(
            f"model {model!r} has {len(found)} score caches in {cache_dir} ({[p.name for p in found]}); "
            "pass dataset_fingerprint to choose one or remove the stale files"
        )
    return found[0]


def _scalar(value: Any) -> Any:
    """Provenance value as a parquet-friendly scalar (nested values as JSON text)."""
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list, tuple)) else value


class StaleCacheError(ValueError):
    """Score caches that do not answer the run (other text set, settings or model); the message lists them."""


def _stale_message(problems: dict[str, list[str]], cache_dir: Path, hint: str | None) -> str:
    lines = [f"{len(problems)} model(s) have no score cache in {cache_dir} that matches this run:"]
    lines += [f"  model {model!r}: {'; '.join(reasons)}" for model, reasons in problems.items()]
    if hint:
        lines += ["rescore them with:", *("  " + line for line in hint.splitlines())]
    return "\n".join(lines)


def _cache_problems(model: str, path: Path, provenance: dict[str, Any], fingerprint: str | None,
                    check: Callable[[str, dict[str, Any]], list[str]] | None) -> list[str]:
    """Why the cache at ``path`` does not answer ``model`` on the text set ``fingerprint`` (empty = it does)."""
    problems = []
    stored = str(provenance.get("model"))
    if normalise_model_id(stored) != normalise_model_id(model):
        problems.append(f"cache {path.name} holds model {stored!r}, not {model!r}")
    if fingerprint is not None and provenance.get("dataset_fingerprint") != fingerprint:
        problems.append(
            f"cache {path.name} was scored on text set {str(provenance.get('dataset_fingerprint'))[:12]}, "
            f"the run's is {fingerprint[:12]}"
        )
    if not provenance.get("complete", True):
        problems.append(f"cache {path.name} is incomplete (provenance complete=false)")
    if check is not None and not problems:
        problems += [f"{path.name}: {reason}" for reason in check(model, provenance)]
    return problems


def assemble_loss_matrix(
    cache_dir: str | Path, pool_df: pd.DataFrame, *, dataset_fingerprint: str | None = None,
    check_provenance: Callable[[str, dict[str, Any]], list[str]] | None = None,
    rescore_hint: Callable[[Sequence[str]], str] | None = None,
) -> LossMatrix:
    """Read every pool model's score cache from ``cache_dir`` and validate them into one LossMatrix.

    Every cache must name the model it is filed under, hold the text set ``dataset_fingerprint``
    (when given; else one fingerprint shared by all caches) and pass ``check_provenance``
    (model id, provenance) -> mismatches, e.g. the profile's scoring settings
    (``mmlaw_utils.scoring.expect``). Caches that do not are listed in one ``StaleCacheError``
    with ``rescore_hint`` (stale model ids -> commands); no cache at all is a FileNotFoundError.
    Also fails naming the culprit when text ids differ, a loss is NaN/inf, or family/params are missing.
    ``params`` = measured provenance ``params_total`` when present, else the pool's
    ``params_nominal`` (``params_source`` records which).
    """
    for column in ("model", "family"):
        if column not in pool_df.columns:
            raise ValueError(f"pool table misses column {column!r}; have {list(pool_df.columns)}")
    cache_dir = Path(cache_dir)
    frames, rows = [], []
    missing: dict[str, list[str]] = {}
    stale: dict[str, list[str]] = {}
    reference: tuple[str, str] | None = None  # (fingerprint, file) of the first cache
    for record in pool_df.to_dict("records"):
        model = str(record["model"])
        family = record.get("family")
        if family is None or (isinstance(family, float) and np.isnan(family)) or not str(family).strip():
            raise ValueError(f"pool: model {model!r} is missing its family")
        try:
            path = find_cache_file(cache_dir, model, dataset_fingerprint)
        except FileNotFoundError as error:
            others = sorted(cache_dir.glob(f"{model_slug(model)}__*.parquet")) if dataset_fingerprint else []
            if others:
                stale[model] = [f"only caches of other text sets ({', '.join(p.name for p in others)})"]
            else:
                missing[model] = [str(error)]
            continue
        try:
            results, provenance = read_cache(path)
        except ValueError as error:  # a damaged file (non-finite values, removed rows); read_cache names it
            raise ValueError(f"model {model!r}: {error}") from error
        problems = _cache_problems(model, path, provenance, dataset_fingerprint, check_provenance)
        if problems:
            stale[model] = problems
            continue
        fingerprint = str(provenance.get("dataset_fingerprint"))
        if reference is None:
            reference = (fingerprint, path.name)
        elif fingerprint != reference[0]:
            raise ValueError(
                f"dataset fingerprint differs for file {path.name} (model {model!r}): {fingerprint[:12]} "
                f"vs {reference[0][:12]} in {reference[1]}"
            )
        measured = provenance.get("params_total")
        nominal = record.get("params_nominal")
        if measured is not None and not pd.isna(measured) and int(measured) > 0:
            params, source = int(measured), "measured"
        elif nominal is not None and not pd.isna(nominal) and int(nominal) > 0:
            params, source = int(nominal), "nominal"
        else:
            raise ValueError(f"model {model!r} is missing params (no params_total in {path.name}, no params_nominal)")
        results.insert(0, "model", model)
        frames.append(results)
        row = {key: _scalar(value) for key, value in record.items()}
        row.update(
            family=str(family),
            params=params,
            params_nonembed=provenance.get("params_nonembed"),
            params_source=source,
            cache_file=path.name,
        )
        for key, value in provenance.items():
            if key not in row and key not in ("model", "params_total", "params_nonembed", ROWS_CHECKSUM):
                row[key] = _scalar(value)
        rows.append(row)
    hint = rescore_hint(list(stale) + list(missing)) if rescore_hint is not None else None
    if stale:
        raise StaleCacheError(_stale_message({**stale, **missing}, cache_dir, hint))
    if missing:
        raise FileNotFoundError(_stale_message(missing, cache_dir, hint))
    if not frames:
        raise ValueError("pool is empty: nothing to assemble")
    models = pd.DataFrame(rows)
    models["params_nonembed"] = pd.array(
        [None if v is None or pd.isna(v) else int(v) for v in models["params_nonembed"]], dtype="Int64"
    )
    ordered = MODEL_COLUMNS + [c for c in models.columns if c not in MODEL_COLUMNS]
    return LossMatrix(long=pd.concat(frames, ignore_index=True), models=models[ordered])


def load_loss_matrix(data_dir: str | Path) -> LossMatrix:
    """Read the LossMatrix written by ``write_loss_matrix`` from ``data_dir`` (validated again; fresh by lineage)."""
    data_dir = Path(data_dir)
    for name in (OUTPUT_FILES["loss_matrix"], OUTPUT_FILES["models"]):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"{data_dir / name} does not exist; run notebook 02 (loss matrix) first")
        verify_input(data_dir / name, "02_loss_matrix", REPO_ROOT)
    return LossMatrix(
        long=pq.read_table(data_dir / OUTPUT_FILES["loss_matrix"]).to_pandas(),
        models=pq.read_table(data_dir / OUTPUT_FILES["models"]).to_pandas(),
    )


def write_loss_matrix(lm: LossMatrix, data_dir: str | Path) -> tuple[Path, Path]:
    """Atomically write ``loss_matrix.parquet`` and ``models.parquet`` into ``data_dir``; return both paths."""
    data_dir = Path(data_dir)
    long_path, models_path = data_dir / OUTPUT_FILES["loss_matrix"], data_dir / OUTPUT_FILES["models"]
    atomic_write_table(pa.Table.from_pandas(lm.long, preserve_index=False), long_path)
    atomic_write_table(pa.Table.from_pandas(lm.models, preserve_index=False), models_path)
    return long_path, models_path
