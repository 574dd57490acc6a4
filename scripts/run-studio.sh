#!/usr/bin/env bash
# Set up the environment if needed, then launch the studio (extra arguments go to `studio`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-env.sh
exec .venv/bin/studio "$@"
