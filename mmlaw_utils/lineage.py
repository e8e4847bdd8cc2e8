"""Lineage of a data folder: which inputs and parameters every stage output was computed from.

``<data_dir>/lineage.json`` is a small hash chain written by the pipeline (atomically, under the
folder's run lock)::

    {"profile": "minipool",
     "outputs": {"pairs.parquet": {"stage": "03_oracle_pairs", "sha256": "...",
                                   "inputs": {"loss_matrix.parquet": "...", "models.parquet": "..."},
                                   "parameters": {"params_unit": 1e9, ...}}, ...}}

An output is *fresh* when its bytes still hash to its record, every recorded input still hashes to
what the stage read, and every recorded input that is itself an output is fresh. Input names are
relative to the data folder (``scores/<cache>.parquet``), else to the repository root, else absolute,
so the file holds no machine-specific path for the committed profiles. No wall-clock time is kept,
so a rerun that reproduces its outputs leaves the file byte for byte unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmlaw_utils.io import atomic_write_text, sha256_file

LINEAGE_FILE = "lineage.json"


class LineageError(ValueError):
    """A data folder whose outputs do not come from the inputs at hand; the message names file and stage."""


def lineage_path(data_dir: str | Path) -> Path:
    """The lineage file of a data folder."""
    return Path(data_dir) / LINEAGE_FILE


def read_lineage(data_dir: str | Path) -> dict[str, Any] | None:
    """The lineage of a data folder ({"profile", "outputs"}), or None when it has none; a damaged file is an error."""
    path = lineage_path(data_dir)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LineageError(f"{path}: damaged lineage file ({error}); delete it and rerun the pipeline from 02") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("outputs", {}), dict):
        raise LineageError(f"{path}: a lineage file is a JSON object with an 'outputs' mapping")
    raw.setdefault("outputs", {})
    return raw


def write_lineage(data_dir: str | Path, lineage: Mapping[str, Any]) -> None:
    """Atomically write a folder's lineage (sorted keys, so equal lineages give equal bytes)."""
    atomic_write_text(lineage_path(data_dir), json.dumps(lineage, sort_keys=True, indent=1, default=str) + "\n")


def input_name(path: str | Path, data_dir: str | Path, repo_root: str | Path) -> str:
    """How a file is named in a record: relative to the data folder, else to the repository root, else absolute."""
    path = Path(path).resolve()
    for base in (Path(data_dir).resolve(), Path(repo_root).resolve()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(path)


def resolve_input(name: str, data_dir: str | Path, repo_root: str | Path) -> Path:
    """The file a record's input name refers to (inverse of ``input_name``)."""
    if Path(name).is_absolute():
        return Path(name)
    in_data = Path(data_dir) / name
    return in_data if in_data.exists() or not (Path(repo_root) / name).exists() else Path(repo_root) / name


def claim_folder(data_dir: str | Path, profile: str) -> None:
    """Record that ``data_dir`` belongs to ``profile``; a folder of another profile is a LineageError."""
    lineage = read_lineage(data_dir)
    if lineage is not None and lineage.get("profile") not in (None, profile):
        raise LineageError(f"data folder {data_dir} belongs to profile {lineage['profile']!r} "
                           f"({lineage_path(data_dir)}); give profile {profile!r} its own data_dir")
    if lineage is None or lineage.get("profile") is None:
        write_lineage(data_dir, {"profile": profile, "outputs": (lineage or {}).get("outputs", {})})


def forget_outputs(data_dir: str | Path, names: Iterable[str]) -> None:
    """Drop the records of ``names`` before their stage rewrites them: an interrupted stage leaves them unrecorded."""
    lineage = read_lineage(data_dir)
    if lineage is None:
        return
    outputs = {name: record for name, record in lineage["outputs"].items() if name not in set(names)}
    if outputs != lineage["outputs"]:
        write_lineage(data_dir, {**lineage, "outputs": outputs})


def record_outputs(data_dir: str | Path, stage: str, outputs: Iterable[str | Path], inputs: Iterable[str | Path],
                   parameters: Mapping[str, Any], repo_root: str | Path,
                   context: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Record each existing file of ``outputs`` as written by ``stage`` from ``inputs`` (files) with ``parameters``
    under ``context`` (the profile settings that shaped every stage: text set, pool, arms, scoring)."""
    lineage = read_lineage(data_dir) or {"profile": None, "outputs": {}}
    read = {input_name(path, data_dir, repo_root): sha256_file(path) for path in inputs}
    chosen = _plain(parameters)
    records = {}
    for path in outputs:
        if Path(path).is_file():
            records[input_name(path, data_dir, repo_root)] = {"stage": stage, "sha256": sha256_file(path),
                                                              "inputs": read, "parameters": chosen,
                                                              "context": _plain(context or {})}
    write_lineage(data_dir, {**lineage, "outputs": {**lineage["outputs"], **records}})
    return records


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as JSON would give them back (so stored and current values compare equal)."""
    return json.loads(json.dumps(dict(values), sort_keys=True, default=str))


def stale_reasons(data_dir: str | Path, names: Iterable[str], makers: Mapping[str, str], repo_root: str | Path,
                  context: Mapping[str, Any] | None = None, lineage: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Why each of the outputs ``names`` (file names in ``data_dir``) is not fresh: {name: one-line reason}.

    ``makers`` maps an output file name to the stage that writes it (used when a file has no record);
    ``context`` (when given) must equal each record's context (the profile settings it was computed under).
    Fresh outputs are left out; outputs of one stage read together must come from one run of it.
    """
    lineage = read_lineage(data_dir) if lineage is None else lineage
    outputs = (lineage or {}).get("outputs", {})
    wanted = None if context is None else _plain(context)
    hashes: dict[str, str | None] = {}
    verdicts: dict[str, str | None] = {}

    def current(name: str) -> str | None:
        if name not in hashes:
            path = resolve_input(name, data_dir, repo_root)
            hashes[name] = sha256_file(path) if path.is_file() else None
        return hashes[name]

    def check(name: str) -> str | None:
        if name in verdicts:
            return verdicts[name]
        verdicts[name] = None  # a cycle cannot be stale through itself
        record = outputs.get(name)
        maker = record["stage"] if isinstance(record, dict) and "stage" in record else makers.get(name, "its stage")
        reason = None
        if current(name) is None:
            reason = f"{name} does not exist"
        elif not isinstance(record, dict):
            reason = f"{name} has no lineage record (written outside the pipeline, or its stage was interrupted)"
        elif record.get("sha256") != current(name):
            reason = f"{name} changed after stage {maker} recorded it"
        elif wanted is not None and record.get("context") != wanted:
            differ = sorted(key for key in {*record.get("context", {}), *wanted}
                            if record.get("context", {}).get(key) != wanted.get(key))
            reason = f"{name} was computed under other profile settings ({', '.join(differ)})"
        else:
            for upstream, digest in sorted(record.get("inputs", {}).items()):
                if current(upstream) != digest:
                    gone = current(upstream) is None
                    reason = f"{name} was computed from {upstream}, which {'is gone' if gone else 'has changed since'}"
                    break
                if upstream in outputs and check(upstream) is not None:
                    reason = f"{name} depends on {upstream}, which is stale"
                    break
        verdicts[name] = None if reason is None else f"{reason}; stage {maker} rebuilds it"
        return verdicts[name]

    names = list(names)
    reasons = {name: reason for name in names if (reason := check(name)) is not None}
    by_stage: dict[str, list[str]] = {}
    for name in names:
        record = outputs.get(name)
        if name not in reasons and isinstance(record, dict):
            by_stage.setdefault(record["stage"], []).append(name)
    for stage, together in by_stage.items():
        first = outputs[together[0]]
        for name in together[1:]:
            record = outputs[name]
            if (record.get("inputs"), record.get("parameters")) != (first.get("inputs"), first.get("parameters")):
                differ = sorted(key for key in {*record.get("parameters", {}), *first.get("parameters", {})}
                                if record.get("parameters", {}).get(key) != first.get("parameters", {}).get(key))
                detail = f"parameters {differ} differ" if differ else "their inputs differ"
                reasons[name] = (f"{name} and {together[0]} come from two different runs of stage {stage} ({detail}); "
                                 f"stage {stage} rebuilds them")
    return reasons


def verify_input(path: str | Path, made_by: str, repo_root: str | Path) -> None:
    """Inside a folder with a lineage file, fail unless the output ``path`` (written by stage ``made_by``) is fresh.

    What a notebook calls before it reads an upstream output; folders without a lineage file (test fixtures,
    hand-made matrices) are not checked.
    """
    path = Path(path)
    lineage = read_lineage(path.parent)
    if lineage is None:
        return
    reason = stale_reasons(path.parent, [path.name], {path.name: made_by}, repo_root, lineage=lineage).get(path.name)
    if reason is not None:
        raise LineageError(f"{path.parent}: {reason} (python -m mmlaw_utils run --from {made_by[:2]})")
