# Source this to use resrl from the repo: venv + colcon install space + loopback-only DDS.
# (On an apt ROS 2 install, source /opt/ros/<distro>/setup.bash and install/setup.bash instead.)
_RESRL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
_RESRL_VENV="${RESRL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/resrl/venv-py311}"
# shellcheck disable=SC1091
source "$_RESRL_VENV/bin/activate"
# Every package of the colcon install (isolated layout): resrl, and composition_interfaces where
# setup.sh built it from ../shared/ros2 (launch_ros needs it).
for _RESRL_PKG in composition_interfaces resrl; do
  _RESRL_INSTALL="$_RESRL_ROOT/.colcon/install/$_RESRL_PKG"
  [[ -d "$_RESRL_INSTALL" ]] || continue
  _RESRL_SITE="$(ls -d "$_RESRL_INSTALL"/lib/python3*/site-packages 2>/dev/null | head -1)"
  export AMENT_PREFIX_PATH="$_RESRL_INSTALL${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$_RESRL_INSTALL${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  [[ -n "$_RESRL_SITE" ]] && export PYTHONPATH="$_RESRL_SITE${PYTHONPATH:+:$PYTHONPATH}"
  export LD_LIBRARY_PATH="$_RESRL_INSTALL/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$_RESRL_VENV"
export CMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH:}$_RESRL_VENV"
export PYTHONPATH="$_RESRL_ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$_RESRL_ROOT/.colcon/install/resrl/lib/resrl:$PATH"
# DDS stays on this host unless the user says otherwise.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-osmesa}"
unset _RESRL_ROOT _RESRL_VENV _RESRL_INSTALL _RESRL_SITE _RESRL_PKG
