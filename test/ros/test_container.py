"""resrl_container: several nodes in one process, with the command line ``compose:=`` gives it
(resrl.launch_runner.command_args). Every node appears under its launch name, its parameters are
the YAML's section for that name plus its own overrides, a remap reaches only its node, and the
process keeps the single node's stop contract: SIGINT -> exit 0 within 5 s, every node's
on_shutdown ran; a node that cannot be built -> its one line, exit 78.

Waits are on events: the container's phase lines, service discovery; the 120 s are guards only."""
import importlib.util
import os
import signal

import pytest
import rclpy
import yaml
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.parameter import parameter_value_to_python

from resrl import topics
from resrl.deps import MISSING_DEPENDENCY_EXIT
from resrl.launch_graph import CONTAINER_EXECUTABLE, sim_graph
from resrl.launch_runner import command_args
from rosutil import LineProcess, assert_clean_stop, install_prefix, ros_node, tracebacks, wait_for

GUARD_S = 120.0
SHARE = install_prefix() / "share" / "resrl"
REMAPPED = "/resrl_test/object_poses"


def container_process(compose: str, edit=None, env=None, **graph_args) -> LineProcess:
    container = next(s for s in sim_graph(compose=compose, **graph_args) if s.members)
    if edit:
        edit(container.members)
    cmd = [str(install_prefix() / "lib" / "resrl" / CONTAINER_EXECUTABLE)] + command_args(container, SHARE)
    return LineProcess(cmd, dict(env or os.environ, RESRL_ANNOUNCE_PHASES="1"), GUARD_S)


def flatten(tree, prefix=""):
    """A ros__parameters tree as rcl reads it: nested keys joined by '.'."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _call(node, srv, service, request):
    client = node.create_client(srv, service)
    assert client.wait_for_service(timeout_sec=GUARD_S), f"no service {service}"
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=GUARD_S)
    node.destroy_client(client)
    return future.result()


def get_parameters(node, name, keys):
    """The values of those of ``keys`` the node declared (GetParameters answers nothing at all
    when one of the names is undeclared)."""
    declared = set(_call(node, ListParameters, f"/{name}/list_parameters", ListParameters.Request()).result.names)
    keys = [k for k in dict.fromkeys(keys) if k in declared]
    values = _call(node, GetParameters, f"/{name}/get_parameters", GetParameters.Request(names=keys)).values
    return {k: parameter_value_to_python(v) for k, v in zip(keys, values)}


def _same(a, b):
    return list(a) == list(b) if isinstance(b, list) else a == b


@pytest.fixture
def probe():
    with ros_node("container_probe") as node:
        yield node


@pytest.mark.timeout(180)
def test_container_hosts_nodes_with_their_names_parameters_remaps_and_stops_cleanly(tmp_path, probe):
    def rename_tracker(members):
        members[0].name = "tracker_b"      # not the class's own name: -r pose_tracker:__node:=tracker_b
        members[0].remappings = [(topics.OBJECT_POSES, REMAPPED)]   # -r tracker_b:...: only the tracker's

    with container_process("pose_tracker,residual_policy,vgm_arbiter,bag_recorder", rename_tracker,
                           mode="static", seed="7", run_dir=str(tmp_path / "run")) as proc:
        assert proc.wait_line("[resrl-phase] spin"), proc.out[-4000:]
        config = yaml.safe_load((SHARE / "config" / "sim_vgm.yaml").read_text())
        shared = flatten(config["/**"]["ros__parameters"])
        expected = {   # the node's YAML section and the launch's overrides: every key must be declared
            "residual_policy": {**flatten(config["residual_policy"]["ros__parameters"]), "seed": 7},
            "vgm_arbiter": {**flatten(config["vgm_arbiter"]["ros__parameters"]), "vgm.mode": "static", "seed": 7},
            "tracker_b": {"seed": 7, "use_sim_time": True},   # overrides keyed by its launch name
        }
        for name, own in expected.items():
            got = get_parameters(probe, name, list(own) + list(shared))
            wrong = {k: (got.get(k, "<undeclared>"), v) for k, v in own.items() if not _same(got.get(k), v)}
            assert not wrong, f"{name}: (got, expected) {wrong}"
            declared_shared = {k: v for k, v in shared.items() if k in got}
            assert declared_shared and all(_same(got[k], v) for k, v in declared_shared.items()), name
        # pose_tracker's own section is for a node named pose_tracker: it did not reach tracker_b
        key = "tracker.noise.max_pos_noise_m"
        assert get_parameters(probe, "tracker_b", [key])[key] != config["pose_tracker"]["ros__parameters"][key]
        names = set(probe.get_node_names())
        assert {"tracker_b", "residual_policy", "vgm_arbiter", "bag_recorder"} <= names and "pose_tracker" not in names

        def topics_of(kind, name):
            return {t for t, _ in getattr(probe, f"get_{kind}_names_and_types_by_node")(name, "/")}
        assert wait_for(lambda: REMAPPED in topics_of("publisher", "tracker_b")
                        and topics.OBJECT_POSES in topics_of("subscriber", "residual_policy"), GUARD_S), \
            (topics_of("publisher", "tracker_b"), topics_of("subscriber", "residual_policy"))
        assert topics.OBJECT_POSES not in topics_of("publisher", "tracker_b")
        took = proc.stop(signal.SIGINT)
    assert_clean_stop(proc, took, "container SIGINT while spinning")
    # each node's own stop ran: the arbiter's summary, the bag closed
    assert "stopping:" in proc.out and "[bag_recorder] bag closed" in proc.out, proc.out[-4000:]


@pytest.mark.timeout(180)
@pytest.mark.skipif(importlib.util.find_spec("vision_msgs") is not None,
                    reason="vision_msgs is installed: the missing-package path has nothing to check")
def test_container_node_with_a_missing_package_exits_78_with_its_one_line(tmp_path):
    def detection_tracker(members):
        members[1].overrides["tracker.backend"] = "detection3d"   # needs vision_msgs

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if "stand_ins" not in p)
    proc = container_process("bag_recorder,pose_tracker", detection_tracker, env=env, run_dir=str(tmp_path / "run"))
    code = proc.wait()
    out = proc.out
    assert code == MISSING_DEPENDENCY_EXIT, out[-4000:]
    missing = [line for line in out.splitlines() if "a ROS package that is not installed" in line]
    assert len(missing) == 1 and missing[0].startswith("[PoseTrackerNode]") and "vision_msgs" in missing[0], out
    assert not tracebacks(out), out[-4000:]
    assert "[bag_recorder] bag closed" in out, out[-4000:]   # the node built before it was stopped
