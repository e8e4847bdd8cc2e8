"""Fast scoring of small models (the miniature pool): eq. (1) with the kernel's windows and fp32 head, made cheap
where tiny models spend their time.

* **Token ids cached.** Each tokenizer tokenizes a text set once; the ids are kept in
  ``<cache_dir>/../token_ids/<tokenizer hash>__<text-set fingerprint>.npz`` and reused by every model
  that shares the tokenizer (the pool has five tokenizers for 56 models).
* **One pass, many windows.** Every window of the text set is planned at once
  (``kernel.rolling_windows``, so the same windows as ``kernel.score_token_sequences``) and packed into
  large forwards; there are no resumable chunks, since a tiny model scores in seconds.
* **Fused head.** When a block's fp32 logits fit one tile, ``cross_entropy`` does the
  log-softmax and target gather in one kernel (the kernel's streaming log-sum-exp is kept for
  large vocabularies).
* **Many models per process**, optionally spread over worker processes (one torch thread each).

Losses agree with ``kernel.score_texts`` to float32 rounding (per-text relative differences ~1e-8;
tests require 1e-6). Models whose weight files exceed ``SMALL_MODEL_BYTES``, packaged GGUF models and
models whose head needs full forwards go through ``run.score_model`` (resumable chunks) unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmlaw_utils.io import atomic_output
from mmlaw_utils.scoring import cache, kernel, run
from mmlaw_utils.scoring.models import input_device, model_name
from mmlaw_utils.texts import load_texts

# weight files (safetensors / bin) up to this size take the batched path; larger models keep resumable chunks
SMALL_MODEL_BYTES = 64 * 2**20
# padded tokens per forward on an accelerator: fewer, larger launches
SMALL_MODEL_BATCH_TOKENS = 8192
# padded tokens per forward on CPU: smaller activations stay in cache at the pool's widest models (d 112-120:
# 7-12% faster than 8,192; 5% over sizes 0, 3, 4 and 5 together; bench_tiny_scoring.py --batch-sweep)
SMALL_MODEL_CPU_BATCH_TOKENS = 4096
TOKEN_IDS_FOLDER = "token_ids"


# ----------------------------------------------------------------------------- token ids
def tokenizer_hash(tokenizer) -> str | None:
    """Content hash (16 hex) of a fast tokenizer's full definition and prefix tokens, or None for a slow one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    digest = hashlib.sha256(backend.to_str().encode("utf-8"))
    extra = [type(tokenizer).__name__, tokenizer.bos_token, tokenizer.bos_token_id, tokenizer.eos_token_id]
    digest.update(json.dumps(extra, default=str).encode("utf-8"))
    return digest.hexdigest()[:16]


def token_ids_path(folder: str | Path, tokenizer_key: str, fingerprint: str) -> Path:
    """File of one tokenizer's ids for one text set."""
    return Path(folder) / f"{tokenizer_key}__{fingerprint}.npz"


def cached_token_ids(tokenizer, texts: Sequence[str], text_ids: Sequence[str], fingerprint: str,
                     folder: str | Path | None) -> list[np.ndarray]:
    """Each text's token ids (``kernel.tokenize_texts``), read from / written to ``folder`` when the tokenizer is hashable."""
    key = tokenizer_hash(tokenizer) if folder is not None else None
    if key is None:
        return kernel.tokenize_texts(tokenizer, texts, text_ids)
    path = token_ids_path(folder, key, fingerprint)
    if path.is_file():
        try:
            with np.load(path) as stored:
                flat, offsets = stored["ids"], stored["offsets"]
            if len(offsets) == len(texts) + 1 and offsets[-1] == len(flat):
                return [flat[a:b].astype(np.int64) for a, b in zip(offsets[:-1], offsets[1:])]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged file is rewritten below
    sequences = kernel.tokenize_texts(tokenizer, texts, text_ids)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    with atomic_output(path, "wb") as handle:
        np.savez(handle, ids=np.concatenate(sequences).astype(np.int32), offsets=offsets)
    return sequences


# ----------------------------------------------------------------------------- scoring
def fuse_tanh_gelu(model) -> int:
    """Swap transformers' Python tanh-GELU (GPT-2's ``gelu_new``: five elementwise passes) for torch's one-pass
    ``gelu(approximate="tanh")``, the same formula (outputs differ by float32 rounding); returns how many were swapped."""
    from transformers.activations import GELUTanh, NewGELUActivation

    swapped = 0
    for parent in model.modules():
        for child_name, child in list(parent.named_children()):
            if type(child) is NewGELUActivation:
                setattr(parent, child_name, GELUTanh())
                swapped += 1
    return swapped


def load_small_model(request: run.ScoreRequest):
    """``run.load_for_scoring`` for the batched path, with GPT-2's tanh-GELU fused (a quarter of its time at the
    pool's widths)."""
    model, tokenizer, overrides = run.load_for_scoring(request)
    fuse_tanh_gelu(model)
    return model, tokenizer, overrides


def _fused_logprobs(head, hidden: torch.Tensor, targets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """fp32 log p(target) of [N x hidden] states: one fused log-softmax per tile of positions (whole vocabulary)."""
    if not head.sliceable or vocab_size * 4 * 64 > kernel._LOGITS_TILE_BYTES:
        return kernel._target_logprobs(head, hidden, targets, vocab_size)
    step = max(1, kernel._LOGITS_TILE_BYTES // (4 * vocab_size))
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    for p0 in range(0, hidden.shape[0], step):
        logits = head.logits_fp32(hidden[p0 : p0 + step])
        out[p0 : p0 + step] = -torch.nn.functional.cross_entropy(logits, targets[p0 : p0 + step], reduction="none")
    return out


def score_windows(model, sequences: list[np.ndarray], settings: kernel.ScoreSettings, *,
                  text_ids: Sequence[str] | None = None, batch_tokens: int = SMALL_MODEL_BATCH_TOKENS,
                  progress: Any = None, token_nll: list[np.ndarray] | None = None) -> np.ndarray:
    """Summed NLL (float64 nats) of each token sequence (prefix excluded), in input order; every window in one pass.

    ``token_nll``: an optional list that receives, per sequence, its tokens' NLLs (float64 nats).
    """
    ids = [str(i) for i in range(len(sequences))] if text_ids is None else list(text_ids)
    if not sequences:
        return np.zeros(0, dtype=np.float64)
    windows = kernel._plan_windows(sequences, settings)  # (text, start, length, n_scored)
    lengths = np.array([len(s) + 1 for s in sequences], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    flat = np.concatenate([np.concatenate([[settings.prefix_id], s]) for s in sequences]).astype(np.int64)
    flat = np.append(flat, settings.prefix_id)  # one pad so the gather of a window's last target stays in range
    head = kernel._output_head(model)
    vocab_size = int(head.linear.weight.shape[0])
    device, head_device = input_device(model), head.linear.weight.device
    nll = np.zeros(len(sequences), dtype=np.float64)
    windows_left = np.bincount(windows[:, 0], minlength=len(sequences))
    token_offsets = np.concatenate([[0], np.cumsum(lengths - 1)])
    flat_token_nll = np.zeros(int(token_offsets[-1]) if token_nll is not None else 0, dtype=np.float64)
    with torch.inference_mode():
        for batch in kernel.pack_batches(windows[:, 2], batch_tokens):
            text, start, length, n_scored = (windows[batch, k] for k in range(4))
            width = int(length.max())
            column = np.arange(width)[None, :]
            source = starts[text][:, None] + start[:, None] + column
            real = column < length[:, None]
            input_ids = np.where(real, flat[np.minimum(source, len(flat) - 1)], settings.prefix_id)
            scored = real & (column >= (length - n_scored)[:, None])
            targets = flat[source + 1][scored]
            owners = np.broadcast_to(text[:, None], scored.shape)[scored]
            hidden = kernel._hidden_states(model, torch.from_numpy(input_ids).to(device))
            hidden = hidden.reshape(-1, hidden.shape[-1])[torch.from_numpy(scored.reshape(-1)).to(hidden.device)]
            logprobs = _fused_logprobs(head, hidden.to(head_device), torch.from_numpy(targets).to(head_device), vocab_size)
            logprobs = logprobs.double().cpu().numpy()
            if not np.isfinite(logprobs).all():
                bad = sorted({ids[i] for i in np.unique(owners[~np.isfinite(logprobs)])})
                raise FloatingPointError(f"model {model_name(model)!r} gave non-finite log-probabilities for text id(s) "
                                         f"{bad[:20]}; the weights or inputs are broken")
            np.subtract.at(nll, owners, logprobs)
            if token_nll is not None:  # the target at window column c is token start + c of its text
                flat_token_nll[((token_offsets[text] + start)[:, None] + column)[scored]] = -logprobs
            if progress is not None:
                np.subtract.at(windows_left, text, 1)
                kernel._report_progress(progress, int(n_scored.sum()), int((windows_left == 0).sum()))
    if token_nll is not None:
        token_nll.extend(np.split(flat_token_nll, token_offsets[1:-1]))
    return nll


def score_all(model, sequences: list[np.ndarray], settings: kernel.ScoreSettings, *, text_ids: Sequence[str],
              batch_tokens: int, progress: Any = None, on_batch=None,
              token_nll: list[np.ndarray] | None = None) -> np.ndarray:
    """Summed NLL (float64 nats) of every sequence of a small model: every window in one pass, or the kernel's
    batches where the head must run on full logits; ``token_nll`` receives each sequence's token NLLs."""
    if settings.head_mode == "full":
        return kernel.score_token_sequences(model, sequences, settings, text_ids=text_ids, batch_tokens=batch_tokens,
                                            progress=progress, on_batch=on_batch, token_nll=token_nll)
    return score_windows(model, sequences, settings, text_ids=text_ids, progress=progress, token_nll=token_nll,
                         batch_tokens=windows_batch_tokens(model, batch_tokens))


def windows_batch_tokens(model, requested: int) -> int:
    """Padded tokens per forward of the one-pass path: SMALL_MODEL_CPU_BATCH_TOKENS on CPU, else at least
    SMALL_MODEL_BATCH_TOKENS (``requested`` when larger)."""
    if input_device(model).type == "cpu":
        return SMALL_MODEL_CPU_BATCH_TOKENS
    return max(int(requested), SMALL_MODEL_BATCH_TOKENS)


def weight_bytes(request: run.ScoreRequest) -> int:
    """Bytes of the weight files (safetensors / bin) of ``request``'s local transformers folder; 0 when there is none."""
    path = run.local_model_path(request.model)
    if request.gguf_file is not None or path is None or not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))


def is_small_model(request: run.ScoreRequest) -> bool:
    """Whether ``request`` names a local transformers folder whose weight files total at most SMALL_MODEL_BYTES."""
    return 0 < weight_bytes(request) <= SMALL_MODEL_BYTES


def score_whole(request: run.ScoreRequest, frame: pd.DataFrame, fingerprint: str, path: Path, partial: Path,
                model_hash: str | None, force: bool, progress: bool, on_batch=None) -> run.ScoreRun:
    """``run.score_model``'s scorer for small models: cached token ids, every window in one pass, one atomic cache write."""
    model, tokenizer, overrides = load_small_model(request)
    settings = kernel.check_head(model, tokenizer, kernel.resolve_settings(model, tokenizer, request.max_length,
                                                                           request.context_tokens))
    text_ids = frame["text_id"].astype(str).tolist()
    texts = frame["text"].tolist()
    sequences = cached_token_ids(tokenizer, texts, text_ids, fingerprint, Path(request.cache_dir).parent / TOKEN_IDS_FOLDER)
    n_tokens = np.array([len(s) for s in sequences], dtype=np.int64)
    bar = kernel.make_progress(int(n_tokens.sum()), len(frame), str(request.model)) if progress else None
    try:
        nll = score_all(model, sequences, settings, text_ids=text_ids, batch_tokens=request.batch_tokens,
                        progress=bar, on_batch=on_batch)
    finally:
        if bar is not None:
            bar.close()
    results = pd.DataFrame({"text_id": text_ids, "nll": nll, "n_tokens": n_tokens,
                            "n_bytes": np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)})
    provenance = run.build_provenance(request, model, tokenizer, settings, fingerprint, len(frame), model_hash, overrides)
    provenance.update(scoring_path="batched", complete=True,
                      created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    cache.write_cache(path, results, provenance)
    cache.remove_partial(partial)  # an interrupted chunked run of the same cache is superseded
    return run.ScoreRun(path, cache.read_cache(path)[0], provenance, computed=True)


def score_one(request: run.ScoreRequest, *, force: bool = False, progress: bool = True,
              texts: pd.DataFrame | None = None) -> run.ScoreRun:
    """Score one model into its cache: the batched path for small local models, ``run.score_model``'s chunks otherwise."""
    scorer = score_whole if is_small_model(request) else None
    return run.score_model(request, force=force, progress=progress, texts=texts, scorer=scorer)


def _score_in_worker(request: run.ScoreRequest, force: bool, texts: pd.DataFrame | None) -> tuple[run.ScoreRun, float]:
    """Worker process: one torch thread, no bar (bars of several processes would interleave); the run and its seconds."""
    torch.set_num_threads(1)
    start = time.time()
    outcome = score_one(request, force=force, progress=False, texts=texts)
    return outcome, time.time() - start


def default_workers(requests: Sequence[run.ScoreRequest]) -> int:
    """Worker processes for ``requests``: one per usable CPU core when every model is small and scored on CPU, else 1
    (large models and GPUs take one model at a time)."""
    import os

    on_cpu = all(str(r.device).lower() == "cpu" or (str(r.device).lower() == "auto" and not torch.cuda.is_available())
                 for r in requests)
    if len(requests) <= 1 or not on_cpu or not all(is_small_model(r) for r in requests):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), len(requests)))


def score_models(requests: Sequence[run.ScoreRequest], *, force: bool = False, progress: bool = True,
                 workers: int | None = None) -> list[run.ScoreRun]:
    """Score many models in this process (``workers`` > 1: that many processes, one torch thread each; None:
    ``default_workers``), in request order.

    Text sets are read once per (dataset, n_texts); token ids are shared through the token-id cache.
    """
    workers = default_workers(requests) if workers is None else workers
    frames: dict[tuple[str, int | None], pd.DataFrame] = {}
    for request in requests:
        key = (request.dataset, request.n_texts)
        if key not in frames:
            frames[key] = load_texts(request.dataset, request.n_texts)
    if workers <= 1 or len(requests) <= 1:
        outcomes = []
        for k, request in enumerate(requests, start=1):
            print(f"[{k}/{len(requests)}] {request.model}", flush=True)
            outcomes.append(score_one(request, force=force, progress=progress,
                                      texts=frames[(request.dataset, request.n_texts)]))
        return outcomes
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fork after torch's thread pools start can deadlock
    outcomes: dict[int, run.ScoreRun] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # largest first, so that no worker is left with a big model while the others idle
        order = sorted(range(len(requests)), key=lambda i: -weight_bytes(requests[i]))
        futures = {pool.submit(_score_in_worker, requests[i], force, frames[(requests[i].dataset, requests[i].n_texts)]): i
                   for i in order}
        for k, future in enumerate(as_completed(futures), start=1):  # one line per model, printed here (notebooks see it)
            outcome, seconds = future.result()
            outcomes[futures[future]] = outcome
            print(f"[{k}/{len(requests)}] {requests[futures[future]].model}: "
                  f"{'scored' if outcome.computed else 'cached'} in {seconds:.1f}s", flush=True)
    return [outcomes[i] for i in range(len(requests))]


def score_many(profile: str | None, models: Sequence[str], *, force: bool = False, progress: bool = True,
               workers: int | None = None, base_dir: str | Path | None = None, data_dir: str | Path | None = None,
               **settings: Any) -> list[run.ScoreRun]:
    """Notebook 01's and ``run --rescore``'s entry: ``run.settings_request`` for each model, then ``score_models``."""
    requests = [run.settings_request(profile, str(m), base_dir=base_dir, data_dir=data_dir, **settings) for m in models]
    return score_models(requests, force=force, progress=progress, workers=workers)
