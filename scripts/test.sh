#!/usr/bin/env bash
# The test command (README, .ci/run): set up when needed, then run the whole suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
cd "$ROOT"
exec python -m pytest test -q -p no:cacheprovider --timeout 600 --durations=30 "$@"
