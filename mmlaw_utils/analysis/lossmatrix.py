"""The loss matrix: one data model from score caches to figures (paper §3.2, eq. 1).

``LossMatrix`` holds K models x N texts: ``long`` in long form, one row per (model, text) with
``model``, ``text_id``, ``nll`` (summed nats), ``n_tokens``, ``n_bytes``, model-major in model
order then text order; and ``models`` with ``model``, ``family``, ``params`` (total parameter
count, the paper's P), ``params_nonembed``, ``params_source`` ("measured" = provenance
``params_total``; "nominal" = the pool's ``params_nominal`` fallback), the pool's columns and
the provenance of each model's cache.

This module only validates and reshapes; it reads no file. ``scoring.assemble`` builds a
LossMatrix from the score caches and reads and writes ``loss_matrix.parquet``/``models.parquet``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

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

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """Row index of each model in ``names`` (int64); an unknown name is an error naming it."""
        index = pd.Index(self.model_names).get_indexer([str(name) for name in names])
        unknown = [str(name) for name, row in zip(names, index) if row < 0]
        if unknown:
            raise KeyError(f"loss matrix has no model(s) {unknown[:5]}; it has {self.model_names[:5]}...")
        return index.astype(np.int64)

    def select(self, names: Sequence[str]) -> LossMatrix:
        """The loss matrix of the models ``names`` only, in that order (same texts)."""
        rows = self.rows(names)
        n_texts = self.shape[1]
        positions = (rows[:, None] * n_texts + np.arange(n_texts)[None, :]).ravel()
        return LossMatrix(long=self.long.iloc[positions], models=self.models.iloc[rows])

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


def loss_matrix_bytes(lm: LossMatrix) -> np.ndarray:
    """UTF-8 bytes of each text of a LossMatrix (its text order), checked equal across models."""
    table = lm.long.pivot(index="model", columns="text_id", values="n_bytes").loc[lm.model_names, lm.text_ids]
    values = table.to_numpy()
    if not (values == values[0]).all():
        raise ValueError("n_bytes differ between models for the same text: the caches disagree on the texts")
    return values[0].astype(np.int64)
