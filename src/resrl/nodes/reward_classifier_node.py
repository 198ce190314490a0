"""Learned success classifier node: a second reward source next to the operator's keys.

Scores every observation of a running episode with resrl.reward_classifier (trained from session
bags), publishes P(success) on /resrl/reward_classifier/confidence, and when the detector calls
success publishes an EpisodeEvent SUCCESS (source CLASSIFIER, confidence = P) stamped with the
frame it judged. The operator's key always wins: the call waits ``override_window_s`` and is
dropped when a key (or any other source) labels the episode first; after it, the learner keeps
the first terminal label of an episode, so a key pressed later no longer changes that one.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float32

from resrl import topics
from resrl.msg import EpisodeEvent
from resrl.node_config import RewardClassifierNodeConfig
from resrl.reward_classifier import SuccessDetector, frame_features, load
from resrl.ros import qos
from resrl.ros.convert import ns_to_stamp
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.observation import ObservationSubscriber
from resrl.ros.params import declare_dataclass

TERMINAL = (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.TIMEOUT, EpisodeEvent.ABORT, EpisodeEvent.RESET)


class RewardClassifierNode(Node):
    def __init__(self):
        super().__init__("reward_classifier")
        cfg = declare_dataclass(self, RewardClassifierNodeConfig)
        path = cfg.classifier.model_path
        if not path:
            raise SystemExit("reward_classifier: set classifier.model_path (python -m resrl.reward_classifier "
                             "--bags ... --out model.pt trains one)")
        try:
            self.model, model_cfg = load(path)
        except ValueError as exc:
            raise SystemExit(f"reward_classifier: {exc}")
        threshold, consecutive = cfg.classifier.threshold, cfg.classifier.consecutive   # unset: the model's own
        self.detector = SuccessDetector(threshold if threshold >= 0 else model_cfg.threshold,
                                        consecutive if consecutive > 0 else model_cfg.consecutive)
        self.window_s = cfg.classifier.override_window_s
        num_objects = cfg.model.num_objects
        expected = 7 + 8 * num_objects   # state + poses + confidences (resrl.reward_classifier.frame_features)
        if int(self.model.mean.shape[0]) != expected:
            raise SystemExit(f"reward_classifier: {path} was trained on {int(self.model.mean.shape[0])} features, this "
                             f"graph gives {expected} (model.num_objects={num_objects}): retrain on this cell's bags")
        self.lock = threading.Lock()
        self.episode_id, self.running = 0, False
        self.done_ns = -1
        self.pending = None   # (episode_id, stamp_ns, p, wall time of the call)
        self.obs = ObservationSubscriber(self, "object", num_objects, cfg.model.conf_threshold,
                                         int(cfg.max_skew_ms * 1e6), on_part=self._on_part)
        self.conf_pub = self.create_publisher(Float32, topics.CLASSIFIER_CONFIDENCE, qos.CONTROL)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        wall_timer(self, 0.05, self._flush)
        self.get_logger().info(f"success classifier {path}: threshold {self.detector.threshold}, "
                               f"{self.detector.consecutive} frame(s), key override window {self.window_s}s")

    def _on_event(self, msg: EpisodeEvent):
        with self.lock:
            if msg.event == EpisodeEvent.START:
                self.episode_id, self.running, self.pending = msg.episode_id, True, None
                self.detector.reset()
            elif msg.event in TERMINAL and msg.episode_id == self.episode_id and msg.source != EpisodeEvent.SOURCE_CLASSIFIER:
                self.running = False
                if self.pending is not None:
                    self.get_logger().info(f"episode {msg.episode_id}: labelled by source {msg.source} "
                                           "before the classifier's call went out; call dropped")
                self.pending = None

    def _on_part(self, stamp_ns: int):
        if stamp_ns <= self.done_ns:
            return
        obs = self.obs.get(stamp_ns, np.zeros(7, np.float32))
        if obs is None:
            return
        self.done_ns = stamp_ns
        prob = float(self.model.probability(frame_features(obs)))
        self.conf_pub.publish(Float32(data=prob))
        with self.lock:
            if self.running and self.pending is None and self.detector.update(prob):
                self.pending = (self.episode_id, stamp_ns, prob, time.monotonic())

    def _flush(self):
        with self.lock:
            if self.pending is None or time.monotonic() - self.pending[3] < self.window_s:
                return
            episode_id, stamp_ns, prob, _ = self.pending
            self.pending, self.running = None, False
        msg = EpisodeEvent(event=EpisodeEvent.SUCCESS, source=EpisodeEvent.SOURCE_CLASSIFIER, episode_id=episode_id,
                           reward=1.0, confidence=prob, note=f"classifier p={prob:.3f}")
        msg.header.stamp = ns_to_stamp(stamp_ns)
        self.event_pub.publish(msg)
        self.get_logger().info(f"episode {episode_id}: success called (p={prob:.2f})")


def main(args=None):
    return run_node(RewardClassifierNode, args)


if __name__ == "__main__":
    main()
