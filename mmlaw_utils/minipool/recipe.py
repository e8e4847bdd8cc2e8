"""One training recipe for every size of a trainable pool: shapes, token budgets and the model list.

A pool yaml with a ``recipe`` block (see configs/pools/minipool.yaml) is expanded into its ``models``
list by ``python -m mmlaw_utils minipool recipe --pool configs/pools/minipool.yaml --write``:

* sizes: ``n_sizes`` target total parameter counts (embeddings included), geometric from
  ``top_params`` down over ``decades``; depth grows by one layer per size (``first_layers`` ..),
  width is the smallest even (below ``head_dim * 2``) or ``head_dim``-multiple width whose exact
  parameter count is closest to the target in log space;
* heads: one head below ``2 * head_dim``, else ``d_model / head_dim`` heads;
* tokens: ``tokens_per_param`` x total parameters, rounded to whole steps of
  ``batch_size`` x ``context`` tokens (the same batch for every size);
* learning rate: ``lr_ref * sqrt(d_ref / d_model)``, capped at ``lr_max`` (one rule for all sizes);
* arms: ``main`` (every family, its own mixture), ``same_data`` (every family on one shared
  mixture at the size indexes listed) and ``seed`` (families retrained with other seeds; each entry's
  ``replicates`` names the arm, main or same_data, whose model it retrains).

Models are listed cheapest first (estimated FLOPs), so a build that stops early has small models of
every family and arm.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import yaml

RECIPE_KEYS = ("top_params", "decades", "n_sizes", "first_layers", "head_dim", "tokens_per_param",
               "batch_size", "context", "lr_ref", "d_ref", "lr_max")


def target_params(top_params: float, decades: float, n_sizes: int) -> list[float]:
    """Geometric ladder of total parameter counts, smallest first, spanning ``decades`` below ``top_params``."""
    if n_sizes < 2:
        raise ValueError(f"n_sizes must be >= 2, got {n_sizes}")
    ratio = 10 ** (decades / (n_sizes - 1))
    return [top_params / ratio ** (n_sizes - 1 - i) for i in range(n_sizes)]


def n_heads_for(d_model: int, head_dim: int) -> int:
    """Attention heads of a width: one below ``2 * head_dim``, else ``d_model / head_dim``."""
    return 1 if d_model < 2 * head_dim else d_model // head_dim


def width_candidates(head_dim: int, max_width: int = 1024) -> list[int]:
    """Allowed widths: even widths from 4 below ``2 * head_dim``, then multiples of ``head_dim``."""
    small = list(range(4, 2 * head_dim, 2))
    return small + list(range(2 * head_dim, max_width + 1, head_dim))


def vocab_size_of(tokenizer_spec: dict) -> int:
    """Nominal vocabulary of a tokenizer spec (bytes: 256 + specials; else the spec's vocab_size)."""
    if tokenizer_spec["kind"] == "bytes":
        specials = {tokenizer_spec.get(k) for k in ("bos", "eos", "unk")} - {None}
        return 256 + len(specials)
    return int(tokenizer_spec["vocab_size"])


@functools.lru_cache(maxsize=None)
def exact_params(architecture: str, vocab_size: int, d_model: int, n_layers: int, n_heads: int, context: int,
                 tie_embeddings: bool | None = None) -> int:
    """Total parameters (embeddings included, tied weights once) of a shape, counted on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    from mmlaw_utils.minipool.train import model_config
    from mmlaw_utils.scoring.models import count_parameters

    config = model_config(architecture, vocab_size, d_model, n_layers, n_heads, context, 0, 1, tie_embeddings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    return count_parameters(model)["params_total"]


def solve_width(target: float, architecture: str, vocab_size: int, n_layers: int, head_dim: int,
                context: int, tie_embeddings: bool | None = None) -> tuple[int, int, int]:
    """(d_model, n_heads, params) of the allowed width whose parameter count is closest to ``target`` (log)."""
    best: tuple[float, int, int, int] | None = None
    for d_model in width_candidates(head_dim):
        heads = n_heads_for(d_model, head_dim)
        params = exact_params(architecture, vocab_size, d_model, n_layers, heads, context, tie_embeddings)
        gap = abs(math.log(params / target))
        if best is None or gap < best[0]:
            best = (gap, d_model, heads, params)
        if params > 2 * target:
            break
    assert best is not None
    return best[1], best[2], best[3]


def learning_rate(d_model: int, lr_ref: float, d_ref: int, lr_max: float) -> float:
    """Peak learning rate of a width: ``lr_ref * sqrt(d_ref / d_model)``, at most ``lr_max``."""
    return round(min(lr_max, lr_ref * math.sqrt(d_ref / d_model)), 6)


def train_tokens(params: int, tokens_per_param: float, batch_size: int, context: int) -> int:
    """Training tokens of a model: ``tokens_per_param * params`` in whole steps of batch_size x context."""
    step_tokens = batch_size * context
    return max(1, round(tokens_per_param * params / step_tokens)) * step_tokens


def flops_estimate(params: int, tokens: int, n_layers: int, d_model: int, context: int) -> float:
    """Training FLOPs: 6 N D plus attention (6 n_layers context d_model per token)."""
    return 6.0 * params * tokens + 6.0 * n_layers * context * d_model * tokens


def family_ladder(family: str, spec: dict, recipe: dict) -> list[dict]:
    """The family's sizes: one dict per size index with d_model, n_layers, n_heads, params, tokens, lr."""
    vocab = vocab_size_of(spec["tokenizer"])
    rungs = []
    for index, target in enumerate(target_params(float(recipe["top_params"]), float(recipe["decades"]),
                                                  int(recipe["n_sizes"]))):
        layers = int(recipe["first_layers"]) + index
        d_model, heads, params = solve_width(target, spec["architecture"], vocab, layers, int(recipe["head_dim"]),
                                             int(recipe["context"]), spec.get("tie_embeddings"))
        tokens = train_tokens(params, float(recipe["tokens_per_param"]), int(recipe["batch_size"]),
                              int(recipe["context"]))
        rungs.append({"size_index": index, "d_model": d_model, "n_layers": layers, "n_heads": heads,
                      "params": params, "tokens": tokens,
                      "lr": learning_rate(d_model, float(recipe["lr_ref"]), int(recipe["d_ref"]),
                                          float(recipe["lr_max"])),
                      "flops": flops_estimate(params, tokens, layers, d_model, int(recipe["context"]))})
    return rungs


def model_entry(models_root: str, label: str, base_family: str, arm: str, spec: dict, rung: dict,
                mixture: str, recipe: dict) -> dict[str, Any]:
    """One pool entry (the POOL format plus the training keys train.py reads)."""
    name = f"{label}-d{rung['d_model']}l{rung['n_layers']}"
    return {
        "id": f"{models_root}/{name}", "family": label, "params_b": rung["params"] / 1e9,
        "arm": arm, "base_family": base_family, "architecture": spec["architecture"], "mixture": mixture,
        "size_index": rung["size_index"], "d_model": rung["d_model"], "n_layers": rung["n_layers"],
        "n_heads": rung["n_heads"], "train_tokens": rung["tokens"], "train_batch_size": int(recipe["batch_size"]),
        "train_lr": rung["lr"], "est_flops": float(f"{rung['flops']:.4g}"),
    }


def seed_families(seed_arm: dict, families: dict) -> list[str]:
    """Families the seed arm retrains: ``family`` (one name), ``families`` (a list) or every family."""
    if "family" in seed_arm:
        return [seed_arm["family"]]
    return list(seed_arm.get("families") or families)


def expand_models(pool: dict) -> list[dict]:
    """Every model of the pool's main, same_data and seed arms, cheapest (estimated FLOPs) first."""
    recipe = pool["recipe"]
    missing = [k for k in RECIPE_KEYS if k not in recipe]
    if missing:
        raise ValueError(f"pool {pool.get('name')!r}: recipe lacks {missing}")
    root = pool["models_root"]
    arms = pool.get("arms") or {}
    entries = []
    for family, spec in pool["families"].items():
        ladder = family_ladder(family, spec, recipe)
        for rung in ladder:
            entries.append(model_entry(root, family, family, "main", spec, rung, spec["mixture"], recipe))
        same = arms.get("same_data")
        if same:
            for rung in ladder:
                if rung["size_index"] in same["sizes"]:
                    entries.append(model_entry(root, f"{family}-same", family, "same_data", spec, rung,
                                               same["mixture"], recipe))
        seed = arms.get("seed")
        if seed and family in seed_families(seed, pool["families"]):
            # a replica retrains one model of `replicates` (main: the family's own mixture; same_data: the shared one)
            for replicates in seed.get("replicates", ["main"]):
                if replicates == "same_data" and not same:
                    raise ValueError(f"pool {pool.get('name')!r}: arms.seed replicates same_data, which the pool lacks")
                prefix = family if replicates == "main" else f"{family}-same"
                mixture = spec["mixture"] if replicates == "main" else same["mixture"]
                for replica in seed["replicas"]:
                    for rung in ladder:
                        if rung["size_index"] in seed["sizes"]:
                            entry = model_entry(root, f"{prefix}-{replica}", family, "seed", spec, rung, mixture, recipe)
                            entries.append({**entry, "replicates": replicates})
    return sorted(entries, key=lambda e: (e["est_flops"], e["id"]))


def describe(models: list[dict]) -> str:
    """One line per model (id, arm, params, layers, width, heads, tokens, lr, FLOPs) and a total."""
    lines = [f"{m['id']:42s} {m['arm']:9s} P={round(m['params_b'] * 1e9):>9,} L={m['n_layers']} d={m['d_model']:>4} "
             f"h={m['n_heads']} tokens={m['train_tokens']:>11,} lr={m['train_lr']:.4g} flops={m['est_flops']:.3g}"
             for m in models]
    lines.append(f"{len(models)} models, {sum(m['est_flops'] for m in models):.3g} FLOPs in all")
    return "\n".join(lines)


def write_pool(path: str | Path) -> list[dict]:
    """Regenerate the ``models`` list of the pool yaml at ``path`` from its recipe (atomic rewrite)."""
    from mmlaw_utils.io import atomic_write_text

    path = Path(path)
    pool = yaml.safe_load(path.read_text())
    pool["models"] = expand_models(pool)
    atomic_write_text(path, yaml.safe_dump(pool, sort_keys=False, width=110))
    return pool["models"]
