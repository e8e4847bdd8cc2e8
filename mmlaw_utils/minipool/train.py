"""Train the miniature pool: tokenizers (``tokenizers``) and random-init causal LMs (transformers).

``python -m mmlaw_utils minipool build --pool configs/pools/minipool.yaml [--model NAME] [--score PROFILE]``
trains every model of the pool (or one) in pool order, resuming where a killed build stopped.

Pool yaml (the POOL format plus training keys): ``training`` (defaults: seed, context, batch_size,
tokens, lr, ...), ``tokenizer_dir`` (optional: trained tokenizers are stored there and reused),
``log_dir``, ``eval_dataset``, ``families`` (per family: ``architecture``, ``tokenizer`` spec, ``data_mix``,
optional overrides of ``training``) and ``models`` (``id`` = local output folder, ``family``,
``params_b``, ``d_model``, ``n_layers``, ``n_heads``, optional ``train_tokens``, ``train_batch_size``, ``train_lr``).

Per family (under ``<models root>/_family/<family>/``, gitignored): the decontaminated training
documents' manifest, the trained tokenizer, and the token stream (``tokens.npy``; each document is
``[prefix] + tokens`` with prefix = BOS, else EOS, the same token the scorer puts first).
Per model: ``save_pretrained`` weights + tokenizer in the model folder (written to a temporary
folder, then renamed: a folder that exists is complete), a resumable checkpoint while training
(``<folder>.ckpt/state.pt``, atomic), the loss curve ``<log_dir>/<name>.csv`` and a run summary
``<log_dir>/<name>.json`` (params, tokens trained, seconds, final losses); ``models_table.csv``
collects the summaries.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from mmlaw_utils.config import REPO_ROOT
from mmlaw_utils.io import atomic_output, atomic_write_text
from mmlaw_utils.scoring.models import count_parameters, prefix_token, resolve_device

TRAINING_DEFAULTS: dict[str, Any] = {
    "seed": 1234,
    "context": 128,
    "batch_size": 16,
    "tokens": 400_000,  # tokens trained per model (the same budget for every size of a family)
    "lr": 3e-3,
    "min_lr_frac": 0.1,
    "warmup_frac": 0.05,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "val_frac": 0.02,  # tail of the token stream kept out of training, for the validation loss
    "val_batches": 8,
    "log_every": 10,
    "checkpoint_every": 100,
    "threads": 2,
}
ARCHITECTURES = ("gpt2", "llama", "gpt_neox", "gemma", "qwen2", "opt", "mistral", "phi")
TOKENIZER_KINDS = ("byte_bpe", "bytes", "unigram_bytes", "sp_bpe")


# ----------------------------------------------------------------------------- pool config
def load_pool_config(path: str | Path) -> dict:
    """Read and check a trainable pool yaml; returns it with training settings merged per family."""
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    for key in ("models", "families"):
        if key not in raw:
            raise ValueError(f"pool {path}: missing key {key!r} (a trainable pool needs families + models)")
    defaults = {**TRAINING_DEFAULTS, **(raw.get("training") or {})}
    mixtures = raw.get("mixtures") or {}
    for family, spec in raw["families"].items():
        if "mixture" in spec:  # a named mixture of the pool's ``mixtures``
            if spec["mixture"] not in mixtures:
                raise ValueError(f"pool {path}: family {family!r} names unknown mixture {spec['mixture']!r}")
            spec["data_mix"] = mixtures[spec["mixture"]]
        for key in ("architecture", "tokenizer", "data_mix"):
            if key not in spec:
                raise ValueError(f"pool {path}: family {family!r} lacks {key!r}")
        if spec["architecture"] not in ARCHITECTURES:
            raise ValueError(f"pool {path}: family {family!r} architecture {spec['architecture']!r} not in {ARCHITECTURES}")
        if spec["tokenizer"].get("kind") not in TOKENIZER_KINDS:
            raise ValueError(f"pool {path}: family {family!r} tokenizer kind must be one of {TOKENIZER_KINDS}")
        spec["training"] = {**defaults, **(spec.get("training") or {})}
    seen = set()
    for model in raw["models"]:
        name = model_name(model)
        if name in seen:
            raise ValueError(f"pool {path}: duplicate model name {name!r}")
        seen.add(name)
        if base_family(model) not in raw["families"]:
            raise ValueError(f"pool {path}: model {model.get('id')!r} has unknown family {base_family(model)!r}")
        if model.get("mixture") is not None and model["mixture"] not in mixtures:
            raise ValueError(f"pool {path}: model {model['id']!r} names unknown mixture {model['mixture']!r}")
        for key in ("d_model", "n_layers", "n_heads"):
            if not isinstance(model.get(key), int) or model[key] <= 0:
                raise ValueError(f"pool {path}: model {model['id']!r} needs a positive integer {key!r}")
        if model["d_model"] % model["n_heads"]:
            raise ValueError(f"pool {path}: model {model['id']!r}: d_model not divisible by n_heads")
    raw["path"] = str(path)
    return raw


def base_family(model: dict) -> str:
    """The family whose architecture, tokenizer and training settings a pool entry uses."""
    return str(model.get("base_family") or model.get("family"))


def model_name(model: dict) -> str:
    """Folder name of a pool entry (last part of its id)."""
    return Path(str(model["id"])).name


def resolve_path(path: str | Path) -> Path:
    """Relative paths resolve against the repository root."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path


# ----------------------------------------------------------------------------- tokenizers
def train_tokenizer(spec: dict, texts: list[str]):
    """Train a lossless tokenizer of kind ``spec['kind']`` on ``texts``; return a PreTrainedTokenizerFast.

    byte_bpe: byte-level BPE (GPT-2 regex, or digits split one by one when ``pretokenizer: digits``);
    bytes: the 256 raw bytes, no merges; unigram_bytes: a unigram LM over byte-level symbols;
    sp_bpe: SentencePiece-style BPE (Metaspace) with byte fallback for unseen characters.
    Specials: ``spec['specials']`` (first = BOS if ``bos`` is set, else EOS-only).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    kind = spec["kind"]
    bos, eos, unk = spec.get("bos"), spec.get("eos"), spec.get("unk")
    specials = [t for t in dict.fromkeys([bos, eos, unk, *(spec.get("extra_specials") or [])]) if t]
    vocab_size = int(spec.get("vocab_size", 0))
    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    if kind in ("byte_bpe", "bytes"):
        if kind == "bytes":
            vocab = {tok: i for i, tok in enumerate(specials)}
            for symbol in sorted(byte_alphabet):
                vocab[symbol] = len(vocab)
            tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
            tokenizer.add_special_tokens(specials)
        else:
            tokenizer = Tokenizer(models.BPE())
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=kind == "byte_bpe")
        if spec.get("pretokenizer") == "digits":
            tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        else:
            tokenizer.pre_tokenizer = byte_level
        tokenizer.decoder = decoders.ByteLevel()
        if kind == "byte_bpe":
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                          initial_alphabet=byte_alphabet, show_progress=False)
            tokenizer.train_from_iterator(texts, trainer=trainer)
    elif kind == "unigram_bytes":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=unk,
                                          initial_alphabet=byte_alphabet, show_progress=False, max_piece_length=12)
        tokenizer.train_from_iterator(texts, trainer=trainer)
    elif kind == "sp_bpe":
        tokenizer = _train_sp_bpe(texts, vocab_size, specials, unk)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, unk_token=unk,
                                      model_max_length=int(spec.get("model_max_length", 1_000_000)))
    return wrapped


def _train_sp_bpe(texts: list[str], vocab_size: int, specials: list[str], unk: str | None):
    """SentencePiece-style BPE: Metaspace words, a limited character alphabet, <0xNN> byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    probe = Tokenizer(models.BPE(unk_token=unk))
    probe.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=max(vocab_size - 256, len(specials) + 64), special_tokens=specials,
                                  limit_alphabet=160, show_progress=False)
    probe.train_from_iterator(texts, trainer=trainer)
    state = json.loads(probe.to_str())
    vocab: dict[str, int] = dict(state["model"]["vocab"])
    for token in byte_tokens:
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["model"]["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True))
    tokenizer.add_special_tokens(specials)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    return tokenizer


def stored_or_trained_tokenizer(spec: dict, texts: list[str], store: str | Path | None, family: str):
    """The family's tokenizer from ``store/<family>/`` when stored there for this spec, else trained (and stored).

    Training a unigram tokenizer is not bit-for-bit repeatable (the ``tokenizers`` trainer's EM runs in
    parallel), so the pool commits its trained tokenizers and a rebuild reuses them: same tokens, same weights.
    """
    from transformers import PreTrainedTokenizerFast

    if store is None:
        return train_tokenizer(spec, texts)
    folder = resolve_path(store) / family
    spec_path = folder / "spec.json"
    if spec_path.is_file() and json.loads(spec_path.read_text()) == spec:
        print(f"[{family}] using the stored tokenizer {folder}", flush=True)
        return PreTrainedTokenizerFast.from_pretrained(folder)
    tokenizer = train_tokenizer(spec, texts)
    tmp = folder.with_name(folder.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def encode_stream(tokenizer, texts: list[str]) -> np.ndarray:
    """Concatenate ``[prefix] + tokens`` of every text into one int32 token stream."""
    prefix = prefix_token(tokenizer)[0]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    parts = []
    for ids in encoded:
        parts.append(np.asarray([prefix, *ids], dtype=np.int32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


# ----------------------------------------------------------------------------- models
def model_config(architecture: str, vocab_size: int, d_model: int, n_layers: int, n_heads: int,
                 context: int, bos_id: int | None, eos_id: int | None, tie_embeddings: bool | None = None):
    """A transformers config of the given architecture and dimensions (no dropout).

    ``tie_embeddings`` overrides the architecture's own choice (None keeps it).
    """
    config = _architecture_config(architecture, vocab_size, d_model, n_layers, n_heads, context, bos_id, eos_id)
    if tie_embeddings is not None:
        config.tie_word_embeddings = bool(tie_embeddings)
    return config


def _architecture_config(architecture: str, vocab_size: int, d_model: int, n_layers: int, n_heads: int,
                         context: int, bos_id: int | None, eos_id: int | None):
    import transformers as tf

    common = {"vocab_size": vocab_size, "bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": eos_id}
    swiglu_ffn = max(8, int(round(8 * d_model / 3 / 8)) * 8)  # Llama's 8/3 d, rounded to 8
    if architecture == "gpt2":
        return tf.GPT2Config(n_positions=context, n_embd=d_model, n_layer=n_layers, n_head=n_heads,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True, **common)
    if architecture in ("llama", "mistral"):
        cls = tf.LlamaConfig if architecture == "llama" else tf.MistralConfig
        extra = {"sliding_window": context} if architecture == "mistral" else {}
        return cls(hidden_size=d_model, intermediate_size=swiglu_ffn, num_hidden_layers=n_layers,
                   num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=context,
                   tie_word_embeddings=False, **extra, **common)
    if architecture == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=d_model, intermediate_size=4 * d_model, num_hidden_layers=n_layers,
                                num_attention_heads=n_heads, max_position_embeddings=context, rotary_pct=0.25,
                                use_parallel_residual=True, hidden_dropout=0.0, attention_dropout=0.0,
                                tie_word_embeddings=False, **common)
    if architecture == "qwen2":
        kv_heads = n_heads // 2 if n_heads % 2 == 0 else n_heads  # grouped-query attention where it divides
        return tf.Qwen2Config(hidden_size=d_model, intermediate_size=swiglu_ffn, num_hidden_layers=n_layers,
                              num_attention_heads=n_heads, num_key_value_heads=kv_heads,
                              max_position_embeddings=context, tie_word_embeddings=True, **common)
    if architecture == "gemma":
        # Gemma-style: multi-query attention, GeGLU MLP, (1 + w) RMSNorm, embeddings scaled by sqrt(d), tied
        return tf.GemmaConfig(hidden_size=d_model, intermediate_size=swiglu_ffn, num_hidden_layers=n_layers,
                              num_attention_heads=n_heads, num_key_value_heads=1, head_dim=d_model // n_heads,
                              max_position_embeddings=context, hidden_activation="gelu_pytorch_tanh",
                              tie_word_embeddings=True, **common)
    if architecture == "opt":
        return tf.OPTConfig(hidden_size=d_model, ffn_dim=4 * d_model, num_hidden_layers=n_layers,
                            num_attention_heads=n_heads, max_position_embeddings=context, word_embed_proj_dim=d_model,
                            do_layer_norm_before=True, dropout=0.0, attention_dropout=0.0, activation_function="relu",
                            tie_word_embeddings=True, **common)
    if architecture == "phi":
        return tf.PhiConfig(hidden_size=d_model, intermediate_size=4 * d_model, num_hidden_layers=n_layers,
                            num_attention_heads=n_heads, max_position_embeddings=context, partial_rotary_factor=0.5,
                            resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, tie_word_embeddings=False, **common)
    raise ValueError(f"unknown architecture {architecture!r}; known: {ARCHITECTURES}")


def build_model(config, seed: int):
    """Seeded random-init causal LM for ``config`` (fp32)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    return model.float()


def model_seed(base_seed: int, name: str) -> int:
    """Deterministic per-model seed from the pool seed and the model name."""
    import hashlib

    return (base_seed * 1_000_003 + int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)) % (2**31 - 1)


# ----------------------------------------------------------------------------- family data
def family_dir(models_root: Path, family: str) -> Path:
    """Folder of a family's shared artefacts (tokenizer, token stream, data manifest)."""
    return models_root / "_family" / family


def _atomic_save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_output(path) as handle:
        np.save(handle, array)


def stream_folder_name(pool: dict, family: str, mixture: str | None) -> str:
    """Folder of a family's token stream: the family name for its own mixture, else ``family--mixture``."""
    own = pool["families"][family].get("mixture")
    return family if mixture is None or mixture == own else f"{family}--{mixture}"


def tokenizer_sample(texts: list[str], max_bytes: int | None) -> list[str]:
    """The first texts (in the given, seeded order) up to ``max_bytes`` UTF-8 bytes; all when None."""
    if not max_bytes:
        return texts
    sample, total = [], 0
    for text in texts:
        if total >= max_bytes:
            break
        sample.append(text)
        total += len(text.encode("utf-8"))
    return sample


def prepare_family(pool: dict, family: str, models_root: Path, eval_dataset: str | Path,
                   mixture: str | None = None, tokenizer=None) -> tuple[Any, np.ndarray, dict]:
    """Build (or reuse) a family's decontaminated mixture, tokenizer and token stream.

    ``mixture`` names another of the pool's mixtures (a control arm): its documents are encoded with
    ``tokenizer``, the family's own (trained on the family's own mixture).
    """
    from transformers import PreTrainedTokenizerFast

    from mmlaw_utils.minipool import corpora
    from mmlaw_utils.texts import load_texts

    spec = pool["families"][family]
    own_stream = stream_folder_name(pool, family, mixture) == family
    data_mix = spec["data_mix"] if own_stream else pool["mixtures"][mixture]
    if not own_stream and tokenizer is None:
        raise ValueError(f"family {family}: the {mixture!r} stream needs the family's own tokenizer")
    folder = family_dir(models_root, stream_folder_name(pool, family, mixture))
    eval_texts = load_texts(str(eval_dataset))
    # the stream is keyed by its recipe and the decontaminated documents' hash, not by the held-out set:
    # a held-out set that changes without touching the training documents keeps the stream (and models)
    key = {"data_mix": data_mix, "tokenizer": spec["tokenizer"], "seed": spec["training"]["seed"],
           "source_registry": pool.get("source_registry")}
    print(f"[{folder.name}] mixture {corpora.mix_name(data_mix)}: loading and decontaminating", flush=True)
    docs, data_manifest = corpora.build_mixture(data_mix, eval_texts, seed=f"mmlaw-minipool:{spec['training']['seed']}",
                                                registry=pool.get("source_registry"))
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file() and (folder / "tokens.npy").is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and manifest["data"]["sha256"] == data_manifest["sha256"]:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer")
            return tokenizer, np.load(folder / "tokens.npy", mmap_mode="r"), manifest
    texts = [text for _, text in docs]
    # a seeded document order: sources interleave instead of coming in blocks
    order = np.random.default_rng(spec["training"]["seed"]).permutation(len(texts))
    texts = [texts[i] for i in order]
    if own_stream:
        sample = tokenizer_sample(texts, spec["tokenizer"].get("train_bytes"))
        stored_spec = dict(spec["tokenizer"])
        if "mixtures" in pool:  # a stored tokenizer is reused only for the data it was trained on
            stored_spec["trained_on_sha256"] = data_manifest["sha256"]
        tokenizer = stored_or_trained_tokenizer(stored_spec, sample, pool.get("tokenizer_dir"), family)
    tokens = encode_stream(tokenizer, texts)
    folder.mkdir(parents=True, exist_ok=True)
    tmp_tok = folder / f"tokenizer.{os.getpid()}.tmp"
    shutil.rmtree(tmp_tok, ignore_errors=True)
    tokenizer.save_pretrained(tmp_tok)
    shutil.rmtree(folder / "tokenizer", ignore_errors=True)
    os.replace(tmp_tok, folder / "tokenizer")
    _atomic_save_npy(tokens, folder / "tokens.npy")
    manifest = {"key": key, "data": data_manifest, "n_tokens": int(tokens.size), "vocab_size": len(tokenizer),
                "bytes_per_token": data_manifest["bytes"] / max(1, tokens.size - len(texts))}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    print(f"[{folder.name}] {len(texts)} docs, {data_manifest['bytes']} bytes, {tokens.size} tokens, "
          f"vocab {len(tokenizer)}", flush=True)
    return tokenizer, np.load(folder / "tokens.npy", mmap_mode="r"), manifest


@contextlib.contextmanager
def exclusive(path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``path`` (released when the process dies); yields whether it is held.

    ``wait=False`` yields False at once when another process holds it.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def family_stream(pool: dict, entry: dict, models_root: Path, eval_dataset: str | Path,
                  cache: dict) -> tuple[Any, np.ndarray, dict]:
    """(tokenizer, token stream, manifest) a pool entry trains on, built once per (family, mixture).

    Concurrent build workers take turns (a lock per stream), so a tokenizer is trained once.
    """
    family = base_family(entry)
    mixture = entry.get("mixture")
    for key, name, tok in ((family, None, None), (stream_folder_name(pool, family, mixture), mixture, True)):
        if key not in cache:
            with exclusive(family_dir(models_root, key).with_suffix(".lock")):
                cache[key] = prepare_family(pool, family, models_root, eval_dataset, name,
                                            tokenizer=cache[family][0] if tok else None)
    return cache[stream_folder_name(pool, family, mixture)]


# ----------------------------------------------------------------------------- training
def lr_at(step: int, total_steps: int, settings: dict) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to ``min_lr_frac`` of the peak."""
    peak = float(settings["lr"])
    warmup = max(1, int(settings["warmup_frac"] * total_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = settings["min_lr_frac"] * peak
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def batch_at(tokens: np.ndarray, n_train: int, step: int, seed: int, batch_size: int, context: int) -> np.ndarray:
    """Training batch of ``step`` (batch_size × (context+1) token windows), a pure function of the seed.

    Stateless sampling makes resumption exact: a resumed run sees the batches it would have seen.
    """
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, n_train - context - 1, size=batch_size)
    return np.stack([tokens[s:s + context + 1] for s in starts]).astype(np.int64)


def validation_batches(tokens: np.ndarray, n_train: int, batch_size: int, context: int, n_batches: int) -> list[np.ndarray]:
    """Fixed, non-overlapping windows from the held-back tail of the stream."""
    width = context + 1
    starts = np.arange(n_train, tokens.size - width, width)[: batch_size * n_batches]
    windows = np.stack([tokens[s:s + width] for s in starts]).astype(np.int64)
    return [windows[i:i + batch_size] for i in range(0, len(windows), batch_size)]


def _loss(model, batch: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=batch[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch[:, 1:].reshape(-1))


@torch.no_grad()
def validation_loss(model, batches: list[np.ndarray], device: str) -> float:
    """Mean next-token loss (nats per token) over the validation windows."""
    model.eval()
    losses = [float(_loss(model, torch.from_numpy(b).to(device))) for b in batches]
    model.train()
    return float(np.mean(losses)) if losses else float("nan")


def train_model(pool: dict, entry: dict, models_root: Path, log_dir: Path, eval_dataset: str | Path,
                device: str = "auto", family_cache: dict | None = None, stop_after_steps: int | None = None) -> dict | None:
    """Train one pool model to completion (resuming a checkpoint); return its run summary.

    ``stop_after_steps`` checkpoints and returns None once that many steps ran in this call
    (what a killed build leaves behind; used by the resumption test).
    """
    name = model_name(entry)
    out_dir = resolve_path(entry["id"])
    summary_path = log_dir / f"{name}.json"
    if (out_dir / "config.json").is_file() and summary_path.is_file():
        print(f"[{name}] done already; skipping", flush=True)
        return json.loads(summary_path.read_text())
    family = base_family(entry)
    spec = pool["families"][family]
    settings = {**spec["training"], **(entry.get("training") or {})}
    if entry.get("train_tokens"):  # per-model token budget (the pool's larger sizes train a little longer)
        settings["tokens"] = int(entry["train_tokens"])
    if entry.get("train_batch_size"):  # per-model batch size (sequences per optimiser step)
        settings["batch_size"] = int(entry["train_batch_size"])
    if entry.get("train_lr"):  # per-model peak learning rate
        settings["lr"] = float(entry["train_lr"])
    device = resolve_device(device)
    if device == "cpu":
        torch.set_num_threads(int(settings["threads"]))
    family_cache = family_cache if family_cache is not None else {}
    tokenizer, tokens, family_manifest = family_stream(pool, entry, models_root, eval_dataset, family_cache)
    context, batch_size = int(settings["context"]), int(settings["batch_size"])
    total_steps = max(1, int(settings["tokens"]) // (batch_size * context))
    n_train = int(tokens.size * (1 - settings["val_frac"]))
    seed = model_seed(int(settings["seed"]), name)
    config = model_config(spec["architecture"], len(tokenizer), entry["d_model"], entry["n_layers"], entry["n_heads"],
                          context, tokenizer.bos_token_id, tokenizer.eos_token_id, spec.get("tie_embeddings"))
    model = build_model(config, seed).to(device)
    params = count_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], betas=(0.9, 0.95),
                                  weight_decay=settings["weight_decay"])
    ckpt_dir = out_dir.with_name(out_dir.name + ".ckpt")
    ckpt_path = ckpt_dir / "state.pt"
    log_path = log_dir / f"{name}.csv"
    step, rows, elapsed_before = 0, [], 0.0
    recipe = {k: settings[k] for k in ("seed", "context", "batch_size", "tokens", "lr", "min_lr_frac", "warmup_frac",
                                       "weight_decay", "grad_clip", "val_frac")}
    state = torch.load(ckpt_path, map_location=device, weights_only=True) if ckpt_path.is_file() else None
    if state is not None and state.get("recipe") != recipe:
        print(f"[{name}] checkpoint was made with another recipe ({state.get('recipe')}); starting afresh", flush=True)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, rows, elapsed_before = state["step"], state["log"], state["elapsed_s"]
        print(f"[{name}] resuming at step {step}/{total_steps}", flush=True)
    val_batches = validation_batches(tokens, n_train, batch_size, context, int(settings["val_batches"]))
    model.train()
    start = time.time()
    running: list[float] = []
    steps_this_call = 0

    def save_checkpoint() -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_dir / f"state.{os.getpid()}.tmp"
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "log": rows,
                    "elapsed_s": elapsed_before + time.time() - start, "recipe": recipe}, tmp)
        os.replace(tmp, ckpt_path)

    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=step, desc=name, unit="step", mininterval=5, file=sys.stderr)
    while step < total_steps:
        lr = lr_at(step, total_steps, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.from_numpy(batch_at(tokens, n_train, step, seed, batch_size, context)).to(device)
        loss = _loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        optimizer.step()
        running.append(float(loss.detach()))
        step += 1
        steps_this_call += 1
        bar.update(1)
        if step % int(settings["log_every"]) == 0 or step == total_steps:
            rows.append({"step": step, "tokens": step * batch_size * context, "train_loss": float(np.mean(running)),
                         "lr": lr, "elapsed_s": round(elapsed_before + time.time() - start, 2)})
            running = []
        if step % int(settings["checkpoint_every"]) == 0 and step < total_steps:
            save_checkpoint()
        if stop_after_steps is not None and steps_this_call >= stop_after_steps and step < total_steps:
            if step % int(settings["checkpoint_every"]):
                save_checkpoint()
            bar.close()
            return None
    bar.close()
    val = validation_loss(model, val_batches, device)
    train_seconds = elapsed_before + time.time() - start
    rows.append({"step": step, "tokens": step * batch_size * context, "train_loss": float("nan"),
                 "lr": float("nan"), "elapsed_s": round(train_seconds, 2), "val_loss": val})
    # weights + tokenizer to a temporary folder, then one rename: an existing folder is complete
    tmp_dir = out_dir.with_name(out_dir.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    model.to("cpu").save_pretrained(tmp_dir)
    tokenizer.save_pretrained(tmp_dir)
    check_saved_tokenizer(tmp_dir, tokenizer, tokens, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_dir, out_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(log_path, pd.DataFrame(rows).to_csv(index=False, float_format="%.6g"))
    from mmlaw_utils.minipool import corpora

    summary = {
        "model": str(entry["id"]), "name": name, "family": entry["family"], "arm": entry.get("arm", "main"),
        "replicates": entry.get("replicates") or "",
        "base_family": family, "mixture": entry.get("mixture") or spec.get("mixture"),
        "size_index": entry.get("size_index"), "architecture": spec["architecture"],
        "tokenizer": tokenizer_label(spec["tokenizer"]), "vocab_size": len(tokenizer),
        "data_mix": family_manifest["data"]["mix"], "data_sha256": family_manifest["data"]["sha256"],
        "d_model": entry["d_model"], "n_layers": entry["n_layers"], "n_heads": entry["n_heads"],
        "context": context, "params": params["params_total"], "params_nonembed": params["params_nonembed"],
        "tokens_trained": step * batch_size * context, "steps": step, "batch_size": batch_size, "lr": settings["lr"],
        "seed": seed, "device": device, "torch_threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 1), "final_train_loss": next(
            (r["train_loss"] for r in reversed(rows) if not math.isnan(r["train_loss"])), float("nan")),
        "val_loss": val,
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=1))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    print(f"[{name}] P={params['params_total']:,} val_loss={val:.4f} nats/token in {train_seconds:.0f}s", flush=True)
    return summary


def check_saved_tokenizer(folder: Path, tokenizer, tokens: np.ndarray, name: str) -> None:
    """Fail if AutoTokenizer, loading the model folder, tokenizes differently from the trained tokenizer.

    transformers picks a model-specific tokenizer class for some model types (e.g. Qwen2Tokenizer for
    qwen2) that rebuilds a byte-level BPE and ignores a custom tokenizer.json; scoring would then use
    the wrong tokens.
    """
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    sample = tokenizer.decode([int(t) for t in tokens[:4000]], skip_special_tokens=True)
    probe = [sample, "Zürich café — naïve 1987 £3,000\n\tend"]
    if loaded(probe, add_special_tokens=False)["input_ids"] != tokenizer(probe, add_special_tokens=False)["input_ids"]:
        raise RuntimeError(f"model {name}: AutoTokenizer loads {type(loaded).__name__} from {folder}, which tokenizes "
                           "differently from the trained tokenizer; use an architecture whose tokenizer class "
                           "honours tokenizer.json")
    if prefix_token(loaded)[0] != prefix_token(tokenizer)[0]:
        raise RuntimeError(f"model {name}: the reloaded tokenizer has another BOS/EOS prefix token")


def tokenizer_label(spec: dict) -> str:
    """Short label of a tokenizer spec, e.g. ``byte_bpe-2048``."""
    label = spec["kind"] + (f"-{spec['vocab_size']}" if spec.get("vocab_size") else "")
    return label + ("-digits" if spec.get("pretokenizer") == "digits" else "")


def write_models_table(log_dir: Path, out_path: Path, models: set[str] | None = None) -> pd.DataFrame:
    """Collect the run summaries in ``log_dir`` into the models table (csv, atomic), of ``models`` (ids) when given.

    A pool that lists fewer models than its logs hold (a larger recipe built ahead) keeps its table to its own models.
    """
    rows = [json.loads(p.read_text()) for p in sorted(log_dir.glob("*.json"))]
    if models is not None:
        rows = [row for row in rows if row.get("model") in models]
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["family", "params"]).reset_index(drop=True)
    atomic_write_text(out_path, table.to_csv(index=False))
    return table


def export_data_manifests(models_root: Path, families: list[str], out_dir: Path) -> None:
    """Copy each family's data manifest (sources, bytes, dropped contaminated docs, sha256) to ``out_dir``."""
    for family in families:
        source = family_dir(models_root, family) / "manifest.json"
        if source.is_file():
            atomic_write_text(out_dir / f"{family}.json", source.read_text())


def score_request(entry: dict, profile) -> Any:
    """The scoring request of one pool entry under ``profile``'s settings (what the scoring CLI would run)."""
    from mmlaw_utils.scoring import run

    settings = profile.scoring
    return run.request_from_settings(
        None, str(entry["id"]), dataset=profile.dataset, n_texts=profile.n_texts, cache_dir=profile.cache_dir,
        max_length=settings.get("max_length"), context_tokens=settings.get("context_tokens"),
        batch_tokens=settings.get("batch_tokens"), device=settings.get("device"), dtype=settings.get("dtype"),
        chunk_texts=settings.get("chunk_texts"))


def score_entry(entry: dict, profile) -> Path:
    """Score one trained pool model into ``profile``'s cache (reused when complete); return the cache path."""
    from mmlaw_utils.scoring import batched

    start = time.time()
    outcome = batched.score_one(score_request(entry, profile), progress=True)
    print(f"[{model_name(entry)}] scored {len(outcome.results)} texts -> {outcome.path.name} "
          f"({'computed' if outcome.computed else 'cached'}, {time.time() - start:.0f}s)", flush=True)
    return outcome.path


def profile_fingerprint(profile) -> str:
    """Fingerprint of the profile's held-out text set (names its score caches)."""
    from mmlaw_utils.texts import dataset_fingerprint, load_texts

    texts = load_texts(profile.dataset)
    return dataset_fingerprint(texts["text_id"], texts["text"])


def scoring_elsewhere(entry: dict, profile, fingerprint: str) -> bool:
    """Whether another process holds the scoring lock of this entry's cache right now."""
    from mmlaw_utils.scoring import cache

    path = cache.lock_path(cache.cache_path(profile.cache_dir, str(entry["id"]), fingerprint))
    if not path.exists():
        return False
    with exclusive(path, wait=False) as free:
        return not free


def record_scoring_time(summary_path: Path, seconds: float) -> None:
    """Add the scoring wall time (seconds) to a model's run summary, once (a rerun that reuses the cache keeps it)."""
    summary = json.loads(summary_path.read_text())
    if "score_seconds" not in summary:
        summary["score_seconds"] = round(seconds, 1)
        atomic_write_text(summary_path, json.dumps(summary, indent=1))


def check_known_models(names: list[str], entries: list[dict], pool_path: str | Path) -> None:
    """Fail, naming them, when some of ``names`` (model names or ids) are not models of the pool."""
    unknown = set(names) - {model_name(e) for e in entries} - {str(e["id"]) for e in entries}
    if unknown:
        raise ValueError(f"models {sorted(unknown)} are not in pool {pool_path}")


def score_pool(pool_path: str | Path, profile_name: str, only: list[str] | None = None, wait: bool = False,
               threads: int | None = None, workers: int | None = None) -> list[Path]:
    """Score the pool's trained models into the profile's cache dir, in one process (imports paid once).

    Uses the batched path for small models (``scoring.batched``: token ids cached per tokenizer, every
    window in one pass) with the profile's settings; the caches answer the same requests as
    ``python -m mmlaw_utils score --profile NAME --model ID``. ``workers`` > 1 spreads the models over that
    many processes (one torch thread each; None: ``batched.default_workers``). ``wait`` polls for models that a
    concurrent build has not finished yet (scored one by one as they appear).
    """
    from mmlaw_utils.config import load_profile
    from mmlaw_utils.scoring import batched

    pool = load_pool_config(pool_path)
    profile = load_profile(profile_name)
    if threads:
        torch.set_num_threads(threads)
    log_dir = resolve_path(pool.get("log_dir", "data/minipool/train_logs"))
    if only:
        check_known_models(only, pool["models"], pool_path)
    entries = [e for e in pool["models"] if not only or model_name(e) in only or str(e["id"]) in only]
    if not wait:
        start = time.time()
        outcomes = batched.score_models([score_request(e, profile) for e in entries], workers=workers)
        print(f"scored or found cached {len(outcomes)} model(s) in {time.time() - start:.0f}s", flush=True)
        return [outcome.path for outcome in outcomes]
    paths = []
    for entry in entries:
        name = model_name(entry)
        while not ((resolve_path(entry["id"]) / "config.json").is_file() and (log_dir / f"{name}.json").is_file()):
            time.sleep(15)
        paths.append(score_entry(entry, profile))
    return paths


def build_pool(pool_path: str | Path, only: list[str] | None = None, device: str = "auto",
               log_dir: str | Path | None = None, eval_dataset: str | Path | None = None,
               threads: int | None = None, score_profile: str | None = None) -> pd.DataFrame:
    """Train every model of the pool (or those named in ``only``) in pool order; return the models table.

    With ``score_profile``, each model is scored into that profile's caches as soon as it is trained,
    and the models table and data manifests are rewritten after every model (a build stopped at any
    point leaves consistent records of what finished).
    """
    from mmlaw_utils.config import load_profile

    pool = load_pool_config(pool_path)
    if threads:
        for spec in pool["families"].values():
            spec["training"]["threads"] = threads
    log_dir = resolve_path(log_dir or pool.get("log_dir", "data/minipool/train_logs"))
    eval_dataset = resolve_path(eval_dataset or pool.get("eval_dataset", "data/texts/wiki_heldout.jsonl"))
    profile = load_profile(score_profile) if score_profile else None
    fingerprint = profile_fingerprint(profile) if profile is not None else None
    if profile is not None and Path(profile.dataset).resolve() != Path(eval_dataset).resolve():
        raise ValueError(f"profile {score_profile} scores on {profile.dataset}, but pool {pool_path} "
                         f"decontaminates against {eval_dataset}")
    entries = pool["models"]
    pool_ids = {str(e["id"]) for e in entries}
    if only:
        check_known_models(only, entries, pool_path)
        entries = [e for e in entries if model_name(e) in only or str(e["id"]) in only]
    models_root = resolve_path(entries[0]["id"]).parent if entries else resolve_path("models/minipool")
    streams = sorted({stream_folder_name(pool, base_family(e), e.get("mixture")) for e in entries})
    cache: dict = {}
    start = time.time()
    table = pd.DataFrame()
    elsewhere: list[str] = []
    for entry in entries:
        # a model another build worker is training is left to it
        with exclusive(resolve_path(entry["id"]).with_name(model_name(entry) + ".train.lock"), wait=False) as held:
            if not held:
                print(f"[{model_name(entry)}] another worker is training it; next model", flush=True)
                elsewhere.append(model_name(entry))
                continue
            summary = train_model(pool, entry, models_root, log_dir, eval_dataset, device=device, family_cache=cache)
        if profile is not None and summary is not None:
            if scoring_elsewhere(entry, profile, fingerprint):
                print(f"[{model_name(entry)}] another worker is scoring it; next model", flush=True)
                elsewhere.append(model_name(entry))
                continue
            start_scoring = time.time()
            score_entry(entry, profile)
            record_scoring_time(log_dir / f"{model_name(entry)}.json", time.time() - start_scoring)
            table = write_models_table(log_dir, log_dir.parent / "models_table.csv", pool_ids)
            export_data_manifests(models_root, streams, log_dir.parent / "train_data")
    table = write_models_table(log_dir, log_dir.parent / "models_table.csv", pool_ids)
    export_data_manifests(models_root, streams, log_dir.parent / "train_data")
    ready = f"pool {pool['name']}: {len(entries) - len(elsewhere)} model(s) ready in {time.time() - start:.0f}s"
    if elsewhere:
        ready += f"; {len(elsewhere)} left to other workers: {', '.join(elsewhere)}"
    print(ready, flush=True)
    return table
