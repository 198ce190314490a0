"""The node graphs resrl launches, as plain data.

`launch/*.launch.py` turn these specs into launch_ros ``Node`` actions (resrl.ros.launch_actions);
``resrl.launch_runner.GraphProcess`` starts the very same specs as plain processes for the graph
tests and benchmarks that need one log file per node. One description: what is tested is what
`ros2 launch` runs.
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
    # The operator console: it needs a terminal of its own, which a process under `ros2 launch`
    # does not get. With console:=terminal the launch prints the command to run it instead.
    console: bool = False
    # When this node exits (the learner after its session), the whole graph stops.
    ends_session: bool = False
    # Restarted when it dies (launch_ros `respawn`, the runner's supervise()). Every node but the
    # learner: the arbiter holds the robot while a peer is gone, and the peer picks up from the
    # topics when it is back. The learner resumes from run_dir instead (session resume).
    respawn: bool = False
    # A resrl_container spec (compose:=...): the nodes it hosts in its one process.
    members: List["NodeSpec"] = field(default_factory=list)
    # The process's executor (executor:=...; resrl.ros.node_main.EXECUTORS); "": the default.
    executor: str = ""


@dataclass
class LaunchArg:
    name: str
    default: str
    description: str


# Executables installed by CMakeLists.txt (scripts/nodes/*).
NODE_EXECUTABLES = (
    "sim_robot_node", "camera_depth_node", "pose_tracker_node", "vla_chunk_node",
    "residual_policy_node", "vgm_arbiter_node", "keyboard_node", "learner_node",
    "bag_recorder_node", "robot_bridge_node",
)
# Started only when asked for: the classifier with classifier:=<model> (it needs a trained model),
# the simulated Franka cell with sim_cell:=true.
OPTIONAL_EXECUTABLES = ("reward_classifier_node", "franka_sim_node")
# The name each node class gives itself (test_node_executables checks it against the running node).
# The container renames a member only where its launch name differs (-r <default>:__node:=<name>).
DEFAULT_NODE_NAMES = {
    "sim_robot_node": "sim_robot", "camera_depth_node": "camera_depth", "pose_tracker_node": "pose_tracker",
    "vla_chunk_node": "vla_chunk_provider", "residual_policy_node": "residual_policy",
    "vgm_arbiter_node": "vgm_arbiter", "keyboard_node": "keyboard", "learner_node": "replay_learner",
    "bag_recorder_node": "bag_recorder", "robot_bridge_node": "robot_bridge",
    "reward_classifier_node": "reward_classifier", "franka_sim_node": "franka_sim",
}
# Hosts several node classes in one process (resrl.ros.container): `--nodes camera_depth,pose_tracker`
# names them by their executable without `_node`.
CONTAINER_EXECUTABLE = "resrl_container"
COMPOSE_ARG = LaunchArg("compose", "", "nodes hosted in one resrl_container process, by launch name, comma "
                        "separated (e.g. camera_depth,pose_tracker,residual_policy,vgm_arbiter); "
                        "empty = one process per node")
EXECUTOR_ARG = LaunchArg("executor", "events", "every process's rclpy executor: events (rclpy.experimental."
                         "EventsExecutor; single_threaded where rclpy has none) | single_threaded | multi_threaded; "
                         "a node that needs callbacks in parallel (the robot bridge) runs multi_threaded")


def component_name(executable: str) -> str:
    return executable[:-len("_node")] if executable.endswith("_node") else executable


def composed(specs: List[NodeSpec], names: str) -> List[NodeSpec]:
    """``specs`` with the nodes named in ``names`` (comma separated launch names) replaced by one
    resrl_container spec, where the first of them was. Topics, parameters and names stay those of
    the separate processes. The container respawns only if every member would, and ends the
    session if any member does."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        return specs
    by_name = {s.name: s for s in specs}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"compose: no node {unknown} in this graph; its nodes: {sorted(by_name)}")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"compose: a node is named twice in {wanted}")
    members = [by_name[n] for n in wanted]
    consoles = [m.name for m in members if m.console]
    if consoles:
        raise ValueError(f"compose: {consoles} is the operator console: it needs a terminal (and its 'q' "
                         "shutdown) of its own")
    # Every parameter file reaches every node of a process: a '/**' section meant for one member
    # would reach the others, so members must load the same files.
    if any(m.params != members[0].params for m in members):
        raise ValueError(f"compose: {wanted} load different parameter files; compose nodes that share them")
    container = NodeSpec(CONTAINER_EXECUTABLE, CONTAINER_EXECUTABLE, list(members[0].params),
                         respawn=all(m.respawn for m in members), ends_session=any(m.ends_session for m in members),
                         members=members)
    first = min(specs.index(m) for m in members)
    rest = [s for s in specs if s.name not in wanted]
    return rest[:first] + [container] + rest[first:]

SIM_ARGS = [
    LaunchArg("task", "pick_place", "sim task: pick_place | pick_lift"),
    LaunchArg("mode", "vgm", "arbiter mode: vgm | static | base_only | residual_only"),
    LaunchArg("obs_mode", "object", "residual observation: object (poses) | image (RGB + relative depth)"),
    LaunchArg("seed", "0", "session seed"),
    LaunchArg("run_dir", "runs/latest", "run folder: replay, checkpoints, metrics, bag"),
    LaunchArg("session", "auto", "learner session: auto (demos -> warm-up -> online -> eval) | manual (keyboard)"),
    LaunchArg("keyboard", "false", "add the operator console (keyboard_node) to the graph"),
    LaunchArg("console", "terminal", "operator console: terminal (you run it in a second terminal; the launch prints "
              "the command) | launch (started here, without a terminal: takeover devices only, no keys)"),
    LaunchArg("use_rviz", "false", "start RViz with rviz/resrl.rviz"),
    LaunchArg("extra_params", "", "absolute path of a parameter YAML loaded after config/sim_vgm.yaml "
              "(benchmarks: ablations, session budgets)"),
    COMPOSE_ARG,
    EXECUTOR_ARG,
]


def _truthy(value) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def sim_graph(task="pick_place", mode="vgm", obs_mode="object", seed="0", run_dir="runs/latest",
              session="auto", keyboard="false", use_rviz="false", extra_params="", console="terminal",
              compose="", executor="") -> List[NodeSpec]:
    """The seven resrl nodes plus the simulated Franka, on simulated time."""
    common = ["config/sim_vgm.yaml"]   # the task itself: config/tasks/<task>.yaml via resrl.sim.load_task_config
    if extra_params:
        common.append(extra_params)    # absolute: os.path.join(share, abs) keeps it as is
    shared = {"use_sim_time": True, "task": task, "obs_mode": obs_mode, "seed": int(seed)}
    specs = [
        NodeSpec("sim_robot_node", "sim_robot", common, dict(shared)),
        NodeSpec("camera_depth_node", "camera_depth", common, dict(shared)),
        NodeSpec("pose_tracker_node", "pose_tracker", common, dict(shared)),
        NodeSpec("vla_chunk_node", "vla_chunk_provider", common, dict(shared)),
        NodeSpec("residual_policy_node", "residual_policy", common, dict(shared)),
        # One name for the arbiter mode, vgm.mode (resrl.node_config): the learner reads it too.
        NodeSpec("vgm_arbiter_node", "vgm_arbiter", common, {**shared, "vgm.mode": mode}),
        NodeSpec("learner_node", "replay_learner", common,
                 {**shared, "run_dir": run_dir, "session": session, "vgm.mode": mode}, ends_session=True),
        # The session bag, <run_dir>/bag (docs/data.md): what offline training and export replay.
        NodeSpec("bag_recorder_node", "bag_recorder", common, {**shared, "run_dir": run_dir}),
    ]
    if _truthy(keyboard) or session == "manual":
        specs.append(NodeSpec("keyboard_node", "keyboard", common, dict(shared), console=True))
    return _hosted(specs, compose, executor)


def _hosted(specs: List[NodeSpec], compose: str, executor: str) -> List[NodeSpec]:
    """Every node but the learner respawns; the ``compose`` group shares one process; every
    process spins ``executor``."""
    for spec in specs:
        spec.respawn = spec.executable != "learner_node"
    specs = composed(specs, compose)
    for spec in specs:
        spec.executor = "" if executor == EXECUTOR_ARG.default else executor
    return specs


def _real_args(robot: str) -> List[LaunchArg]:
    args = [
        LaunchArg("robot_ip", "", "robot IP: used only with start_driver:=true (else start the driver first)"),
        LaunchArg("start_driver", "false", "also include the driver's launch file (franka_bringup / ur_robot_driver)"),
        LaunchArg("task", "pick_place", "task config name (config/tasks/<task>.yaml)"),
        LaunchArg("prompt", "pick up the cube and place it on the target", "language instruction for the VLA"),
        LaunchArg("vla_backend", "openpi", "VLA backend: openpi | lerobot | replay"),
        LaunchArg("vla_host", "127.0.0.1", "openpi policy server host"),
        LaunchArg("vla_port", "8000", "openpi policy server port"),
        LaunchArg("checkpoint", "", "LeRobot policy checkpoint directory (vla_backend:=lerobot)"),
        LaunchArg("mode", "vgm", "arbiter mode: vgm | static | base_only | residual_only"),
        LaunchArg("obs_mode", "object", "residual observation: object (tracked poses) | image (RGB + relative depth)"),
        LaunchArg("run_dir", "runs/latest", "run folder: replay, checkpoints, metrics, bag"),
        LaunchArg("session", "manual", "learner session: manual (keyboard rewards/resets) | auto"),
        LaunchArg("use_rviz", "false", "start RViz with rviz/resrl.rviz"),
        LaunchArg("console", "terminal", "operator console: terminal (run `ros2 run resrl keyboard_node` in a second "
                  "terminal; the launch prints the exact command) | launch (started here, takeover devices only)"),
        LaunchArg("extra_params", "", f"absolute path of a parameter YAML loaded after config/{robot}_vgm.yaml"),
        LaunchArg("classifier", "", "success classifier model (python -m resrl.reward_classifier): a second reward "
                  "source next to the keys; empty = keys only"),
        COMPOSE_ARG,
        EXECUTOR_ARG,
    ]
    if robot == "ur":
        args.insert(2, LaunchArg("ur_type", "ur5e", "UR model for the driver (start_driver:=true)"))
    if robot == "franka":
        args.insert(2, LaunchArg("sim_cell", "false", "true: a simulated Franka cell (franka_sim_node, MuJoCo) stands "
                                 "behind the franka_ros2 / FoundationPose topics and actions instead of a real arm: "
                                 "rehearse the session without the robot"))
    return args


# resrl's nodes read the robot state from the bridge's per-control-period snapshot, not from
# the driver's raw (up to 1 kHz) stream.
ROBOT_STATE_REMAPS = [(topics.EE_POSE, topics.ROBOT_EE_POSE), (topics.GRIPPER_STATE, topics.ROBOT_GRIPPER_STATE)]


def real_graph(robot: str, task="pick_place", prompt="", vla_backend="openpi", vla_host="127.0.0.1",
               vla_port="8000", checkpoint="", mode="vgm", obs_mode="object", run_dir="runs/latest",
               session="manual", extra_params="", classifier="", compose="", sim_cell="false", executor="",
               **_driver_args) -> List[NodeSpec]:
    """The robot bridge + the resrl nodes on wall-clock time (driver, camera and VLA server run
    outside: docs/robots.md; or, with ``sim_cell``, the simulated cell). ``_driver_args``
    (robot_ip, start_driver, ur_type, use_rviz, console) are for the launch file's own actions."""
    common = [f"config/{robot}_vgm.yaml"] + ([extra_params] if extra_params else [])
    shared = {"use_sim_time": False, "task": task, "obs_mode": obs_mode}
    vla = {**shared, "vla.backend": vla_backend, "vla.openpi.host": vla_host, "vla.openpi.port": int(vla_port),
           "vla.checkpoint_dir": checkpoint, "vla.prompt": prompt}
    remaps = list(ROBOT_STATE_REMAPS)
    specs = [
        NodeSpec("robot_bridge_node", "robot_bridge", common, {"use_sim_time": False, "robot": robot}),
        NodeSpec("camera_depth_node", "camera_depth", common, dict(shared)),
        NodeSpec("pose_tracker_node", "pose_tracker", common, dict(shared)),
        NodeSpec("vla_chunk_node", "vla_chunk_provider", common, vla, remaps),
        NodeSpec("residual_policy_node", "residual_policy", common, dict(shared), remaps),
        NodeSpec("vgm_arbiter_node", "vgm_arbiter", common, {**shared, "vgm.mode": mode}, remaps),
        NodeSpec("learner_node", "replay_learner", common,
                 {**shared, "run_dir": run_dir, "session": session, "vgm.mode": mode}, remaps, ends_session=True),
        NodeSpec("bag_recorder_node", "bag_recorder", common, {**shared, "run_dir": run_dir}, remaps),
        NodeSpec("keyboard_node", "keyboard", common, dict(shared), remaps, console=True),
    ]
    if classifier:
        specs.append(NodeSpec("reward_classifier_node", "reward_classifier", common,
                              {**shared, "classifier.model_path": classifier}, remaps))
    if _truthy(sim_cell):
        specs = _on_sim_cell(robot, specs, common, task, obs_mode)
    return _hosted(specs, compose, executor)


def _on_sim_cell(robot: str, specs: List[NodeSpec], common: List[str], task: str, obs_mode: str) -> List[NodeSpec]:
    """The simulated cell first, and the pose tracker calibrated to its camera (the hand-eye
    extrinsic a real cell sets in its YAML)."""
    if robot != "franka":
        raise ValueError(f"sim_cell: only the franka graph has a simulated cell, not {robot}")
    from resrl.sim.franka_cell import scene_camera_pose   # MuJoCo: only when asked for
    for spec in specs:
        if spec.name == "pose_tracker":
            spec.overrides["tracker.detection.camera_pose_in_base"] = list(scene_camera_pose(task))
    cell = NodeSpec("franka_sim_node", "franka_sim", common, {"use_sim_time": False, "task": task,
                                                              "render": obs_mode == "image"})
    return [cell] + specs


def franka_graph(**args) -> List[NodeSpec]:
    return real_graph("franka", **args)


def ur_graph(**args) -> List[NodeSpec]:
    return real_graph("ur", **args)


GRAPHS: Dict[str, Tuple[Callable[..., List[NodeSpec]], List[LaunchArg]]] = {
    "sim_vgm": (sim_graph, SIM_ARGS),
    "franka_vgm": (franka_graph, _real_args("franka")),
    "ur_vgm": (ur_graph, _real_args("ur")),
}


def default_args(graph: str) -> Dict[str, str]:
    return {a.name: a.default for a in GRAPHS[graph][1]}


__all__ = ["NodeSpec", "LaunchArg", "GRAPHS", "NODE_EXECUTABLES", "CONTAINER_EXECUTABLE", "composed", "sim_graph",
           "default_args", "topics"]
