"""The VLA chunk node (a real process) with vla.backend: lerobot: a tiny ACT / Diffusion Policy on
state + tracked object poses, trained a few steps and saved by the test, publishes chunks of the
right shape from the robot's pose, gripper and the pose tracker's objects."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState

from resrl import topics
from resrl.msg import TrackedObjectPose, TrackedObjects
from resrl.ros import qos
from resrl.ros.convert import numpy_to_pose
from rosutil import ChunkProbe, install_prefix, stop_process, tracebacks, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from lerobot_tiny import ACTION_MEAN, ACTION_STD, save_tiny_policy  # noqa: E402


class Feed(ChunkProbe):
    """EE pose, gripper and two tracked objects at 10 Hz; collects the chunks."""

    def __init__(self):
        super().__init__("lerobot_vla_probe")
        self.pose_pub = self.node.create_publisher(PoseStamped, topics.EE_POSE, qos.SENSOR)
        self.grip_pub = self.node.create_publisher(JointState, topics.GRIPPER_STATE, qos.SENSOR)
        self.obj_pub = self.node.create_publisher(TrackedObjects, topics.OBJECT_POSES, qos.SENSOR)
        self.start(0.1)

    def _tick(self):
        stamp = self.node.get_clock().now().to_msg()
        objects = TrackedObjects()
        objects.header.stamp, objects.header.frame_id = stamp, "fr3_link0"
        for i, name in enumerate(("cube", "target_zone")):
            pose = np.array([0.5, 0.1 * i, 0.02, 0.0, 0.0, 0.0, 1.0])
            objects.objects.append(TrackedObjectPose(header=objects.header, object_id=name,
                                                     pose=numpy_to_pose(pose), confidence=1.0, valid=True))
        grip = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.02, 0.02])
        grip.header.stamp = stamp
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, "fr3_link0"
        pose.pose.position.x, pose.pose.position.z = 0.45, 0.2
        pose.pose.orientation.x, pose.pose.orientation.w = 1.0, 0.0
        self.obj_pub.publish(objects)
        self.grip_pub.publish(grip)
        self.pose_pub.publish(pose)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind, rows", [("act", 8), ("diffusion", 4)])
def test_lerobot_policy_drives_the_vla_node(tmp_path, kind, rows):
    checkpoint, _ = save_tiny_policy(kind, tmp_path / kind, env_dim=14, steps=2)
    exe = install_prefix() / "lib" / "resrl" / "vla_chunk_node"
    proc = subprocess.Popen(
        [str(exe), "--ros-args", "-p", "vla.backend:=lerobot", "-p", f"vla.checkpoint_dir:={checkpoint}",
         "-p", "vla.horizon:=8", "-p", "vla.prefetch_steps:=4", "-p", "control_rate_hz:=10.0",
         "-p", "vla.prompt:=put the cube on the target"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    rclpy.init()
    feed = Feed()
    try:
        assert wait_for(lambda: len(feed.chunks) >= 2 or proc.poll() is not None, 420), "no chunk from lerobot"
        assert proc.poll() is None, "the VLA node exited"
    finally:
        feed.close()
        rclpy.shutdown()
        out = stop_process(proc, timeout=30.0)
    chunk = feed.chunks[0]
    # ACT predicts chunk_size = 10 rows, cut to vla.horizon = 8; Diffusion Policy n_action_steps = 4
    assert chunk.source == "lerobot" and chunk.horizon == rows and chunk.action_dim == 7
    actions = np.asarray(chunk.actions).reshape(rows, 7)
    assert np.all(np.abs(actions - ACTION_MEAN) < 10 * ACTION_STD), actions
    assert chunk.inference_latency_s > 0
    assert proc.returncode == 0 and not tracebacks(out), out
