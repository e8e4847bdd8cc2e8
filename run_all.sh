#!/usr/bin/env bash
# Reproduce the paper's analysis for one profile: set up .venv, score (or generate) the losses,
# then run notebooks 02-07 headlessly with papermill. `./run_all.sh --help` says how.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
VPY="$VENV/bin/python"
STAMP="$VENV/.mmlaw-setup-stamp"
KERNEL_NAME="mmlaw"
TORCH_SPEC="torch==2.13.0"  # installed first, exactly this spec (see pyproject.toml)
DEFAULT_PROFILE="minipool"
FALLBACK_PROFILE="synthetic"
STAGES=(scores 02_loss_matrix 03_oracle_pairs 04_frontiers 05_fit_scaling_laws 06_figures 07_beyond_pairs)

usage() {
  cat <<'EOF'
Usage: ./run_all.sh [--profile NAME] [-p KEY VALUE]... [--rescore] [--rebuild] [--from STAGE] [--to STAGE]
                    [--update-readme | --no-readme]
       ./run_all.sh --setup-only
       ./run_all.sh --test [PYTEST ARGS...]

Reproduces the analysis of "The Law of Multi-Model Collaboration" for one profile
(configs/profiles/NAME.yaml: a model pool, a text set and output folders).

Set-up (every call): creates .venv with python3.11 (or $MMLAW_PYTHON) if needed, installs
torch==2.13.0 first and then this project with `pip install -e ".[test]"` (all pins live in
pyproject.toml), and registers the Jupyter kernel "mmlaw". The install is skipped while the
hash of pyproject.toml matches the stamp in .venv/.mmlaw-setup-stamp.
Set MMLAW_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) to take torch from
another index, e.g. CPU-only wheels.

Stages, in order (executed notebooks go to runs/<profile>/, open them to see every output):
  scores               synthetic profiles: generate the score caches (python -m mmlaw_utils.scoring.synthetic);
                       otherwise: run notebooks/01_*.ipynb once per model whose cache is missing,
                       incomplete or stale (python -m mmlaw_utils.scoring.run --profile NAME --stale);
                       skipped with a message when every cache matches.
  02_loss_matrix       assemble and validate data/<profile>/loss_matrix.parquet + models.parquet
  03_oracle_pairs      pair oracle losses (eqs. 3-4), pairs.parquet, win shares
  04_frontiers         raw points and Pareto frontiers of the three groups -> frontiers.parquet
  05_fit_scaling_laws  fits of eq. 7 + bootstrap CIs -> fits.json, bootstrap.parquet, table1.{md,csv}
  06_figures           Figures 1-2 -> <figures_dir>/fig{1,2}_*.{png,pdf}
  07_beyond_pairs      (when notebooks/07_beyond_pairs.ipynb exists) subsets beyond pairs
A profile may name its own stage list (key `stages:`); profiles real and real2 (small pools of real
models) run scores, 02, 03 and 08_real_pool (alone, every subset's oracle, per domain) instead of the fits.
After 06, the results region of README.md is regenerated for the default profile.

Options:
  --profile NAME   profile to run (default: minipool; while configs/profiles/minipool.yaml does
                   not exist, falls back to the synthetic profile with a message)
  -p KEY VALUE     papermill parameter passed to every notebook (repeatable), e.g.
                   -p n_bootstrap 200 -p seed 1 -p params_unit 1e9
  --rescore        rescore every model of the pool from its weights (synthetic: regenerate)
  --rebuild        first train the miniature pool: python -m mmlaw_utils.minipool.train --pool <pool>
  --from STAGE     start at STAGE (name or number, e.g. 04 or 04_frontiers); earlier outputs must exist
  --to STAGE       stop after STAGE (e.g. --to 06 skips 07)
  --update-readme  regenerate the README results region from this profile (any profile)
  --no-readme      do not touch README.md
  --setup-only     set up .venv and the kernel, then stop
  --test [ARGS]    set up, then run `.venv/bin/python -m pytest ARGS` (all remaining arguments)
  -h, --help       this help

On a failing stage the script stops with a non-zero exit status and names the stage and the
executed notebook to open.
Examples:
  ./run_all.sh                                  # main job on the default profile
  ./run_all.sh --profile synthetic -p n_bootstrap 100
  ./run_all.sh --test -x -q tests/test_tables.py
EOF
}

die() { echo "run_all.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- arguments
PROFILE=""
PARAMS=()
RESCORE=0
REBUILD=0
SETUP_ONLY=0
TEST=0
TEST_ARGS=()
FROM_STAGE=""
TO_STAGE=""
README_MODE="auto"
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --profile) [[ $# -ge 2 ]] || die "--profile needs a NAME"; PROFILE="$2"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    -p|--parameters) [[ $# -ge 3 ]] || die "$1 needs KEY VALUE"; PARAMS+=(-p "$2" "$3"); shift 3 ;;
    --rescore) RESCORE=1; shift ;;
    --rebuild) REBUILD=1; shift ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    --from) [[ $# -ge 2 ]] || die "--from needs a STAGE"; FROM_STAGE="$2"; shift 2 ;;
    --to) [[ $# -ge 2 ]] || die "--to needs a STAGE"; TO_STAGE="$2"; shift 2 ;;
    --update-readme) README_MODE="yes"; shift ;;
    --no-readme) README_MODE="no"; shift ;;
    --test) TEST=1; shift; TEST_ARGS=("$@"); break ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

# ---------------------------------------------------------------- set-up
find_python() {
  local candidate
  for candidate in "${MMLAW_PYTHON:-}" python3.11 python3 python; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

setup_hash() {
  # the stamp covers the pins (pyproject.toml) and the torch spec installed before them
  "$1" - "$TORCH_SPEC" <<'PY'
import hashlib, sys
digest = hashlib.sha256(open("pyproject.toml", "rb").read())
digest.update(sys.argv[1].encode())
print(digest.hexdigest())
PY
}

pins_satisfied() {
  # true when every exact pin of pyproject.toml (dependencies + the test extra) is installed in .venv at
  # that version and this checkout is the installed mmlaw: then no network is needed (e.g. offline CI)
  "$VPY" - <<'PY'
import importlib.metadata as md, re, sys, tomllib
from pathlib import Path
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
wanted = project["dependencies"] + project.get("optional-dependencies", {}).get("test", [])
for requirement in wanted:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
    if not match:
        sys.exit(1)
    try:
        have = md.version(match.group(1))
    except md.PackageNotFoundError:
        sys.exit(1)
    if have.split("+")[0] != match.group(3):
        sys.exit(1)
import mmlaw_utils
sys.exit(0 if Path(mmlaw_utils.__file__).resolve().parent.parent == Path.cwd().resolve() else 1)
PY
}

setup_venv() {
  if [[ ! -x "$VPY" ]]; then
    local base
    base="$(find_python)" || die "Python 3.11 not found (tried \$MMLAW_PYTHON, python3.11, python3, python); install it or set MMLAW_PYTHON"
    echo "==> creating .venv with $base"
    "$base" -m venv "$VENV"
  fi
  "$VPY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' ||
    die ".venv is not Python 3.11 ($("$VPY" --version 2>&1)); remove .venv and rerun"
  local want have=""
  want="$(setup_hash "$VPY")"
  [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
  if [[ "$want" != "$have" ]] && pins_satisfied; then
    echo "==> .venv already holds every pin of pyproject.toml; recording the stamp"
    echo "$want" > "$STAMP"
  elif [[ "$want" != "$have" ]]; then
    echo "==> installing dependencies into .venv (pins: pyproject.toml)"
    if [[ -n "${MMLAW_TORCH_INDEX_URL:-}" ]]; then
      "$VPY" -m pip install "$TORCH_SPEC" --index-url "$MMLAW_TORCH_INDEX_URL"
    else
      "$VPY" -m pip install "$TORCH_SPEC"
    fi
    "$VPY" -m pip install -e ".[test]"
    echo "$want" > "$STAMP"
  else
    echo "==> .venv is up to date (pyproject.toml unchanged since the last install)"
  fi
  if [[ ! -f "$VENV/share/jupyter/kernels/$KERNEL_NAME/kernel.json" ]]; then
    echo "==> registering the Jupyter kernel '$KERNEL_NAME'"
    "$VPY" -m ipykernel install --sys-prefix --name "$KERNEL_NAME" --display-name "Python (mmlaw)" >/dev/null
  fi
}

setup_venv
export MPLBACKEND=Agg  # headless: figures are written to files, never shown
export PYTHONUNBUFFERED=1

if [[ $TEST -eq 1 ]]; then
  echo "==> .venv/bin/python -m pytest ${TEST_ARGS[*]:-}"
  exec "$VPY" -m pytest ${TEST_ARGS[@]+"${TEST_ARGS[@]}"}
fi
[[ $SETUP_ONLY -eq 1 ]] && { echo "==> set-up done"; exit 0; }

# ---------------------------------------------------------------- profile
if [[ -z "$PROFILE" ]]; then
  PROFILE="$DEFAULT_PROFILE"
  if [[ ! -f "configs/profiles/$PROFILE.yaml" ]]; then
    echo "==> note: the default profile '$DEFAULT_PROFILE' (configs/profiles/$DEFAULT_PROFILE.yaml) does not exist yet;" \
         "running the '$FALLBACK_PROFILE' profile instead" >&2
    PROFILE="$FALLBACK_PROFILE"
  fi
fi
# one line of tab-separated facts about the profile (fails with a clear message if it is missing)
PROFILE_INFO="$("$VPY" - "$PROFILE" <<'PY'
import sys
from mmlaw_utils.config import load_profile
try:
    p = load_profile(sys.argv[1])
except (FileNotFoundError, ValueError) as error:
    sys.exit(f"run_all.sh: {error}")
print("\t".join([str(int(p.synthetic is not None)), str(p.pool or ""), str(p.data_dir), str(p.figures_dir),
                 " ".join(p.stages or ())]))
PY
)" || die "cannot load profile '$PROFILE'"
IFS=$'\t' read -r IS_SYNTHETIC POOL_PATH DATA_DIR FIGURES_DIR PROFILE_STAGES <<< "$PROFILE_INFO"
# a profile may run its own stage list (real2: a pair is compared, not fitted)
if [[ -n "$PROFILE_STAGES" ]]; then read -r -a STAGES <<< "$PROFILE_STAGES"; fi
RUNS_DIR="$REPO_ROOT/runs/$PROFILE"
mkdir -p "$RUNS_DIR"
TIMINGS="$RUNS_DIR/timings.tsv"
printf 'stage\tseconds\n' > "$TIMINGS"
echo "==> profile '$PROFILE': data in ${DATA_DIR#$REPO_ROOT/}, figures in ${FIGURES_DIR#$REPO_ROOT/}, executed notebooks in runs/$PROFILE/"

stage_index() { # stage_index NAME-OR-NUMBER -> index in STAGES (scores = 01)
  local i s
  for i in "${!STAGES[@]}"; do
    s="${STAGES[$i]}"
    if [[ "$1" == "$s" || "$1" == "${s%%_*}" || "$1" == "0${s%%_*}" ]] ||
       [[ "$s" == scores && ( "$1" == 01 || "$1" == 1 || "$1" == 01_* ) ]]; then
      echo "$i"; return 0
    fi
  done
  die "unknown stage '$1'; stages: ${STAGES[*]}"
}
FROM_INDEX=0
TO_INDEX=$((${#STAGES[@]} - 1))
if [[ -n "$FROM_STAGE" ]]; then FROM_INDEX="$(stage_index "$FROM_STAGE")" || exit 1; fi
if [[ -n "$TO_STAGE" ]]; then TO_INDEX="$(stage_index "$TO_STAGE")" || exit 1; fi
stage_wanted() { # stage_wanted NAME -> true when NAME is within --from .. --to
  local i; for i in "${!STAGES[@]}"; do
    [[ "${STAGES[$i]}" == "$1" ]] && { [[ $i -ge $FROM_INDEX && $i -le $TO_INDEX ]]; return; }
  done
  return 1
}

run_notebook() { # run_notebook STAGE INPUT.ipynb OUTPUT.ipynb [extra papermill args...]
  local stage="$1" input="$2" output="$3"; shift 3
  local start=$SECONDS
  echo "==> [$stage] papermill $input -> ${output#$REPO_ROOT/}"
  if ! "$VPY" -m papermill "$input" "$output" -k "$KERNEL_NAME" --no-progress-bar --cwd "$REPO_ROOT/notebooks" \
        -p profile "$PROFILE" "$@" ${PARAMS[@]+"${PARAMS[@]}"}; then
    echo "run_all.sh: stage '$stage' FAILED; open the executed notebook ${output#$REPO_ROOT/} to see where" >&2
    exit 1
  fi
  printf '%s\t%s\n' "$stage" "$((SECONDS - start))" >> "$TIMINGS"
  echo "    [$stage] done in $((SECONDS - start)) s"
}

TOTAL_START=$SECONDS

# ---------------------------------------------------------------- rebuild the miniature pool
if [[ $REBUILD -eq 1 ]]; then
  [[ "$IS_SYNTHETIC" == 1 ]] && die "--rebuild trains a pool of real models; profile '$PROFILE' is synthetic"
  [[ -n "$POOL_PATH" ]] || die "--rebuild: profile '$PROFILE' names no pool"
  echo "==> [rebuild] python -m mmlaw_utils.minipool.train --pool $POOL_PATH"
  start=$SECONDS
  "$VPY" -m mmlaw_utils.minipool.train --pool "$POOL_PATH" || die "stage 'rebuild' FAILED (python -m mmlaw_utils.minipool.train --pool $POOL_PATH)"
  printf 'rebuild\t%s\n' "$((SECONDS - start))" >> "$TIMINGS"
  RESCORE=1  # new weights make every cache stale
fi

# ---------------------------------------------------------------- 01 scoring
if stage_wanted scores; then
  start=$SECONDS
  if [[ "$IS_SYNTHETIC" == 1 ]]; then
    echo "==> [scores] generating synthetic score caches"
    force=(); [[ $RESCORE -eq 1 ]] && force=(--force)
    # a -p data_dir override moves the generated caches with the rest of the outputs
    for ((k = 0; k < ${#PARAMS[@]}; k += 3)); do
      [[ "${PARAMS[k+1]}" == data_dir ]] && force+=(--data-dir "${PARAMS[k+2]}")
    done
    "$VPY" -m mmlaw_utils.scoring.synthetic --profile "$PROFILE" ${force[@]+"${force[@]}"} || die "stage 'scores' FAILED (python -m mmlaw_utils.scoring.synthetic --profile $PROFILE)"
  else
    SCORE_NB="$(ls notebooks/01_*.ipynb 2>/dev/null | head -n 1 || true)"
    [[ -n "$SCORE_NB" ]] || die "stage 'scores': no notebooks/01_*.ipynb found"
    if [[ $RESCORE -eq 1 ]]; then
      MODELS="$("$VPY" -c 'import sys; from mmlaw_utils.pool import load_pool; print("\n".join(load_pool(sys.argv[1])["model"]))' "$POOL_PATH")" ||
        die "stage 'scores': cannot read the pool $POOL_PATH"
      EXTRA=(-p force True)
    else
      MODELS="$("$VPY" -m mmlaw_utils.scoring.run --profile "$PROFILE" --stale)" ||
        die "stage 'scores': 'python -m mmlaw_utils.scoring.run --profile $PROFILE --stale' failed"
      EXTRA=()
    fi
    if [[ -z "$MODELS" ]]; then
      echo "==> [scores] every score cache of profile '$PROFILE' matches its model and text set; nothing to score"
    else
      n_models=$(printf '%s\n' "$MODELS" | wc -l)
      echo "==> [scores] scoring $n_models model(s)"
      nb_name="$(basename "$SCORE_NB" .ipynb)"
      while IFS= read -r model; do
        [[ -n "$model" ]] || continue
        slug="$(printf '%s' "$model" | tr -c 'A-Za-z0-9._-' '-')"
        run_notebook "scores:$model" "$SCORE_NB" "$RUNS_DIR/${nb_name}__${slug}.ipynb" -p model "$model" ${EXTRA[@]+"${EXTRA[@]}"}
      done <<< "$MODELS"
    fi
  fi
  printf 'scores\t%s\n' "$((SECONDS - start))" >> "$TIMINGS"
fi

# ---------------------------------------------------------------- 02-07 analysis notebooks
for stage in "${STAGES[@]:1}"; do
  stage_wanted "$stage" || continue
  nb="notebooks/$stage.ipynb"
  if [[ ! -f "$nb" ]]; then
    [[ "$stage" == 07_beyond_pairs ]] && { echo "==> [$stage] notebooks/$stage.ipynb not present; skipped"; continue; }
    die "stage '$stage': $nb is missing"
  fi
  run_notebook "$stage" "$nb" "$RUNS_DIR/$stage.ipynb"
done

# ---------------------------------------------------------------- README results
if [[ "$README_MODE" == yes || ( "$README_MODE" == auto && "$PROFILE" == "$DEFAULT_PROFILE" ) ]]; then
  if stage_wanted 06_figures || [[ "$README_MODE" == yes ]]; then
    "$VPY" -m mmlaw_utils.report.tables readme --profile "$PROFILE" || die "could not update the README results region"
  fi
fi

printf 'total\t%s\n' "$((SECONDS - TOTAL_START))" >> "$TIMINGS"
echo "==> done in $((SECONDS - TOTAL_START)) s: Table 1 in ${DATA_DIR#$REPO_ROOT/}/table1.md, figures in ${FIGURES_DIR#$REPO_ROOT/}/, timings in runs/$PROFILE/timings.tsv"
