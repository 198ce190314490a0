"""Bag recorder node: records the session's topics into a rosbag2 bag (``<run_dir>/bag``; ``bag_1``,
``bag_2``, ... when the run folder already has one; parameter ``bag_path`` names it explicitly).

Subscriptions are ``raw=True``: the serialized CDR bytes go to the bag as they arrive, with no
deserialisation. The bag is flushed every ``flush_period_s`` (pending MCAP chunk closed, fsync,
``metadata.yaml`` rewritten), so a killed session leaves a readable bag; a clean shutdown writes
the MCAP summary. Same topic list as ``ros2 bag record`` in docs/data.md (``resrl.bags.schema``).
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String

from resrl import topics
from resrl.bags.schema import SESSION_TOPICS
from resrl.bags.writer import STORAGES, BagWriter
from resrl.node_config import BagRecorderNodeConfig
from resrl.ros import qos
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.params import declare_dataclass

# Topics recorded reliably (losing one loses a transition or an episode boundary).
_EVENT_TOPICS = {topics.EPISODE_EVENTS, topics.INTERVENTION}
_CONTROL_TOPICS = {topics.COMMAND, topics.VLA_CHUNK, topics.RESIDUAL, topics.GATE_STATE}


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class BagRecorderNode(Node):
    def __init__(self):
        super().__init__("bag_recorder")
        cfg = declare_dataclass(self, BagRecorderNodeConfig)
        storage, flush_period, names = cfg.storage, cfg.flush_period_s, list(cfg.topics)
        self.path = Path(cfg.bag_path) if cfg.bag_path else self._free_bag_path(Path(cfg.run_dir))
        if storage not in STORAGES:
            raise SystemExit(f"bag_recorder: storage must be one of {sorted(STORAGES)}, got {storage!r}")
        unknown = [t for t in names if t not in SESSION_TOPICS]
        if unknown:
            raise SystemExit(f"bag_recorder: topics {unknown} are not in the session topic list "
                             f"(resrl.bags.schema.SESSION_TOPICS); known: {sorted(SESSION_TOPICS)}")
        if self.path.exists():
            raise SystemExit(f"bag_recorder: {self.path} exists already; a bag is never overwritten")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = BagWriter(self.path, storage)
        reliable_events = qos.EVENTS
        self.subscriptions_by_topic = {}
        for topic in names:
            msgtype = SESSION_TOPICS[topic]
            profile = (reliable_events if topic in _EVENT_TOPICS or topic in _CONTROL_TOPICS
                       else qos.sensor(self))
            self.subscriptions_by_topic[topic] = self.create_subscription(
                message_class(msgtype), topic, lambda data, t=topic, m=msgtype: self._on_message(t, m, data),
                profile, raw=True)
        # Which writers each subscription is matched with, latched and on every change: the learner
        # starts episode 1 only once the writers of the session's events, takeovers and commands
        # reach this recorder (a writer that matches it later loses what it sent before to the bag).
        self.status_pub = self.create_publisher(String, topics.BAG_STATUS, qos.LATCHED)
        self.matched = None
        wall_timer(self, 0.1, self._publish_matches)
        wall_timer(self, flush_period, self._flush)
        self.get_logger().info(f"recording {len(names)} topics to {self.path} ({storage})")

    @staticmethod
    def _free_bag_path(run_dir: Path) -> Path:
        """<run_dir>/bag, or bag_1, bag_2, ... when a run folder is reused (bags are never overwritten)."""
        path, n = run_dir / "bag", 0
        while path.exists():
            n += 1
            path = run_dir / f"bag_{n}"
        return path

    def _on_message(self, topic: str, msgtype: str, data: bytes):
        # Log time = receive time on the system clock (as `ros2 bag record` without --use-sim-time):
        # simulated time stands still within a control step and would lose the arrival order.
        if not self.writer.closed:
            self.writer.write_raw(topic, msgtype, time.time_ns(), data)

    def _publish_matches(self):
        matched = {t: sub.get_publisher_count() for t, sub in self.subscriptions_by_topic.items()}
        if matched != self.matched:
            self.matched = matched
            self.status_pub.publish(String(data=json.dumps({"path": str(self.path), "matched_writers": matched})))

    def _flush(self):
        if not self.writer.closed:
            self.writer.flush()

    def on_shutdown(self):
        self.writer.close()
        # The ROS context is already shut down here (no /rosout): plain stderr.
        print(f"[bag_recorder] bag closed: {self.writer.count} messages in {self.path}", file=sys.stderr)


def main(args=None):
    # Subscriptions and the flush timer share the node's default (mutually exclusive) callback
    # group, so they never interleave inside the writer.
    return run_node(BagRecorderNode, args)


if __name__ == "__main__":
    main()
