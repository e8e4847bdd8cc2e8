#!/usr/bin/env bash
# Start (or resume) the test-bed build in the background: WORKERS processes (default 2, one CPU thread each)
# train configs/pools/testbed.yaml cheapest model first, each model scored into data/testbed/scores as it
# finishes. Rerun after a kill or in a later session: finished models are skipped, a killed model resumes
# from its checkpoint. Logs: runs/testbed_build_w<N>.log. Weights: models/testbed/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS="${WORKERS:-2}"
PYTHON="${PYTHON:-.venv/bin/python}"
mkdir -p runs
for i in $(seq 1 "$WORKERS"); do
  PYTHONPATH="$PWD" nohup nice -n 5 "$PYTHON" -m mmlaw_utils minipool build --pool configs/pools/testbed.yaml \
    --score testbed >> "runs/testbed_build_w$i.log" 2>&1 &
  echo "worker $i: pid $! log runs/testbed_build_w$i.log"
  sleep 20  # the first worker takes the first model and stream locks
done
