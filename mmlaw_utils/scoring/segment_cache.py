"""Token and segment losses on disk (issue 21): byte-aligned token NLLs per model, and their segmentations.

    python -m mmlaw_utils segments --profile real                       # every model, every segmentation
    python -m mmlaw_utils segments --profile minipool --model models/minipool/<name> --segmentation word

**Layout** and reading: ``scoring/segment_files.py`` (torch-free). Token files carry the score cache's
provenance keys (``run.build_provenance``) plus ``offsets_rule`` and ``score_cache_max_rel_diff`` (per-text
sums against the score cache, when one matches); segment files carry the model's identity keys,
``segmentation``, ``rules_version`` and the sha256 of every token file they were derived from
(``common_token`` depends on every pool model's tokens, so it lists them all).

**Staleness.** A token file is stale when missing, incomplete, or when its provenance does not answer the
score request (``run.cache_mismatches``: model, dataset fingerprint, weights hash, window settings, dtype).
A segment file is stale when any token file it names has changed (sha256) or the rules version moved.
Stale token files are rescored (resumably: chunks in ``<file>.partial/``, one lock per file), stale
segment files rewritten; every write is atomic.

**Checks.** Before a segment file is written, its segments must tile every text's bytes and sum, per text,
to the model's token losses (relative ``SEGMENT_SUM_TOLERANCE``); token sums themselves match the score
cache within ``SUM_TOLERANCE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmlaw_utils.io import atomic_write_table, sha256_file
from mmlaw_utils.scoring import batched, cache, kernel, run, segments
from mmlaw_utils.scoring.segment_files import (SUM_TOLERANCE, check_segment_frame, read_segment_file, read_token_losses,
                                              segment_path, segments_dir, token_path, write_with_provenance)
from mmlaw_utils.texts import dataset_fingerprint, load_texts

OFFSETS_RULE = "fast-tokenizer char offsets -> UTF-8 bytes; empty span -> next non-empty end; running max; last = text end"
# segment sums differ from token sums only by float64 summation order
SEGMENT_SUM_TOLERANCE = 1e-9
_IDENTITY_KEYS = ("model", "model_hash", "model_revision", "tokenizer", "dataset", "dataset_fingerprint", "n_texts")


# ----------------------------------------------------------------------------- token losses
def token_frame(text_ids: Sequence[str], texts: Sequence[str], char_spans: Sequence[np.ndarray],
                token_nll: Sequence[np.ndarray]) -> pd.DataFrame:
    """Token rows (TOKEN_COLUMNS) of texts from their tokens' character spans and NLLs (nats)."""
    ends = [segments.token_byte_ends(t, s) for t, s in zip(texts, char_spans)]
    return pd.DataFrame({
        "text_id": np.repeat(np.asarray(text_ids, dtype=object), [len(e) for e in ends]),
        "byte_end": np.concatenate(ends).astype(np.int32),
        "nll": np.concatenate(token_nll).astype(np.float64),
    })


def token_status(path: Path, request: run.ScoreRequest, fingerprint: str, model_hash: str | None) -> tuple[str, list[str]]:
    """("missing" | "unreadable" | "incomplete" | "mismatch" | "ok", reasons) of a token-loss file."""
    if not path.is_file():
        return "missing", []
    try:
        _, provenance = read_token_losses(path)
    except (ValueError, OSError) as error:
        return "unreadable", [str(error)]
    if not provenance.get("complete", False):
        return "incomplete", ["provenance complete=false"]
    problems = run.cache_mismatches(provenance, request, fingerprint, model_hash)
    return ("mismatch", problems) if problems else ("ok", [])


def score_cache_rel_diff(frame: pd.DataFrame, request: run.ScoreRequest, fingerprint: str,
                         model_hash: str | None, text_ids: list[str]) -> float | None:
    """Largest relative difference between per-text token sums and the matching score cache (None: no such cache)."""
    path = cache.cache_path(request.cache_dir, request.model, fingerprint)
    if run.cache_status(path, request, fingerprint, model_hash, text_ids)[0] != "ok":
        return None
    scores = cache.read_cache(path)[0].set_index("text_id")["nll"]
    sums = frame.groupby("text_id", sort=False)["nll"].sum().reindex(scores.index)
    return float(np.max(np.abs(sums.to_numpy() - scores.to_numpy()) / np.abs(scores.to_numpy())))


def score_token_losses(request: run.ScoreRequest, *, force: bool = False, progress: bool = True,
                       texts: pd.DataFrame | None = None, seg_dir: str | Path | None = None) -> Path:
    """Score ``request``'s model keeping byte-aligned token losses; reuse a complete matching file; resumable."""
    frame = load_texts(request.dataset, request.n_texts) if texts is None else texts.reset_index(drop=True)
    fingerprint = dataset_fingerprint(frame["text_id"], frame["text"])
    seg_dir = segments_dir(Path(request.cache_dir).parent) if seg_dir is None else Path(seg_dir)
    path = token_path(seg_dir, request.model, fingerprint)
    model_hash = run.requested_model_hash(request)
    with cache.CacheLock(path, request.model):
        cache.remove_leftovers(path)
        partial = cache.partial_dir(path)
        status, reasons = ("missing", []) if force else token_status(path, request, fingerprint, model_hash)
        if status == "ok":
            cache.remove_partial(partial)
            return path
        if status in ("mismatch", "unreadable") and path.is_file():
            reasons = "; ".join(reasons)
            print(f"token losses {str(path)!r} of model {request.model!r} are stale ({reasons}); rescoring")
        if force:
            cache.remove_partial(partial)
        match_score_cache_threads(cache.cache_path(request.cache_dir, request.model, fingerprint))
        _score_tokens_into(request, frame, fingerprint, path, partial, model_hash, progress)
    return path


def match_score_cache_threads(score_path: Path) -> None:
    """Use the torch CPU thread count that scored ``score_path``: CPU sums depend on it (~1e-6 relative)."""
    import torch

    if not score_path.is_file():
        return
    threads = cache.read_cache(score_path)[1].get("torch_threads")
    if threads and int(threads) != torch.get_num_threads():
        print(f"using {threads} torch threads, as the score cache {score_path.name} did (CPU sums depend on it)")
        torch.set_num_threads(int(threads))


def _score_tokens_into(request, frame, fingerprint, path, partial, model_hash, progress) -> None:
    """Score the token losses of ``frame``'s texts and write the token file: small models in one batched pass,
    others chunk by chunk into ``partial`` (resumable)."""
    small = batched.is_small_model(request)
    model, tokenizer, overrides = (batched.load_small_model if small else run.load_for_scoring)(request)
    settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, request.max_length, request.context_tokens))
    text_ids = frame["text_id"].astype(str).tolist()
    texts = frame["text"].tolist()
    sequences, spans = kernel.tokenize_with_char_spans(tokenizer, texts, text_ids)
    provenance = run.build_provenance(request, model, tokenizer, settings, fingerprint, len(frame), model_hash, overrides)
    provenance["offsets_rule"] = OFFSETS_RULE
    n_tokens = np.array([len(s) for s in sequences])
    if small:
        bar = kernel.make_progress(int(n_tokens.sum()), len(frame), f"{request.model} tokens") if progress else None
        token_nll: list[np.ndarray] = []
        try:
            batched.score_all(model, sequences, settings, text_ids=text_ids, batch_tokens=request.batch_tokens,
                              progress=bar, token_nll=token_nll)
        finally:
            if bar is not None:
                bar.close()
        _finish_token_file(request, token_frame(text_ids, texts, spans, token_nll), provenance, fingerprint, model_hash, text_ids, path)
        cache.remove_partial(partial)
        return
    manifest = cache.read_manifest(partial)
    if manifest is None or run._same_run(manifest, provenance):
        cache.remove_partial(partial)
        cache.write_manifest(partial, provenance)
    order = np.argsort(-n_tokens, kind="stable")
    chunks = [order[i : i + request.chunk_texts] for i in range(0, len(order), request.chunk_texts)]
    done = {int(p.stem.split("_")[1]) for p in partial.glob("chunk_*.parquet")}
    todo = [i for i in range(len(chunks)) if i not in done]
    bar = kernel.make_progress(int(sum(n_tokens[chunks[i]].sum() for i in todo)), len(frame), f"{request.model} tokens") if progress and todo else None
    if bar is not None:
        bar.mmlaw_texts_offset = sum(len(chunks[i]) for i in done if i < len(chunks))
    try:
        for index in todo:
            members = chunks[index]
            token_nll = []
            kernel.score_token_sequences(model, [sequences[i] for i in members], settings, text_ids=[text_ids[i] for i in members],
                                         batch_tokens=request.batch_tokens, progress=bar, token_nll=token_nll)
            rows = token_frame([text_ids[i] for i in members], [texts[i] for i in members], [spans[i] for i in members], token_nll)
            atomic_write_table(pa.Table.from_pandas(rows, preserve_index=False), cache.chunk_path(partial, index))
            if bar is not None:
                bar.mmlaw_texts_offset += len(members)
    finally:
        if bar is not None:
            bar.close()
    parts = [pq.read_table(cache.chunk_path(partial, i)).to_pandas() for i in range(len(chunks))]
    tokens = pd.concat(parts, ignore_index=True)
    tokens["text_id"] = tokens["text_id"].astype(str)
    position = {t: i for i, t in enumerate(text_ids)}
    tokens = tokens.iloc[np.argsort(tokens["text_id"].map(position).to_numpy(), kind="stable")].reset_index(drop=True)
    _finish_token_file(request, tokens, provenance, fingerprint, model_hash, text_ids, path)
    cache.remove_partial(partial)


def _finish_token_file(request, tokens: pd.DataFrame, provenance: dict[str, Any], fingerprint: str, model_hash: str | None,
                       text_ids: list[str], path: Path) -> None:
    """Check per-text token sums against the score cache (when one matches) and write the complete token file."""
    rel = score_cache_rel_diff(tokens, request, fingerprint, model_hash, text_ids)
    if rel is not None and rel > SUM_TOLERANCE:
        raise ValueError(f"model {request.model!r}: per-text token sums differ from its score cache by {rel:.2e} relative "
                         f"(> {SUM_TOLERANCE}); the score cache and this scoring disagree")
    provenance.update(complete=True, score_cache_max_rel_diff=rel, created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_with_provenance(path, tokens, provenance)


# ----------------------------------------------------------------------------- segment losses
def _by_text(tokens: pd.DataFrame, column: str, dtype) -> dict[str, np.ndarray]:
    """One array of ``column`` per text id of a token frame."""
    return {str(t): g.to_numpy(dtype) for t, g in tokens.groupby("text_id", sort=False)[column]}


def segmentation_ends(texts: pd.DataFrame, segmentation: str, token_files: Sequence[Path] | None = None
                      ) -> dict[str, np.ndarray]:
    """Segment byte ends per text id (the same for every model); common_token reads every pool model's token file."""
    ids = texts["text_id"].astype(str).tolist()
    if segmentation != "common_token":
        return {t: segments.segment_ends(text, segmentation) for t, text in zip(ids, texts["text"])}
    if not token_files:
        raise ValueError("segmentation 'common_token' needs the token files of every pool model")
    n_bytes = {t: len(text.encode("utf-8")) for t, text in zip(ids, texts["text"])}
    shared: dict[str, np.ndarray] | None = None
    for path in token_files:  # one model in memory at a time: intersect as we go
        ends = _by_text(read_token_losses(path)[0], "byte_end", np.int64)
        if any(t not in ends for t in ids):
            raise ValueError(f"token file {str(path)!r} lacks text(s) {[t for t in ids if t not in ends][:5]}")
        shared = {t: segments.common_token_ends([ends[t]] if shared is None else [shared[t], ends[t]], n_bytes[t]) for t in ids}
    return shared


def segment_frame(model: str, ends_by_text: dict[str, np.ndarray], tokens: pd.DataFrame) -> pd.DataFrame:
    """Long-form segment losses (SEGMENT_COLUMNS, nats) of one model's token rows, texts in ``ends_by_text`` order."""
    token_ends, token_nll = _by_text(tokens, "byte_end", np.int64), _by_text(tokens, "nll", np.float64)
    missing = [t for t in ends_by_text if t not in token_ends]
    if missing:
        raise ValueError(f"model {model!r}: token losses lack text(s) {missing[:5]}")
    ids = list(ends_by_text)
    ends = [ends_by_text[t] for t in ids]
    sizes = [len(e) for e in ends]
    return pd.DataFrame({
        "model": pd.Categorical([model] * sum(sizes)),
        "text_id": np.repeat(np.asarray(ids, dtype=object), sizes),
        "segment": np.concatenate([np.arange(n) for n in sizes]).astype(np.int32),
        "byte_start": np.concatenate([np.concatenate([[0], e[:-1]]) for e in ends]).astype(np.int32),
        "byte_end": np.concatenate(ends).astype(np.int32),
        "nll": np.concatenate([segments.segment_losses(token_ends[t], token_nll[t], e) for t, e in zip(ids, ends)]),
    })


def _segment_provenance(token_prov: dict[str, Any], segmentation: str, sources: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Provenance of a segment file: model identity, segmentation, rules version, token files and their sha256."""
    return {
        **{k: token_prov.get(k) for k in _IDENTITY_KEYS},
        "segmentation": segmentation,
        "rules_version": segments.SEGMENTATION_RULES_VERSION,
        "token_files": sources,
        "complete": True,
    }


def segment_is_current(path: Path, segmentation: str, sources: dict[str, dict[str, str]]) -> bool:
    """Whether a segment file exists and was derived, by today's rules, from exactly these token files ({model: file, sha256})."""
    if not path.is_file():
        return False
    try:
        _, provenance = read_segment_file(path)
    except (ValueError, OSError):
        return False
    return (provenance.get("segmentation") == segmentation and provenance.get("rules_version") == segments.SEGMENTATION_RULES_VERSION
            and provenance.get("token_files") == sources)


def write_segment_files(texts: pd.DataFrame, token_files: dict[str, Path], seg_dir: Path, fingerprint: str,
                        segmentations: Sequence[str], models: Sequence[str] | None = None, force: bool = False) -> list[Path]:
    """Write the stale segment files of ``models`` (default all of ``token_files``); return those written."""
    identity = {m: {"file": p.name, "sha256": sha256_file(p)} for m, p in token_files.items()}
    todo: dict[str, list[tuple[str, Path, dict]]] = {}
    for model in models or list(token_files):
        for segmentation in segmentations:
            sources = identity if segmentation == "common_token" else {model: identity[model]}
            path = segment_path(seg_dir, segmentation, model, fingerprint)
            if force or not segment_is_current(path, segmentation, sources):
                todo.setdefault(model, []).append((segmentation, path, sources))
    needed = {seg for jobs in todo.values() for seg, _, _ in jobs}
    ends = {seg: segmentation_ends(texts, seg, list(token_files.values())) for seg in segmentations if seg in needed}
    n_bytes = {str(t): len(x.encode("utf-8")) for t, x in zip(texts["text_id"], texts["text"])}
    written = []
    for model, jobs in todo.items():
        tokens, provenance = read_token_losses(token_files[model])
        token_sums = tokens.groupby("text_id", sort=False)["nll"].sum()
        for segmentation, path, sources in jobs:
            frame = segment_frame(model, ends[segmentation], tokens)
            check_segment_frame(frame, n_bytes, token_sums, f"{segmentation} segments of model {model!r}", SEGMENT_SUM_TOLERANCE)
            write_with_provenance(path, frame, _segment_provenance(provenance, segmentation, sources))
            written.append(path)
    return written


# ----------------------------------------------------------------------------- profiles
def pool_model_ids(profile: str) -> list[str]:
    """The profile's pool models (its arms only), in pool order."""
    from mmlaw_utils.config import load_profile
    from mmlaw_utils.pool import select_arms

    prof = load_profile(profile)
    if prof.pool is None:
        raise ValueError(f"profile {profile!r} has no pool")
    return [str(m) for m in select_arms(run._pool_models(prof.pool), prof.arms, profile)["model"]]


def weights_on_disk(model: str) -> bool:
    """Whether a pool model can be loaded here: hub and packaged ids count as present, local folders need a config."""
    path = run.local_model_path(model)
    return path is None or (path / "config.json").is_file()


def build_segments(profile: str, *, model: str | None = None, segmentations: Sequence[str] | None = None,
                   force: bool = False, progress: bool = True, data_dir: str | Path | None = None,
                   present_only: bool = False, **settings: Any) -> list[Path]:
    """The ``segments`` command: token files of the pool (rescored when stale), then its stale segment files.

    ``model`` restricts both to one model, except that ``common_token`` needs every pool model's token
    file (missing ones are scored). ``present_only`` keeps the pool models whose weights are on disk (the
    rest are named and skipped; ``common_token`` then holds for the models kept). ``data_dir`` overrides the profile's output root (its ``scores/``
    and ``segments/``); ``settings`` are ``score``'s overrides (``n_texts``, ``device``, ...).
    """
    chosen = list(segmentations or segments.SEGMENTATIONS)
    pool = pool_model_ids(profile)
    if present_only:
        absent = [m for m in pool if not weights_on_disk(m)]
        if absent:
            print(f"skipping {len(absent)} pool model(s) without weights on disk: {', '.join(absent)}")
        pool = [m for m in pool if m not in absent]
        if not pool:
            raise ValueError(f"no model of profile {profile!r}'s pool has its weights on disk")
    if model is not None and model not in pool:
        raise ValueError(f"model {model!r} is not in profile {profile!r}'s pool (arms included): {pool[:5]}...")
    needed = pool if (model is None or "common_token" in chosen) else [model]
    token_files: dict[str, Path] = {}
    frame = fingerprint = seg_dir = None
    for name in needed:
        request = run.settings_request(profile, name, data_dir=data_dir, **settings)
        if frame is None:
            frame = load_texts(request.dataset, request.n_texts)
            fingerprint = dataset_fingerprint(frame["text_id"], frame["text"])
            seg_dir = segments_dir(Path(request.cache_dir).parent)
        token_files[name] = score_token_losses(request, force=force, progress=progress, texts=frame, seg_dir=seg_dir)
    return write_segment_files(frame, token_files, seg_dir, fingerprint, chosen, [model] if model else None, force)
