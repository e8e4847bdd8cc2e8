"""Run configuration: profiles, the folders of a run and the registry of its output files.

A profile, ``configs/profiles/<name>.yaml``, is what ``python -m mmlaw_utils run --profile NAME``
(and ``./run_all.sh --profile NAME``) runs. Keys:

* ``description``: one line shown in listings;
* ``pool``: pool yaml (configs/pools/<name>.yaml), or null;
* ``dataset`` (required): local text file (relative to the repository root) or hub dataset name;
* ``n_texts``: first N texts only (null: all);
* ``data_dir`` (required): score caches (``data_dir/scores``), loss matrix, pairs, fits, Table 1;
* ``figures_dir``: figures (default ``figures/<name>``);
* ``scoring``: ``max_length`` (window, tokens; null: the model's context), ``context_tokens`` (min
  context of later windows, tokens; null: half a window), ``batch_tokens`` (padded tokens per
  forward), ``chunk_texts`` (texts per resumable chunk), ``device``, ``dtype``;
* ``synthetic``: generator settings; when set, score caches are generated instead of scored;
* ``arms``: analyse only the pool's models whose ``arm`` column is one of these (e.g. ``[main]``): the
  loss matrix of notebook 02, so everything read from it (03-07); scoring and notebook 09 still cover
  every arm (null: every model);
* ``stages``: the pipeline stages of this profile (default: scores and notebooks 02-07; the miniature pool adds
  09; see ``mmlaw_utils.pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "configs" / "profiles"
DEFAULT_PROFILE = "minipool"
_SCORING_DEFAULTS: dict[str, Any] = {"max_length": None, "batch_tokens": 8192, "device": "auto", "dtype": "auto"}
_SCORING_KEYS = {*_SCORING_DEFAULTS, "context_tokens", "chunk_texts"}


@dataclass(frozen=True)
class Profile:
    """One run profile; paths are absolute (resolved against the repository root)."""

    name: str
    description: str
    pool: Path | None
    dataset: str
    n_texts: int | None
    data_dir: Path
    figures_dir: Path
    scoring: dict[str, Any] = field(default_factory=dict)
    synthetic: dict[str, Any] | None = None
    stages: tuple[str, ...] | None = None
    arms: tuple[str, ...] | None = None

    @property
    def cache_dir(self) -> Path:
        """Folder of the per-model score caches of this profile."""
        return self.data_dir / "scores"


def _resolve(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def _resolve_dataset(value: str) -> str:
    """Local text files resolve against the repository root; hub names stay as given."""
    local = REPO_ROOT / value
    return str(local) if Path(value).suffix and not Path(value).is_absolute() else value


def available_profiles() -> list[str]:
    """Names of the profiles under configs/profiles/."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


_PROFILE_KEYS = {"description", "pool", "dataset", "n_texts", "data_dir", "figures_dir", "scoring", "synthetic", "stages",
                 "arms"}
_DTYPES = {"auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "half"}


def is_whole(value: Any, low: int) -> bool:
    """Whether ``value`` is an int (not a bool) of at least ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _check_scoring(raw: Any, where: str) -> dict[str, Any]:
    """The ``scoring:`` mapping with defaults filled in; unknown keys and bad values name the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: key 'scoring' must be a mapping of {sorted(_SCORING_KEYS)}, got {raw!r}")
    unknown = sorted(set(raw) - _SCORING_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {['scoring.' + str(k) for k in unknown]}; known: {sorted(_SCORING_KEYS)}")
    for key, low in (("max_length", 2), ("context_tokens", 1), ("batch_tokens", 1), ("chunk_texts", 1)):
        value = raw.get(key)
        if value is not None and not is_whole(value, low):
            raise ValueError(f"{where}: key 'scoring.{key}' must be a whole number >= {low}, got {value!r}")
    for key in ("device", "dtype"):
        if key in raw and not isinstance(raw[key], str):
            raise ValueError(f"{where}: key 'scoring.{key}' must be a string, got {raw[key]!r}")
    if str(raw.get("dtype", "auto")).lower().removeprefix("torch.") not in _DTYPES:
        raise ValueError(f"{where}: key 'scoring.dtype' is {raw['dtype']!r}; use one of {sorted(_DTYPES)}")
    return {**_SCORING_DEFAULTS, **raw}


def _check_types(raw: dict[str, Any], where: str) -> None:
    """Type of every top-level profile key; the error names the key."""
    for key in ("description", "dataset", "data_dir", "figures_dir", "pool"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ValueError(f"{where}: key {key!r} must be a string, got {raw[key]!r}")
    if raw.get("n_texts") is not None and not is_whole(raw["n_texts"], 1):
        raise ValueError(f"{where}: key 'n_texts' must be a whole number >= 1 (or null for all), got {raw['n_texts']!r}")
    if raw.get("synthetic") is not None and not isinstance(raw["synthetic"], dict):
        raise ValueError(f"{where}: key 'synthetic' must be a mapping of generator settings, got {raw['synthetic']!r}")
    stages = raw.get("stages")
    if stages is not None and (not isinstance(stages, list) or not all(isinstance(x, str) for x in stages)):
        raise ValueError(f"{where}: key 'stages' must be a list of stage names, got {stages!r}")
    arms = raw.get("arms")
    if arms is not None and (not isinstance(arms, list) or not arms
                             or not all(isinstance(x, str) and x.strip() for x in arms)):
        raise ValueError(f"{where}: key 'arms' must be a non-empty list of arm names (or null for every model), "
                         f"got {arms!r}")


def load_profile(name: str) -> Profile:
    """Read ``configs/profiles/<name>.yaml``; a missing profile, bad YAML, or a missing, unknown or mistyped key is a clear error."""
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"profile {name!r} not found at {path}; available: {available_profiles()}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"profile {path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"profile {path}: a profile is a mapping of keys, got {type(raw).__name__}")
    for key in ("dataset", "data_dir"):
        if key not in raw:
            raise ValueError(f"profile {path}: missing key {key!r}")
    unknown = set(raw) - _PROFILE_KEYS
    if unknown:
        raise ValueError(f"profile {path}: unknown key(s) {sorted(unknown)}")
    _check_types(raw, f"profile {path}")
    scoring = _check_scoring(raw.get("scoring"), f"profile {path}")
    return Profile(
        name=name,
        description=raw.get("description", ""),
        pool=_resolve(raw.get("pool")),
        dataset=_resolve_dataset(str(raw["dataset"])),
        n_texts=raw.get("n_texts"),
        data_dir=_resolve(raw["data_dir"]),
        figures_dir=_resolve(raw.get("figures_dir", f"figures/{name}")),
        scoring=scoring,
        synthetic=raw.get("synthetic"),
        stages=tuple(raw["stages"]) if raw.get("stages") else None,
        arms=tuple(raw["arms"]) if raw.get("arms") is not None else None,
    )


# file name of a synthetic pool, written by the generator into the data folder
POOL_FILE = "pool.yaml"

OUTPUT_FILES = {
    "loss_matrix": "loss_matrix.parquet",
    "models": "models.parquet",
    "pairs": "pairs.parquet",
    "frontiers": "frontiers.parquet",
    "fits": "fits.json",
    "bootstrap": "bootstrap.parquet",
    "table1_md": "table1.md",
    "table1_csv": "table1.csv",
    "cluster_bootstrap": "cluster_bootstrap.parquet",
    "jackknife": "model_jackknife.csv",
    "uncertainty": "uncertainty.csv",
    "model_comparison": "model_comparison.csv",
    "sensitivity": "sensitivity.csv",
    "equal_budget": "equal_budget.csv",
    "equal_budget_summary": "equal_budget_summary.csv",
    "equal_budget_horizontal": "equal_budget_horizontal.csv",
    "padding": "padding.csv",
    "floor_tests": "floor_tests.csv",
    "claims": "claims.csv",
    "subset_frontier": "subset_frontier.parquet",
    "subset_fits": "subset_fits.csv",
    "mixture_gain": "mixture_gain.csv",
    "diversity_by_relation": "diversity_by_relation.csv",
    "forecast": "forecast.csv",
    "beyond_pairs": "beyond_pairs.md",
    "real_pool_md": "real_pool.md",
    "real_subsets": "real_subsets.csv",
    "real_domains": "real_domains.csv",
    "real_domain_summary": "real_domain_summary.csv",
    "real_family_pairs": "real_family_pairs.csv",
    "real_mixture": "real_mixture.csv",
    "arms_pair_gains": "arms_pair_gains.csv",
    "arms_summary": "arms_summary.csv",
    "arms_gains": "arms_gains.csv",
    "arms_verdicts": "arms_verdicts.csv",
    "arms_winner_seeds": "arms_winner_seeds.csv",
    "domain_wins": "domain_wins.csv",
    "arms_md": "arms.md",
    "granularity_summary": "granularity_summary.csv",
    "granularity_win_shares": "granularity_win_shares.csv",
    "granularity_table1": "granularity_table1.csv",
    "granularity_claims": "granularity_claims.csv",
    "granularity_relations": "granularity_relations.csv",
    "granularity_budgets": "granularity_budgets.csv",
    "granularity_md": "granularity.md",
}
# figure files: <figures_dir>/<stem>.png and .pdf
FIGURE_STEMS = {
    "fig1": "fig1_single_vs_ensemble",
    "fig2": "fig2_same_vs_cross_family",
    "fig3": "fig3_subset_frontiers",
    "fig4": "fig4_mixture_vs_oracle",
    "fig5": "fig5_diversity",
    "fig6": "fig6_forecast",
    "budget": "fig_equal_budget",
    "real_pool_frontier": "real_pool_frontier",
    "real_pool_domains": "real_pool_domains",
    "arms_gain": "arms_gain",
    "granularity_budgets": "granularity_budgets",
    "granularity_winners": "granularity_winners",
}


@dataclass(frozen=True)
class RunPaths:
    """Absolute folders of one run: data (loss matrix, pairs, fits, Table 1), score caches, figures, pool file;
    and the arms of the pool the run analyses (None: every model)."""

    profile: str
    data_dir: Path
    figures_dir: Path
    pool: Path | None
    synthetic: bool
    arms: tuple[str, ...] | None = None

    @property
    def cache_dir(self) -> Path:
        """Per-model score caches (``data_dir/scores``)."""
        return self.data_dir / "scores"

    def output(self, key: str) -> Path:
        """Path of one output of the pipeline, e.g. ``output("pairs")`` -> data_dir/pairs.parquet."""
        if key not in OUTPUT_FILES:
            raise KeyError(f"unknown output {key!r}; known: {sorted(OUTPUT_FILES)}")
        return self.data_dir / OUTPUT_FILES[key]


def resolve_run_paths(
    profile: str,
    data_dir: str | Path | None = None,
    figures_dir: str | Path | None = None,
    pool: str | Path | None = None,
) -> RunPaths:
    """Folders of ``profile`` with any of them overridden (None keeps the profile's own).

    With ``data_dir`` overridden and no ``figures_dir``, figures go to ``data_dir/figures``.
    A synthetic profile's pool file lives in its data folder (written by the generator), so it
    follows a ``data_dir`` override.
    """
    spec = load_profile(profile)
    data = Path(data_dir).resolve() if data_dir else spec.data_dir
    # a run pointed at another data folder keeps its figures there too, away from the repository's
    figures = Path(figures_dir).resolve() if figures_dir else (data / "figures" if data_dir else spec.figures_dir)
    if pool:
        pool_path: Path | None = Path(pool).resolve()
    elif spec.synthetic is not None:
        pool_path = data / POOL_FILE
    else:
        pool_path = spec.pool
    return RunPaths(profile=spec.name, data_dir=data, figures_dir=figures, pool=pool_path,
                    synthetic=spec.synthetic is not None, arms=spec.arms)


def require(path: Path, made_by: str) -> Path:
    """``path`` if it exists and (in a folder with lineage) is fresh, else a clear error naming the stage that writes it."""
    from mmlaw_utils.lineage import verify_input

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist; run {made_by} first (python -m mmlaw_utils run --from {made_by[:2]})")
    verify_input(path, made_by, REPO_ROOT)
    return Path(path)
