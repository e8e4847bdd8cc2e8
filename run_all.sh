#!/usr/bin/env bash
# Bootstrap: set up .venv and the Jupyter kernel, then hand over to `python -m mmlaw_utils run`
# (stages, profiles and papermill live in mmlaw_utils/pipeline.py). `./run_all.sh --help` says how.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_ROOT"
VENV="$REPO_ROOT/.venv" VPY="$REPO_ROOT/.venv/bin/python" STAMP="$REPO_ROOT/.venv/.mmlaw-setup-stamp" KERNEL_NAME="mmlaw"
TORCH_SPEC="torch==2.13.0"  # installed first, exactly this spec (see pyproject.toml)

usage() {
  cat <<'EOF'
Usage: ./run_all.sh [--profile NAME] [-p KEY VALUE]... [--rescore] [--rebuild] [--from STAGE] [--to STAGE]
                    [--update-readme | --no-readme]        (= .venv/bin/python -m mmlaw_utils run ...)
       ./run_all.sh --setup-only                           set up .venv and the kernel, then stop
       ./run_all.sh --test [PYTEST ARGS...]                set up, then .venv/bin/python -m pytest ARGS

Set-up (every call): creates .venv with python3.11 (or $MMLAW_PYTHON), installs torch==2.13.0 first, then
`pip install -e ".[score,build,test]"` (pins: pyproject.toml; skipped while its hash matches .venv/.mmlaw-setup-stamp),
registers the Jupyter kernel "mmlaw". MMLAW_TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu)
takes torch from another index.
EOF
}

die() { echo "run_all.sh: $*" >&2; exit 1; }

find_python() {
  local candidate
  for candidate in "${MMLAW_PYTHON:-}" python3.11 python3 python; do
    [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null && { echo "$candidate"; return 0; }
  done
  return 1
}

setup_hash() {  # the stamp covers the pins (pyproject.toml) and the torch spec installed before them
  "$VPY" -c 'import hashlib, sys; d = hashlib.sha256(open("pyproject.toml", "rb").read()); d.update(sys.argv[1].encode()); print(d.hexdigest())' "$TORCH_SPEC"
}

setup_venv() {
  if [[ ! -x "$VPY" ]]; then
    local base
    base="$(find_python)" || die "Python 3.11 not found (tried \$MMLAW_PYTHON, python3.11, python3, python); install it or set MMLAW_PYTHON"
    echo "==> creating .venv with $base"
    "$base" -m venv "$VENV"
  fi
  "$VPY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die ".venv is not Python 3.11 ($("$VPY" --version 2>&1)); remove .venv and rerun"
  local want have=""
  want="$(setup_hash)"
  [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
  if [[ "$want" == "$have" ]]; then
    echo "==> .venv is up to date (pyproject.toml unchanged since the last install)"
  elif "$VPY" -c 'from mmlaw_utils.envcheck import pins_satisfied; raise SystemExit(not pins_satisfied())' 2>/dev/null; then
    echo "==> .venv already holds every pin of pyproject.toml; recording the stamp"
    echo "$want" > "$STAMP"
  else
    echo "==> installing dependencies into .venv (pins: pyproject.toml)"
    "$VPY" -m pip install "$TORCH_SPEC" ${MMLAW_TORCH_INDEX_URL:+--index-url "$MMLAW_TORCH_INDEX_URL"}
    "$VPY" -m pip install -e ".[score,build,test]"
    echo "$want" > "$STAMP"
  fi
  if [[ ! -f "$VENV/share/jupyter/kernels/$KERNEL_NAME/kernel.json" ]]; then
    echo "==> registering the Jupyter kernel '$KERNEL_NAME'"
    # and Lab saves the tracked notebooks/*.ipynb without outputs (mmlaw_utils/labhook.py)
    "$VPY" -m ipykernel install --sys-prefix --name "$KERNEL_NAME" --display-name "Python (mmlaw)" >/dev/null \
      && "$VPY" -m mmlaw_utils lab-hook
  fi
}

MODE=run RUN_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) MODE=help; shift ;;
    --setup-only) MODE=setup; shift ;;
    --test) MODE=test; shift; break ;;  # every later argument goes to pytest
    -p|--parameters) [[ $# -ge 3 ]] || die "$1 needs KEY VALUE"; RUN_ARGS+=("$1" "$2" "$3"); shift 3 ;;
    *) RUN_ARGS+=("$1"); shift ;;
  esac
done
if [[ $MODE == help ]]; then  # the run options come from the CLI itself (any Python that can import it)
  usage; echo
  py="$VPY"; [[ -x "$py" ]] || py="$(find_python)" || py=python3
  "$py" -m mmlaw_utils run --help 2>/dev/null || echo "Run ./run_all.sh --setup-only, then ./run_all.sh --help for every option."
  exit 0
fi
setup_venv
export MPLBACKEND=Agg PYTHONUNBUFFERED=1  # headless: figures are written to files, never shown
case $MODE in
  setup) echo "==> set-up done" ;;
  test) echo "==> .venv/bin/python -m pytest $*"; exec "$VPY" -m pytest "$@" ;;
  run) exec "$VPY" -m mmlaw_utils run ${RUN_ARGS[@]+"${RUN_ARGS[@]}"} ;;
esac
