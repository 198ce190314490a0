"""Robot bridge: makes a real arm speak resrl's command/state contract (``robot:=franka|ur``).

In: the arbiter's absolute EE target (/resrl/target_pose) and gripper command
(/resrl/gripper_command); the driver's EE pose and gripper state. Out: the target in the
driver's command form (franka: PoseStamped to a Cartesian controller topic; UR: MoveIt Servo
pose / twist commands or cartesian_controllers' target_frame), gripper goals (franka_gripper
move / grasp, or control_msgs GripperCommand) sent once per open/close change, and one robot
state snapshot per control period on /resrl/robot/{ee_pose,gripper_state} (the real-robot graphs
remap resrl's state topics there).

Last line of defence: every target is clamped to the bridge's workspace box and speed limits.
Stale robot state, a safety stop or a target in the wrong frame -> hold (no new target; zero
twist in servo_twist mode) and say why on /resrl/robot/status (on each change and every second,
with counts of the commands received and sent). /resrl/reset_episode runs the
reset sequence (error recovery, gripper open, walk home at the speed limits) and then publishes
the episode START event, like the simulated robot.

Driver message packages (franka_msgs, control_msgs, ur_dashboard_msgs) are imported lazily:
only the selected robot's are needed.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from resrl import topics
from resrl.deps import require
from resrl.msg import EpisodeEvent
from resrl.node_config import RobotBridgeNodeConfig
from resrl.robots import franka, ur
from resrl.robots.common import (BridgeError, GripperHysteresis, HomeMotion, StateMonitor,
                                 check_pose, limit_target, twist_toward)
from resrl.ros import qos
from resrl.ros.convert import ns_to_stamp, numpy_to_pose, pose_to_numpy, stamp_to_ns
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.observation import FRANKA_MAX_WIDTH_M
from resrl.ros.params import declare_dataclass
from resrl.srv import ResetEpisode

# ur_robot_driver's io_and_status_controller publishes safety mode / program state latched.
LATCHED_STATUS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)


def import_driver_interface(module: str, robot: str):
    """Import a driver interface module (e.g. 'franka_msgs.action') or fail saying what to source."""
    workspace = {"franka": "franka_ros2", "ur": "ur_robot_driver"}.get(robot, robot)
    return require(module, f"robot_bridge (robot:={robot})", source_workspace=workspace)


class PendingCall:
    """One action goal or service call, polled from the control timer (never blocks a callback)."""

    def __init__(self, what: str, timeout_s: float):
        self.what, self.deadline = what, time.monotonic() + timeout_s
        self.done, self.ok, self.message = False, False, ""
        self._lock = threading.Lock()

    def finish(self, ok: bool, message: str = "") -> None:
        with self._lock:
            if not self.done:
                self.done, self.ok, self.message = True, ok, message or ("ok" if ok else "failed")

    def poll(self) -> Tuple[bool, bool, str]:
        if not self.done and time.monotonic() > self.deadline:
            self.finish(False, "no answer before the timeout")
        return self.done, self.ok, f"{self.what}: {self.message}"


def send_goal(client: ActionClient, goal, what: str, timeout_s: float,
              result_ok: Callable = lambda r: getattr(r, "success", True)) -> PendingCall:
    call = PendingCall(what, timeout_s)
    if not client.server_is_ready():
        call.finish(False, f"action server for {what} is not available")
        return call

    def on_result(future):
        try:
            wrapped = future.result()
        except Exception as exc:  # transport error: report, never raise into the executor
            call.finish(False, repr(exc))
            return
        status_ok = wrapped.status == 4   # action_msgs/GoalStatus.STATUS_SUCCEEDED
        ok = status_ok and bool(result_ok(wrapped.result))
        call.finish(ok, "" if ok else f"status {wrapped.status}, result {wrapped.result}")

    def on_goal(future):
        try:
            handle = future.result()
        except Exception as exc:
            call.finish(False, repr(exc))
            return
        if not handle.accepted:
            call.finish(False, "goal rejected")
            return
        handle.get_result_async().add_done_callback(on_result)

    client.send_goal_async(goal).add_done_callback(on_goal)
    return call


def call_trigger(client, what: str, timeout_s: float) -> PendingCall:
    call = PendingCall(what, timeout_s)
    if not client.service_is_ready():
        call.finish(False, f"service {client.srv_name} is not available")
        return call

    def done(future):
        try:
            res = future.result()
            call.finish(bool(res.success), res.message)
        except Exception as exc:
            call.finish(False, repr(exc))

    client.call_async(Trigger.Request()).add_done_callback(done)
    return call


class FrankaDriver:
    """franka_ros2: Cartesian target topic, franka_gripper actions, error recovery action."""

    def __init__(self, node: "RobotBridgeNode", cfg: franka.FrankaConfig):
        self.node, self.cfg = node, cfg
        actions = import_driver_interface("franka_msgs.action", "franka")
        self.Move, self.Grasp, self.Homing = actions.Move, actions.Grasp, actions.Homing
        self.ErrorRecovery = actions.ErrorRecovery
        grp = node.io_group
        ns = cfg.gripper_namespace.rstrip("/")
        self.clients = {name: ActionClient(node, cls, f"{ns}/{name}", callback_group=grp)
                        for name, cls in (("move", self.Move), ("grasp", self.Grasp), ("homing", self.Homing))}
        self.recovery = ActionClient(node, self.ErrorRecovery, cfg.error_recovery_action, callback_group=grp)
        self.target_pub = node.create_publisher(PoseStamped, cfg.target_topic, qos.CONTROL)
        sensor = qos.SENSOR   # best effort accepts franka_ros2's reliable publishers too
        node.create_subscription(PoseStamped, cfg.ee_pose_topic, node.on_pose, sensor, callback_group=node.state_group)
        node.create_subscription(JointState, cfg.gripper_state_topic, self._on_gripper, sensor,
                                 callback_group=node.state_group)

    def _on_gripper(self, msg: JointState):
        try:
            self.node.on_gripper_width(franka.finger_width(list(msg.position)), self.cfg.max_width)
        except BridgeError as exc:
            self.node.get_logger().error(f"{exc}; gripper state ignored", throttle_duration_sec=2.0)

    def send_target(self, pose: np.ndarray, msg: PoseStamped) -> None:
        msg.pose = numpy_to_pose(pose)
        self.target_pub.publish(msg)

    def hold(self) -> None:
        pass   # no new target: the impedance controller keeps the last one (within one speed step)

    def send_gripper(self, decision: str) -> PendingCall:
        name, fields = franka.gripper_goal(decision, self.cfg)
        if name == "grasp":
            goal = self.Grasp.Goal(width=fields["width"], speed=fields["speed"], force=fields["force"])
            goal.epsilon.inner, goal.epsilon.outer = fields["epsilon"]["inner"], fields["epsilon"]["outer"]
        else:
            goal = self.Move.Goal(width=fields["width"], speed=fields["speed"])
        return send_goal(self.clients[name], goal, f"franka_gripper/{name}", 15.0)

    def safety(self, now: float) -> Tuple[bool, str]:
        return True, ""

    def reset_steps(self) -> List[Tuple[str, Callable[[], PendingCall]]]:
        steps = []
        if self.cfg.error_recovery_on_reset:
            steps.append(("error_recovery", lambda: send_goal(self.recovery, self.ErrorRecovery.Goal(),
                                                              "error_recovery", 10.0, lambda r: True)))
        if self.cfg.homing_on_reset:
            steps.append(("gripper_homing", lambda: send_goal(self.clients["homing"], self.Homing.Goal(),
                                                              "franka_gripper/homing", 20.0)))
        steps.append(("gripper_open", lambda: self.send_gripper("open")))
        return steps


class URDriver:
    """ur_robot_driver: Servo / cartesian_controllers commands, Robotiq via GripperCommand,
    dashboard unlock + program restart after a protective stop."""

    def __init__(self, node: "RobotBridgeNode", cfg: ur.URConfig):
        self.node, self.cfg = node, cfg
        self.GripperCommand = import_driver_interface("control_msgs.action", "ur").GripperCommand
        SafetyMode = import_driver_interface("ur_dashboard_msgs.msg", "ur").SafetyMode
        grp = node.io_group
        self.gripper = ActionClient(node, self.GripperCommand, cfg.gripper_action, callback_group=grp)
        dash = cfg.dashboard_namespace.rstrip("/")
        self.unlock = node.create_client(Trigger, f"{dash}/unlock_protective_stop", callback_group=grp)
        self.restart = node.create_client(Trigger, cfg.restart_program_service, callback_group=grp)
        msg_type = TwistStamped if cfg.command_mode == "servo_twist" else PoseStamped
        self.command_pub = node.create_publisher(msg_type, cfg.command_topic(), qos.CONTROL)
        self.recovery = ur.ProtectiveStopRecovery(cfg)
        self.safety_mode: Optional[int] = None
        self.program_running: Optional[bool] = None
        self.pending: Optional[PendingCall] = None
        node.create_subscription(PoseStamped, cfg.ee_pose_topic, node.on_pose, qos.SENSOR,
                                 callback_group=node.state_group)
        node.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, qos.SENSOR,
                                 callback_group=node.state_group)
        node.create_subscription(SafetyMode, cfg.safety_mode_topic, self._on_safety, LATCHED_STATUS,
                                 callback_group=node.state_group)
        node.create_subscription(Bool, cfg.program_running_topic, self._on_program, LATCHED_STATUS,
                                 callback_group=node.state_group)

    def _on_joints(self, msg: JointState):
        if self.cfg.gripper_joint not in msg.name:
            return   # arm-only joint_states messages are normal
        i = list(msg.name).index(self.cfg.gripper_joint)
        try:
            self.node.on_gripper_width(ur.gripper_width(msg.position[i], self.cfg), self.cfg.gripper_max_width)
        except (BridgeError, IndexError) as exc:
            self.node.get_logger().error(f"gripper joint state: {exc}", throttle_duration_sec=2.0)

    def _on_safety(self, msg):
        self.safety_mode = int(msg.mode)

    def _on_program(self, msg: Bool):
        self.program_running = bool(msg.data)

    def send_target(self, pose: np.ndarray, msg: PoseStamped) -> None:
        if self.cfg.command_mode == "servo_twist":
            return   # twists are sent from the control timer toward the latest target
        msg.pose = numpy_to_pose(pose)
        self.command_pub.publish(msg)

    def send_twist(self, lin, ang, frame_id: str) -> None:
        msg = TwistStamped()
        msg.header.stamp, msg.header.frame_id = self.node.get_clock().now().to_msg(), frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = map(float, lin)
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = map(float, ang)
        self.command_pub.publish(msg)

    def hold(self) -> None:
        if self.cfg.command_mode == "servo_twist":
            self.send_twist((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), self.node.state_frame)

    def send_gripper(self, decision: str) -> PendingCall:
        fields = ur.gripper_goal(decision, self.cfg)
        goal = self.GripperCommand.Goal()
        goal.command.position, goal.command.max_effort = fields["position"], fields["max_effort"]
        # A grasp that stalls on the object is a success for us, not only reaching the setpoint.
        return send_goal(self.gripper, goal, "gripper_cmd", 15.0, lambda r: r.reached_goal or r.stalled)

    def safety(self, now: float) -> Tuple[bool, str]:
        if self.pending is not None:
            done, ok, message = self.pending.poll()
            if not done:
                return False, f"waiting for {self.pending.what}"
            if ok:
                self.node.get_logger().info(message)
            else:
                self.node.get_logger().error(message)
            if not ok and self.pending.what == "unlock_protective_stop":
                self.recovery.unlock_failed(now)
            self.pending = None
        ok, action, message = self.recovery.step(self.safety_mode, now)
        if action == "unlock":
            self.pending = call_trigger(self.unlock, "unlock_protective_stop", 10.0)
        elif action == "restart_program":
            self.pending = call_trigger(self.restart, "restart_program", 10.0)
        if action is not None:
            self.node.get_logger().warning(message)
        if ok and self.program_running is False:
            return False, "robot program is not running (start External Control / dashboard play)"
        return ok, message

    def reset_steps(self) -> List[Tuple[str, Callable[[], PendingCall]]]:
        self.recovery.reset_episode()
        return [("gripper_open", lambda: self.send_gripper("open"))]


class RobotBridgeNode(Node):
    parallel_callbacks = True   # the reset service waits for the reset sequence other callbacks drive
    executor_threads = 4   # driver state, commands, action/service responses and the control timer at once

    def __init__(self):
        super().__init__("robot_bridge")
        node_cfg = declare_dataclass(self, RobotBridgeNodeConfig)   # the driver's own: franka.* / ur.* below
        self.robot = node_cfg.robot
        self.dt = 1.0 / node_cfg.control_rate_hz
        self.period_ns = int(round(self.dt * 1e9))
        self.last_snapshot_step = -1
        require_gripper = node_cfg.require_gripper_state
        self.cfg = node_cfg.bridge
        self.io_group = ReentrantCallbackGroup()
        self.state_group = MutuallyExclusiveCallbackGroup()
        self.lock = threading.RLock()
        self.monitor = StateMonitor(("ee_pose", "gripper") if require_gripper else ("ee_pose",),
                                    self.cfg.max_state_age_s)
        self.hysteresis = GripperHysteresis(self.cfg.gripper_close_above, self.cfg.gripper_open_below,
                                            self.cfg.gripper_retry_s)
        self.current: Optional[np.ndarray] = None
        self.state_frame = ""
        self.opening = 0.0                        # fraction of the gripper's max width
        self.last_target: Optional[Tuple[float, np.ndarray]] = None   # (arrival, limited pose)
        self.gripper_call: Optional[Tuple[str, PendingCall]] = None
        self.reset_run: Optional[dict] = None
        self._reset_result = ("", "")
        self.episode_id = 0
        self.limit_counts: dict = {}
        # Inputs handled and outputs sent, in every status message: what the bridge did with each
        # command is visible (to an operator, and to tests that must not wait out a silence).
        self.counts = dict.fromkeys(("targets_in", "targets_out", "gripper_in", "gripper_goals", "snapshots"), 0)
        self.last_target_in = {"stamp_ns": 0, "sent": False}     # the newest target and its fate
        self.last_gripper_in = {"stamp_ns": 0, "goal": ""}       # the newest gripper command, goal sent ("" none)
        self.status = {"state": "starting", "reason": ""}
        self.status_sent = (None, 0.0)

        if self.robot == "franka":
            self.driver = FrankaDriver(self, declare_dataclass(self, franka.FrankaConfig, "franka"))
        elif self.robot == "ur":
            self.driver = URDriver(self, declare_dataclass(self, ur.URConfig, "ur"))
        else:
            raise BridgeError(f"parameter robot must be 'franka' or 'ur', got {self.robot!r}")

        self.pose_pub = self.create_publisher(PoseStamped, topics.ROBOT_EE_POSE, qos.sensor(self))
        self.grip_pub = self.create_publisher(JointState, topics.ROBOT_GRIPPER_STATE, qos.sensor(self))
        self.status_pub = self.create_publisher(String, topics.ROBOT_STATUS, qos.CONTROL)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        self.create_subscription(PoseStamped, topics.TARGET_POSE, self._on_target, qos.CONTROL,
                                 callback_group=self.state_group)
        self.create_subscription(JointState, topics.GRIPPER_COMMAND, self._on_gripper_command, qos.CONTROL,
                                 callback_group=self.state_group)
        self.create_service(ResetEpisode, topics.RESET_EPISODE, self._on_reset, callback_group=self.io_group)
        wall_timer(self, self.dt, self._tick)
        self.get_logger().info(f"robot bridge up: robot={self.robot} rate={1 / self.dt:.1f} Hz "
                               f"workspace={self.cfg.workspace.min_xyz}..{self.cfg.workspace.max_xyz} "
                               f"max speed {self.cfg.max_linear_speed} m/s, {self.cfg.max_angular_speed} rad/s")

    # --- robot state in -----------------------------------------------------------------------
    def on_pose(self, msg: PoseStamped):
        try:
            pose = check_pose(pose_to_numpy(msg.pose), "robot EE pose")
        except BridgeError as exc:
            self.get_logger().error(f"{exc}; ignored", throttle_duration_sec=2.0)
            return
        with self.lock:
            self.current, self.state_frame = pose, msg.header.frame_id
            self.monitor.update("ee_pose", time.monotonic())

    def on_gripper_width(self, width: float, max_width: float):
        with self.lock:
            self.opening = float(np.clip(width / max_width, 0.0, 1.0))
            if "gripper" in self.monitor.parts:
                self.monitor.update("gripper", time.monotonic())

    def hold_reason(self, now: float) -> str:
        problem = self.monitor.problem(now)
        if problem:
            return problem
        ok, message = self.driver.safety(now)
        return "" if ok else message

    # --- commands in --------------------------------------------------------------------------
    def _on_target(self, msg: PoseStamped):
        with self.lock:
            self.counts["targets_in"] += 1
            self.last_target_in = {"stamp_ns": stamp_to_ns(msg.header.stamp), "sent": False}
            if self.reset_run is not None:
                return   # the reset sequence owns the arm
            now = time.monotonic()
            reason = self.hold_reason(now)
            if not reason and msg.header.frame_id and self.state_frame and msg.header.frame_id != self.state_frame:
                reason = (f"target frame '{msg.header.frame_id}' differs from the robot state frame "
                          f"'{self.state_frame}' (set frame_id of the resrl nodes)")
            if reason:
                self._set_status("holding", reason)
                self.driver.hold()
                return
            try:
                target, hits = limit_target(pose_to_numpy(msg.pose), self.current, self.cfg, self.dt)
            except BridgeError as exc:
                self._set_status("holding", f"bad target: {exc}")
                self.driver.hold()
                return
            for h in hits:
                self.limit_counts[h] = self.limit_counts.get(h, 0) + 1
            self.last_target = (now, target)
            self._set_status("ok", "")
            out = PoseStamped()
            out.header.stamp, out.header.frame_id = msg.header.stamp, self.state_frame or msg.header.frame_id
            self._send_target(target, out)
            self.last_target_in["sent"] = True

    def _on_gripper_command(self, msg: JointState):
        if not msg.position:
            self.get_logger().error("empty gripper command ignored", throttle_duration_sec=2.0)
            return
        with self.lock:
            self.counts["gripper_in"] += 1
            self.last_gripper_in = {"stamp_ns": stamp_to_ns(msg.header.stamp), "goal": ""}
            now = time.monotonic()
            if self.reset_run is not None or self.hold_reason(now):
                return   # holding keeps the gripper as it is
            try:
                decision = self.hysteresis.update(float(msg.position[0]), now)
            except BridgeError as exc:
                self.get_logger().error(f"{exc}; ignored", throttle_duration_sec=2.0)
                return
            if decision is not None:
                self.counts["gripper_goals"] += 1
                self.last_gripper_in["goal"] = decision
                self.gripper_call = (decision, self.driver.send_gripper(decision))

    def _send_target(self, target: np.ndarray, out: PoseStamped) -> None:
        self.counts["targets_out"] += 1
        self.driver.send_target(target, out)

    # --- control timer ------------------------------------------------------------------------
    def _tick(self):
        with self.lock:
            now = time.monotonic()
            self._poll_gripper(now)
            reason = self.hold_reason(now)
            if not self.monitor.problem(now):
                self._publish_state()
            if self.reset_run is not None:
                self._advance_reset(now)
            elif reason:
                self._set_status("holding", reason)
                self.driver.hold()
            else:
                if self.status["state"] != "ok":
                    self._set_status("ok", "")
                if isinstance(self.driver, URDriver) and self.driver.cfg.command_mode == "servo_twist":
                    self._servo_twist(now)
            self._publish_status(now)

    def _servo_twist(self, now: float):
        """Servo twist mode: a speed-limited twist toward the latest target, zero when the
        arbiter has gone quiet (Servo itself also halts on its incoming-command timeout)."""
        if self.last_target is not None and now - self.last_target[0] <= self.cfg.command_timeout_s:
            lin, ang = twist_toward(self.last_target[1], self.current, self.cfg, self.driver.cfg.twist_gain)
            self.driver.send_twist(lin, ang, self.state_frame)
        else:
            self.driver.hold()

    def _poll_gripper(self, now: float):
        if self.gripper_call is None:
            return
        decision, call = self.gripper_call
        done, ok, message = call.poll()
        if done:
            self.gripper_call = None
            if not ok:
                self.get_logger().error(f"gripper {decision} failed: {message}; retrying in "
                                        f"{self.cfg.gripper_retry_s} s if still commanded")
                self.hysteresis.failed(decision, now)

    def _publish_state(self):
        # Stamps on the control-period grid: one snapshot per arbiter step (step = stamp // period),
        # within half a period of the sampling time (max_skew_ms covers it).
        step = round(self.get_clock().now().nanoseconds / self.period_ns)
        if step == self.last_snapshot_step:
            return   # timer jitter: this period already has its snapshot
        self.last_snapshot_step = step
        self.counts["snapshots"] += 1
        stamp = ns_to_stamp(step * self.period_ns)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.state_frame
        pose.pose = numpy_to_pose(self.current)
        self.pose_pub.publish(pose)
        # resrl's observation reads the opening as the finger sum over the Franka Hand's 0.08 m:
        # publish the opening fraction on that scale so any gripper maps to [0, 1].
        finger = self.opening * FRANKA_MAX_WIDTH_M / 2.0
        grip = JointState(name=["finger_joint_left", "finger_joint_right"], position=[finger, finger])
        grip.header.stamp = stamp
        self.grip_pub.publish(grip)

    # --- episode reset ------------------------------------------------------------------------
    def _on_reset(self, request, response):
        done = threading.Event()
        with self.lock:
            if self.reset_run is not None:
                response.success, response.message = False, "a reset is already running"
                return response
            self.hysteresis.reset()
            self.reset_run = {"steps": self.driver.reset_steps() + [("home", None)], "call": None, "home": None,
                              "done": done, "error": "", "episode_type": request.episode_type or "train"}
            self._set_status("resetting", "reset sequence started")
        if not done.wait(self.cfg.home_timeout_s + 60.0):
            with self.lock:
                if self.reset_run is not None and self.reset_run["done"] is done:
                    self.reset_run = None
            response.success, response.message = False, "reset sequence timed out"
            return response
        with self.lock:
            error, run_done = self._reset_result
        response.success = not error
        response.message = error or f"episode {self.episode_id} ({run_done}) at home"
        response.episode_id = self.episode_id
        return response

    def release_waits(self):
        """Stop requested: a reset in progress is abandoned, so its service call answers now."""
        with self.lock:
            run, self.reset_run = self.reset_run, None
            if run is not None:
                self.driver.hold()
                self._reset_result = ("reset abandoned: the bridge is stopping", run["episode_type"])
                run["done"].set()

    def _advance_reset(self, now: float):
        run = self.reset_run
        name, start = run["steps"][0]
        if name == "home":
            if self.monitor.problem(now):
                return self._finish_reset(f"reset: {self.monitor.problem(now)}")
            safety_ok, message = self.driver.safety(now)
            if not safety_ok:
                self._set_status("resetting", f"waiting: {message}")
                self.driver.hold()
                return
            if run["home"] is None:
                run["home"] = HomeMotion(self.cfg, self.dt, now)
            target, reached, error = run["home"].step(self.current, now)
            if error:
                self.driver.hold()
                return self._finish_reset(f"reset: {error}")
            if reached:
                self.driver.hold()
                return self._finish_reset("")
            out = PoseStamped()
            out.header.stamp, out.header.frame_id = self.get_clock().now().to_msg(), self.state_frame
            self._send_target(target, out)
            if isinstance(self.driver, URDriver) and self.driver.cfg.command_mode == "servo_twist":
                lin, ang = twist_toward(target, self.current, self.cfg, self.driver.cfg.twist_gain)
                self.driver.send_twist(lin, ang, self.state_frame)
            return
        if run["call"] is None:
            self._set_status("resetting", name)
            run["call"] = start()
        done, ok, message = run["call"].poll()
        if not done:
            return
        if not ok:
            return self._finish_reset(f"reset step {name} failed: {message}")
        if name == "gripper_open":
            self.hysteresis.sent = "open"   # the episode starts from an open gripper
        run["steps"].pop(0)
        run["call"] = None

    def _finish_reset(self, error: str):
        run, self.reset_run = self.reset_run, None
        if not error:
            self.episode_id += 1
            msg = EpisodeEvent(event=EpisodeEvent.START, source=EpisodeEvent.SOURCE_SYSTEM,
                               episode_id=self.episode_id, note=run["episode_type"])
            msg.header.stamp = self.get_clock().now().to_msg()
            self.event_pub.publish(msg)
            self._set_status("ok", f"episode {self.episode_id} started at home")
        else:
            self.get_logger().error(error)
            self._set_status("holding", error)
        self.last_target = None
        self._reset_result = (error, run["episode_type"])
        run["done"].set()

    # --- status -------------------------------------------------------------------------------
    def _set_status(self, state: str, reason: str):
        changed = (state, reason) != (self.status["state"], self.status["reason"])
        if changed and state == "holding":
            self.get_logger().warning(f"holding: {reason}", throttle_duration_sec=1.0)
        self.status = {"state": state, "reason": reason}
        if changed:   # every change is published at once, not only the state at the next tick
            self._publish_status(time.monotonic())

    def _publish_status(self, now: float):
        key = (self.status["state"], self.status["reason"])
        if key == self.status_sent[0] and now - self.status_sent[1] < 1.0:
            return
        self.status_sent = (key, now)
        self.status_pub.publish(String(data=json.dumps({**self.status, "robot": self.robot,
                                                        "episode_id": self.episode_id,
                                                        "limits_hit": self.limit_counts,
                                                        "counts": self.counts,
                                                        "last_target": self.last_target_in,
                                                        "last_gripper": self.last_gripper_in})))


def main(args=None):
    return run_node(RobotBridgeNode, args)


if __name__ == "__main__":
    main()
