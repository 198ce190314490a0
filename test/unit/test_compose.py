"""compose:= -> one resrl_container spec and its command line (ROS-free: plain data and argv).
The container process itself: test/ros/test_container.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from resrl import topics
from resrl.launch_graph import CONTAINER_EXECUTABLE, DEFAULT_NODE_NAMES, GRAPHS, default_args, franka_graph, sim_graph
from resrl.launch_runner import command_args
from resrl.ros.container import COMPONENTS, parse_components

ROOT = Path(__file__).resolve().parents[2]
CELL = "camera_depth,pose_tracker,residual_policy,vgm_arbiter"


def _container(specs):
    found = [s for s in specs if s.members]
    assert len(found) == 1, specs
    return found[0]


def test_compose_hosts_the_named_nodes_in_one_container_where_the_first_was():
    separate = sim_graph()
    specs = sim_graph(compose=CELL)
    container = _container(specs)
    assert container.executable == CONTAINER_EXECUTABLE
    assert [m.name for m in container.members] == CELL.split(",")
    assert container.members == [s for s in separate if s.name in CELL.split(",")]   # same params, overrides
    # the others unchanged, in order; the container stands where camera_depth stood
    assert [s.name for s in specs] == ["sim_robot", CONTAINER_EXECUTABLE, "vla_chunk_provider", "replay_learner",
                                       "bag_recorder"]
    assert container.respawn and not container.ends_session
    assert sim_graph(compose="") == separate


def test_container_respawns_only_if_every_member_does_and_ends_the_session_with_the_learner():
    container = _container(sim_graph(compose="residual_policy,replay_learner"))
    assert not container.respawn and container.ends_session


@pytest.mark.parametrize("names,why", [("camera_depth,no_such_node", "no node"),
                                       ("camera_depth,camera_depth", "twice")])
def test_compose_rejects_unknown_or_repeated_nodes(names, why):
    with pytest.raises(ValueError, match=why):
        sim_graph(compose=names)


def test_operator_console_is_not_composed():
    with pytest.raises(ValueError, match="console"):
        franka_graph(compose="keyboard,vgm_arbiter")


def test_compose_is_a_launch_argument_of_every_graph_defaulting_to_separate_processes():
    for graph in GRAPHS:
        assert default_args(graph)["compose"] == ""
        assert not any(s.members for s in GRAPHS[graph][0](**default_args(graph)))


def _flag_values(args, flag):
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_container_command_line_targets_each_member(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "franka_vgm.yaml").write_text("{}")
    container = _container(franka_graph(compose="pose_tracker,residual_policy,vgm_arbiter", mode="static"))
    container.members[0].name = "tracker_b"    # a launch name other than the class's own
    args = command_args(container, tmp_path)
    assert args[:2] == ["--nodes", "pose_tracker,residual_policy,vgm_arbiter"] and args[2] == "--ros-args"
    rules = _flag_values(args, "-r")
    # renamed only where the launch name differs; never the process-wide `__node:=`
    assert [r for r in rules if "__node" in r] == ["pose_tracker:__node:=tracker_b"]
    # the robot-state remaps of residual and arbiter, for them alone (the tracker has none)
    assert f"residual_policy:{topics.EE_POSE}:={topics.ROBOT_EE_POSE}" in rules
    assert f"vgm_arbiter:{topics.GRIPPER_STATE}:={topics.ROBOT_GRIPPER_STATE}" in rules
    assert not any(r.startswith(("tracker_b:", "/")) for r in rules)
    files = _flag_values(args, "--params-file")
    assert files[0] == str(tmp_path / "config" / "franka_vgm.yaml")
    overrides = yaml.safe_load(Path(files[-1]).read_text())   # last: node-keyed, one section per member
    assert set(overrides) == {"tracker_b", "residual_policy", "vgm_arbiter"}
    assert overrides["vgm_arbiter"]["ros__parameters"]["vgm.mode"] == "static"
    assert "vgm.mode" not in overrides["residual_policy"]["ros__parameters"]


def test_single_node_command_line_is_unchanged(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sim_vgm.yaml").write_text("{}")
    arbiter = next(s for s in sim_graph(mode="static") if s.name == "vgm_arbiter")
    args = command_args(arbiter, tmp_path)
    assert args[:3] == ["--ros-args", "-r", "__node:=vgm_arbiter"] and "--nodes" not in args
    assert yaml.safe_load(Path(_flag_values(args, "--params-file")[-1]).read_text()) == {
        "vgm_arbiter": {"ros__parameters": arbiter.overrides}}


def test_container_arguments_parse_and_reject_unknown_nodes(capsys):
    argv = ["--nodes", "camera_depth, pose_tracker", "--ros-args", "--params-file", "x.yaml", "-r", "a:=b"]
    assert parse_components(argv) == ["camera_depth", "pose_tracker"]
    for bad in (["--nodes", "vla_chunk_provider"], ["--nodes", "camera_depth,camera_depth"], ["--nodes", ""], []):
        with pytest.raises(SystemExit) as exc:
            parse_components(bad)
        assert exc.value.code == 2
    assert "vla_chunk" in capsys.readouterr().err   # the error lists what can be hosted


def _node_classes(path: Path):
    """(class name, the name its __init__ passes to super().__init__) of every Node subclass."""
    found = []
    for cls in ast.walk(ast.parse(path.read_text())):
        if isinstance(cls, ast.ClassDef) and any(getattr(b, "id", None) == "Node" for b in cls.bases):
            names = [c.args[0].value for c in ast.walk(cls) if isinstance(c, ast.Call)
                     and getattr(c.func, "attr", None) == "__init__" and c.args and isinstance(c.args[0], ast.Constant)]
            found.append((cls.name, names))
    return found


@pytest.mark.parametrize("executable", sorted(DEFAULT_NODE_NAMES))
def test_every_node_module_defines_one_node_class_with_the_default_name_in_the_table(executable):
    """What the container looks up (resrl.ros.container.node_class) and renames by."""
    assert executable[:-len("_node")] in COMPONENTS
    classes = _node_classes(ROOT / "src" / "resrl" / "nodes" / f"{executable}.py")
    assert len(classes) == 1, classes
    assert classes[0][1] == [DEFAULT_NODE_NAMES[executable]], classes


def test_executor_is_a_launch_argument_that_reaches_every_process_command_line(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sim_vgm.yaml").write_text("{}")
    for graph in GRAPHS:
        assert default_args(graph)["executor"] == "events"
        assert not any(s.executor for s in GRAPHS[graph][0](**default_args(graph)))   # the default: no flag
    specs = sim_graph(compose="pose_tracker,residual_policy", executor="multi_threaded")
    assert {s.executor for s in specs} == {"multi_threaded"}
    for spec in specs:
        args = command_args(spec, tmp_path)
        own = args[:args.index("--ros-args")]
        assert _flag_values(own, "--executor") == ["multi_threaded"], (spec.name, args)
    container = _container(specs)
    assert parse_components(command_args(container, tmp_path)) == ["pose_tracker", "residual_policy"]


def test_executor_kind_parses_checks_and_keeps_parallel_nodes_multi_threaded(monkeypatch, capsys):
    from resrl.ros import node_main
    from resrl.ros.node_main import DEFAULT_EXECUTOR, executor_kind

    class Plain:
        pass

    class Parallel:
        parallel_callbacks = True

    assert DEFAULT_EXECUTOR == "events"
    assert executor_kind(["--ros-args", "--executor", "multi_threaded"]) == "events"   # ROS args are not ours
    assert executor_kind(["--executor", "multi_threaded", "--ros-args", "-r", "a:=b"], [Plain]) == "multi_threaded"
    assert executor_kind(["--nodes", "x", "--executor=single_threaded"], [Plain]) == "single_threaded"
    with pytest.raises(ValueError, match="one of events, single_threaded, multi_threaded"):
        executor_kind(["--executor", "fast"])
    with pytest.raises(ValueError):
        executor_kind(["--executor"])
    assert executor_kind(["--executor", "events"], [Plain, Parallel]) == "multi_threaded"
    assert executor_kind([], [Parallel]) == "multi_threaded"
    # an rclpy without the EventsExecutor (Humble): the next best, with one line saying so
    monkeypatch.setattr(node_main, "_has_events_executor", lambda: False)
    capsys.readouterr()
    assert executor_kind([], [Plain]) == "single_threaded"
    assert "no rclpy.experimental.EventsExecutor" in capsys.readouterr().err
