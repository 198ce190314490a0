"""Residual policy node: a_res_t from the observation and the VLA intent, one per control step.

Hot-swaps residual weights pushed by the learner (PolicyWeights, latched) without a restart.
Training episodes add clipped Gaussian exploration noise (TD3 style), except every
``noise_free_every``-th; evaluation episodes (EpisodeEvent START with note "eval") are deterministic.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node

from resrl import topics
from resrl.control import session_seeds
from resrl.msg import EpisodeEvent, PolicyWeights, ResidualAction
from resrl.node_config import ResidualNodeConfig, SharedConfig
from resrl.actions import explore, explores
from resrl.policy_runtime import PolicyRuntime, WeightsError
from resrl.ros import qos
from resrl.ros.chunks import ChunkSubscriber
from resrl.ros.convert import ns_to_stamp
from resrl.ros.node_main import run_node
from resrl.ros.observation import ObservationSubscriber
from resrl.ros.params import declare_dataclass


class ResidualPolicyNode(Node):
    def __init__(self):
        super().__init__("residual_policy")
        self.shared = declare_dataclass(self, SharedConfig)
        self.cfg = declare_dataclass(self, ResidualNodeConfig)
        self.obs_mode = self.shared.obs_mode
        self.period_ns = int(round(1e9 / self.shared.control_rate_hz))
        self.frame_id = self.shared.frame_id
        self.noise_std = self.cfg.exploration_noise            # fraction of xi per dimension
        self.noise_clip = self.cfg.exploration_noise_clip
        self.rng = np.random.default_rng(session_seeds(self.shared.seed)["exploration"])
        self.model_cfg = self.shared.model
        self.model_cfg.obs_mode = self.obs_mode
        self.policy = PolicyRuntime("residual", self.model_cfg, threads=self.shared.torch_threads)
        self.xi = np.asarray(self.model_cfg.xi, dtype=np.float32)
        self.lock = threading.RLock()
        self.episode_id = 0
        self.explore = True
        self.last_step = -1
        self.pending = []
        self.obs = ObservationSubscriber(self, self.obs_mode, self.model_cfg.num_objects,
                                         self.model_cfg.conf_threshold,
                                         int(self.shared.max_skew_ms * 1e6), on_part=self._on_part)
        self.chunks = ChunkSubscriber(self, self.cfg.chunks,
                                      lambda: self.last_step, on_chunk=self._try)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        self.create_subscription(PolicyWeights, topics.RESIDUAL_WEIGHTS, self._on_weights, qos.LATCHED)
        self.pub = self.create_publisher(ResidualAction, topics.RESIDUAL, qos.CONTROL)

    def _on_event(self, msg: EpisodeEvent):
        with self.lock:
            if msg.event == EpisodeEvent.START and msg.episode_id != self.episode_id:
                self.episode_id = msg.episode_id
                kind = msg.note if msg.note in ("eval", "demo") else "train"
                self.explore = explores(kind, msg.episode_id, self.cfg.noise_free_every)
                self.chunks.start_episode(msg.episode_id)
        self._try()

    def _on_weights(self, msg: PolicyWeights):
        if msg.model != "residual":
            return
        try:
            self.policy.load(bytes(msg.payload), msg.sha256, msg.version, msg.config_json)
            self.get_logger().info(f"residual weights v{msg.version} loaded")
        except WeightsError as exc:
            self.get_logger().error(f"{exc}; keeping v{self.policy.version}")

    def _on_part(self, stamp_ns: int):
        with self.lock:
            if stamp_ns // self.period_ns > self.last_step and stamp_ns not in self.pending:
                self.pending.append(stamp_ns)
        self._try()

    def _try(self):
        with self.lock:
            for stamp_ns in sorted(self.pending):
                step = stamp_ns // self.period_ns
                if step <= self.last_step:
                    self.pending.remove(stamp_ns)
                    continue
                a_vla, info = self.chunks.action_at(step)
                if a_vla is None:
                    continue
                obs = self.obs.get(stamp_ns, a_vla)
                if obs is None:
                    continue
                self.pending = [s for s in self.pending if s > stamp_ns]
                self.last_step = step
                self._act(stamp_ns, step, obs, info)

    def _act(self, stamp_ns, step, obs, info):
        t0 = time.perf_counter()
        try:
            a_res = self.policy.residual(obs)
        except Exception as exc:   # never guess: no residual this step (the arbiter uses a_VLA alone)
            self.get_logger().error(f"residual forward failed: {exc}", throttle_duration_sec=2.0)
            return
        policy_action = []
        if self.explore:
            policy_action = a_res.tolist()
            a_res = explore(a_res, self.xi, self.noise_std, self.noise_clip, self.rng)
        msg = ResidualAction(step=int(step), action=a_res.tolist(), policy_action=policy_action,
                             chunk_id=int(info.chunk_id or 0),
                             chunk_step=int(info.row or 0), policy_version=int(self.policy.version),
                             compute_latency_s=float(time.perf_counter() - t0))
        msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamp_ns), self.frame_id
        self.pub.publish(msg)


def main(args=None):
    return run_node(ResidualPolicyNode, args)


if __name__ == "__main__":
    main()
