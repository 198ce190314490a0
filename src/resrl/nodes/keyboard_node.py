"""Keyboard reward / intervention node: a terminal UI for the operator.

Publishes EpisodeEvent (source KEYBOARD) for start / success / failure / reset / pause and an
Intervention message while the operator takes over (absolute teleop action built from the current
end-effector pose). Without a terminal on stdin (tests, CI, launch without a tty) it runs headless
and only logs that keys are unavailable.
"""
from __future__ import annotations

import os
import select
import sys
import termios
import threading
import tty

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState

from resrl import topics
from resrl.msg import EpisodeEvent, Intervention
from resrl.ros import qos
from resrl.ros.convert import pose_stamped_to_state
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.params import declare_dataclass
from resrl.teleop import HELP, KeyboardTeleop, TeleopConfig


class KeyboardNode(Node):
    def __init__(self):
        super().__init__("keyboard")
        self.cfg = declare_dataclass(self, TeleopConfig, "teleop")
        self.episode_id = 0
        self.gripper_opening = 0.0
        self.teleop = KeyboardTeleop(self.cfg)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        self.intervention_pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.EVENTS)
        self.create_subscription(PoseStamped, topics.EE_POSE, self._on_pose, qos.sensor(self))
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, qos.sensor(self))
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        # Re-send the intervention at 10 Hz so the arbiter's staleness check keeps it alive.
        wall_timer(self, 0.1, self._publish_intervention)
        self._stop = threading.Event()
        if sys.stdin is not None and sys.stdin.isatty():
            self._thread = threading.Thread(target=self._read_keys, daemon=True)
            self._thread.start()
            self.get_logger().info(HELP)
        else:
            self.get_logger().warning("stdin is not a terminal: keyboard input disabled (headless)")

    def _on_pose(self, msg: PoseStamped):
        self.teleop.update_state(pose_stamped_to_state(msg, self.gripper_opening))

    def _on_gripper(self, msg: JointState):
        if msg.position:
            self.gripper_opening = float(min(1.0, max(0.0, sum(msg.position) / 0.08)))

    def _on_event(self, msg: EpisodeEvent):
        self.episode_id = max(self.episode_id, msg.episode_id)

    def _read_keys(self):
        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    self._handle(os.read(fd, 1).decode(errors="ignore"))
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)

    def _handle(self, key: str):
        result = self.teleop.press(key)
        for code in result.events:
            msg = EpisodeEvent(event=code, source=EpisodeEvent.SOURCE_KEYBOARD, episode_id=self.episode_id)
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.reward = float(self.cfg.success_reward) if code == EpisodeEvent.SUCCESS else 0.0
            self.event_pub.publish(msg)
        if result.intervention_changed:
            self._publish_intervention()
        if result.message:
            self.get_logger().info(result.message)
        if result.quit:
            self._stop.set()

    def _publish_intervention(self):
        if not self.teleop.intervening and self.intervention_pub.get_subscription_count() == 0:
            return
        msg = Intervention(active=self.teleop.intervening, source="keyboard")
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.action = self.teleop.teleop_action().tolist()
        self.intervention_pub.publish(msg)

    def on_shutdown(self):
        self._stop.set()


def main(args=None):
    return run_node(KeyboardNode, args)


if __name__ == "__main__":
    main()
