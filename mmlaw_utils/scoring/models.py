"""Causal LMs for scoring and training: loading, dtype and device, the scoring prefix token,
context length and parameter counts (the paper's P), and a content hash of local model files.

The prefix rule (BOS if the tokenizer has one, else EOS) is shared by the scorer
(``scoring.kernel``) and the miniature pool's training (``minipool.train``).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmlaw_utils.io import update_with_file

if TYPE_CHECKING:
    import torch

# torch is imported where it is used, so that checking a cache's settings needs no torch (the base install)
_DTYPES = {
    "float32": "float32", "fp32": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}

def prefix_token(tokenizer) -> tuple[int, str]:
    """(token id, policy string) of the scoring prefix: BOS if the tokenizer has one, else EOS."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id), f"bos:{tokenizer.bos_token}={tokenizer.bos_token_id}"
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id), f"eos:{tokenizer.eos_token}={tokenizer.eos_token_id}"
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    raise ValueError(f"tokenizer {name!r} has neither a BOS nor an EOS token to use as the scoring prefix")


def model_max_length(model) -> int:
    """Context length of ``model`` in tokens, from its config."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(f"cannot find the context length of model {model_name(model)!r}; pass max_length")


def model_name(model) -> str:
    """Id or path the model was loaded from (for messages and provenance)."""
    return str(getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "") or type(model).__name__)


def input_device(model) -> torch.device:
    """Device of the model's input embeddings (where input ids must go)."""
    return model.get_input_embeddings().weight.device


# ----------------------------------------------------------------------------- parameters
# a GGUF stores a tied head as its own tensor, often at another quantisation than the embedding, so
# "the same matrix" means equal up to quantisation error; independent matrices differ by ~sqrt(2)
HEAD_TIE_RTOL = 0.25


def relative_difference(a: torch.Tensor, b: torch.Tensor, rows_per_block: int = 8192) -> float:
    """||a - b||_F / ||b||_F of two same-shape matrices, in float64 over row blocks (bounded memory)."""
    if a.shape != b.shape:
        raise ValueError(f"relative_difference needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff_sq = ref_sq = 0.0
    import torch

    with torch.no_grad():
        for start in range(0, a.shape[0], rows_per_block):
            x = a[start:start + rows_per_block].detach().to("cpu", torch.float64)
            y = b[start:start + rows_per_block].detach().to("cpu", torch.float64)
            diff_sq += float((x - y).square().sum())
            ref_sq += float(y.square().sum())
    return math.sqrt(diff_sq / ref_sq) if ref_sq > 0 else (0.0 if diff_sq == 0 else math.inf)


def head_is_tied(model, rtol: float = HEAD_TIE_RTOL) -> bool:
    """Whether the output head is the input embedding: the same tensor, or a copy equal up to ``rtol`` (GGUF untying)."""
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or embedding is None or getattr(head, "bias", None) is not None:
        return False
    if head.weight is embedding.weight:
        return True
    if head.weight.shape != embedding.weight.shape or head.weight.is_meta or embedding.weight.is_meta:
        return False  # a model without data (meta device) shares its head only by sharing the tensor
    return relative_difference(head.weight, embedding.weight) <= rtol


def count_parameters(model) -> dict[str, Any]:
    """Parameter counts: ``params_total`` (embeddings included, a tied head once; the paper's P),
    ``params_nonembed`` (minus token/position embedding tables and the output head), ``head_tied``
    (the head is the input embedding, shared or stored as a copy), ``params_stored`` (tensors as loaded)."""
    import torch

    unique = {id(p): p for p in model.parameters()}
    stored = sum(p.numel() for p in unique.values())
    embedding_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            embedding_ids.update(id(p) for p in module.parameters(recurse=False))
    head = model.get_output_embeddings()
    if head is not None:
        embedding_ids.update(id(p) for p in head.parameters(recurse=False))
    embedding = sum(unique[i].numel() for i in embedding_ids if i in unique)
    tied = head_is_tied(model)
    # a head stored as a copy of the embedding is one matrix of the model, counted once
    duplicate = head.weight.numel() if tied and head.weight is not model.get_input_embeddings().weight else 0
    return {
        "params_total": int(stored - duplicate),
        "params_nonembed": int(stored - embedding),
        "head_tied": bool(tied),
        "params_stored": int(stored),
    }


# ----------------------------------------------------------------------------- loading
def default_context_tokens(max_length: int) -> int:
    """Default minimum context (tokens) of a newly scored token in windows after the first."""
    return max(1, max_length // 2)


def dtype_name(dtype: str) -> str:
    """Canonical torch dtype name ("float32", "bfloat16", "float16") of a config string other than "auto"."""
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[key]


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    """torch dtype for a config string; "auto" = bf16 (fp16 if unsupported) on CUDA, fp32 on CPU."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype).lower().removeprefix("torch.") == "auto":
        if str(device).startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype_name(dtype))


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; other values are checked and returned."""
    import torch

    device = str(device).lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is visible")
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def looks_like_local_path(model_id: str) -> bool:
    """Whether ``model_id`` names a local folder/file rather than a hub id ("org/name")."""
    text = str(model_id)
    return text.startswith(("/", "./", "../", "~")) or text.count("/") > 1 or Path(text).exists() or text.endswith(".gguf")


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout_s`` seconds (False when offline mode is set)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return True  # behind a proxy a direct connection says nothing; the hub client's own errors apply
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def load_model_and_tokenizer(
    model_id: str | os.PathLike,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    gguf_file: str | None = None,
):
    """Load a causal LM (eval mode) and its tokenizer from a hub id or local folder / .gguf file.

    CUDA: weights in ``dtype`` (bf16 by default), SDPA attention, ``device_map="auto"``
    (sharded over GPUs when larger than one). CPU: fp32 unless a dtype is given.
    Any loading failure is raised as ``RuntimeError`` naming the model; a hub id is loaded from
    the local hub cache only when the hub is unreachable (failing in seconds, not after retries).
    """
    try:
        return _load_model_and_tokenizer(model_id, revision, device, dtype, gguf_file)
    except (FileNotFoundError, ValueError) as error:  # our own checks (path, device, dtype)
        if type(error) in (FileNotFoundError, ValueError) and str(model_id) not in str(error):
            raise type(error)(f"model {str(model_id)!r}: {error}") from error
        raise
    except Exception as error:  # safetensors, tokenizers and the hub client raise many types
        raise RuntimeError(f"model {str(model_id)!r} could not be loaded: {type(error).__name__}: {error}") from error


def _load_model_and_tokenizer(model_id, revision, device, dtype, gguf_file):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_id = str(model_id)
    if looks_like_local_path(model_id):
        path = Path(model_id).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"model path {model_id!r} does not exist")
        if path.is_file() and path.suffix == ".gguf":
            model_id, gguf_file = str(path.parent), path.name
        else:
            model_id = str(path)
    resolved_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, resolved_device)
    # never run code shipped with a model (and never ask "[y/N]" in a terminal)
    extra: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    if gguf_file:
        extra["gguf_file"] = gguf_file
    if not looks_like_local_path(model_id) and not Path(model_id).exists() and not hub_reachable():
        try:
            AutoTokenizer.from_pretrained(model_id, local_files_only=True, **extra)
        except OSError:
            raise OSError(
                f"the Hugging Face hub is unreachable and model {model_id!r} is not in the local hub cache; "
                "download it where the hub is reachable (or set HF_HOME to a cache that holds it)"
            ) from None
        extra["local_files_only"] = True
    tokenizer = AutoTokenizer.from_pretrained(model_id, **extra)
    placement: dict[str, Any] = {}
    if resolved_device == "cuda":
        placement["device_map"] = "auto"
    elif resolved_device.startswith("cuda") or resolved_device == "mps":
        placement["device_map"] = {"": resolved_device}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch_dtype, attn_implementation="sdpa", **placement, **extra)
    except ValueError as error:
        if "scaled_dot_product_attention" not in str(error) and "sdpa" not in str(error).lower():
            raise
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch_dtype, **placement, **extra)
    model.eval()
    model.name_or_path = model_id if not gguf_file else f"{model_id}/{gguf_file}"
    return model, tokenizer


def model_revision(model) -> str | None:
    """Hub commit sha the weights came from (None for local folders)."""
    return getattr(model.config, "_commit_hash", None)


def hash_model_files(path: str | os.PathLike) -> str:
    """SHA-256 over the names and bytes of a local model's config, tokenizer and weight files."""
    path = Path(path)
    if path.is_file():
        files = [path]
    else:
        patterns = ("*.json", "*.safetensors", "*.bin", "*.gguf", "*.model", "*.pt", "*.txt")
        files = sorted({f for pattern in patterns for f in path.glob(pattern) if f.is_file()})
    if not files:
        raise FileNotFoundError(f"model path {str(path)!r} has no config or weight files to hash")
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0")
        update_with_file(digest, file)
    return digest.hexdigest()
