#!/usr/bin/env bash
# The main job: set up when needed, then run a whole simulated learning session through the
# ROS 2 nodes (demos -> Cal-QL warm-up -> online VGM until 20/20 evaluation successes or the
# step budget). Extra arguments are launch arguments, e.g. mode:=static obs_mode:=image seed:=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 50) + 1 ))}"
cd "$ROOT"
RUN_DIR="runs/$(date +%Y%m%d-%H%M%S)"
# Real launch_ros (setup.sh installs it); the launch stops when the learner has finished the session.
exec ros2 launch resrl sim_vgm.launch.py run_dir:="$RUN_DIR" "$@"
