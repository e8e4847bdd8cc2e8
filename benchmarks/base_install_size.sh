#!/usr/bin/env bash
# Installed size of a fresh base install (`pip install -e .`, what environment.yml and Binder install):
# a new python3.11 venv in a temporary folder, this checkout installed into it, then its size on disk, its
# package count and whether any torch / nvidia-* / transformers / datasets package came with it.
# Then, in that venv, papermill executes notebooks 02-07 and 09 and the explorer on profile minipool into the
# temporary folder (the committed score caches copied there, nothing written into the repository) and compares
# the Table 1 it writes with the committed data/minipool/table1.csv.
# Usage (from the repository root): nice -n 10 bash benchmarks/base_install_size.sh [VENV_DIR]
# Prints a markdown block for benchmarks/README.md (section "Base install"); the venv is removed unless given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${1:-$(mktemp -d)/venv}"
keep="${1:+yes}"
python3.11 -m venv "$venv"
start=$(date +%s)
"$venv/bin/python" -m pip install -q --no-cache-dir -e . >/dev/null 2>&1
seconds=$(( $(date +%s) - start ))
bytes=$(du -sb "$venv" | cut -f1)
packages=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -vc '^mmlaw')
heavy=$("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(torch|nvidia-|transformers|datasets|tokenizers|accelerate|triton)' | tr '\n' ' ' || true)
work="$(mktemp -d)"
mkdir -p "$work/data" "$work/figures"
cp -r data/minipool/scores "$work/data/scores"
ran=()
for nb in 02_loss_matrix 03_oracle_pairs 04_frontiers 05_fit_scaling_laws 06_figures 07_beyond_pairs 09_diversity_arms explore; do
  params=(-p profile minipool)
  case $nb in
    explore) ;;
    06_figures|07_beyond_pairs|09_diversity_arms) params+=(-p data_dir "$work/data" -p figures_dir "$work/figures") ;;
    *) params+=(-p data_dir "$work/data") ;;
  esac
  nb_start=$(date +%s)
  if MPLBACKEND=Agg "$venv/bin/python" -m papermill --no-progress-bar "notebooks/$nb.ipynb" "$work/$nb.ipynb" "${params[@]}" \
       >"$work/$nb.log" 2>&1; then
    ran+=("$nb $(( $(date +%s) - nb_start )) s")
  else
    ran+=("$nb FAILED (see $work/$nb.log)")
  fi
done
if cmp -s "$work/data/table1.csv" data/minipool/table1.csv; then table1="byte for byte the committed one"; else table1="differs from the committed one"; fi
largest=$(du -s "$venv"/lib/python3.11/site-packages/* | sort -rn | head -5 | awk '{printf "%s %.0f MiB, ", $2, $1/1024}' | sed "s|$venv/lib/python3.11/site-packages/||g; s/, $//")
cat <<MD
## Base install

Command: \`nice -n 10 bash benchmarks/base_install_size.sh\` (python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m), pip from PyPI, no cache; install took ${seconds} s on a shared machine).

| what | measured |
|---|---|
| installed size of the fresh base venv (\`du -sb\`) | $(python3 -c "print(f'{$bytes / 1e9:.2f} GB ({$bytes / 2**20:.0f} MiB)')") (goal: under 1 GB) |
| packages besides mmlaw | ${packages} |
| torch, nvidia-*, transformers, datasets, tokenizers, accelerate, triton | ${heavy:-none} |
| largest packages | ${largest} |
| notebooks executed by papermill in this venv (profile minipool, outputs in a temporary folder) | $(IFS=';'; echo "${ran[*]}" | sed 's/;/, /g') |
| the Table 1 they write (\`table1.csv\`) | ${table1} |
MD
[[ -n "$keep" ]] || rm -rf "$(dirname "$venv")"
[[ "${ran[*]}" == *FAILED* ]] || rm -rf "$work"  # a failed notebook's log stays for reading
