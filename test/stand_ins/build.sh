#!/usr/bin/env bash
# Build every interface package under test/stand_ins/ (stand-ins for driver message packages
# that are not on PyPI: franka_msgs, control_msgs, ur_dashboard_msgs, ...) into
# .colcon/stand_ins/install (merged). Idempotent: a fingerprint over the package files makes a
# second call return at once. test/stand_ins/COLCON_IGNORE keeps the main build away from them.
# Usage: test/stand_ins/build.sh [--force]   (after `source scripts/env.sh`)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WS="$ROOT/.colcon/stand_ins"
STAMP="$WS/.stamp"
VENV="${RESRL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/resrl/venv-py311}"

die() { echo "stand-ins build: $*" >&2; exit 1; }
[[ -x "$VENV/bin/python" ]] || die "no venv at $VENV: run scripts/setup.sh first"

mapfile -t PKGS < <(find "$HERE" -mindepth 2 -maxdepth 2 -name package.xml -printf '%h\n' | sort)
[[ ${#PKGS[@]} -gt 0 ]] || die "no packages under $HERE"

fingerprint() {
  { echo "${PKGS[*]}"; find "${PKGS[@]}" -type f -not -name '*.pyc' -print0 | sort -z | xargs -0 cat; } \
    | sha256sum | cut -d' ' -f1
}

if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]]; then
  exit 0
fi

# shellcheck disable=SC1091
source "$VENV/bin/activate"
export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV" ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
mkdir -p "$WS"
rm -f "$STAMP"
# --paths names each package directory: the COLCON_IGNORE one level up only hides them from
# the main build's recursive discovery.
colcon --log-base "$WS/log" build --paths "${PKGS[@]}" --build-base "$WS/build" \
  --install-base "$WS/install" --merge-install \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF > "$WS/build.log" 2>&1 \
  || { tail -40 "$WS/build.log" >&2; die "colcon build failed; full log: $WS/build.log"; }
fingerprint > "$STAMP"
echo "stand-ins build: built $(basename -a "${PKGS[@]}" | tr '\n' ' ')into $WS/install"
