"""The pipeline of one profile as data: stages, their notebooks, inputs and outputs, and how to run them.

A stage is a name (``scores``, ``02_loss_matrix`` ... ``09_diversity_arms``), the notebook that runs it
(executed headless by papermill into the run folder: ``runs/<profile>/``, or ``<data_dir>/runs/`` when
``-p data_dir`` moves the data), the outputs (keys of ``config.OUTPUT_FILES``) it reads and writes. A profile
runs ``DEFAULT_STAGES`` unless it names its own list (profile key ``stages``). ``run_pipeline`` is what
``python -m mmlaw_utils run`` (and so ``./run_all.sh``) does: select stages with --from/--to, check every -p
parameter against the notebooks' ``parameters`` cells before anything runs, take the data folder's run lock
(one writer per folder), check that the folder belongs to the profile and that every input of every selected
stage is fresh (``mmlaw_utils.lineage``), execute the stages in order, record each stage's outputs in the
folder's ``lineage.json`` and its wall time (seconds) in the run folder's ``timings.tsv`` and, after 06 on the
default profile, regenerate the results region of README.md.
"""

from __future__ import annotations

import ast
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlaw_utils.config import (DEFAULT_PROFILE, OUTPUT_FILES, REPO_ROOT, Profile, RunPaths, is_whole,
                                load_profile, resolve_run_paths)
from mmlaw_utils.io import ExclusiveLock
from mmlaw_utils.lineage import LineageError, claim_folder, forget_outputs, input_name, record_outputs, stale_reasons

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
RUNS_DIR = REPO_ROOT / "runs"
RUN_LOCK = ".run.lock"  # in the data folder: one run writes there at a time
README = REPO_ROOT / "README.md"
KERNEL_NAME = "mmlaw"
SCORES = "scores"
# set by the pipeline itself (--profile), never by -p
RESERVED_PARAMETERS = ("profile",)
# folder parameters, given relative to the caller's working directory
PATH_PARAMETERS = ("data_dir", "figures_dir", "cache_dir")
# notebook 01 parameters that decide which cache a model's scores belong in (and so whether it is stale)
STALE_CHECK_PARAMETERS = ("data_dir", "cache_dir", "dataset", "n_texts", "max_length", "batch_tokens", "device", "dtype")


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: its notebook, the outputs it reads and writes (keys of config.OUTPUT_FILES) and
    the figures it draws (keys of config.FIGURE_STEMS)."""

    name: str
    notebook: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    summary: str
    figures: tuple[str, ...] = ()
    needs_dir: str | None = None  # a folder under data_dir without which the stage is skipped with a message

    @property
    def number(self) -> str:
        """Two-digit stage number: its notebook's prefix (``scores`` is 01)."""
        return self.notebook[:2]

    def notebook_path(self, notebooks_dir: Path = NOTEBOOKS_DIR) -> Path:
        """The notebook file that papermill executes for this stage."""
        return notebooks_dir / f"{self.notebook}.ipynb"


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(SCORES, "01_score_models", (), (),
              "<data_dir>/scores: generated (synthetic) or scored: notebook 01 on every stale model"),
        Stage("02_loss_matrix", "02_loss_matrix", (), ("loss_matrix", "models"),
              "assemble and validate the loss matrix (models x texts, nats per text)"),
        Stage("03_oracle_pairs", "03_oracle_pairs", ("loss_matrix", "models"), ("pairs",),
              "pair oracle losses (eqs. 3-4) and win shares"),
        Stage("04_frontiers", "04_frontiers", ("loss_matrix", "models", "pairs"), ("frontiers",),
              "raw points and Pareto frontiers of the three groups"),
        Stage("05_fit_scaling_laws", "05_fit_scaling_laws", ("loss_matrix", "models", "frontiers"),
              ("fits", "bootstrap", "cluster_bootstrap", "jackknife", "uncertainty", "sensitivity", "model_comparison",
               "padding", "floor_tests", "equal_budget", "equal_budget_horizontal", "equal_budget_summary", "claims",
               "table1_md", "table1_csv"),
              "fits of eq. 7, four kinds of interval, model comparison, padding null, floor tests, equal budget as "
              "curves, claim verdicts, Table 1"),
        Stage("06_figures", "06_figures", ("models", "frontiers", "fits", "bootstrap", "cluster_bootstrap", "jackknife",
                                           "equal_budget", "equal_budget_horizontal"), (),
              "Figures 1-2 and the equal-budget figure -> <figures_dir>/fig{1,2}_*, fig_equal_budget.{png,pdf}",
              ("fig1", "fig2", "budget")),
        Stage("07_beyond_pairs", "07_beyond_pairs", ("loss_matrix", "models"),
              ("subset_frontier", "subset_fits", "mixture_gain", "diversity_by_relation", "forecast", "beyond_pairs"),
              "subsets beyond pairs: exact frontiers, mixtures, diversity, forecasts", ("fig3", "fig4", "fig5", "fig6")),
        Stage("08_real_pool", "08_real_pool", ("loss_matrix", "models", "pairs"),
              ("real_pool_md", "real_subsets", "real_domains", "real_domain_summary", "real_family_pairs",
               "real_mixture"),
              "a small pool of real models: alone, every subset's oracle, per domain (profile real)",
              ("real_pool_frontier", "real_pool_domains")),
        # reads the score caches of every arm itself: the profile's key arms limits only 02-07
        Stage("09_diversity_arms", "09_diversity_arms", (),
              ("arms_pair_gains", "arms_summary", "arms_gains", "arms_verdicts", "domain_wins", "arms_winner_seeds",
               "arms_md"),
              "the miniature pool's arms: equal-size cross-family oracle gain per arm and domain, domains each family wins",
              ("arms_gain",)),
        Stage("10_granularity", "10_granularity", ("loss_matrix", "models"),
              ("granularity_summary", "granularity_win_shares", "granularity_table1", "granularity_claims",
               "granularity_relations", "granularity_budgets", "granularity_md"),
              "the oracle and a switching mixture at text, line, sentence, word and common-token granularity",
              ("granularity_budgets", "granularity_winners"), needs_dir="segments"),
    )
}
DEFAULT_STAGES: tuple[str, ...] = (SCORES, "02_loss_matrix", "03_oracle_pairs", "04_frontiers",
                                   "05_fit_scaling_laws", "06_figures", "07_beyond_pairs")
README_AFTER = "06_figures"


class PipelineError(RuntimeError):
    """A run that cannot start or a stage that failed; the message names the stage, file or key."""


@dataclass(frozen=True)
class RunOptions:
    """What ``python -m mmlaw_utils run`` was asked to do."""

    profile: str = DEFAULT_PROFILE
    parameters: Mapping[str, Any] | None = None
    start: str | None = None
    stop: str | None = None
    rescore: bool = False
    rebuild: bool = False
    readme: str = "auto"  # auto (default profile after 06) | yes | no


def profile_stages(profile: Profile) -> tuple[str, ...]:
    """The profile's stage list (key ``stages``, else ``DEFAULT_STAGES``); unknown names are an error."""
    names = tuple(profile.stages) if profile.stages else DEFAULT_STAGES
    unknown = [name for name in names if name not in STAGES]
    if unknown:
        raise PipelineError(f"profile {profile.name!r}: unknown stage(s) {unknown} in key 'stages'; known: {list(STAGES)}")
    return names


def stage_position(stages: Sequence[str], token: str) -> int:
    """Index in ``stages`` of the stage named by ``token``: its name or its number (``4``, ``04``; ``01`` is scores)."""
    for index, name in enumerate(stages):
        stage = STAGES[name]
        number = stage.number
        if token in (name, stage.notebook, number, number.lstrip("0")) or token.startswith(f"{number}_"):
            return index
    raise PipelineError(f"unknown stage {token!r}; stages of this profile: {' '.join(stages)}")


def select_stages(stages: Sequence[str], start: str | None = None, stop: str | None = None) -> list[str]:
    """The stages from ``start`` to ``stop`` inclusive (names or numbers; None: first / last)."""
    first = stage_position(stages, start) if start else 0
    last = stage_position(stages, stop) if stop else len(stages) - 1
    if first > last:
        raise PipelineError(f"--from {start} comes after --to {stop}; stages: {' '.join(stages)}")
    return list(stages[first:last + 1])


def resolve_parameter_value(text: str) -> Any:
    """A -p value as papermill's command line reads it: True/False/None, int, float, else the string."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_parameters(pairs: Iterable[Sequence[str]]) -> dict[str, Any]:
    """``[(KEY, VALUE), ...]`` from repeated ``-p KEY VALUE`` -> {key: typed value}; the last of a repeated key wins."""
    parameters: dict[str, Any] = {}
    for key, value in pairs:
        if key in RESERVED_PARAMETERS:
            raise PipelineError(f"-p {key} is set by the pipeline; use --{key} instead")
        parameters[key] = resolve_parameter_value(value)
    return parameters


def notebook_parameters(path: Path) -> tuple[str, ...]:
    """Names declared in the ``parameters`` cell of the notebook at ``path``, in order."""
    import papermill

    if not path.is_file():
        raise PipelineError(f"notebook {path} does not exist")
    return tuple(papermill.inspect_notebook(str(path)))


def notebook_defaults(path: Path) -> dict[str, Any]:
    """Default value of each name of the notebook's ``parameters`` cell (the source text where it is no literal)."""
    import papermill

    defaults = {}
    for name, spec in papermill.inspect_notebook(str(path)).items():
        try:
            defaults[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            defaults[name] = spec["default"]
    return defaults


def check_parameters(parameters: Mapping[str, Any], declared: Mapping[str, Sequence[str]]) -> None:
    """Fail unless every key of ``parameters`` is declared by at least one notebook in ``declared`` (stage -> names)."""
    known = {name for names in declared.values() for name in names}
    unknown = sorted(set(parameters) - known)
    if unknown:
        listing = "\n".join(f"  {stage}: {', '.join(names)}" for stage, names in declared.items())
        raise PipelineError(f"unknown parameter(s) {unknown}: no notebook of the selected stages declares them. "
                            f"Parameters of each notebook:\n{listing}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


ENSEMBLE_GROUPS = ("cross_family", "same_family")
# what a -p value of these notebook parameters must be: (test, description); checked before any stage runs
PARAMETER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n_bootstrap": (lambda v: is_whole(v, 1), "a whole number >= 1"),
    "seed": (lambda v: is_whole(v, 0), "a whole number >= 0"),
    "max_size": (lambda v: is_whole(v, 1), "a whole number >= 1"),
    "beam_width": (lambda v: is_whole(v, 1), "a whole number >= 1"),
    "params_unit": (lambda v: _number(v) and v > 0, "a finite number > 0 (parameters per unit of P; 1e9: billions)"),
    "level": (lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "fit_fraction": (lambda v: _number(v) and 0 < v < 1, "a number between 0 and 1 (exclusive)"),
    "exact_time_limit": (lambda v: _number(v) and v > 0, "a number of seconds > 0"),
    "ensemble_group": (lambda v: v in ENSEMBLE_GROUPS, f"one of {', '.join(ENSEMBLE_GROUPS)}"),
}


def check_parameter_values(parameters: Mapping[str, Any]) -> None:
    """Fail, naming the key, the value and what it must be, for a -p value no notebook could use."""
    bad = [f"-p {key} {value!r}: must be {PARAMETER_RULES[key][1]}" for key, value in parameters.items()
           if key in PARAMETER_RULES and not PARAMETER_RULES[key][0](value)]
    if bad:
        raise PipelineError("; ".join(bad))


def absolute_paths(parameters: Mapping[str, Any], cwd: Path | None = None) -> dict[str, Any]:
    """``parameters`` with relative folder parameters made absolute against ``cwd`` (notebooks run in notebooks/)."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    return {key: str(base / value) if key in PATH_PARAMETERS and isinstance(value, str) and not Path(value).is_absolute()
            else value for key, value in parameters.items()}


def parameters_for(declared: Sequence[str], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``parameters`` that a notebook declaring ``declared`` takes."""
    return {key: value for key, value in parameters.items() if key in declared}


def missing_inputs(stages: Sequence[str], selected: Sequence[str], output_path: Callable[[str], Path]) -> list[str]:
    """Inputs of the selected stages that no selected stage writes and that do not exist yet, as messages."""
    missing: dict[Path, str] = {}
    for name in selected:
        for key in STAGES[name].inputs:
            makers = [other for other in stages if key in STAGES[other].outputs]
            path = output_path(key)
            if any(maker in selected for maker in makers) or path.exists() or path in missing:
                continue
            made_by = makers[0] if makers else "another stage"
            missing[path] = f"{path} (input of {name}; written by {made_by}: run --from {made_by})"
    return list(missing.values())


def output_makers(stages: Sequence[str] = tuple(STAGES)) -> dict[str, str]:
    """Output file name -> the stage (of ``stages``) that writes it."""
    return {OUTPUT_FILES[key]: name for name in stages for key in STAGES[name].outputs}


def profile_context(profile: Profile) -> dict[str, Any]:
    """The profile settings that shape every stage's outputs (text set, pool, arms, scoring, generator)."""
    dataset = profile.dataset if not Path(profile.dataset).is_absolute() else input_name(profile.dataset, REPO_ROOT, REPO_ROOT)
    pool = None if profile.pool is None else input_name(profile.pool, REPO_ROOT, REPO_ROOT)
    return {"profile": profile.name, "dataset": dataset, "n_texts": profile.n_texts, "pool": pool,
            "arms": list(profile.arms) if profile.arms else None, "scoring": profile.scoring, "synthetic": profile.synthetic}


def stage_input_files(name: str, paths: RunPaths, profile: Profile) -> list[Path]:
    """The files stage ``name`` reads: its registered inputs, the pool and a local text set;
    02 also the score caches it assembled (from models.parquet), 09 those of every arm's pool models, 10 the
    segment files."""
    files = [paths.output(key) for key in STAGES[name].inputs]
    files += [path for path in (paths.pool, Path(profile.dataset)) if path is not None and path.is_file()]
    if name == "02_loss_matrix" and paths.output("models").is_file():
        import pyarrow.parquet as pq

        files += [paths.cache_dir / str(f) for f in pq.read_table(paths.output("models"), columns=["cache_file"])
                  .column("cache_file").to_pylist()]
    elif name == "09_diversity_arms":
        from mmlaw_utils.report.arms import pool_cache_files

        files += pool_cache_files(profile.name, paths.cache_dir)
    elif name == "10_granularity":
        from mmlaw_utils.scoring.segment_files import available_segmentations, segmentation_files

        files += [f for seg in available_segmentations(paths.data_dir) for f in segmentation_files(paths.data_dir, seg)]
    return [path for path in files if path.is_file()]


def check_fresh_inputs(stages: Sequence[str], selected: Sequence[str], paths: RunPaths, profile: Profile) -> None:
    """Fail, naming each stale file and the stage that rebuilds it, unless every input that the selected stages
    read and do not write themselves comes (by lineage) from the inputs and profile settings at hand."""
    written = {OUTPUT_FILES[key] for name in selected for key in STAGES[name].outputs}
    needed = sorted({OUTPUT_FILES[key] for name in selected for key in STAGES[name].inputs} - written)
    if not needed:
        return
    try:
        reasons = stale_reasons(paths.data_dir, needed, output_makers(), REPO_ROOT, context=profile_context(profile))
    except LineageError as error:
        raise PipelineError(str(error)) from None
    if reasons:
        makers = output_makers(stages)
        first = min((stages.index(makers[name]) for name in reasons if makers.get(name) in stages), default=None)
        hint = f"run --from {stages[first]}" if first is not None else "rerun the stages that write them"
        raise PipelineError(f"inputs in {paths.data_dir} are stale ({hint} to rebuild them):\n  "
                            + "\n  ".join(reasons.values()))


def run_lock(data_dir: Path) -> ExclusiveLock:
    """The lock that makes a run the only writer of ``data_dir`` (a second run stops with a clear message)."""
    return ExclusiveLock(Path(data_dir) / RUN_LOCK,
                         f"data folder {data_dir} is in use by another run (pid {{holder}}, lock "
                         f"{Path(data_dir) / RUN_LOCK}); wait for it to finish, or give this run its own -p data_dir")


def run_folder(profile: str, data_dir: Path, overridden: bool, runs_root: Path | None) -> Path:
    """Where a run's executed notebooks and timings go: ``runs_root/<profile>`` when given, else
    ``<data_dir>/runs`` for a moved data folder, else ``runs/<profile>`` (one folder per data folder)."""
    if runs_root is not None:
        return Path(runs_root) / profile
    return Path(data_dir) / "runs" if overridden else RUNS_DIR / profile


class Timings:
    """``stage<TAB>seconds`` rows appended to a run's timings.tsv as each stage finishes (whole seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("stage\tseconds\n")

    def record(self, stage: str, seconds: float) -> None:
        """Append one row."""
        with self.path.open("a") as handle:
            handle.write(f"{stage}\t{round(seconds)}\n")


PUBLISHED_NOTEBOOKS = "notebooks"  # <data_dir>/notebooks/: the default profile's executed notebooks, committed
_WIDGET = "application/vnd.jupyter.widget-view+json"


def publishable(notebook: Any, repo_root: Path = REPO_ROOT) -> Any:
    """An executed notebook without what changes from run to run or machine to machine: papermill's and the
    cells' timing metadata, the random id of papermill's parameters cell, stderr streams (progress bars,
    warnings), widget outputs and widget state, and this checkout's path."""
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)  # state of progress-bar widgets, with random model ids
    prefix = f"{Path(repo_root).resolve()}/"
    for cell in notebook.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill draws a random id for the cell it adds
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                continue
            if _WIDGET in output.get("data", {}):
                continue
            kept.append(output)
        cell.outputs = kept
    import nbformat

    return nbformat.from_dict(_without_prefix(dict(notebook), prefix))


def _without_prefix(value: Any, prefix: str) -> Any:
    """``value`` (nested JSON) with every occurrence of ``prefix`` removed from its strings."""
    if isinstance(value, str):
        return value.replace(prefix, "")
    if isinstance(value, list):
        return [_without_prefix(item, prefix) for item in value]
    if isinstance(value, dict):
        return type(value)((key, _without_prefix(item, prefix)) for key, item in value.items())
    return value


def publish_notebook(executed: Path, published: Path) -> None:
    """Write the deterministic copy (``publishable``) of the executed notebook ``executed`` to ``published``."""
    import nbformat

    from mmlaw_utils.io import atomic_write_text

    notebook = publishable(nbformat.read(executed, as_version=4))
    atomic_write_text(published, nbformat.writes(notebook) + "\n")


def kernel_name() -> str:
    """The project's Jupyter kernel when registered (``run_all.sh`` does), else this interpreter's ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def execute_notebook(stage: str, notebook: Path, output: Path, parameters: Mapping[str, Any]) -> None:
    """Run ``notebook`` with papermill into ``output``; a failure names the stage and the executed notebook."""
    import papermill

    print(f"==> [{stage}] papermill {_display(notebook)} -> {_display(output)}", flush=True)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=dict(parameters), kernel_name=kernel_name(),
                                   cwd=str(notebook.parent), progress_bar=False)
    except Exception as error:  # an error in any cell, or a dead kernel: the executed notebook shows where
        raise PipelineError(f"stage {stage!r} FAILED ({type(error).__name__}); open the executed notebook "
                            f"{_display(output)} to see where") from error


def _display(path: Path) -> str:
    """``path`` relative to the repository root when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def scores_stage(profile: Profile, parameters: Mapping[str, Any], rescore: bool, runs_dir: Path,
                 declared: Sequence[str]) -> None:
    """Generate (synthetic profile) or score (others: stale models, all with ``rescore``) the score caches."""
    if profile.synthetic is not None:
        from mmlaw_utils.scoring.synthetic import generate_for_profile

        print("==> [scores] generating synthetic score caches", flush=True)
        paths = generate_for_profile(profile.name, data_dir=parameters.get("data_dir"), force=rescore)
        print(f"    {len(paths)} score caches", flush=True)
        return
    if profile.pool is None:
        raise PipelineError(f"stage 'scores': profile {profile.name!r} names no pool")
    from mmlaw_utils.pool import load_pool
    from mmlaw_utils.scoring.run import stale_models

    rescore = rescore or bool(parameters.get("force"))
    if parameters.get("models"):  # -p models ID: exactly these
        given_models = parameters["models"]
        models = [given_models] if isinstance(given_models, str) else list(given_models)
    else:
        overrides = {key: parameters[key] for key in STALE_CHECK_PARAMETERS if parameters.get(key) is not None}
        models = (list(load_pool(profile.pool)["model"]) if rescore
                  else stale_models(profile.name, base_dir=REPO_ROOT, **overrides))
    if not models:
        print(f"==> [scores] every score cache of profile {profile.name!r} matches its model and text set; "
              "nothing to score", flush=True)
        return
    print(f"==> [scores] scoring {len(models)} model(s) in one kernel", flush=True)
    stage = STAGES[SCORES]
    given = {**parameters_for(declared, parameters), "profile": profile.name, "models": models, "force": rescore}
    execute_notebook(SCORES, stage.notebook_path(), runs_dir / f"{stage.notebook}.ipynb", given)


def rebuild_pool(profile: Profile) -> None:
    """Train the profile's miniature pool from scratch (``minipool build``)."""
    if profile.synthetic is not None:
        raise PipelineError(f"--rebuild trains a pool of real models; profile {profile.name!r} is synthetic")
    if profile.pool is None:
        raise PipelineError(f"--rebuild: profile {profile.name!r} names no pool")
    from mmlaw_utils.minipool.train import build_pool

    print(f"==> [rebuild] training the pool {_display(profile.pool)}", flush=True)
    try:
        build_pool(profile.pool)
    except Exception as error:
        raise PipelineError(f"stage 'rebuild' FAILED: {error} (python -m mmlaw_utils minipool build "
                            f"--pool {_display(profile.pool)})") from error


def readme_wanted(options: RunOptions, selected: Sequence[str], overridden: bool) -> bool:
    """Whether this run regenerates the README results region (--update-readme, or the default profile after 06)."""
    if options.readme == "yes":
        return True
    return options.readme == "auto" and options.profile == DEFAULT_PROFILE and README_AFTER in selected and not overridden


def run_pipeline(options: RunOptions, runs_root: Path | None = None, readme: Path = README) -> None:
    """Run the selected stages of a profile; raise PipelineError naming the stage (and notebook) that failed."""
    try:
        profile = load_profile(options.profile)
    except (FileNotFoundError, ValueError) as error:
        raise PipelineError(str(error)) from error
    stages = profile_stages(profile)
    selected = select_stages(stages, options.start, options.stop)
    parameters = absolute_paths(dict(options.parameters or {}))
    declared = {name: notebook_parameters(STAGES[name].notebook_path()) for name in selected}
    check_parameters(parameters, declared)
    check_parameter_values(parameters)
    paths = resolve_run_paths(profile.name, data_dir=parameters.get("data_dir"), figures_dir=parameters.get("figures_dir"))
    missing = missing_inputs(stages, selected, paths.output)
    if missing:
        raise PipelineError("inputs of the selected stages do not exist:\n  " + "\n  ".join(missing))
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(paths.data_dir):
            _run_locked(options, profile, stages, selected, parameters, declared, paths, runs_root, readme)
    except (RuntimeError, LineageError) as error:
        if isinstance(error, PipelineError):
            raise
        raise PipelineError(str(error)) from None


def _run_locked(options: RunOptions, profile: Profile, stages: Sequence[str], selected: Sequence[str],
                parameters: Mapping[str, Any], declared: Mapping[str, Sequence[str]], paths: RunPaths,
                runs_root: Path | None, readme: Path) -> None:
    """``run_pipeline`` once it holds the data folder's lock."""
    claim_folder(paths.data_dir, profile.name)
    check_fresh_inputs(stages, selected, paths, profile)
    overridden = "data_dir" in parameters or "figures_dir" in parameters
    runs_dir = run_folder(profile.name, paths.data_dir, "data_dir" in parameters, runs_root)
    timings = Timings(runs_dir / "timings.tsv")
    os.environ.setdefault("MPLBACKEND", "Agg")  # headless kernels: figures go to files
    # kernels start in notebooks/ and must import the same mmlaw_utils as this process
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH"))))
    print(f"==> profile {profile.name!r}: data in {_display(paths.data_dir)}, figures in {_display(paths.figures_dir)}, "
          f"executed notebooks in {_display(runs_dir)}/", flush=True)
    total_start = time.monotonic()
    rescore = options.rescore
    if options.rebuild:
        start = time.monotonic()
        rebuild_pool(profile)
        timings.record("rebuild", time.monotonic() - start)
        rescore = True  # new weights make every cache stale
    context = profile_context(profile)
    for name in selected:
        start = time.monotonic()
        if name == SCORES:
            try:
                scores_stage(profile, parameters, rescore, runs_dir, declared[name])
            except PipelineError:
                raise
            except Exception as error:  # generating or listing the caches failed before any notebook ran
                raise PipelineError(f"stage 'scores' FAILED: {error}") from error
        elif STAGES[name].needs_dir and not (paths.data_dir / STAGES[name].needs_dir).is_dir():
            print(f"==> [{name}] skipped: {_display(paths.data_dir / STAGES[name].needs_dir)} does not exist", flush=True)
        else:
            stage = STAGES[name]
            check_fresh_inputs(stages, [name], paths, profile)
            outputs = [paths.output(key) for key in stage.outputs]
            forget_outputs(paths.data_dir, [input_name(path, paths.data_dir, REPO_ROOT) for path in outputs])
            given = {**parameters_for(declared[name], parameters), "profile": profile.name}
            execute_notebook(name, stage.notebook_path(), runs_dir / f"{stage.notebook}.ipynb", given)
            if profile.name == DEFAULT_PROFILE:  # committed, so a reader sees every intermediate table
                publish_notebook(runs_dir / f"{stage.notebook}.ipynb",
                                 paths.data_dir / PUBLISHED_NOTEBOOKS / f"{stage.notebook}.ipynb")
            chosen = {key: value for key, value in {**notebook_defaults(stage.notebook_path()), **given}.items()
                      if key not in PATH_PARAMETERS}
            record_outputs(paths.data_dir, name, outputs, stage_input_files(name, paths, profile), chosen, REPO_ROOT,
                           context)
            print(f"    [{name}] done in {time.monotonic() - start:.0f} s", flush=True)
        timings.record(name, time.monotonic() - start)

    if readme_wanted(options, selected, overridden):
        from mmlaw_utils.report.tables import update_readme

        try:
            update_readme(readme, profile.name, paths.data_dir, paths.figures_dir)
        except (OSError, ValueError) as error:
            raise PipelineError(f"could not update the README results region of {readme}: {error}") from error
        print(f"==> README results region regenerated from profile {profile.name!r}", flush=True)
    elif options.readme == "auto" and overridden and README_AFTER in selected and options.profile == DEFAULT_PROFILE:
        print("==> README left alone: this run wrote to an overridden data_dir/figures_dir", flush=True)
    timings.record("total", time.monotonic() - total_start)
    print(f"==> done in {time.monotonic() - total_start:.0f} s: outputs in {_display(paths.data_dir)}, figures in "
          f"{_display(paths.figures_dir)}/, timings in {_display(timings.path)}", flush=True)
