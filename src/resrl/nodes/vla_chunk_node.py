"""VLA chunk provider node: runs the base policy and publishes H-step action chunks.

A new chunk is requested when the current one has at most ``prefetch_steps`` rows left (so it
arrives before the old one runs out) and at every episode start. Inference failures are logged
and retried on the next observation; the arbiter holds the robot if the chunk runs out.
In simulation ``latency_steps`` emulates VLA inference latency in control steps: a chunk inferred
from the observation at step t applies from step t + latency_steps.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from resrl import topics
from resrl.actions import ACTION_DIM
from resrl.msg import ActionChunk, EpisodeEvent
from resrl.ros import qos
from resrl.ros.convert import pose_stamped_to_state, stamp_to_ns
from resrl.ros.node_main import run_node
from resrl.ros.observation import gripper_opening
from resrl.vla.backends import VLAError, check_chunk, make_backend


class VLAChunkNode(Node):
    def __init__(self):
        super().__init__("vla_chunk_provider")
        p = self.declare_parameter
        self.backend_kind = p("vla.backend", "sim_scripted").value
        self.horizon = p("vla.horizon", 16).value
        self.prefetch_steps = p("vla.prefetch_steps", 0).value
        self.latency_steps = p("vla.latency_steps", 0).value
        self.period_ns = int(round(1e9 / p("control_rate_hz", 10.0).value))
        self.frame_id = p("frame_id", "fr3_link0").value
        self.backend = make_backend(self.backend_kind, task=p("task", "pick_place").value, horizon=self.horizon,
                                    replay_path=p("vla.replay_path", "").value)
        self.lock = threading.Lock()
        self.episode_id = 0
        self.chunk_id = 0
        self.chunk_end_step = -1        # first step not covered by the last published chunk
        self.gripper = 0.0
        self.task_info = {}
        self.pending_pose = None
        self.pub = self.create_publisher(ActionChunk, topics.VLA_CHUNK, qos.CONTROL)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, qos.sensor(self))
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, qos.sensor(self))
        self.create_subscription(String, topics.TASK_INFO, self._on_task_info, qos.CONTROL)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)

    def _on_gripper(self, msg: JointState):
        self.gripper = gripper_opening(msg)

    def _on_task_info(self, msg: String):
        try:
            info = json.loads(msg.data)
        except json.JSONDecodeError as exc:
            self.get_logger().error(f"bad task_info JSON: {exc}")
            return
        with self.lock:
            self.task_info[int(info.get("stamp_ns", -1))] = info
            for old in sorted(self.task_info)[:-20]:
                del self.task_info[old]
            pose = self.pending_pose
        if pose is not None and stamp_to_ns(pose.header.stamp) == int(info.get("stamp_ns", -1)):
            self._on_pose(pose)   # the pose came first and was waiting for this privileged state

    def _on_event(self, msg: EpisodeEvent):
        with self.lock:
            if msg.event == EpisodeEvent.START and msg.episode_id != self.episode_id:
                self.episode_id = msg.episode_id
                self.chunk_end_step = -1     # re-plan at once for the new episode
                if hasattr(self.backend, "reset"):
                    self.backend.reset(int(msg.episode_id))

    def _on_pose(self, msg: PoseStamped):
        stamp_ns = stamp_to_ns(msg.header.stamp)
        step = stamp_ns // self.period_ns
        with self.lock:
            if step < self.chunk_end_step - self.prefetch_steps:
                return
            obs = {"state": pose_stamped_to_state(msg, self.gripper)}
            info = self.task_info.get(stamp_ns)
            if self.backend_kind == "sim_scripted":
                if info is None:
                    self.pending_pose = msg   # retried when the privileged sim state arrives
                    return
                self.pending_pose = None
                obs.update({k: np.asarray(v, dtype=np.float32) for k, v in info.items()
                            if isinstance(v, list)})
            episode_id = self.episode_id
        t0 = time.perf_counter()
        try:
            chunk = check_chunk(self.backend.infer(obs), self.horizon, ACTION_DIM, self.backend_kind)
        except (VLAError, KeyError, ValueError) as exc:
            self.get_logger().error(f"VLA inference failed: {exc}; retrying", throttle_duration_sec=2.0)
            return
        latency = time.perf_counter() - t0
        start = step + self.latency_steps
        with self.lock:
            self.chunk_id += 1
            self.chunk_end_step = start + chunk.shape[0]
            out = ActionChunk(chunk_id=self.chunk_id, episode_id=episode_id, start_step=int(start),
                              horizon=int(chunk.shape[0]), action_dim=ACTION_DIM,
                              actions=chunk.reshape(-1).tolist(), source=self.backend_kind,
                              inference_latency_s=float(latency))
        out.header.stamp, out.header.frame_id = msg.header.stamp, self.frame_id
        self.pub.publish(out)


def main(args=None):
    return run_node(VLAChunkNode, args)


if __name__ == "__main__":
    main()
