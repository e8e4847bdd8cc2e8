"""The loss matrix: one data model from score caches to figures (paper §3.2, eq. 1).

On disk (``data/<profile>/``): ``loss_matrix.parquet`` in long form, one row per
(model, text) with ``model``, ``text_id``, ``nll`` (summed nats), ``n_tokens``, ``n_bytes``,
model-major in model order then text order; and ``models.parquet`` with ``model``,
``family``, ``params`` (total parameter count, the paper's P), ``params_nonembed``,
``params_source`` ("measured" = provenance ``params_total``; "nominal" = the pool's
``params_nominal`` fallback), the pool's columns, and the provenance of each model's cache.

Notebook 02 assembles a profile's caches (``assemble_loss_matrix``) and writes them
(``report.tables.write_loss_matrix``); later stages read them with ``load_loss_matrix``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mmlaw_utils.config import OUTPUT_FILES
from mmlaw_utils.scoring.cache import model_slug, normalise_model_id, read_cache

LONG_COLUMNS = ["model", "text_id", "nll", "n_tokens", "n_bytes"]
MODEL_COLUMNS = ["model", "family", "params", "params_nonembed", "params_source"]


@dataclass(frozen=True)
class LossMatrix:
    """K models x N texts of text-level losses (nats) with a per-model table; validated on construction."""

    long: pd.DataFrame
    models: pd.DataFrame

    def __post_init__(self) -> None:
        long, models = _validate(self.long, self.models)
        object.__setattr__(self, "long", long)
        object.__setattr__(self, "models", models)

    @property
    def model_names(self) -> list[str]:
        """Model ids in row order."""
        return self.models["model"].tolist()

    @property
    def text_ids(self) -> list[str]:
        """Text ids in column order."""
        n_texts = len(self.long) // len(self.models)
        return self.long["text_id"].iloc[:n_texts].tolist()

    @property
    def params(self) -> np.ndarray:
        """Total parameter count per model (raw count, int64)."""
        return self.models["params"].to_numpy(dtype=np.int64)

    @property
    def params_b(self) -> np.ndarray:
        """Total parameters per model in billions."""
        return self.params / 1e9

    @property
    def families(self) -> np.ndarray:
        """Family name per model (str array)."""
        return self.models["family"].to_numpy(dtype=str)

    @property
    def shape(self) -> tuple[int, int]:
        """(K models, N texts)."""
        return len(self.models), len(self.long) // len(self.models)

    def to_array(self, column: str = "nll") -> np.ndarray:
        """K x N array of ``column`` (default ``nll``, summed nats per text)."""
        dtype = np.float64 if column == "nll" else np.int64
        return self.long[column].to_numpy(dtype=dtype).reshape(self.shape)


def _validate(long: pd.DataFrame, models: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check long/models agree (same models, same texts in the same order, finite losses)."""
    missing = [c for c in LONG_COLUMNS if c not in long.columns]
    if missing:
        raise ValueError(f"loss matrix: long table misses column(s) {missing}")
    missing = [c for c in ("model", "family", "params") if c not in models.columns]
    if missing:
        raise ValueError(f"loss matrix: models table misses column(s) {missing}")
    models = models.reset_index(drop=True)
    names = models["model"].astype(str)
    if names.duplicated().any():
        raise ValueError(f"loss matrix: duplicate model(s) {names[names.duplicated()].tolist()}")
    if len(models) == 0:
        raise ValueError("loss matrix: no models")
    for name, family, params in zip(names, models["family"], models["params"]):
        if family is None or (isinstance(family, float) and np.isnan(family)) or not str(family).strip():
            raise ValueError(f"loss matrix: model {name!r} has no family")
        if params is None or pd.isna(params) or int(params) <= 0:
            raise ValueError(f"loss matrix: model {name!r} has no positive params ({params!r})")
    models = models.astype({"model": str, "family": str, "params": "int64"})
    long = long[LONG_COLUMNS + [c for c in long.columns if c not in LONG_COLUMNS]].astype(
        {"model": str, "text_id": str, "nll": "float64", "n_tokens": "int64", "n_bytes": "int64"}
    ).reset_index(drop=True)
    codes = pd.Index(names).get_indexer(long["model"])
    if (codes < 0).any():
        unknown = sorted(set(long["model"][codes < 0]))
        raise ValueError(f"loss matrix: model(s) {unknown[:5]} have losses but no row in the models table")
    counts = np.bincount(codes, minlength=len(names))
    for name, count in zip(names, counts):
        if count == 0:
            raise ValueError(f"loss matrix: model {name!r} has no losses")
    # model-major in the models table order; keep each model's own text order
    order = np.argsort(codes, kind="stable")
    if not np.array_equal(order, np.arange(order.size)):
        long = long.iloc[order].reset_index(drop=True)
    all_ids = long["text_id"].to_numpy()
    per_model = np.split(all_ids, np.cumsum(counts)[:-1])
    same_as_first = all(len(ids) == len(per_model[0]) and (ids == per_model[0]).all() for ids in per_model)
    ref_index = 0 if same_as_first else _reference_model(per_model)
    reference, ref_ids = names.iloc[ref_index], per_model[ref_index]
    if pd.Series(ref_ids).duplicated().any():
        raise ValueError(f"loss matrix: model {reference!r} has duplicate text ids")
    if not same_as_first:
        bad = next(i for i, ids in enumerate(per_model) if len(ids) != len(ref_ids) or not (ids == ref_ids).all())
        _raise_text_mismatch(names.iloc[bad], reference, pd.Series(per_model[bad]), ref_ids)
    nll = long["nll"].to_numpy()
    bad = ~np.isfinite(nll)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"loss matrix: non-finite nll {nll[row]} for model {long['model'][row]!r} text {long['text_id'][row]!r}"
        )
    return long, models


def _reference_model(per_model: list[np.ndarray]) -> int:
    """Index of the model whose text ids most models share (ties: more texts, then pool order).

    A model that lost or gained rows is then the one blamed, whatever its place in the pool.
    """
    keys = [tuple(ids.tolist()) for ids in per_model]
    shared = {key: keys.count(key) for key in set(keys)}
    return min(range(len(keys)), key=lambda i: (-shared[keys[i]], -len(keys[i]), i))


def _raise_text_mismatch(name: str, reference: str, ids: pd.Series, ref_ids: np.ndarray) -> None:
    got, want = set(ids), set(ref_ids)
    detail = []
    if want - got:
        detail.append(f"missing {sorted(want - got)[:5]}")
    if got - want:
        detail.append(f"extra {sorted(got - want)[:5]}")
    if ids.duplicated().any():
        detail.append(f"duplicated {ids[ids.duplicated()].unique().tolist()[:5]}")
    if not detail:
        detail.append("same ids in a different order")
    raise ValueError(f"loss matrix: text ids differ for model {name!r} (vs {reference!r}): {'; '.join(detail)}")


def loss_matrix_from_arrays(
    nll: np.ndarray,
    model_names: Sequence[str],
    text_ids: Sequence[str],
    families: Sequence[str],
    params: Sequence[int],
    *,
    n_tokens: np.ndarray | None = None,
    n_bytes: np.ndarray | None = None,
) -> LossMatrix:
    """Build a LossMatrix from a K x N nats array (tests, synthetic data); params are raw counts."""
    array = np.asarray(nll, dtype=np.float64)
    k, n = array.shape
    zeros = np.zeros((k, n), dtype=np.int64)
    long = pd.DataFrame(
        {
            "model": np.repeat(np.asarray(model_names, dtype=object), n),
            "text_id": np.tile(np.asarray(text_ids, dtype=object), k),
            "nll": array.ravel(),
            "n_tokens": (zeros if n_tokens is None else np.asarray(n_tokens)).ravel(),
            "n_bytes": (zeros if n_bytes is None else np.asarray(n_bytes)).ravel(),
        }
    )
    models = pd.DataFrame(
        {
            "model": list(model_names),
            "family": list(families),
            "params": np.asarray(params, dtype=np.int64),
            "params_nonembed": pd.array([None] * k, dtype="Int64"),
            "params_source": ["given"] * k,
        }
    )
    return LossMatrix(long=long, models=models)


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
            if key not in row and key not in ("model", "params_total", "params_nonembed"):
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


def loss_matrix_bytes(lm: LossMatrix) -> np.ndarray:
    """UTF-8 bytes of each text of a LossMatrix (its text order), checked equal across models."""
    table = lm.long.pivot(index="model", columns="text_id", values="n_bytes").loc[lm.model_names, lm.text_ids]
    values = table.to_numpy()
    if not (values == values[0]).all():
        raise ValueError("n_bytes differ between models for the same text: the caches disagree on the texts")
    return values[0].astype(np.int64)


def load_loss_matrix(data_dir: str | Path) -> LossMatrix:
    """Read the LossMatrix written by ``report.tables.write_loss_matrix`` from ``data_dir`` (validated again)."""
    data_dir = Path(data_dir)
    for name in (OUTPUT_FILES["loss_matrix"], OUTPUT_FILES["models"]):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"{data_dir / name} does not exist; run notebook 02 (loss matrix) first")
    return LossMatrix(
        long=pq.read_table(data_dir / OUTPUT_FILES["loss_matrix"]).to_pandas(),
        models=pq.read_table(data_dir / OUTPUT_FILES["models"]).to_pandas(),
    )
