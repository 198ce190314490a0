"""Stop at any moment: SIGINT or SIGTERM in a known phase -> exit 0 within 5 s, no traceback, and
what the node acknowledged is on disk.

Each node announces its phases on stderr (``RESRL_ANNOUNCE_PHASES=1``: import, init, construct,
spin), and the signal goes out when the test has
seen the announcement, so every case hits the phase it names: no sleeps, no timing windows. The
5 s is the stop contract itself; the 120 s waits are only guards against a hung test.
"""
import os
import signal
import sys
from pathlib import Path

import pytest
import rclpy

from rosutil import LineProcess, assert_clean_stop, install_prefix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stand_ins"))
import stand_ins  # noqa: E402

GUARD_S = 120.0


class NodeProcess(LineProcess):
    """An installed node executable with sim_vgm.yaml and ``params``, announcing its phases."""

    def __init__(self, exe, params=(), env=None):
        share = install_prefix() / "share" / "resrl"
        cmd = [str(install_prefix() / "lib" / "resrl" / exe), "--ros-args",
               "--params-file", str(share / "config" / "sim_vgm.yaml")]
        for key, value in params:
            cmd += ["-p", f"{key}:={value}"]
        super().__init__(cmd, dict(env or os.environ, RESRL_ANNOUNCE_PHASES="1"), GUARD_S)


def _env_for(exe):
    if exe == "robot_bridge_node":   # imports franka_msgs: the interfaces built from test/stand_ins
        stand_ins.ensure_built()
        return stand_ins.subprocess_env()
    return None


# SIGINT while spinning is test_node_executables' case for every node; SIGTERM here for the nodes
# with threads or files of their own (trainer, inference worker, bag writer).
SPINNING = ["bag_recorder_node", "learner_node", "vla_chunk_node"]
# Phases before the node spins, on the nodes that are slow to import and build (torch, models,
# MuJoCo): where a signal used to leave exit code 1 and a KeyboardInterrupt traceback.
EARLY = [("learner_node", "import", signal.SIGINT), ("learner_node", "init", signal.SIGTERM),
         ("learner_node", "construct", signal.SIGINT), ("sim_robot_node", "construct", signal.SIGTERM),
         ("camera_depth_node", "import", signal.SIGTERM)]


@pytest.mark.parametrize("exe,phase,sig", [(exe, "spin", signal.SIGTERM) for exe in SPINNING] + EARLY,
                         ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v))
def test_signal_in_phase_stops_cleanly(tmp_path, exe, phase, sig):
    node = NodeProcess(exe, [("run_dir", tmp_path)], env=_env_for(exe))
    try:
        assert node.wait_line(f"[resrl-phase] {phase}"), f"{exe} never reached {phase}:\n{node.out[-4000:]}"
        took = node.stop(sig)
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
    assert_clean_stop(node, took, f"{exe} {sig.name} at {phase}")
    assert "[resrl-phase] exit" in node.out


def test_checkpoint_acknowledged_is_on_disk_after_a_stop(tmp_path):
    """SaveCheckpoint, then SIGTERM as soon as the answer came: the checkpoint the node
    acknowledged loads, and the node still stops cleanly."""
    from resrl.models.checkpoint import load_checkpoint
    from resrl.srv import SaveCheckpoint
    from resrl import topics
    node = NodeProcess("learner_node", [("run_dir", tmp_path / "run"), ("session", "manual")])
    rclpy.init()
    client_node = rclpy.create_node("checkpoint_probe")
    try:
        assert node.wait_line("[resrl-phase] spin"), node.out[-4000:]
        client = client_node.create_client(SaveCheckpoint, topics.SAVE_CHECKPOINT)
        assert client.wait_for_service(timeout_sec=GUARD_S)
        future = client.call_async(SaveCheckpoint.Request(path=str(tmp_path / "ack.pt")))
        rclpy.spin_until_future_complete(client_node, future, timeout_sec=GUARD_S)
        response = future.result()
        took = node.stop(signal.SIGTERM)
    finally:
        client_node.destroy_node()
        rclpy.shutdown()
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
    assert response is not None and response.success, response
    assert_clean_stop(node, took, "learner SIGTERM after a checkpoint")
    states, _, version, _ = load_checkpoint(tmp_path / "ack.pt")
    assert version == response.version and set(states) == {"residual", "critic"}
