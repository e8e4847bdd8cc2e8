"""Synthetic model pools: seeded score caches in the real cache format (eq. 1 units: summed nats per text).

A synthetic profile (``configs/profiles/<name>.yaml`` with a ``synthetic:`` block) runs the
whole pipeline without any model weights. Each family f has its own loss curve per byte
``floor_f + A_f * P_b**-alpha_f`` (P_b in billions) and a per-text difficulty shared by all its
members; each model adds a smaller private per-text deviation. Members of one family are
therefore correlated text by text, so same-family pairs gain less from the per-text minimum
(eq. 3) than cross-family pairs, as in §4.3-§4.4 of the paper.

The generator writes ``<data_dir>/scores/<model>__<fp>.parquet`` through ``mmlaw_utils.scoring.cache``
plus ``<data_dir>/pool.yaml`` in the pool-file format, so everything downstream
(loss matrix, oracle, frontiers, fits) treats it like a scored pool.

CLI: ``python -m mmlaw_utils synth --profile synthetic [--data-dir DIR] [--force]``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mmlaw_utils import __version__
from mmlaw_utils.io import atomic_write_text
from mmlaw_utils.scoring.cache import cache_path, read_cache, write_cache
from mmlaw_utils.texts import dataset_fingerprint

from mmlaw_utils.config import POOL_FILE


@dataclass(frozen=True)
class SyntheticSettings:
    """Generator settings; every field can be set in a profile's ``synthetic:`` block."""

    n_families: int = 5
    sizes_b: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 8.0)  # nominal sizes, billions of parameters
    n_texts: int = 300
    seed: int = 0
    mean_bytes: float = 2500.0  # mean text length in bytes
    floor_nats_per_byte: float = 0.70  # typical family loss floor, nats per byte
    floor_spread: float = 0.015  # between-family sd of the floor, nats per byte
    amplitude_nats_per_byte: float = 0.30  # A of the per-byte law at P = 1B
    alpha_range: tuple[float, float] = (0.30, 0.40)  # per-family exponents drawn uniformly
    family_text_sd: float = 0.12  # sd of the log per-text difficulty shared within a family
    model_text_sd: float = 0.04  # sd of the log per-text deviation private to a model
    size_jitter: float = 0.15  # relative jitter of sizes between families
    families: tuple[str, ...] = field(default_factory=tuple)  # optional family names

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> "SyntheticSettings":
        """Settings from a profile's ``synthetic:`` mapping; unknown keys are an error."""
        raw = dict(raw or {})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"synthetic settings: unknown key(s) {sorted(unknown)}")
        for key in ("sizes_b", "alpha_range", "families"):
            if key in raw and raw[key] is not None:
                raw[key] = tuple(raw[key])
        settings = cls(**raw)
        if settings.n_families < 2:
            raise ValueError("synthetic settings: n_families must be >= 2 (cross-family pairs need two)")
        if len(settings.sizes_b) < 2 or min(settings.sizes_b) <= 0:
            raise ValueError(f"synthetic settings: sizes_b must hold >= 2 positive sizes, got {settings.sizes_b}")
        if settings.families and len(settings.families) != settings.n_families:
            raise ValueError(f"synthetic settings: {len(settings.families)} family names for n_families={settings.n_families}")
        if settings.n_texts < 1:
            raise ValueError("synthetic settings: n_texts must be >= 1")
        return settings

    def digest(self) -> str:
        """SHA-256 of the settings: the ``model_hash`` stamp that makes regenerated caches comparable."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def family_names(settings: SyntheticSettings) -> list[str]:
    """Family names: the configured ones or ``fam-a``, ``fam-b``, ..."""
    if settings.families:
        return list(settings.families)
    return [f"fam-{chr(ord('a') + i)}" if i < 26 else f"fam-{i}" for i in range(settings.n_families)]


def synthetic_texts(settings: SyntheticSettings) -> pd.DataFrame:
    """Placeholder text table (text_id, text, source) whose fingerprint identifies the synthetic text set."""
    ids = [f"syn{i:06d}" for i in range(settings.n_texts)]
    texts = [f"synthetic text {i} (seed {settings.seed})" for i in range(settings.n_texts)]
    return pd.DataFrame({"text_id": ids, "text": texts, "source": "synthetic"})


def synthetic_pool(settings: SyntheticSettings) -> pd.DataFrame:
    """One row per model: ``model`` id, ``family``, ``params_b`` (billions), ``params`` (count), per-byte law."""
    rng = np.random.default_rng([settings.seed, 1])
    rows = []
    for family in family_names(settings):
        floor = settings.floor_nats_per_byte + settings.floor_spread * rng.standard_normal()
        alpha = rng.uniform(*settings.alpha_range)
        amplitude = settings.amplitude_nats_per_byte * rng.uniform(0.8, 1.25)
        jitter = 1.0 + settings.size_jitter * rng.uniform(-1.0, 1.0, size=len(settings.sizes_b))
        for size_b in sorted(np.asarray(settings.sizes_b) * jitter):
            params = int(round(size_b * 1e9))
            rows.append(
                {
                    "model": f"synthetic/{family}-{params / 1e9:.3g}b",
                    "family": family,
                    "params_b": params / 1e9,
                    "params": params,
                    "floor_nats_per_byte": floor,
                    "amplitude_nats_per_byte": amplitude,
                    "alpha": alpha,
                }
            )
    pool = pd.DataFrame(rows)
    duplicated = pool["model"][pool["model"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"synthetic pool: duplicate model ids {duplicated}; change sizes_b or seed")
    return pool


def synthetic_losses(settings: SyntheticSettings) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(pool, nll K x N in summed nats, n_bytes N): the synthetic loss matrix before it is split into caches."""
    pool = synthetic_pool(settings)
    rng = np.random.default_rng([settings.seed, 2])
    n = settings.n_texts
    # lognormal text lengths with the requested mean
    n_bytes = np.maximum(50, np.round(settings.mean_bytes * rng.lognormal(-0.125, 0.5, size=n))).astype(np.int64)
    # a text difficulty common to all models, plus one per family, plus one per model
    common = rng.normal(0.0, 0.10, size=n)
    family_shift = {f: rng.normal(0.0, settings.family_text_sd, size=n) for f in family_names(settings)}
    nll = np.empty((len(pool), n))
    for k, row in enumerate(pool.itertuples(index=False)):
        per_byte = row.floor_nats_per_byte + row.amplitude_nats_per_byte * row.params_b ** (-row.alpha)
        private = rng.normal(0.0, settings.model_text_sd, size=n)
        nll[k] = n_bytes * per_byte * np.exp(common + family_shift[row.family] + private)
    return pool, nll, n_bytes


def _n_tokens(n_bytes: np.ndarray, family_index: int) -> np.ndarray:
    """Token counts for a family's tokenizer: ~4 bytes per token, tokenizer-specific ratio."""
    return np.maximum(1, np.round(n_bytes / (3.6 + 0.2 * (family_index % 5)))).astype(np.int64)


def pool_yaml(pool: pd.DataFrame, name: str) -> str:
    """The synthetic pool in the ``configs/pools/*.yaml`` format (id, family, params_b)."""
    models = [
        {"id": row.model, "family": row.family, "params_b": float(row.params_b), "params": int(row.params)}
        for row in pool.itertuples(index=False)
    ]
    return yaml.safe_dump({"name": name, "models": models}, sort_keys=False)


def read_pool_file(path: str | Path) -> pd.DataFrame:
    """A generated ``pool.yaml`` as the pool table of ``pool.load_pool``: model, family, params_nominal, revision."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"synthetic pool file {path} does not exist; run python -m mmlaw_utils synth first")
    models = (yaml.safe_load(path.read_text()) or {}).get("models") or []
    if not models:
        raise ValueError(f"synthetic pool file {path} lists no models")
    return pd.DataFrame(
        {
            "model": [m["id"] for m in models],
            "family": [m["family"] for m in models],
            "params_nominal": [int(m.get("params", round(float(m["params_b"]) * 1e9))) for m in models],
            "revision": [None] * len(models),
        }
    )


def _provenance(row: Any, settings: SyntheticSettings, fingerprint: str) -> dict[str, Any]:
    return {
        "model": row.model,
        "model_revision": "synthetic",
        "model_hash": settings.digest(),
        "tokenizer": f"synthetic/{row.family}",
        "dtype": "float64",
        "device": "none",
        "max_length": None,
        "window_policy": "none (synthetic)",
        "prefix_policy": "none (synthetic)",
        "dataset": "synthetic",
        "dataset_fingerprint": fingerprint,
        "n_texts": settings.n_texts,
        "complete": True,
        "params_total": int(row.params),
        "params_nonembed": int(row.params),
        "package_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "family": row.family,
        "synthetic_settings": asdict(settings),
    }


def _is_current(path: Path, settings: SyntheticSettings) -> bool:
    """True when ``path`` holds a complete cache generated with exactly these settings."""
    try:
        _, provenance = read_cache(path)
    except (FileNotFoundError, ValueError):
        return False
    return provenance.get("model_hash") == settings.digest() and bool(provenance.get("complete"))


def generate(settings: SyntheticSettings, data_dir: str | Path, *, name: str = "synthetic", force: bool = False) -> list[Path]:
    """Write one score cache per synthetic model into ``data_dir/scores`` and the pool to ``data_dir/pool.yaml``.

    Caches already generated with the same settings are kept unless ``force``. Returns the cache paths.
    """
    data_dir = Path(data_dir)
    pool, nll, n_bytes = synthetic_losses(settings)
    texts = synthetic_texts(settings)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])
    family_index = {f: i for i, f in enumerate(family_names(settings))}
    paths = []
    for k, row in enumerate(pool.itertuples(index=False)):
        path = cache_path(data_dir / "scores", row.model, fingerprint)
        paths.append(path)
        if not force and _is_current(path, settings):
            continue
        results = pd.DataFrame(
            {
                "text_id": texts["text_id"],
                "nll": nll[k],
                "n_tokens": _n_tokens(n_bytes, family_index[row.family]),
                "n_bytes": n_bytes,
            }
        )
        write_cache(path, results, _provenance(row, settings, fingerprint))
    atomic_write_text(data_dir / POOL_FILE, pool_yaml(pool, name))
    return paths


def generate_for_profile(profile: str, data_dir: str | Path | None = None, force: bool = False) -> list[Path]:
    """Generate the caches of a profile with a ``synthetic:`` block (``data_dir`` overrides the profile's)."""
    from mmlaw_utils.config import load_profile

    spec = load_profile(profile)
    if spec.synthetic is None:
        raise ValueError(f"profile {profile!r} has no synthetic: block; nothing to generate")
    settings_raw = dict(spec.synthetic)
    if spec.n_texts is not None:
        settings_raw.setdefault("n_texts", spec.n_texts)
    return generate(SyntheticSettings.from_mapping(settings_raw), Path(data_dir) if data_dir else spec.data_dir,
                    name=spec.name, force=force)
