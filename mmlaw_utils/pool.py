"""Model pools (§3.1): ``configs/pools/<name>.yaml`` loaded into a validated pandas table.

Pool file format::

    name: paper71
    models:
      - id: Qwen/Qwen2.5-7B        # hub id or local path
        family: qwen               # pairs inside one family are "same family" (§3.3)
        params_b: 7                # nominal parameters, billions
        revision: main             # optional
        release: Qwen2.5           # any extra keys are kept as columns

Other top-level keys (e.g. the miniature pool's training settings) are allowed and ignored here.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from mmlaw_utils.analysis.groups import CROSS_FAMILY, SAME_FAMILY, SINGLE
from mmlaw_utils.scoring.cache import PARAMS_MAX, normalise_model_id

if TYPE_CHECKING:
    from mmlaw_utils.config import RunPaths

POOL_COLUMNS = ["model", "family", "params_nominal", "revision"]
_RESERVED = {"model", "params_nominal"}  # table columns a pool entry may not set directly


class PoolError(ValueError):
    """A pool file that cannot be used; the message names the file and the model at fault."""


def _entry_error(path: Path, index: int, model: Any, message: str) -> PoolError:
    who = f"model #{index + 1}" + (f" ({model!r})" if isinstance(model, str) and model else "")
    return PoolError(f"{path}: {who}: {message}")


# parameters of one model: at least one, at most a million billions (a typo beyond that overflows int64 sums)
PARAMS_RANGE = (1, PARAMS_MAX)


def _params_nominal(path: Path, index: int, model: Any, value: Any) -> int:
    """``params_b`` (billions) as a whole number of parameters in ``PARAMS_RANGE``; the error names the model."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _entry_error(path, index, model, f"params_b must be a number of billions, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise _entry_error(path, index, model, f"params_b must be finite and > 0, got {value!r}")
    count = round(value * 1e9) if isinstance(value, float) else value * 10**9
    low, high = PARAMS_RANGE
    if not low <= count <= high:
        raise _entry_error(path, index, model, f"params_b {value!r} is {count:.3g} parameters; a model has from "
                                               f"{low} to {high:.0e} (params_b from 1e-9 to 1e6)")
    return int(count)


def pool_records(raw: Any, path: Path) -> list[dict[str, Any]]:
    """Validated rows (model, family, params_nominal, revision, extras) of a parsed pool mapping."""
    if not isinstance(raw, dict):
        raise PoolError(f"{path}: a pool file is a mapping with a 'models' list, got {type(raw).__name__}")
    models = raw.get("models")
    if not isinstance(models, list) or not models:
        raise PoolError(f"{path}: 'models' must be a non-empty list of {{id, family, params_b}} entries")
    rows, seen = [], {}
    for index, entry in enumerate(models):
        if not isinstance(entry, dict):
            raise _entry_error(path, index, None, f"an entry is a mapping, got {entry!r}")
        model = entry.get("id")
        if not isinstance(model, str) or not model.strip():
            raise _entry_error(path, index, None, f"'id' must be a non-empty string, got {model!r}")
        model = normalise_model_id(model)  # ./x, x/ and x are one model everywhere downstream
        if model in seen:
            raise _entry_error(path, index, model, f"duplicate id (also model #{seen[model] + 1})")
        seen[model] = index
        family = entry.get("family")
        if not isinstance(family, str) or not family.strip():
            raise _entry_error(path, index, model, f"'family' must be a non-empty string, got {family!r}")
        if "params_b" not in entry:
            raise _entry_error(path, index, model, "missing 'params_b' (nominal parameters in billions)")
        params_nominal = _params_nominal(path, index, model, entry["params_b"])
        revision = entry.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise _entry_error(path, index, model, f"'revision' must be a string, got {revision!r}")
        clashes = _RESERVED & set(entry)
        if clashes:
            raise _entry_error(path, index, model, f"reserved key(s) {sorted(clashes)}; use 'id' / 'params_b'")
        extras = {k: v for k, v in entry.items() if k not in ("id", "family", "params_b", "revision")}
        rows.append({"model": model, "family": family.strip(), "params_nominal": params_nominal,
                     "revision": revision, **extras})
    return rows


# libyaml parses the 110-model miniature pool about 10x faster than the pure-Python loader
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# parsed pools keyed by (path, sha256 of the file's bytes): an edited file is parsed again, an unchanged one never
_PARSED: dict[tuple[str, str], pd.DataFrame] = {}
_PARSED_MAX = 16


def _parse_pool(path: Path, text: str) -> pd.DataFrame:
    """The validated pool table of one file's text (see :func:`load_pool`)."""
    try:
        raw = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise PoolError(f"{path}: not valid YAML: {error}") from error
    rows = pool_records(raw, path)
    extras = sorted({k for row in rows for k in row} - set(POOL_COLUMNS))
    frame = pd.DataFrame(rows, columns=POOL_COLUMNS + extras)
    frame["params_nominal"] = frame["params_nominal"].astype("int64")
    # object dtype keeps a missing revision as None (a str column would turn it into NaN)
    frame["revision"] = pd.Series([row["revision"] for row in rows], dtype=object)
    frame.attrs["pool_name"] = str(raw.get("name", path.stem))
    frame.attrs["path"] = str(path)
    return frame


def load_pool(path: str | Path) -> pd.DataFrame:
    """Pool table: one row per model with ``model``, ``family``, ``params_nominal`` (count), ``revision``, extras.

    Raises ``PoolError`` naming the file and the model for a missing file, invalid YAML,
    duplicate ids, a missing family, or non-positive / non-numeric ``params_b``.
    The pool's ``name`` and source path are in ``frame.attrs``. A file whose bytes are unchanged since
    the last call is not parsed again; each call returns its own copy, free to modify.
    """
    path = Path(path)
    if not path.is_file():
        raise PoolError(f"pool file {path} does not exist")
    data = path.read_bytes()
    key = (str(path), hashlib.sha256(data).hexdigest())
    if key not in _PARSED:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PoolError(f"{path}: not UTF-8 text: {error}") from None
        frame = _parse_pool(path, text)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = frame
    frame = _PARSED[key].copy(deep=True)
    frame.attrs = dict(_PARSED[key].attrs)
    return frame


def pair_group_counts(pool_df: pd.DataFrame) -> dict[str, int]:
    """Number of raw points per group (§3.3): ``single`` = K models, ``same_family`` and ``cross_family`` pairs."""
    k = len(pool_df)
    same = sum(math.comb(n, 2) for n in Counter(pool_df["family"]).values())
    return {SINGLE: k, SAME_FAMILY: same, CROSS_FAMILY: math.comb(k, 2) - same}


def family_table(pool_df: pd.DataFrame) -> pd.DataFrame:
    """Per family: number of models, smallest and largest nominal size (billions), same-family pairs."""
    grouped = pool_df.groupby("family", sort=False)["params_nominal"]
    table = pd.DataFrame({
        "n_models": grouped.size(),
        "params_min_b": grouped.min() / 1e9,
        "params_max_b": grouped.max() / 1e9,
    })
    table["same_family_pairs"] = [math.comb(int(n), 2) for n in table["n_models"]]
    return table.sort_values(["n_models", "params_max_b"], ascending=False).rename_axis("family").reset_index()


def summary(pool_df: pd.DataFrame) -> str:
    """Human-readable pool summary: models per family, pair counts, parameter range (billions)."""
    counts = pair_group_counts(pool_df)
    params_b = pool_df["params_nominal"] / 1e9
    name = pool_df.attrs.get("pool_name", "pool")
    lines = [
        f"pool {name}: {counts['single']} models in {pool_df['family'].nunique()} families",
        family_table(pool_df).to_string(index=False, float_format=lambda v: f"{v:g}"),
        f"pairs: {counts['same_family'] + counts['cross_family']} total = "
        f"{counts['same_family']} same-family + {counts['cross_family']} cross-family",
        f"params (nominal): {params_b.min():g}B to {params_b.max():g}B "
        f"({params_b.max() / params_b.min():.3g}x span)",
    ]
    return "\n".join(lines)


def select_arms(pool_df: pd.DataFrame, arms: Sequence[str] | None, profile: str) -> pd.DataFrame:
    """The pool's models whose ``arm`` is one of ``arms`` (None: every model), in pool order.

    A pool without an ``arm`` column, or an arm that no model has, is a PoolError naming the profile,
    its key ``arms`` and the arm.
    """
    if arms is None:
        return pool_df
    where = f"profile {profile!r}: key 'arms' {list(arms)}"
    source = pool_df.attrs.get("path", "the pool")
    if "arm" not in pool_df.columns:
        raise PoolError(f"{where}: pool {source} has no 'arm' column, so arm {arms[0]!r} selects nothing; "
                        "give its models an 'arm' or drop the key")
    present = set(pool_df["arm"].dropna().astype(str))
    for arm in arms:
        if arm not in present:
            raise PoolError(f"{where}: no model of pool {source} is in arm {arm!r}; its arms: {sorted(present)}")
    selected = pool_df[pool_df["arm"].isin(list(arms))].reset_index(drop=True)
    selected.attrs = {**pool_df.attrs, "arms": list(arms)}
    return selected


def load_run_pool(paths: RunPaths) -> pd.DataFrame:
    """The pool table of a run (model, family, params_nominal, ...): a synthetic pool file or a pool yaml, cut to
    the profile's arms (key ``arms``) when it names some."""
    if paths.pool is None:
        raise ValueError(f"profile {paths.profile!r} names no pool")
    if paths.synthetic:
        from mmlaw_utils.scoring.synthetic import read_pool_file

        frame = read_pool_file(paths.pool)
    else:
        frame = load_pool(paths.pool)
    return select_arms(frame, paths.arms, paths.profile)
