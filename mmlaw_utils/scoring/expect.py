"""What a profile's score caches must say about themselves, so stale caches are refused at assembly.

A cache answers a profile when its provenance names the model it is filed under, the profile's
text-set fingerprint and the profile's scoring settings (and, for a local model whose weights are
here, their content hash). ``profile_expectation`` gathers these from the profile; loss-matrix
assembly (scoring/assemble.py) applies them to every cache and lists the models that fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlaw_utils.config import load_profile


@dataclass(frozen=True)
class CacheExpectation:
    """The text set (fingerprint) and per-model provenance checks a profile's caches must pass."""

    profile: str
    dataset_fingerprint: str | None  # None: any one fingerprint shared by all caches
    check: Callable[[str, dict[str, Any]], list[str]]  # (model id, provenance) -> mismatches
    rescore_hint: Callable[[Sequence[str]], str]  # stale model ids -> the command(s) that rescore them


def _synthetic_settings(profile_name: str):
    """The generator settings of a synthetic profile (its ``n_texts`` fills the settings' default)."""
    from mmlaw_utils.scoring.synthetic import SyntheticSettings

    profile = load_profile(profile_name)
    raw = dict(profile.synthetic or {})
    if profile.n_texts is not None:
        raw.setdefault("n_texts", profile.n_texts)
    return SyntheticSettings.from_mapping(raw)


def synthetic_expectation(profile_name: str, own_data_dir: bool) -> CacheExpectation:
    """Caches of a synthetic profile: generated with the profile's settings (in its own data folder).

    In another data folder (e.g. a test fixture generated with other settings) only the
    consistency of the caches among themselves is checked (one fingerprint, one settings digest).
    """
    from mmlaw_utils.scoring.synthetic import synthetic_texts
    from mmlaw_utils.texts import dataset_fingerprint

    command = f"python -m mmlaw_utils synth --profile {profile_name} --force"
    if not own_data_dir:  # assembly still requires one fingerprint shared by all caches
        return CacheExpectation(profile_name, None, lambda model, provenance: [], lambda models: command + " --data-dir DATA_DIR")
    settings = _synthetic_settings(profile_name)
    texts = synthetic_texts(settings)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])

    def generated_here(model: str, provenance: dict[str, Any]) -> list[str]:
        digest = settings.digest()
        if provenance.get("model_hash") != digest:
            return [f"synthetic settings differ from profile {profile_name!r} (digest {str(provenance.get('model_hash'))[:12]} vs {digest[:12]})"]
        return []

    return CacheExpectation(profile_name, fingerprint, generated_here, lambda models: command)


def scored_expectation(profile_name: str, cache_dir: str | Path) -> CacheExpectation:
    """Caches of a scored profile: its text set, its scoring settings and (local weights) their hash."""
    from mmlaw_utils.scoring import run
    from mmlaw_utils.texts import dataset_fingerprint, load_texts

    profile = load_profile(profile_name)
    texts = load_texts(profile.dataset, profile.n_texts)
    fingerprint = dataset_fingerprint(texts["text_id"], texts["text"])

    def matches_profile(model: str, provenance: dict[str, Any]) -> list[str]:
        request = run.request_from_settings(profile_name, model, cache_dir=cache_dir)
        # the fingerprint is checked by assembly itself; here the settings and weights
        stored_fingerprint = str(provenance.get("dataset_fingerprint"))
        return run.cache_mismatches(provenance, request, stored_fingerprint, run.requested_model_hash(request))

    def hint(models: Sequence[str]) -> str:
        lines = [f"python -m mmlaw_utils score --profile {profile_name} --model {m} --force" for m in models]
        return "\n".join(lines) + f"\n(or ./run_all.sh --profile {profile_name} --rescore for the whole pool)"

    return CacheExpectation(profile_name, fingerprint, matches_profile, hint)


def profile_expectation(profile_name: str, cache_dir: str | Path) -> CacheExpectation:
    """What the caches in ``cache_dir`` must satisfy to be assembled for ``profile_name``."""
    profile = load_profile(profile_name)
    if profile.synthetic is not None:
        return synthetic_expectation(profile_name, Path(cache_dir).resolve() == profile.cache_dir.resolve())
    return scored_expectation(profile_name, cache_dir)
