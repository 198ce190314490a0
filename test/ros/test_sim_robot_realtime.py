"""The sim robot on a wall-clock timer (``lockstep: false``, what benchmarks/bench_latency.py runs):
like a real arm it streams its state from the reset on, before any command arrives. (It used to
step only on a command, so a loop whose one observation after the reset was missed never started.)

Waits are on events (the service, the messages); the 120 s are guards only."""
import os
import signal
import time

import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data

from resrl import topics
from resrl.ros.convert import stamp_to_ns
from resrl.srv import ResetEpisode
from rosutil import LineProcess, assert_clean_stop, install_prefix, ros_node

GUARD_S = 120.0


@pytest.mark.timeout(300)
def test_realtime_sim_streams_its_state_before_the_first_command():
    share = install_prefix() / "share" / "resrl"
    cmd = [str(install_prefix() / "lib" / "resrl" / "sim_robot_node"), "--ros-args",
           "--params-file", str(share / "config" / "sim_vgm.yaml"), "-p", "sim_robot:lockstep:=false"]   # node-keyed: the YAML's own section wins over /**
    with LineProcess(cmd, dict(os.environ, RESRL_ANNOUNCE_PHASES="1"), GUARD_S) as proc:
        assert proc.wait_line("[resrl-phase] spin"), proc.out[-3000:]
        with ros_node("realtime_probe") as node:
            stamps = []
            node.create_subscription(PoseStamped, topics.EE_POSE, lambda m: stamps.append(stamp_to_ns(m.header.stamp)),
                                     qos_profile_sensor_data)
            client = node.create_client(ResetEpisode, topics.RESET_EPISODE)
            assert client.wait_for_service(timeout_sec=GUARD_S)
            future = client.call_async(ResetEpisode.Request(seed=3, episode_type="train"))
            rclpy.spin_until_future_complete(node, future, timeout_sec=GUARD_S)
            assert future.result() is not None and future.result().success
            first = len(stamps)
            # No command is ever sent: new states keep coming, one stamp per control period.
            guard = time.monotonic() + GUARD_S
            while len(set(stamps[first:])) < 10 and time.monotonic() < guard:
                rclpy.spin_once(node, timeout_sec=0.1)
            after_reset = stamps[first:]
            assert len(set(after_reset)) >= 10, f"{len(set(after_reset))} states after the reset, none commanded"
            assert after_reset == sorted(after_reset)
        took = proc.stop(signal.SIGINT)
    assert_clean_stop(proc, took, "real-time sim robot SIGINT while streaming")
