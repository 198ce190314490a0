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
    assert (ROOT / "launch" / "sim_vgm.launch.py") in LAUNCH_FILES


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles_and_uses_launch_ros(path):
    tree = ast.parse(path.read_text(), str(path))
    compile(tree, str(path), "exec")
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "launch_ros.actions" in imported and "launch" in imported
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
    module("launch.actions", DeclareLaunchArgument=cls("DeclareLaunchArgument"), OpaqueFunction=cls("OpaqueFunction"))
    module("launch.conditions", IfCondition=cls("IfCondition"))
    module("launch.substitutions", LaunchConfiguration=type("LaunchConfiguration", (), {
        "__init__": lambda self, name: setattr(self, "name", name),
        "perform": lambda self, ctx: ctx[self.name]}))
    module("launch_ros")
    module("launch_ros.actions", Node=cls("Node"))
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
