"""Launch files are real launch_ros files: they compile, and (run against recording stand-ins of
launch/launch_ros, which PyPI does not ship) reference only installed executables and existing
parameter files."""
import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

from resrl.launch_graph import GRAPHS, NODE_EXECUTABLES, default_args

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def test_there_are_launch_files():
    for name in ("sim_vgm", "franka_vgm", "ur_vgm"):
        assert (ROOT / "launch" / f"{name}.launch.py") in LAUNCH_FILES


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles_and_uses_launch_ros(path):
    tree = ast.parse(path.read_text(), str(path))
    compile(tree, str(path), "exec")
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    # launch_ros Nodes come from the file itself or from resrl.ros.launch_actions (shared by all).
    assert "launch" in imported and ({"launch_ros.actions", "resrl.ros.launch_actions"} & imported)
    helper = ROOT / "src" / "resrl" / "ros" / "launch_actions.py"
    helper_imports = {n.module for n in ast.walk(ast.parse(helper.read_text())) if isinstance(n, ast.ImportFrom)}
    assert "launch_ros.actions" in helper_imports
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


class _Recorder:
    nodes = []

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        if type(self).__name__ == "Node":
            _Recorder.nodes.append(kwargs)


def _stub_modules(monkeypatch):
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
        return mod

    cls = lambda n: type(n, (_Recorder,), {})  # noqa: E731
    module("launch", LaunchDescription=cls("LaunchDescription"))
    module("launch.actions", DeclareLaunchArgument=cls("DeclareLaunchArgument"), OpaqueFunction=cls("OpaqueFunction"),
           IncludeLaunchDescription=cls("IncludeLaunchDescription"))
    module("launch.conditions", IfCondition=cls("IfCondition"))
    module("launch.launch_description_sources", PythonLaunchDescriptionSource=cls("PythonLaunchDescriptionSource"))
    module("launch.substitutions", LaunchConfiguration=type("LaunchConfiguration", (), {
        "__init__": lambda self, name: setattr(self, "name", name),
        "perform": lambda self, ctx: ctx[self.name]}), PathJoinSubstitution=cls("PathJoinSubstitution"))
    module("launch_ros")
    module("launch_ros.actions", Node=cls("Node"))
    module("launch_ros.substitutions", FindPackageShare=cls("FindPackageShare"))
    module("ament_index_python")
    module("ament_index_python.packages", get_package_share_directory=lambda pkg: str(ROOT))


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_existing_executables_and_configs(path, monkeypatch):
    _stub_modules(monkeypatch)
    _Recorder.nodes = []
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    desc = mod.generate_launch_description()
    entities = desc.args[0]
    for ent in entities:
        if type(ent).__name__ == "OpaqueFunction":
            ent.kwargs["function"](default_args(path.name.split(".")[0]))
    resrl_nodes = [n for n in _Recorder.nodes if n["package"] == "resrl"]
    assert len(resrl_nodes) >= 7
    for node in resrl_nodes:
        assert node["executable"] in NODE_EXECUTABLES
        assert (ROOT / "scripts" / "nodes" / node["executable"]).is_file()
        for param in node["parameters"]:
            if isinstance(param, str):
                assert Path(param).is_file(), f"{node['name']}: missing parameter file {param}"


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
    import yaml

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
