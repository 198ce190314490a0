"""The node graphs resrl launches, as plain data.

`launch/*.launch.py` turn these specs into launch_ros ``Node`` actions; where launch_ros is not
installed (PyPI-only ROS), ``python -m resrl.launch_runner`` starts the very same specs as
processes. One description, two starters: what is tested here is what `ros2 launch` runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

from resrl import topics


@dataclass
class NodeSpec:
    executable: str                       # installed to lib/resrl/
    name: str
    params: List[str] = field(default_factory=list)       # YAML files relative to share/resrl/
    overrides: Dict[str, object] = field(default_factory=dict)
    remappings: List[Tuple[str, str]] = field(default_factory=list)


@dataclass
class LaunchArg:
    name: str
    default: str
    description: str


# Executables installed by CMakeLists.txt (scripts/nodes/*).
NODE_EXECUTABLES = (
    "sim_robot_node", "camera_depth_node", "pose_tracker_node", "vla_chunk_node",
    "residual_policy_node", "vgm_arbiter_node", "keyboard_node", "learner_node",
)

SIM_ARGS = [
    LaunchArg("task", "pick_place", "sim task: pick_place | pick_lift"),
    LaunchArg("mode", "vgm", "arbiter mode: vgm | static | base_only | residual_only"),
    LaunchArg("obs_mode", "object", "residual observation: object (poses) | image (RGB + relative depth)"),
    LaunchArg("seed", "0", "session seed"),
    LaunchArg("run_dir", "runs/latest", "run folder: replay, checkpoints, metrics, bag"),
    LaunchArg("session", "auto", "learner session: auto (demos -> warm-up -> online -> eval) | manual (keyboard)"),
    LaunchArg("keyboard", "false", "start the keyboard reward/intervention terminal UI"),
    LaunchArg("use_rviz", "false", "start RViz with rviz/resrl.rviz"),
]


def _truthy(value) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def sim_graph(task="pick_place", mode="vgm", obs_mode="object", seed="0", run_dir="runs/latest",
              session="auto", keyboard="false", use_rviz="false") -> List[NodeSpec]:
    """The seven resrl nodes plus the simulated Franka, on simulated time."""
    common = ["config/sim_vgm.yaml"]   # the task itself: config/tasks/<task>.yaml via resrl.sim.load_task_config
    shared = {"use_sim_time": True, "task": task, "obs_mode": obs_mode, "seed": int(seed)}
    specs = [
        NodeSpec("sim_robot_node", "sim_robot", common, dict(shared)),
        NodeSpec("camera_depth_node", "camera_depth", common, dict(shared)),
        NodeSpec("pose_tracker_node", "pose_tracker", common, dict(shared)),
        NodeSpec("vla_chunk_node", "vla_chunk_provider", common, dict(shared)),
        NodeSpec("residual_policy_node", "residual_policy", common, dict(shared)),
        NodeSpec("vgm_arbiter_node", "vgm_arbiter", common, {**shared, "mode": mode}),
        NodeSpec("learner_node", "replay_learner", common,
                 {**shared, "run_dir": run_dir, "session": session, "mode": mode}),
    ]
    if _truthy(keyboard) or session == "manual":
        specs.append(NodeSpec("keyboard_node", "keyboard", common, dict(shared)))
    return specs


GRAPHS: Dict[str, Tuple[Callable[..., List[NodeSpec]], List[LaunchArg]]] = {
    "sim_vgm": (sim_graph, SIM_ARGS),
}


def default_args(graph: str) -> Dict[str, str]:
    return {a.name: a.default for a in GRAPHS[graph][1]}


__all__ = ["NodeSpec", "LaunchArg", "GRAPHS", "NODE_EXECUTABLES", "sim_graph", "default_args", "topics"]
