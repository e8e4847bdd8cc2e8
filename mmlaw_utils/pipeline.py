"""Where a notebook run reads and writes: a profile's folders, overridable by papermill parameters.

Notebooks 02-06 take ``profile`` plus optional ``data_dir`` / ``figures_dir`` / ``pool``
parameters; :func:`resolve_run_paths` turns them into absolute paths so a run can be pointed
at a temporary folder (tests, sweeps) without editing the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmlaw_utils.profiles import load_profile
import pandas as pd

from mmlaw_utils.synthetic import POOL_FILE, read_pool_file

OUTPUT_FILES = {
    "loss_matrix": "loss_matrix.parquet",
    "models": "models.parquet",
    "pairs": "pairs.parquet",
    "frontiers": "frontiers.parquet",
    "fits": "fits.json",
    "bootstrap": "bootstrap.parquet",
    "table1_md": "table1.md",
    "table1_csv": "table1.csv",
}


@dataclass(frozen=True)
class RunPaths:
    """Absolute folders of one run: data (loss matrix, pairs, fits, Table 1), score caches, figures, pool file."""

    profile: str
    data_dir: Path
    figures_dir: Path
    pool: Path | None
    synthetic: bool

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
                    synthetic=spec.synthetic is not None)


def require(path: Path, made_by: str) -> Path:
    """``path`` if it exists, else a clear error naming the notebook that writes it."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path} does not exist; run {made_by} first (or ./run_all.sh --from {made_by[:2]})")
    return Path(path)


def load_run_pool(paths: RunPaths) -> pd.DataFrame:
    """The pool table of a run (model, family, params_nominal, ...): a synthetic pool file or a pool yaml."""
    if paths.pool is None:
        raise ValueError(f"profile {paths.profile!r} names no pool")
    if paths.synthetic:
        return read_pool_file(paths.pool)
    from mmlaw_utils.pool import load_pool  # real pools: the pool module validates ids, families and sizes

    return load_pool(paths.pool)
