"""Subscribe to everything an observation is made of and assemble it per control step.

Used by the residual, arbiter and learner nodes so all three see the same observation for a
stamp: proprioception (EE pose + gripper), and either the model-resolution RGB + relative depth
(image mode) or the tracked object poses (object mode). The base action is not part of this: each
node takes a_VLA_t from its own ChunkScheduler.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from resrl import topics
from resrl.msg import TrackedObjects
from resrl.obs_assembly import ObservationAssembler
from resrl.ros import qos
from resrl.ros.convert import MessageError, image_to_numpy, pose_to_numpy, pose_stamped_to_state, stamp_to_ns

FRANKA_MAX_WIDTH_M = 0.08


def gripper_opening(msg: JointState, max_width: float = FRANKA_MAX_WIDTH_M) -> float:
    """Finger joint positions (m, each finger) -> opening in [0, 1] (1 = fully open)."""
    return float(np.clip(sum(msg.position[:2]) / max_width, 0.0, 1.0)) if msg.position else 0.0


def objects_to_arrays(msg: TrackedObjects, num_objects: int, conf_threshold: float):
    """TrackedObjects -> (poses (K*7,), conf (K,)); invalid / low-confidence poses are zeroed."""
    poses = np.zeros((num_objects, 7), dtype=np.float32)
    conf = np.zeros(num_objects, dtype=np.float32)
    for i, obj in enumerate(msg.objects[:num_objects]):
        conf[i] = obj.confidence if obj.valid else 0.0
        if obj.valid and obj.confidence >= conf_threshold:
            poses[i] = pose_to_numpy(obj.pose)
    return poses.reshape(-1), conf


class ObservationSubscriber:
    """Attach to a node; calls ``on_part(stamp_ns)`` whenever a part arrives."""

    def __init__(self, node: Node, obs_mode: str, num_objects: int = 1, conf_threshold: float = 0.5,
                 max_skew_ns: int = 0, on_part: Optional[Callable[[int], None]] = None, history: int = 64):
        self.node = node
        self.obs_mode = obs_mode
        self.num_objects = num_objects
        self.conf_threshold = conf_threshold
        self.on_part = on_part or (lambda stamp: None)
        parts = ["pose", "gripper"] + (["rgb", "depth"] if obs_mode == "image" else ["objects"])
        self.assembler = ObservationAssembler(parts, max_skew_ns=max_skew_ns, history=history)
        self.gripper_width = 0.0
        sensor = qos.sensor(node)
        node.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, sensor)
        node.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, sensor)
        if obs_mode == "image":
            node.create_subscription(Image, topics.OBS_RGB, lambda m: self._on_image("rgb", m), sensor)
            node.create_subscription(Image, topics.OBS_DEPTH, lambda m: self._on_image("depth", m), sensor)
        else:
            node.create_subscription(TrackedObjects, topics.OBJECT_POSES, self._on_objects, sensor)

    def _add(self, part: str, stamp, value):
        ns = stamp_to_ns(stamp)
        self.assembler.add(part, ns, value)
        self.on_part(ns)

    def _on_pose(self, msg: PoseStamped):
        v = pose_to_numpy(msg.pose)
        if not np.all(np.isfinite(v)):
            self.node.get_logger().warning("dropping non-finite EE pose", throttle_duration_sec=5.0)
            return
        self._add("pose", msg.header.stamp, msg)

    def _on_gripper(self, msg: JointState):
        self._add("gripper", msg.header.stamp, gripper_opening(msg))

    def _on_image(self, part: str, msg: Image):
        try:
            self._add(part, msg.header.stamp, image_to_numpy(msg))
        except MessageError as exc:
            self.node.get_logger().error(f"dropping {part} image: {exc}", throttle_duration_sec=5.0)

    def _on_objects(self, msg: TrackedObjects):
        self._add("objects", msg.header.stamp, objects_to_arrays(msg, self.num_objects, self.conf_threshold))

    def get(self, stamp_ns: int, base_action: np.ndarray,
            max_skew_ns: Optional[int] = None) -> Optional[Dict[str, np.ndarray]]:
        """The observation dict for ``stamp_ns`` (None while parts are missing; ``max_skew_ns``: see
        ObservationAssembler.get)."""
        parts = self.assembler.get(stamp_ns, max_skew_ns)
        if parts is None:
            return None
        obs = {"state": pose_stamped_to_state(parts["pose"], parts["gripper"]),
               "base_action": np.asarray(base_action, dtype=np.float32)}
        if self.obs_mode == "image":
            obs["image"], obs["depth"] = parts["rgb"], parts["depth"]
        else:
            obs["object_poses"], obs["object_conf"] = parts["objects"]
        return obs

    def state(self, stamp_ns: int) -> Optional[np.ndarray]:
        parts = self.assembler.get(stamp_ns)
        return None if parts is None else pose_stamped_to_state(parts["pose"], parts["gripper"])
