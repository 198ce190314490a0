"""Operator console: episode keys, labels and human takeover (keyboard, SpaceMouse, gamepad).

Run it in a terminal of its own, next to the launch (a node started by ``ros2 launch`` gets no
terminal on stdin; this works the same over SSH):

    ros2 run resrl keyboard_node

With a terminal it draws a live status (resrl.console: episode, step, success rate, lambda and
gate activity, takeover, learner updates, policy version, what the graph waits for) and reads
keys (resrl.teleop.HELP). ``s`` / ``e`` ask the robot (bridge or sim) to reset into a train / demo
episode through /resrl/reset_episode, which then publishes the START event; ``y`` / ``n`` label the
running episode (EpisodeEvent, source KEYBOARD, confidence 1: a key always overrides the success
classifier). Without a terminal (``console:=launch``) keys are off and the devices still work.

Takeover devices (``devices`` parameter): ``spacemouse`` (spacenav_node: /spacenav/twist +
/spacenav/joy) and ``gamepad`` (joy_node: /joy). While a device's deadman button is held, its
velocity command moves an absolute target from the measured end effector, published as an
Intervention at the control rate (resrl.teleop.DeviceTeleop).
"""
from __future__ import annotations

import json
import os
import select
import sys
import termios
import threading
import time
import tty

from geometry_msgs.msg import PoseStamped, Twist
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Float32, String

from resrl import topics
from resrl.console import GRAPH_INPUTS, ConsoleState, render, waiting_for
from resrl.msg import CommandedAction, EpisodeEvent, GateState, Intervention
from resrl.node_config import KeyboardNodeConfig
from resrl.ros import qos
from resrl.ros.convert import pose_stamped_to_state
from resrl.ros.node_main import request_stop, run_node, wall_timer
from resrl.ros.params import declare_dataclass
from resrl.srv import ResetEpisode
from resrl.teleop import DEVICES, DeviceMapping, DeviceTeleop, KeyboardTeleop, mapping_from_params

SNAPSHOT_FRESH_S = 1.0   # a bridge snapshot this recent wins over the raw driver pose


class KeyboardNode(Node):
    def __init__(self):
        super().__init__("keyboard")
        cfg = declare_dataclass(self, KeyboardNodeConfig)   # the per-device mappings: _mapping
        self.cfg = cfg.teleop
        rate = float(cfg.control_rate_hz)
        self.lock = threading.RLock()
        self.state = ConsoleState()
        self.episode_id = 0
        self.episode_running = False
        self.gripper_opening = 0.0
        self.snapshot_s = -1e9
        self.keyboard = KeyboardTeleop(self.cfg)
        self.devices = {}
        for name in cfg.devices:
            if name not in DEVICES:
                raise SystemExit(f"keyboard: unknown device '{name}' (known: {sorted(DEVICES)})")
            self.devices[name] = DeviceTeleop(name, self._mapping(name), self.cfg, rate)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        self.intervention_pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.EVENTS)
        self.reset_client = self.create_client(ResetEpisode, topics.RESET_EPISODE)
        sensor = qos.sensor(self)
        # The real-robot graphs' bridge publishes one snapshot per control period; the raw / sim
        # pose is the fallback (sim graph, or a console started by hand without remaps).
        self.create_subscription(PoseStamped, topics.ROBOT_EE_POSE, lambda m: self._on_pose(m, True), sensor)
        self.create_subscription(PoseStamped, topics.EE_POSE, lambda m: self._on_pose(m, False), sensor)
        self.create_subscription(JointState, topics.ROBOT_GRIPPER_STATE, self._on_gripper, sensor)
        self.create_subscription(JointState, topics.GRIPPER_STATE, self._on_gripper, sensor)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        self.create_subscription(CommandedAction, topics.COMMAND, self._on_command, qos.RECORDED)
        self.create_subscription(GateState, topics.GATE_STATE, self._on_gate, qos.RECORDED)
        self.create_subscription(String, topics.LEARNER_STATUS, self._on_learner, qos.CONTROL)
        self.create_subscription(String, topics.ROBOT_STATUS, self._on_robot_status, qos.CONTROL)
        self.create_subscription(Float32, topics.CLASSIFIER_CONFIDENCE, self._on_confidence, qos.CONTROL)
        if "spacemouse" in self.devices:
            self.create_subscription(Twist, cfg.spacemouse_twist_topic, self._on_spacenav_twist, 10)
            self.create_subscription(Joy, cfg.spacemouse_joy_topic,
                                     lambda m: self._on_buttons("spacemouse", m), 10)
        if "gamepad" in self.devices:
            self.create_subscription(Joy, cfg.gamepad_joy_topic, self._on_gamepad, 10)
        wall_timer(self, 1.0 / rate, self._tick)
        wall_timer(self, 1.0, self._check_graph)
        self._stop = threading.Event()
        self.interactive = sys.stdin is not None and sys.stdin.isatty() and cfg.console
        if self.interactive:
            self._ui = threading.Thread(target=self._console_loop, daemon=True)
            self._ui.start()
        else:
            self.get_logger().warning("stdin is not a terminal: keys disabled (takeover devices still work). "
                                      "Run `ros2 run resrl keyboard_node` in a terminal for the operator console")

    def _mapping(self, name: str) -> DeviceMapping:
        # Dynamic: ``<device>.<field>`` of resrl.teleop.DEVICES, only for the devices opened.
        base = DEVICES[name]
        params = {}
        for key, default in base.__dict__.items():
            value = self.declare_parameter(f"{name}.{key}", list(default) if isinstance(default, tuple)
                                           else default).value
            params[key] = value
        return mapping_from_params(base, params)

    # --- messages in ----------------------------------------------------------------------
    def _say(self, text: str) -> None:
        with self.lock:
            self.state.note(text)
        if not self.interactive:
            self.get_logger().info(text)

    def _on_pose(self, msg: PoseStamped, snapshot: bool):
        now = time.monotonic()
        if snapshot:
            self.snapshot_s = now
        elif now - self.snapshot_s < SNAPSHOT_FRESH_S:
            return
        state = pose_stamped_to_state(msg, self.gripper_opening)
        with self.lock:
            self.keyboard.update_state(state)
            for dev in self.devices.values():
                dev.update_state(state)

    def _on_gripper(self, msg: JointState):
        if msg.position:
            self.gripper_opening = float(min(1.0, max(0.0, sum(msg.position) / 0.08)))

    def _on_event(self, msg: EpisodeEvent):
        with self.lock:
            if msg.event == EpisodeEvent.START:
                self.episode_id, self.episode_running = max(self.episode_id, msg.episode_id), True
            elif msg.event in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.TIMEOUT,
                               EpisodeEvent.ABORT, EpisodeEvent.RESET) and msg.episode_id == self.episode_id:
                self.episode_running = False
            self.state.on_event(msg.event, msg.source, msg.episode_id, msg.note, msg.confidence)

    def _on_command(self, msg: CommandedAction):
        with self.lock:
            self.state.on_command(msg.episode_id, msg.step, msg.intervention, msg.held, msg.policy_version)

    def _on_gate(self, msg: GateState):
        with self.lock:
            self.state.on_gate(msg.episode_id, msg.mode, msg.lambda_value, msg.g_greedy, msg.g_regress,
                               msg.g_escape, msg.held, msg.hold_reason)

    def _on_learner(self, msg: String):
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self.lock:
            self.state.on_learner(status)

    def _on_robot_status(self, msg: String):
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self.lock:
            self.state.robot_status = status

    def _on_confidence(self, msg: Float32):
        with self.lock:
            self.state.on_classifier(float(msg.data))

    def _on_spacenav_twist(self, msg: Twist):
        axes = [msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z]
        with self.lock:
            self.devices["spacemouse"].on_axes(axes, time.monotonic())
            self.state.devices["spacemouse"] = time.monotonic()

    def _on_buttons(self, name: str, msg: Joy):
        with self.lock:
            self.devices[name].on_buttons(msg.buttons, time.monotonic())
            self.state.devices[name] = time.monotonic()

    def _on_gamepad(self, msg: Joy):
        with self.lock:
            now = time.monotonic()
            self.devices["gamepad"].on_axes(msg.axes, now)
            self.devices["gamepad"].on_buttons(msg.buttons, now)
            self.state.devices["gamepad"] = now

    # --- takeover out ---------------------------------------------------------------------
    def _tick(self):
        """One control period: the first device whose deadman is held drives; else the keyboard."""
        now = time.monotonic()
        with self.lock:
            steps = {name: dev.tick(now) for name, dev in self.devices.items()}
            driver = next((n for n, s in steps.items() if s.active), None)
            ended = [s for s in steps.values() if s.changed and not s.active]
            for s in steps.values():
                if s.message:
                    self._say(s.message)
            if driver is not None:
                self._publish_intervention(True, steps[driver].action, driver)
            elif self.keyboard.intervening:
                self._publish_intervention(True, self.keyboard.teleop_action(), "keyboard")
            elif ended:
                self._publish_intervention(False, [], "device")
            self.state.takeover = driver or ("keyboard" if self.keyboard.intervening else "")

    def _publish_intervention(self, active: bool, action, source: str):
        msg = Intervention(active=active, source=source)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.action = [float(v) for v in action]
        self.intervention_pub.publish(msg)

    def _check_graph(self):
        names = set(self.get_node_names())
        pubs = {}
        for _, alts, _ in GRAPH_INPUTS:
            for t in alts.split("|"):
                pubs[t] = self.count_publishers(t)
        with self.lock:
            self.state.waiting = waiting_for(names, pubs)

    # --- keys -----------------------------------------------------------------------------
    def handle_key(self, key: str):
        with self.lock:
            result = self.keyboard.press(key)
            episode_id, running = self.episode_id, self.episode_running
        for code in result.events:
            if code in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.RESET) and not running:
                self._say(f"no running episode to label (last: {episode_id}); press s to start one")
                continue
            msg = EpisodeEvent(event=code, source=EpisodeEvent.SOURCE_KEYBOARD, episode_id=episode_id,
                               confidence=1.0)
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.reward = float(self.cfg.success_reward) if code == EpisodeEvent.SUCCESS else 0.0
            self.event_pub.publish(msg)
        if result.start:
            self._start_episode(result.start)
        if result.intervention_changed:
            with self.lock:
                if self.keyboard.intervening:
                    self._publish_intervention(True, self.keyboard.teleop_action(), "keyboard")
                else:
                    self._publish_intervention(False, [], "keyboard")
        if result.message and not result.start:
            self._say(result.message)
        if result.quit:
            self._stop.set()

    def _start_episode(self, kind: str):
        if not self.reset_client.service_is_ready():
            self._say(f"cannot start: {topics.RESET_EPISODE} is not available (robot bridge / sim not running)")
            return
        self._say(f"resetting the robot for a {kind} episode")
        future = self.reset_client.call_async(ResetEpisode.Request(seed=-1, episode_type=kind))

        def done(f):
            res = f.result()
            if res is None or not res.success:
                self._say(f"reset failed: {getattr(res, 'message', 'no answer')}")
        future.add_done_callback(done)

    def _console_loop(self):
        from rich.console import Console
        from rich.live import Live
        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        console = Console()
        try:
            tty.setcbreak(fd)
            with Live(render(self.state), console=console, auto_refresh=False, redirect_stderr=False,
                      transient=False) as live:
                while not self._stop.is_set():
                    ready, _, _ = select.select([fd], [], [], 0.25)
                    if ready:
                        data = os.read(fd, 32).decode(errors="ignore")
                        if not data:   # the terminal went away (SSH dropped)
                            break
                        for key in data:
                            self.handle_key(key)
                    with self.lock:
                        view = render(self.state)
                    # Written outside the lock: a terminal that stops reading (Ctrl-S, a stalled
                    # SSH link) blocks this write, and must not stall the node's callbacks with it.
                    live.update(view, refresh=True)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
        if self._stop.is_set():
            request_stop()   # 'q': the console exits; the graph keeps running

    def on_shutdown(self):
        self._stop.set()


def main(args=None):
    return run_node(KeyboardNode, args)


if __name__ == "__main__":
    main()
