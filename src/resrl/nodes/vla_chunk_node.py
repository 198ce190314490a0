"""VLA chunk provider node: runs the base policy and publishes H-step action chunks.

A new chunk is requested when the current one has at most ``prefetch_steps`` rows left (so it
arrives before the old one runs out) and at every episode start. Inference failures are logged
and retried on the next observation; the arbiter holds the robot if the chunk runs out.
In simulation ``latency_steps`` emulates VLA inference latency in control steps: a chunk inferred
from the observation at step t applies from step t + latency_steps.

The network/model backends (``openpi``, ``lerobot``) run in a background worker thread so a slow
or dead server never blocks the executor: the pose callback hands the newest observation (EE
state, arm joint positions, exterior + optional wrist camera, and the tracked object poses when the
policy reads an environment state) to the worker when a chunk is due;
a failed request (VLAError: refused, timed out, bad chunk) is logged and retried after
``vla.retry_period_s`` -- the backend reconnects on its next request. The chunk is indexed from
the observation's step, so rows whose time passed during inference are skipped by the arbiter,
and no chunk at all means the arbiter holds once the current one runs out.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from resrl import topics
from resrl.actions import ACTION_DIM
from resrl.msg import ActionChunk, EpisodeEvent, TrackedObjects
from resrl.node_config import VLANodeConfig
from resrl.ros import qos
from resrl.ros.convert import MessageError, image_to_numpy, pose_stamped_to_state, stamp_to_ns
from resrl.ros.node_main import run_node
from resrl.ros.observation import gripper_opening, objects_to_arrays
from resrl.ros.params import declare_dataclass
from resrl.vla.backends import VLAError, check_chunk, make_backend

# Backends that talk to a server or run a large model: inference runs off the executor.
ASYNC_BACKENDS = ("openpi", "lerobot")


class VLAChunkNode(Node):
    def __init__(self):
        super().__init__("vla_chunk_provider")
        cfg = declare_dataclass(self, VLANodeConfig)
        v = self.vla_cfg = cfg.vla
        self.backend_kind = v.backend
        self.horizon = v.horizon
        self.prefetch_steps = v.prefetch_steps
        self.latency_steps = v.latency_steps
        self.period_ns = int(round(1e9 / cfg.control_rate_hz))
        self.frame_id = cfg.frame_id
        self.backend = make_backend(v.backend, **v.backend_params(cfg.task))
        self.async_mode = self.backend_kind in ASYNC_BACKENDS
        self.lock = threading.Lock()
        self.episode_id = 0
        # Chunk ids keep growing across a respawn (the arbiter ignores ids it has seen): start
        # from the wall clock in ms, far above what a node publishes in that time.
        self.chunk_id = time.time_ns() // 1_000_000
        self.chunk_end_step = -1        # first step not covered by the last published chunk
        self.gripper = 0.0
        self.task_info = {}
        self.pending_pose = None
        self.pub = self.create_publisher(ActionChunk, topics.VLA_CHUNK, qos.CONTROL)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, qos.sensor(self))
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, qos.sensor(self))
        self.create_subscription(String, topics.TASK_INFO, self._on_task_info, qos.CONTROL)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        if self.async_mode:
            self._init_async(self.vla_cfg)

    # --- real backends: camera/joint inputs and the inference worker ---------------------------
    def _init_async(self, v):
        self.retry_period_s = v.retry_period_s
        self.arm_joints = list(v.arm_joints)
        self.latest = {"image": None, "wrist_image": None, "joint_position": None}
        self.request = None           # (obs, step, stamp, episode_id) waiting for the worker
        self.busy = False             # a request is queued or being inferred
        self.retry_after = 0.0        # monotonic time before which no new request is made
        self.stopping = False
        self.wake = threading.Condition(self.lock)
        sensor = qos.sensor(self)
        self.create_subscription(Image, v.image_topic,
                                 lambda m: self._on_latest("image", m), sensor)
        wrist_topic = v.wrist_image_topic
        if wrist_topic:
            self.create_subscription(Image, wrist_topic, lambda m: self._on_latest("wrist_image", m), sensor)
        self.create_subscription(JointState, v.joint_states_topic,
                                 self._on_joints, sensor)
        # A policy with an environment state (a LeRobot ACT on tracked poses) reads the tracker.
        self.num_objects = int(getattr(self.backend, "num_objects", 0))
        if self.num_objects:
            self.object_conf_threshold = v.object_conf_threshold
            self.latest["object_poses"] = None
            self.create_subscription(TrackedObjects, v.object_poses_topic,
                                     lambda m: self._on_latest("object_poses", m), sensor)
        self.worker = threading.Thread(target=self._work, name="vla_inference", daemon=True)
        self.worker.start()

    def _on_latest(self, key: str, msg):
        with self.lock:
            self.latest[key] = msg    # decoded in the worker: the callback stays cheap

    def _on_joints(self, msg: JointState):
        index = {name: i for i, name in enumerate(msg.name)}
        if not all(name in index for name in self.arm_joints):
            self.get_logger().warning(f"joint_states lacks arm joints {self.arm_joints}", throttle_duration_sec=5.0)
            return
        with self.lock:
            self.latest["joint_position"] = np.array([msg.position[index[n]] for n in self.arm_joints])

    def _submit(self, msg: PoseStamped, step: int) -> None:
        """Called with the lock held: queue the newest observation for the worker if a chunk is
        due, no request is in flight and the retry back-off has passed."""
        if self.busy or time.monotonic() < self.retry_after:
            return
        obs = {"state": pose_stamped_to_state(msg, self.gripper)}
        for key, value in self.latest.items():
            if value is not None:
                obs[key] = value
        self.request = (obs, step, msg.header.stamp, self.episode_id)
        self.busy = True
        self.wake.notify()

    def _work(self):
        while True:
            with self.lock:
                self.wake.wait_for(lambda: self.request is not None or self.stopping)
                if self.stopping:
                    return
                (obs, step, stamp, episode_id), self.request = self.request, None
            t0 = time.perf_counter()
            try:
                for key in ("image", "wrist_image"):
                    if key in obs:
                        obs[key] = image_to_numpy(obs[key])
                if "object_poses" in obs:
                    obs["object_poses"] = objects_to_arrays(obs["object_poses"], self.num_objects,
                                                            self.object_conf_threshold)[0]
                chunk = check_chunk(self.backend.infer(obs), self.horizon, ACTION_DIM, self.backend_kind)
            except Exception as exc:   # VLAError, bad image, or a model's own error: never end the worker
                kind = "" if isinstance(exc, (VLAError, MessageError)) else f"{type(exc).__name__}: "
                self.get_logger().error(f"VLA inference failed: {kind}{exc}; retrying in {self.retry_period_s:.1f} s",
                                        throttle_duration_sec=2.0)
                with self.lock:
                    self.busy = False
                    self.retry_after = time.monotonic() + self.retry_period_s
                continue
            self._publish(chunk, step, stamp, episode_id, time.perf_counter() - t0)
            with self.lock:
                self.busy = False     # after chunk_end_step moved on: no duplicate request in between

    def on_shutdown(self):
        if self.async_mode:
            with self.lock:
                self.stopping = True
                self.wake.notify()
            # A request in flight cannot be interrupted (a server that takes its timeout to answer):
            # its chunk is nobody's any more, and the daemon worker ends with the process.
            self.worker.join(timeout=1.0)
            if hasattr(self.backend, "close"):
                self.backend.close()

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
            if self.async_mode:
                self._submit(msg, step)
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
        self._publish(chunk, step, msg.header.stamp, episode_id, time.perf_counter() - t0)

    def _publish(self, chunk: np.ndarray, step: int, stamp, episode_id: int, latency: float) -> None:
        start = step + self.latency_steps
        with self.lock:
            self.chunk_id += 1
            self.chunk_end_step = start + chunk.shape[0]
            out = ActionChunk(chunk_id=self.chunk_id, episode_id=episode_id, start_step=int(start),
                              horizon=int(chunk.shape[0]), action_dim=ACTION_DIM,
                              actions=chunk.reshape(-1).tolist(), source=self.backend_kind,
                              inference_latency_s=float(latency))
        out.header.stamp, out.header.frame_id = stamp, self.frame_id
        self.pub.publish(out)


def main(args=None):
    return run_node(VLAChunkNode, args)


if __name__ == "__main__":
    main()
