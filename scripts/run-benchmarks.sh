#!/usr/bin/env bash
# Set up the environment if needed, then run every benchmark and write one report
# (benchmarks/results.md unless --out is given). Arguments go to the runner:
# --quick, --only codegen,gui,training, --out PATH, --timeout SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
export QT_QPA_PLATFORM=offscreen KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python -m benchmarks "$@"
