"""Eq. (1) kernel: summed next-token NLL (nats) of each text under a causal LM's own tokenizer.

Policies (recorded in every cache's provenance):

* **Prefix.** Each text is tokenized without special tokens; one prefix token is put in
  front so the first token is scored too: the tokenizer's BOS if it has one, else its EOS
  (a document separator, as lm-evaluation-harness does). The prefix is never scored, and a
  tokenizer that inserts BOS despite ``add_special_tokens=False`` has it removed first, so a
  text never sees two BOS tokens.
* **Rolling windows.** Texts longer than ``max_length`` (model input tokens, prefix
  included) are scored in overlapping windows. The first window scores all of its tokens;
  every later window is the ``max_length`` tokens ending at its last scored token, and
  scores ``max_length - context_tokens + 1`` new tokens, so each newly scored token sees at
  least ``context_tokens`` tokens (default ``max_length // 2``). ``context_tokens=1`` gives
  lm-evaluation-harness's disjoint windows. Every token is scored exactly once; a text that
  fits in one window is one plain forward.
* **Batching.** Windows are sorted by length and packed to a padded-token budget
  (``batch_tokens``), right-padded (so causal attention never sees padding), and results
  are put back in input order.
* **Memory.** Hidden states come from the base model; the output head, fp32 log-softmax
  and target gather run over tiles of scored positions x vocabulary entries written into one
  reused buffer, so the [tokens x vocab] fp32 logits are never materialised. On CPU (glibc)
  freed activation memory is kept for reuse rather than mapped afresh each layer.
* **Precision.** fp32 is the default and gives exact scores; a model loaded in bf16
  (``dtype="bfloat16"``, ``--dtype bfloat16``) is scored with bf16 matmuls (AMX on CPUs that have
  it) and an fp32 log-sum-exp, and its caches record dtype bfloat16.

* **Token losses.** ``score_token_sequences(..., token_nll=[])`` also hands back each token's
  NLL (float64 nats; they sum to the text's loss up to summation order), and
  ``tokenize_with_char_spans`` gives the same tokens with their character spans; byte alignment
  and segmentations live in ``scoring.segments``.

Loading a model, its dtype and device, the prefix token and parameter counts live in
``scoring.models``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmlaw_utils.scoring.models import default_context_tokens, input_device, model_max_length, model_name, prefix_token

RESULT_COLUMNS = ["nll", "n_tokens", "n_bytes"]
# fp32 logits held at once: one tile of positions x vocabulary entries. Small enough to stay in
# CPU cache and bounded memory; wide enough that each head weight slice serves many positions.
_LOGITS_TILE_BYTES = 16 * 2**20
_MIN_VOCAB_TILE = 4096
# On CPU a forward gains nothing from more than ~2k tokens (no idle parallel units to fill) and
# loses cache locality; measured in benchmarks/bench_scoring.py runs (about 20% at 8k tokens).
_CPU_MAX_BATCH_TOKENS = 2048
# glibc malloc: serve blocks below 32 MiB (its maximum) from the heap and keep up to 512 MiB of freed heap.
# By default glibc maps most multi-MB activations of a CPU forward afresh and faults them in page by page
# (bench_scoring.py --peak times scoring with and without this).
_MALLOC_MMAP_THRESHOLD_BYTES = 32 * 2**20
_MALLOC_TRIM_THRESHOLD_BYTES = 512 * 2**20
_malloc_tuned = False


# ----------------------------------------------------------------------------- windows
def rolling_windows(n_tokens: int, max_length: int, context_tokens: int | None = None) -> np.ndarray:
    """Windows over the sequence [prefix] + n_tokens text tokens, as int64 rows (start, length, n_scored).

    A window feeds input positions ``start .. start+length-1`` of that sequence and predicts
    positions ``start+1 .. start+length``; its last ``n_scored`` predictions are scored.
    Across windows, text tokens 1..n_tokens are each scored exactly once.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    context = default_context_tokens(max_length) if context_tokens is None else int(context_tokens)
    if not 1 <= context <= max_length:
        raise ValueError(f"context_tokens must be in [1, max_length={max_length}], got {context_tokens}")
    if n_tokens < 1:
        raise ValueError(f"a text must have at least one token, got {n_tokens}")
    stride = max_length - context + 1  # new tokens per later window
    first = min(max_length, n_tokens)
    rows = [(0, first, first)]
    next_target = first + 1  # sequence index of the first unscored token
    while next_target <= n_tokens:
        end = min(n_tokens, next_target + stride - 1)
        start = max(0, end - max_length)
        rows.append((start, end - start, end - next_target + 1))
        next_target = end + 1
    return np.asarray(rows, dtype=np.int64)


def window_policy_name(max_length: int, context_tokens: int | None) -> str:
    """Provenance string of the rolling-window policy."""
    context = default_context_tokens(max_length) if context_tokens is None else int(context_tokens)
    return f"rolling(max_length={max_length},context_tokens={context})"


def pack_batches(lengths: np.ndarray, batch_tokens: int, max_padding: float = 0.1) -> list[np.ndarray]:
    """Group window indices, longest first, so each batch's padded size rows*max_len <= batch_tokens
    and its padding stays within ``max_padding`` of its real tokens (padding is wasted compute).

    A window longer than the budget gets a batch of its own.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    i = 0
    while i < len(order):
        longest = int(lengths[order[i]])
        rows, real = 1, longest
        while i + rows < len(order) and (rows + 1) * longest <= batch_tokens:
            candidate = int(lengths[order[i + rows]])
            if (rows + 1) * longest > (1 + max_padding) * (real + candidate):
                break
            rows, real = rows + 1, real + candidate
        batches.append(order[i : i + rows])
        i += rows
    return batches


# ----------------------------------------------------------------------------- tokens
def check_texts(texts: Sequence[Any], text_ids: Sequence[Any] | None = None) -> list[str]:
    """Return the ids (default "0", "1", ...) after checking texts are non-empty str and ids unique."""
    ids = [str(i) for i in range(len(texts))] if text_ids is None else [str(i) for i in text_ids]
    if len(ids) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(ids)} text ids")
    seen: set[str] = set()
    duplicates = [i for i in ids if i in seen or seen.add(i)]
    if duplicates:
        raise ValueError(f"duplicate text id(s) {sorted(set(duplicates))[:10]}")
    for text_id, text in zip(ids, texts):
        if not isinstance(text, str):
            raise TypeError(f"text {text_id!r} is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"text {text_id!r} is empty")
    return ids


def tokenize_texts(tokenizer, texts: Sequence[str], text_ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Each text's own token ids (int64, no special tokens added), after input checks."""
    ids = check_texts(texts, text_ids)
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return [np.asarray(_own_tokens(tokenizer, t, text, i), dtype=np.int64) for i, text, t in zip(ids, texts, encoded)]


def _own_tokens(tokenizer, tokens: list, text: str, text_id: str) -> list:
    """``tokens`` (ids or per-token items) without a BOS the tokenizer inserted itself; never empty."""
    bos = tokenizer.bos_token_id
    # some tokenizers (legacy sentencepiece, GGUF) prepend BOS regardless; drop it unless the text spells it
    if bos is not None and tokens and tokens[0] == bos and not text.startswith(str(tokenizer.bos_token)):
        tokens = tokens[1:]
    if not len(tokens):
        raise ValueError(f"text {text_id!r} tokenizes to zero tokens")
    return tokens


def tokenize_with_char_spans(tokenizer, texts: Sequence[str], text_ids: Sequence[str] | None = None
                             ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token ids as ``tokenize_texts`` gives them, and each token's [start, end) character span (int64 [n x 2])."""
    ids = check_texts(texts, text_ids)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} is not a fast tokenizer: it gives no offsets")
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    sequences, spans = [], []
    for text_id, text, tokens, offsets in zip(ids, texts, encoded["input_ids"], encoded["offset_mapping"]):
        pairs = _own_tokens(tokenizer, list(zip(tokens, offsets)), text, text_id)
        sequences.append(np.asarray([t for t, _ in pairs], dtype=np.int64))
        spans.append(np.asarray([o for _, o in pairs], dtype=np.int64).reshape(-1, 2))
    return sequences, spans


# ----------------------------------------------------------------------------- model head
@dataclass(frozen=True)
class _Head:
    """Output head of a causal LM: logits = postprocess(linear(hidden))."""

    linear: torch.nn.Module
    softcap: float | None
    scale: float

    def logits_fp32(self, hidden: torch.Tensor, lo: int = 0, hi: int | None = None,
                    out: torch.Tensor | None = None) -> torch.Tensor:
        """fp32 logits of vocabulary entries ``lo:hi`` (default all) for a [positions x hidden] block.

        ``out``: an fp32 [positions x (hi - lo)] buffer to write them into (plain Linear heads only),
        so a tiled loop reuses one buffer instead of allocating a tile per step.
        """
        if out is not None and self.sliceable:
            weight = self.linear.weight if hi is None and lo == 0 else self.linear.weight[lo:hi]
            bias = self.linear.bias if self.linear.bias is None or (hi is None and lo == 0) else self.linear.bias[lo:hi]
            if weight.dtype == torch.float32 and hidden.dtype == torch.float32:
                if bias is None:
                    torch.mm(hidden, weight.t(), out=out)
                else:
                    torch.addmm(bias, hidden, weight.t(), out=out)
            else:  # bf16/fp16 weights: the product in their dtype (AMX on CPU), widened once into the buffer
                out.copy_(torch.nn.functional.linear(hidden.to(weight.dtype), weight, bias))
            logits = out
        else:
            if hi is None and lo == 0:
                logits = self.linear(hidden)
            else:
                bias = getattr(self.linear, "bias", None)
                logits = torch.nn.functional.linear(hidden, self.linear.weight[lo:hi], None if bias is None else bias[lo:hi])
            logits = logits.float()
        if self.scale != 1.0:
            logits.mul_(self.scale)
        if self.softcap:
            logits.div_(self.softcap).tanh_().mul_(self.softcap)
        return logits

    @property
    def sliceable(self) -> bool:
        """Whether vocabulary slices of the head can be computed (a plain Linear)."""
        return type(self.linear) is torch.nn.Linear


def _output_head(model) -> _Head:
    """The head applied to the base model's last hidden state (known scalings included)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    linear = model.get_output_embeddings()
    if linear is None:
        raise ValueError(f"model {model_name(model)!r} has no output embeddings (not a causal LM head?)")
    scale = 1.0
    if getattr(config, "logit_scale", None):  # Cohere multiplies logits
        scale *= float(config.logit_scale)
    if getattr(config, "logits_scaling", None):  # Granite divides logits
        scale /= float(config.logits_scaling)
    return _Head(linear=linear, softcap=getattr(config, "final_logit_softcapping", None) or None, scale=scale)


def _hidden_states(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Last hidden state [batch, time, hidden] of the base model (final norm applied)."""
    out = model.base_model(input_ids=input_ids, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def _head_matches_full_forward(model, head: _Head, probe: torch.Tensor) -> bool:
    """Whether base model + head reproduces the full model's log-probs on a short probe."""
    with torch.inference_mode():
        full = model(input_ids=probe, use_cache=False).logits.float().log_softmax(-1)
        if not bool(torch.isfinite(full).all()):
            return True  # a broken model; the scoring loop reports it with the text ids
        hidden = _hidden_states(model, probe)
        ours = head.logits_fp32(hidden.to(head.linear.weight.device)).log_softmax(-1)
    tolerance = 1e-3 if full.dtype == torch.float32 and head.linear.weight.dtype == torch.float32 else 5e-2
    return bool(torch.allclose(ours.to(full.device), full, atol=tolerance, rtol=0))


def _tile_shape(n_positions: int, vocab_size: int, sliceable: bool) -> tuple[int, int]:
    """(positions, vocabulary entries) per fp32 logits tile, within _LOGITS_TILE_BYTES when possible."""
    vocab_tile = vocab_size if not sliceable else min(vocab_size, max(_MIN_VOCAB_TILE, _LOGITS_TILE_BYTES // (4 * 1024)))
    positions = max(1, min(n_positions, _LOGITS_TILE_BYTES // (4 * vocab_tile)))
    return positions, vocab_tile


@torch.no_grad()  # out= products refuse tensors that require grad; scoring never needs them
def _target_logprobs(head: _Head, hidden: torch.Tensor, targets: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """fp32 log p(target) for [N x hidden] states, tiled over positions and vocabulary.

    The normaliser is an online (streaming) log-sum-exp over vocabulary tiles, so memory is
    one tile whatever the vocabulary size. Each tile is written into one reused buffer; the
    target logits are picked from it before the in-place exp.
    """
    n = hidden.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=hidden.device)
    step, vocab_tile = _tile_shape(n, vocab_size, head.sliceable)
    buffer = torch.empty(step * vocab_tile, dtype=torch.float32, device=hidden.device) if head.sliceable else None
    for p0 in range(0, n, step):
        block, tgt = hidden[p0 : p0 + step], targets[p0 : p0 + step]
        rows_in_block = block.shape[0]
        running_max = torch.full((rows_in_block,), -torch.inf, device=hidden.device)
        running_sum = torch.zeros(rows_in_block, device=hidden.device)
        picked = torch.empty(rows_in_block, device=hidden.device)
        target_tile = torch.div(tgt, vocab_tile, rounding_mode="floor")
        for tile, v0 in enumerate(range(0, vocab_size, vocab_tile)):
            v1 = min(vocab_size, v0 + vocab_tile)
            tile_out = None if buffer is None else buffer[: rows_in_block * (v1 - v0)].view(rows_in_block, v1 - v0)
            if vocab_tile == vocab_size:
                logits = head.logits_fp32(block, out=tile_out)
            else:
                logits = head.logits_fp32(block, v0, v1, out=tile_out)
            rows = (target_tile == tile).nonzero().squeeze(1)
            picked[rows] = logits[rows, tgt[rows] - v0]
            new_max = torch.maximum(running_max, logits.amax(dim=1))  # amax: no argmax indices to compute
            # rescale the old sum to the new max; exp(-inf) = 0 on the first tile
            running_sum = running_sum * torch.exp(running_max - new_max) + logits.sub_(new_max[:, None]).exp_().sum(1)
            running_max = new_max
            del logits
        out[p0 : p0 + step] = picked - (running_max + torch.log(running_sum))
    return out


# ----------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class ScoreSettings:
    """Resolved scoring policy (what goes into provenance)."""

    max_length: int
    context_tokens: int
    prefix_id: int
    prefix_policy: str
    window_policy: str
    head_mode: str


def resolve_settings(model, tokenizer, max_length: int | None = None, context_tokens: int | None = None) -> ScoreSettings:
    """Fill in the model's context length, the default window context and the prefix token."""
    length = model_max_length(model) if max_length is None else int(max_length)
    if length < 2:
        raise ValueError(f"max_length must be >= 2 for model {model_name(model)!r}, got {length}")
    if max_length is not None:
        try:
            limit = model_max_length(model)
        except ValueError:
            limit = None  # no context length in the config: the caller's max_length is all we have
        if limit is not None and length > limit:
            raise ValueError(
                f"max_length {length} exceeds the context of model {model_name(model)!r} ({limit} tokens, "
                f"its trained positions); use max_length <= {limit} (longer texts are scored in rolling windows)"
            )
    context = default_context_tokens(length) if context_tokens is None else int(context_tokens)
    rolling_windows(1, length, context)  # validates context range
    prefix_id, prefix_policy = prefix_token(tokenizer)
    return ScoreSettings(length, context, prefix_id, prefix_policy, window_policy_name(length, context), "chunked")


def _plan_windows(sequences: list[np.ndarray], settings: ScoreSettings) -> np.ndarray:
    """All windows of all texts as int64 rows (text index, start, length, n_scored)."""
    plans = []
    for index, tokens in enumerate(sequences):
        windows = rolling_windows(len(tokens), settings.max_length, settings.context_tokens)
        plans.append(np.column_stack([np.full(len(windows), index, dtype=np.int64), windows]))
    return np.concatenate(plans, axis=0)


def score_token_sequences(
    model,
    sequences: list[np.ndarray],
    settings: ScoreSettings,
    *,
    text_ids: Sequence[str] | None = None,
    batch_tokens: int = 8192,
    progress: Any = None,
    on_batch: Any = None,
    token_nll: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Summed NLL (float64 nats) of each token sequence (without prefix), in input order.

    ``progress`` is an optional tqdm-like bar updated with scored tokens; ``on_batch`` an
    optional callable run after each batch (used by tests to simulate a crash).
    ``token_nll``: an optional list that receives, per sequence, its tokens' NLLs (float64 nats).
    """
    ids = [str(i) for i in range(len(sequences))] if text_ids is None else list(text_ids)
    if not sequences:
        return np.zeros(0, dtype=np.float64)
    windows = _plan_windows(sequences, settings)
    full = [np.concatenate([[settings.prefix_id], s]) for s in sequences]
    head = _output_head(model)
    vocab_size = int(head.linear.weight.shape[0])
    device = input_device(model)
    head_device = head.linear.weight.device
    nll = torch.zeros(len(sequences), dtype=torch.float64)  # on CPU: float64 works on every backend
    windows_left = np.bincount(windows[:, 0], minlength=len(sequences))
    token_offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]) if token_nll is not None else None
    flat_token_nll = np.zeros(int(token_offsets[-1]) if token_offsets is not None else 0, dtype=np.float64)
    use_full_forward = settings.head_mode == "full"
    if device.type == "cpu":
        batch_tokens = min(batch_tokens, _CPU_MAX_BATCH_TOKENS)
        reuse_freed_cpu_memory()
    with torch.inference_mode():
        for batch in pack_batches(windows[:, 2], batch_tokens):
            rows = windows[batch]
            width = int(rows[:, 2].max())
            input_ids = np.full((len(rows), width), settings.prefix_id, dtype=np.int64)
            positions, targets, owners = [], [], []
            for r, (text, start, length, n_scored) in enumerate(rows):
                seq = full[text]
                input_ids[r, :length] = seq[start : start + length]
                pos = np.arange(length - n_scored, length)
                positions.append(r * width + pos)
                targets.append(seq[start + pos + 1])
                owners.append(np.full(n_scored, text))
            flat_pos = torch.from_numpy(np.concatenate(positions)).to(head_device)
            flat_targets = torch.from_numpy(np.concatenate(targets)).to(head_device)
            flat_owner = torch.from_numpy(np.concatenate(owners)).to(head_device)
            batch_ids = torch.from_numpy(input_ids).to(device)
            if use_full_forward:
                logits = model(input_ids=batch_ids, use_cache=False).logits
                picked = logits.reshape(-1, logits.shape[-1])[flat_pos.to(logits.device)].float()
                logprobs = (picked.gather(1, flat_targets[:, None].to(picked.device)).squeeze(1) - torch.logsumexp(picked, 1)).to(head_device)
                del logits, picked
            else:
                hidden = _hidden_states(model, batch_ids)
                hidden = hidden.reshape(-1, hidden.shape[-1])[flat_pos.to(hidden.device)].to(head_device)
                logprobs = _target_logprobs(head, hidden, flat_targets, vocab_size)
                del hidden
            finite = torch.isfinite(logprobs)
            if not bool(finite.all()):
                bad = sorted({ids[i] for i in flat_owner[~finite].unique().tolist()})
                weight_dtype = head.linear.weight.dtype
                hint = "; try dtype='float32'" if weight_dtype != torch.float32 else "; the weights or inputs are broken (already float32)"
                raise FloatingPointError(
                    f"model {model_name(model)!r} gave non-finite log-probabilities (dtype "
                    f"{weight_dtype}) for text id(s) {bad[:20]}{hint}"
                )
            nll.index_add_(0, flat_owner.cpu(), -logprobs.cpu().double())
            if token_offsets is not None:  # text token index of a scored position = window start + position
                slots = np.concatenate([token_offsets[t] + s + np.arange(l - n, l) for t, s, l, n in rows])
                flat_token_nll[slots] = -logprobs.cpu().double().numpy()
            if progress is not None:
                np.subtract.at(windows_left, rows[:, 0], 1)
                _report_progress(progress, int(rows[:, 3].sum()), int((windows_left == 0).sum()))
            if on_batch is not None:
                on_batch()
    if token_offsets is not None:
        token_nll.extend(np.split(flat_token_nll, token_offsets[1:-1]))
    return nll.numpy()


def reuse_freed_cpu_memory() -> bool:
    """Make glibc keep freed activation buffers for reuse (process-wide, once); False where not glibc."""
    global _malloc_tuned
    if _malloc_tuned:
        return True
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    _malloc_tuned = bool(libc.mallopt(m_mmap_threshold, _MALLOC_MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(m_trim_threshold, _MALLOC_TRIM_THRESHOLD_BYTES))
    return _malloc_tuned


def _report_progress(bar: Any, tokens: int, texts_done: int) -> None:
    """Advance a bar made by ``make_progress`` by ``tokens``; texts count from its offset (chunked runs)."""
    offset = int(getattr(bar, "mmlaw_texts_offset", 0))
    total = getattr(bar, "mmlaw_n_texts", "?")
    bar.set_postfix_str(f"texts={offset + texts_done}/{total}", refresh=False)
    bar.update(tokens)


def check_head(model, tokenizer, settings: ScoreSettings) -> ScoreSettings:
    """Use the chunked head if base model + output head reproduces the model's logits, else full forwards."""
    head = _output_head(model)
    probe_len = min(16, settings.max_length)
    generator = torch.Generator().manual_seed(0)
    vocab = min(len(tokenizer), int(head.linear.weight.shape[0]))
    probe = torch.randint(0, vocab, (1, probe_len), generator=generator)
    probe[0, 0] = settings.prefix_id
    if _head_matches_full_forward(model, head, probe.to(input_device(model))):
        return settings
    warnings.warn(
        f"model {model_name(model)!r}: base model + output head does not reproduce its logits; "
        "scoring with full forwards (more memory)",
        stacklevel=2,
    )
    return ScoreSettings(**{**settings.__dict__, "head_mode": "full"})


def score_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    text_ids: Sequence[str] | None = None,
    max_length: int | None = None,
    context_tokens: int | None = None,
    batch_tokens: int = 8192,
    progress: bool | Any = False,
) -> pd.DataFrame:
    """Eq. (1) per text, in input order: ``nll`` (float64 summed nats), ``n_tokens``, ``n_bytes``.

    ``max_length``: window length in model input tokens (default: the model's context).
    ``context_tokens``: minimum context of each newly scored token in windows after the
    first (default ``max_length // 2``; 1 = lm-evaluation-harness's disjoint windows).
    ``batch_tokens``: padded tokens per forward (at most 2,048 on CPU, where bigger batches only
    lose cache locality). ``progress``: True for a tqdm bar, or a bar.
    The frame's index is the text ids (default "0", "1", ...).
    """
    ids = check_texts(texts, text_ids)
    sequences = tokenize_texts(tokenizer, texts, ids)
    settings = check_head(model, tokenizer, resolve_settings(model, tokenizer, max_length, context_tokens))
    bar = make_progress(sum(len(s) for s in sequences), len(sequences)) if progress is True else (progress or None)
    try:
        nll = score_token_sequences(model, sequences, settings, text_ids=ids, batch_tokens=batch_tokens, progress=bar)
    finally:
        if progress is True and bar is not None:
            bar.close()
    return pd.DataFrame(
        {
            "nll": nll,
            "n_tokens": np.array([len(s) for s in sequences], dtype=np.int64),
            "n_bytes": np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64),
        },
        index=pd.Index(ids, name="text_id"),
    )


def make_progress(total_tokens: int, n_texts: int, description: str = "scoring"):
    """A tqdm bar counting scored tokens (rate = tokens/s, ETA) with a texts-done postfix."""
    from tqdm import tqdm  # plain text bar: readable in papermill outputs and SLURM logs

    bar = tqdm(total=total_tokens, unit="tok", unit_scale=True, desc=description, dynamic_ncols=True)
    bar.set_postfix_str(f"texts=0/{n_texts}")
    bar.mmlaw_n_texts = n_texts
    return bar


def bits_per_byte(nll_nats: np.ndarray, n_bytes: np.ndarray) -> float:
    """Total nats over total UTF-8 bytes, in bits per byte."""
    return float(np.sum(nll_nats) / np.sum(n_bytes) / math.log(2))
