#!/usr/bin/env bash
# Set up the environment if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
export QT_QPA_PLATFORM=offscreen KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python -m pytest "$@"
