"""The launch files through the real launch / launch_ros (scripts/setup.sh installs them from
../shared/ros2 where no apt ROS 2 is sourced): their descriptions resolve to installed
executables and existing parameter files, `ros2 launch resrl sim_vgm.launch.py` runs a short
session and stops by itself when the learner is done, and `ros2 launch resrl franka_vgm.launch.py`
without the driver packages says in one line what to install and stops the graph."""
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from resrl.launch_graph import GRAPHS, NODE_EXECUTABLES, default_args

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def test_there_are_launch_files():
    for name in ("sim_vgm", "franka_vgm", "ur_vgm"):
        assert (ROOT / "launch" / f"{name}.launch.py") in LAUNCH_FILES


def _resolve(path: Path, **args):
    """The real launch_ros actions the launch file produces for ``args`` (defaults otherwise)."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.actions import Node
    desc = PythonLaunchDescriptionSource(str(path)).get_launch_description(LaunchContext())
    context = LaunchContext()
    for ent in desc.entities:
        if isinstance(ent, DeclareLaunchArgument):
            context.launch_configurations[ent.name] = args.get(ent.name, "".join(
                s.perform(context) for s in ent.default_value))
    nodes, logs = [], []
    for ent in desc.entities:
        if isinstance(ent, OpaqueFunction):
            for action in ent.execute(context) or []:
                if isinstance(action, Node):
                    nodes.append(action)
                elif isinstance(action, LogInfo):
                    logs.append("".join(s.perform(context) for s in action.msg))
    return nodes, logs


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_resolves_to_installed_executables_and_configs(path):
    nodes, logs = _resolve(path)
    graph = path.name.split(".")[0]
    specs = GRAPHS[graph][0](**default_args(graph))
    resrl_nodes = [n for n in nodes if n.node_package == "resrl"]
    # every spec is a launch_ros Node, except the operator console, which gets its own terminal
    assert sorted(n.node_executable for n in resrl_nodes) == sorted(s.executable for s in specs if not s.console)
    for node in resrl_nodes:
        assert node.node_executable in NODE_EXECUTABLES
        assert (ROOT / "scripts" / "nodes" / node.node_executable).is_file()
    for spec in specs:
        for param in spec.params:
            assert (ROOT / param).is_file(), f"{spec.name}: missing parameter file {param}"
    if any(s.console for s in specs):
        assert any("ros2 run resrl keyboard_node --ros-args --params-file" in line for line in logs), logs


def _effective_parameters(node, name: str) -> dict:
    """What rcl itself resolves for node ``name`` from the parameter files the launch_ros Node
    passes it (its YAML files, then the launch arguments' overrides)."""
    import rclpy
    from launch import LaunchContext
    node._perform_substitutions(LaunchContext())
    files = [path for path, is_file in node._Node__expanded_parameter_arguments if is_file]
    context = rclpy.Context()
    rclpy.init(args=["--ros-args"] + [a for f in files for a in ("--params-file", f)], context=context)
    try:
        probe = rclpy.create_node(name, context=context, automatically_declare_parameters_from_overrides=True)
        values = {p.name: p.value for p in probe._parameters.values()}
        probe.destroy_node()
        return values
    finally:
        rclpy.shutdown(context=context)


def test_launch_arguments_win_over_the_yamls_node_sections():
    """config/franka_vgm.yaml sets vla.backend / vla.openpi.* in the VLA node's own section; the
    launch arguments must still reach the node (rcl applies a node's section after "/**" entries)."""
    nodes, _ = _resolve(ROOT / "launch" / "franka_vgm.launch.py", vla_backend="lerobot", checkpoint="/ckpt",
                        vla_host="10.0.0.7", vla_port="8123", mode="static")
    by_exe = {n.node_executable: n for n in nodes}
    vla = _effective_parameters(by_exe["vla_chunk_node"], "vla_chunk_provider")
    assert (vla["vla.backend"], vla["vla.checkpoint_dir"], vla["vla.openpi.host"], vla["vla.openpi.port"]) == \
        ("lerobot", "/ckpt", "10.0.0.7", 8123)
    assert vla["vla.horizon"] == 10   # and the YAML's other keys still arrive
    assert _effective_parameters(by_exe["vgm_arbiter_node"], "vgm_arbiter")["vgm.mode"] == "static"


def test_console_can_be_started_by_the_launch_and_the_classifier_is_optional():
    franka = ROOT / "launch" / "franka_vgm.launch.py"
    nodes, logs = _resolve(franka, console="launch", classifier="/tmp/model.pt")
    exes = {n.node_executable for n in nodes}
    assert {"keyboard_node", "reward_classifier_node"} <= exes and not logs


@pytest.mark.parametrize("graph,names", [("sim_vgm", "camera_depth,pose_tracker,residual_policy,vgm_arbiter"),
                                         ("franka_vgm", "robot_bridge,camera_depth,pose_tracker,residual_policy,vgm_arbiter")])
def test_compose_launches_one_container_with_the_named_nodes(graph, names):
    from launch import LaunchContext
    from launch.utilities import perform_substitutions
    nodes, _ = _resolve(ROOT / "launch" / f"{graph}.launch.py", compose=names)
    containers = [n for n in nodes if n.node_executable == "resrl_container"]
    assert len(containers) == 1, [n.node_executable for n in nodes]
    cmd = [perform_substitutions(LaunchContext(), part) for part in containers[0].cmd[1:]]
    assert cmd[:2] == ["--nodes", names] and "__node:=" not in " ".join(cmd), cmd   # no process-wide rename
    separate = {s.executable for s in GRAPHS[graph][0](**default_args(graph)) if not s.console}
    hosted = {f"{n}_node" for n in names.split(",")}
    assert {n.node_executable for n in nodes if n.node_package == "resrl"} == separate - hosted | {"resrl_container"}


def test_graph_has_the_seven_nodes_plus_sim():
    specs = GRAPHS["sim_vgm"][0](**default_args("sim_vgm"))
    names = {s.executable for s in specs}
    assert {"sim_robot_node", "camera_depth_node", "pose_tracker_node", "vla_chunk_node",
            "residual_policy_node", "vgm_arbiter_node", "learner_node"} <= names
    keyboard = GRAPHS["sim_vgm"][0](**{**default_args("sim_vgm"), "keyboard": "true"})
    assert "keyboard_node" in {s.executable for s in keyboard}


@pytest.mark.parametrize("graph,robot", [("franka_vgm", "franka"), ("ur_vgm", "ur")])
def test_real_robot_graph_bridge_and_state_remaps(graph, robot):
    from resrl import topics
    specs = GRAPHS[graph][0](**default_args(graph))
    by_exe = {s.executable: s for s in specs}
    assert {"robot_bridge_node", "camera_depth_node", "pose_tracker_node", "vla_chunk_node", "residual_policy_node",
            "vgm_arbiter_node", "learner_node", "keyboard_node"} <= set(by_exe)
    assert "sim_robot_node" not in by_exe
    assert by_exe["robot_bridge_node"].overrides["robot"] == robot
    assert all(s.overrides.get("use_sim_time") is False for s in specs)
    # Every node that reads the robot state reads the bridge's snapshot, not the raw driver stream.
    for exe in ("vla_chunk_node", "residual_policy_node", "vgm_arbiter_node", "learner_node", "keyboard_node"):
        remaps = dict(by_exe[exe].remappings)
        assert remaps[topics.EE_POSE] == topics.ROBOT_EE_POSE
        assert remaps[topics.GRIPPER_STATE] == topics.ROBOT_GRIPPER_STATE
    args = {**default_args(graph), "vla_backend": "lerobot", "checkpoint": "/ckpt", "vla_port": "9000"}
    vla = {s.executable: s for s in GRAPHS[graph][0](**args)}["vla_chunk_node"].overrides
    assert (vla["vla.backend"], vla["vla.checkpoint_dir"], vla["vla.openpi.port"]) == ("lerobot", "/ckpt", 9000)


@pytest.mark.parametrize("robot", ["franka", "ur"])
def test_real_robot_yaml_is_a_valid_bridge_config(robot):
    from resrl.configs import from_dict
    from resrl.robots import franka, ur
    from resrl.robots.common import BridgeConfig
    data = yaml.safe_load((ROOT / "config" / f"{robot}_vgm.yaml").read_text())
    params = data["robot_bridge"]["ros__parameters"]
    assert params["robot"] == robot
    bridge = from_dict(BridgeConfig, params["bridge"], "robot_bridge.bridge")   # validates home inside the box
    robot_cfg = from_dict({"franka": franka.FrankaConfig, "ur": ur.URConfig}[robot], params[robot], robot)
    assert bridge.max_linear_speed <= 0.25 and bridge.max_angular_speed <= 1.0
    shared = data["/**"]["ros__parameters"]
    assert 15.0 <= shared["control_rate_hz"] <= 30.0 and shared["reliable_sensors"] is False
    # The arbiter's box and the bridge's box are in the same frame and the bridge's is not larger.
    arbiter_box = shared["safety"]["workspace"]
    assert all(b >= a for a, b in zip(arbiter_box["min_xyz"], bridge.workspace.min_xyz))
    assert all(b <= a for a, b in zip(arbiter_box["max_xyz"], bridge.workspace.max_xyz))
    if robot == "ur":
        assert robot_cfg.command_mode in ur.COMMAND_MODES


# --- `ros2 launch` itself ---------------------------------------------------------------------
def ros2_launch(*args, cwd, env=None):
    return subprocess.Popen(["ros2", "launch", "resrl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=cwd, env=env, start_new_session=True)


def finish(proc, timeout):
    """The launch's output once it has exited by itself; SIGINT (then kill) if it does not."""
    try:
        out, _ = proc.communicate(timeout=timeout)
        return out, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        return out, True


@pytest.mark.timeout(600)
def test_ros2_launch_sim_session_runs_and_stops_when_the_learner_is_done(tmp_path):
    extra = tmp_path / "short_session.yaml"
    extra.write_text(yaml.safe_dump({"replay_learner": {"ros__parameters": {
        "session_plan.num_demos": 1, "session_plan.max_env_steps": 40, "session_plan.eval_every": 1000,
        "learner.warmup_steps": 10, "learner.batch_size": 16, "learner.learning_starts": 16}}}))
    proc = ros2_launch("sim_vgm.launch.py", f"run_dir:={tmp_path / 'run'}", f"extra_params:={extra}", cwd=tmp_path)
    out, timed_out = finish(proc, 480)
    assert not timed_out, f"the launch did not stop after the session:\n{out[-4000:]}"
    assert "session finished (step budget)" in out, out[-4000:]
    assert "replay_learner exited (code 0): session over" in out or "was required" in out, out[-3000:]
    for name in ("sim_robot", "camera_depth", "pose_tracker", "vla_chunk", "residual_policy", "vgm_arbiter",
                 "learner", "bag_recorder"):
        assert re.search(rf"\[{name}_node-\d+\]: process started", out), f"{name} did not start:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-4000:]
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "bag").is_dir()


@pytest.mark.timeout(700)
def test_ros2_launch_composed_sim_session_reaches_its_first_evaluation(tmp_path):
    """The control path in one resrl_container: one demo, one train episode, one evaluation
    episode, then the session ends (all successes or the step budget) and the launch stops."""
    extra = tmp_path / "eval_session.yaml"
    extra.write_text(yaml.safe_dump({"replay_learner": {"ros__parameters": {
        "session_plan.num_demos": 1, "session_plan.eval_every": 1, "session_plan.eval_episodes": 1,
        "session_plan.max_env_steps": 150, "learner.warmup_steps": 10, "learner.batch_size": 16,
        "learner.learning_starts": 16}}}))
    proc = ros2_launch("sim_vgm.launch.py", f"run_dir:={tmp_path / 'run'}", f"extra_params:={extra}",
                       "compose:=camera_depth,pose_tracker,residual_policy,vgm_arbiter", cwd=tmp_path)
    out, timed_out = finish(proc, 600)   # a guard: the session takes ~40 s on an idle 2-core box
    assert not timed_out, f"the launch did not stop after the session:\n{out[-4000:]}"
    assert re.search(r"episode +\d+ eval ", out), f"no evaluation episode:\n{out[-4000:]}"
    assert "session finished" in out, out[-4000:]
    assert re.search(r"\[resrl_container-\d+\]: process started", out), out[-4000:]
    for name in ("camera_depth", "pose_tracker", "residual_policy", "vgm_arbiter"):
        assert not re.search(rf"\[{name}_node-\d+\]", out), f"{name} ran in a process of its own:\n{out[-3000:]}"
    assert re.search(r"\[resrl_container-\d+\]: process has finished cleanly", out), out[-4000:]
    assert "Traceback" not in out, out[-4000:]


@pytest.mark.timeout(400)
def test_ros2_launch_franka_without_driver_packages_says_what_to_install(tmp_path):
    """No franka_msgs / vision_msgs here (the stand-ins are not on the path): one line each, then
    the launch stops the graph instead of leaving the other nodes waiting for their peers."""
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if "stand_ins" not in p)
    proc = ros2_launch("franka_vgm.launch.py", f"run_dir:={tmp_path / 'run'}", cwd=tmp_path, env=env)
    out, timed_out = finish(proc, 300)
    assert not timed_out, f"the graph kept running without its peers:\n{out[-4000:]}"
    missing = [line for line in out.splitlines() if "a ROS package that is not installed" in line]
    assert missing, out[-4000:]
    assert any("needs franka_msgs" in line or "needs vision_msgs" in line for line in missing), missing
    assert any("sudo apt install ros-$ROS_DISTRO-" in line for line in missing), missing
    assert "stopping the graph" in out and "Traceback" not in out, out[-4000:]
    assert "ros2 run resrl keyboard_node --ros-args" in out   # where the operator console is
