"""Every installed node executable starts, creates its node, and exits cleanly on SIGINT."""
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from resrl.launch_graph import DEFAULT_NODE_NAMES, NODE_EXECUTABLES, OPTIONAL_EXECUTABLES
from rosutil import install_prefix, ros_node, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stand_ins"))
import stand_ins  # noqa: E402

# The table the container's renames rely on: checked here against the running nodes (and against
# every node class's source in test/unit/test_compose.py, the reward classifier's included).
NODE_NAMES = {exe: DEFAULT_NODE_NAMES[exe] for exe in NODE_EXECUTABLES}


@pytest.fixture(scope="module")
def observer():
    with ros_node("exec_observer") as node:
        yield node


def test_every_executable_installs_the_stop_handlers_before_its_imports():
    """A SIGINT during the imports must exit at once. A wrapper that imports its node module first
    leaves Python's KeyboardInterrupt to the imports, and an import that swallows it (a bare except
    somewhere under torch) loses the stop: a respawned reward classifier ignored launch's SIGINT for
    20 s in a full run, until SIGTERM."""
    scripts = Path(__file__).resolve().parents[2] / "scripts" / "nodes"
    for script in sorted(scripts.iterdir()):
        code = [line for line in script.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert code[:2] == ["import sys", "from resrl.ros.node_main import launch"], f"{script.name}: {code}"
        assert len(code) == 3 and code[2].startswith('sys.exit(launch("resrl.'), f"{script.name}: {code}"


def test_every_graph_executable_is_installed():
    lib = install_prefix() / "lib" / "resrl"
    assert set(NODE_EXECUTABLES) | set(OPTIONAL_EXECUTABLES) == set(DEFAULT_NODE_NAMES)
    for exe in NODE_EXECUTABLES:
        assert os.access(lib / exe, os.X_OK), f"{exe} not installed in {lib}"


@pytest.mark.parametrize("exe", sorted(NODE_NAMES))
def test_node_starts_and_stops_on_sigint(observer, exe):
    share = install_prefix() / "share" / "resrl"
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [str(install_prefix() / "lib" / "resrl" / exe), "--ros-args",
               "--params-file", str(share / "config" / "sim_vgm.yaml"),
               "-p", f"run_dir:={run_dir}"]
        env = None
        if exe == "robot_bridge_node":   # imports franka_msgs: the interfaces built from test/stand_ins
            stand_ins.ensure_built()
            env = stand_ins.subprocess_env()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env=env)
        try:
            name = NODE_NAMES[exe]
            up = wait_for(lambda: name in observer.get_node_names() or proc.poll() is not None, 60, 0.2)
            assert proc.poll() is None, f"{exe} exited early:\n{proc.stdout.read()}"
            assert up, f"{exe}: node '{name}' never appeared in the graph"
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, f"{exe} exit code {proc.returncode} after SIGINT:\n{out}"
        assert "Traceback" not in out, out


def test_an_unknown_executor_stops_the_node_with_one_line_and_exit_78():
    from resrl.deps import MISSING_DEPENDENCY_EXIT
    cmd = [str(install_prefix() / "lib" / "resrl" / "residual_policy_node"), "--executor", "fastest", "--ros-args",
           "--params-file", str(install_prefix() / "share" / "resrl" / "config" / "sim_vgm.yaml")]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == MISSING_DEPENDENCY_EXIT, proc.stdout
    assert "--executor 'fastest': one of events, single_threaded, multi_threaded" in proc.stdout
    assert "Traceback" not in proc.stdout
