"""The VLA chunk node (openpi backend, a real process) against an openpi-protocol server that
is slow, dies mid-session and comes back: while the server is away no chunk is published (so
the arbiter holds once the current chunk runs out), the node keeps running and answering on
its executor (the inference sits in a worker thread), and chunks flow again after the server
returns, through a new connection."""
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.srv import GetParameters
from sensor_msgs.msg import Image, JointState

from resrl import topics
from resrl.ros import qos
from resrl.ros.convert import numpy_to_image
from rosutil import ChunkProbe, LineProcess, install_prefix, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stand_ins"))
from openpi_server import OpenPIServerStandIn, eef_policy  # noqa: E402

READY_Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]


class RobotFeed(ChunkProbe):
    """Publishes what a Franka + RealSense would at 20 Hz and collects the chunks."""

    def __init__(self):
        super().__init__("vla_fault_probe")
        sensor = qos.SENSOR
        self.pose_pub = self.node.create_publisher(PoseStamped, topics.EE_POSE, sensor)
        self.joint_pub = self.node.create_publisher(JointState, topics.JOINT_STATES, sensor)
        self.grip_pub = self.node.create_publisher(JointState, topics.GRIPPER_STATE, sensor)
        self.image_pub = self.node.create_publisher(Image, topics.COLOR_IMAGE, sensor)
        self.params = self.node.create_client(GetParameters, "/vla_chunk_provider/get_parameters")
        self.image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        self.start(0.05)

    def _tick(self):
        stamp = self.node.get_clock().now().to_msg()
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "fr3_link0"
        pose.pose.position.x, pose.pose.position.z = 0.4, 0.3
        pose.pose.orientation.x, pose.pose.orientation.w = 1.0, 0.0
        joints = JointState(name=[f"fr3_joint{i}" for i in range(1, 8)], position=READY_Q)
        joints.header.stamp = stamp
        grip = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.02, 0.02])
        grip.header.stamp = stamp
        self.joint_pub.publish(joints)
        self.grip_pub.publish(grip)
        self.image_pub.publish(numpy_to_image(self.image, "rgb8", stamp, "camera_color_optical_frame"))
        self.pose_pub.publish(pose)

    def count(self):
        return len(self.chunks)

    def parameters_answer_within(self, timeout, tries=2):
        """The node's executor answers a parameter request in time (of ``tries``: one scheduling
        hiccup on a loaded 2-core box is not a blocked executor; a blocked one misses them all)."""
        for _ in range(tries):
            future = self.params.call_async(GetParameters.Request(names=["vla.backend"]))
            if wait_for(future.done, timeout, 0.01) and future.result().values[0].string_value == "openpi":
                return True
        return False


@pytest.mark.timeout(120)
def test_vla_node_survives_slow_and_dead_server_and_reconnects():
    server = OpenPIServerStandIn(eef_policy(8), metadata={"robot": "droid"}).start()
    exe = install_prefix() / "lib" / "resrl" / "vla_chunk_node"
    proc = LineProcess(
        [str(exe), "--ros-args", "-p", "vla.backend:=openpi", "-p", f"vla.openpi.port:={server.port}",
         "-p", "vla.horizon:=8", "-p", "vla.prefetch_steps:=8", "-p", "control_rate_hz:=10.0",
         "-p", "vla.timeout_s:=1.0", "-p", "vla.connect_timeout_s:=0.5", "-p", "vla.retry_period_s:=0.2",
         "-p", "vla.prompt:=pick up the cube"], guard_s=60.0)
    rclpy.init()
    feed = RobotFeed()
    try:
        # 1. chunks flow: (8, 7) absolute EE rows from the server, latency reported
        assert wait_for(lambda: feed.count() >= 3, 30), "no chunk from the openpi backend"
        c = feed.chunks[-1]
        assert c.source == "openpi" and c.horizon == 8 and len(c.actions) == 56 and c.inference_latency_s > 0
        rows = np.asarray(c.actions).reshape(8, 7)
        np.testing.assert_allclose(rows[:, 0], 0.4 + 0.01 * np.arange(1, 9), atol=1e-5)
        req = server.requests[-1]
        assert req["prompt"] == "pick up the cube"
        np.testing.assert_allclose(req["observation/joint_position"], READY_Q)
        np.testing.assert_allclose(req["observation/gripper_position"], [0.5])
        assert req["observation/exterior_image_1_left"].shape == (224, 224, 3)

        # 2. slow server: replies later than vla.timeout_s -> no chunk, but the executor answers.
        # The server counts the replies the node hung up on (it timed out). From the first one on,
        # the chunk count must stand still until the second: a chunk in between came from no reply.
        server.delay_s = 3.0
        assert wait_for(lambda: server.undelivered >= 1, 20), "the node never timed out on the slow server"
        n, delivered = feed.count(), server.delivered
        assert feed.parameters_answer_within(1.0), "node executor blocked by a slow server"
        assert wait_for(lambda: server.undelivered >= 2, 20), "the node stopped asking the slow server"
        assert feed.count() == n, "chunk published although the server never answered in time"
        assert server.delivered == delivered, "a late reply was taken"
        server.delay_s = 0.0
        assert wait_for(lambda: feed.count() > n, 10), "no chunk after the server sped up again"

        # 3. the server dies mid-session: no chunk, node alive and responsive. The node reports its
        # failed tries (one line per 2 s at most): from the second report after the stop to the
        # third, no chunk may come (one from just before the stop has long landed by the second).
        failed = "VLA inference failed"
        before = proc.out.count(failed)
        server.stop()
        assert proc.wait_count(failed, before + 2), "the node did not report the dead server"
        n = feed.count()
        assert proc.wait_count(failed, before + 3), "the node stopped trying"
        assert feed.count() == n, "chunks published with the server down"
        assert proc.proc.poll() is None, "node died with the server"
        assert feed.parameters_answer_within(1.0), "node executor blocked while the server is down"

        # 4. the server returns on the same port: the node reconnects and publishes again
        server.start()
        assert wait_for(lambda: feed.count() > n + 2, 15), "node did not reconnect"
        ids = [m.chunk_id for m in feed.chunks]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        feed.close()
        rclpy.shutdown()
        server.stop()
        proc.stop(signal.SIGINT)
    out = proc.out
    assert proc.proc.returncode == 0, out
    assert "VLA inference failed" in out and "Traceback" not in out, out
