"""The robot bridge against stand-in driver peers that speak franka_ros2's and ur_robot_driver's
topic / action / service names, types and QoS (interfaces from test/stand_ins/, built on first
use: ~80 s cold, <0.1 s warm).

Franka: a fake arm publishes /franka_robot_state_broadcaster/current_pose and
/franka_gripper/joint_states (reliable, like franka_ros2) and follows the Cartesian target topic;
fake franka_gripper move / grasp / homing and /action_server/error_recovery servers record goals.
UR: a fake arm publishes /tcp_pose_broadcaster/pose, /joint_states with the Robotiq joint and
the latched /io_and_status_controller/safety_mode; a fake GripperCommand server and dashboard
Trigger services record calls.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.action import ActionServer
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from resrl import topics
from resrl.ros import qos
from resrl.ros.spin_thread import SpinThread
from resrl.ros.convert import ns_to_stamp, numpy_to_pose, pose_to_numpy
from rosutil import STOP_CONTRACT_S, stop_process, tracebacks, wait_for

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "test" / "stand_ins"))
import stand_ins  # noqa: E402

DOWN = [1.0, 0.0, 0.0, 0.0]
RATE_HZ = 10.0
MAX_SPEED = 0.2                      # m/s -> 0.02 m per control period
SYSTEM_DEFAULT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)   # rclcpp::SystemDefaultsQoS
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
COMMON_PARAMS = {
    "control_rate_hz": RATE_HZ, "bridge.max_linear_speed": MAX_SPEED, "bridge.max_angular_speed": 1.0,
    # 1 s: the fake drivers publish from this (Python, GIL-shared) test process, which a loaded CI
    # machine can stall for a few hundred ms; the staleness tests use their own, explicit gaps.
    "bridge.max_state_age_s": 1.0, "bridge.workspace.min_xyz": [0.3, -0.3, 0.05],
    "bridge.workspace.max_xyz": [0.7, 0.3, 0.5], "bridge.home_pose": [0.5, 0.0, 0.3, *DOWN],
    "bridge.gripper_retry_s": 0.5,
}


def _param(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(repr(float(v)) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def start_bridge(params: dict) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "scripts" / "nodes" / "robot_bridge_node"), "--ros-args"]
    for key, value in {**COMMON_PARAMS, **params}.items():
        args += ["-p", f"{key}:={_param(value)}"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=stand_ins.subprocess_env(), start_new_session=True)


def keep_sending_until(peer, target, done, timeout: float = 5.0) -> bool:
    """The arbiter's stream: one target per 0.1 s until ``done()`` (slack for a loaded CI machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer.send_target(target)
        time.sleep(0.1)
        if done():
            return True
    return False


def bridge_with_peer(peer, proc):
    """Fixture body: wait until the bridge talks to the fake driver, hand both over, clean up."""
    try:
        assert wait_for(lambda: peer.got["ee"] or proc.poll() is not None, 60), "no state snapshot"
        assert proc.poll() is None, proc.stdout.read()
        assert wait_for(lambda: peer.target_pub.get_subscription_count() > 0, 20)
        yield peer, proc
    finally:
        out = stop_process(proc)
        peer.close()
        assert not tracebacks(out), out


class Peer:
    """The test side: a node in this process, spun by a background executor."""

    frame = ""   # the driver's base frame (each fake driver sets its own)

    def stamp(self):
        """A fresh, strictly increasing stamp (ns) for the next input the test sends."""
        ns = max(self.node.get_clock().now().nanoseconds, self.last_stamp_ns + 1)
        self.last_stamp_ns = ns
        return ns_to_stamp(ns), ns

    def send_target(self, xyz, frame=None):
        msg = PoseStamped()
        msg.header.stamp, ns = self.stamp()
        msg.header.frame_id = self.frame if frame is None else frame
        msg.pose = numpy_to_pose([*xyz, *DOWN])
        self.target_pub.publish(msg)
        return ns

    def send_gripper(self, value):
        msg = JointState(name=["gripper"], position=[float(value)])
        msg.header.stamp, ns = self.stamp()
        self.gripper_pub.publish(msg)
        return ns

    def __init__(self, name: str):
        self.node = rclpy.create_node(name)
        self.group = ReentrantCallbackGroup()
        self.lock = threading.Lock()
        self.got = {}
        self.last_stamp_ns = 0
        self.servers = []   # action servers: destroyed explicitly, destroy_node leaves them behind
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(self.node)
        self.spinner = SpinThread(executor)

    def record(self, key, msg_type, topic, qos_profile):
        self.got[key] = []

        def cb(msg):
            with self.lock:
                self.got[key].append((time.monotonic(), msg))
        self.node.create_subscription(msg_type, topic, cb, qos_profile, callback_group=self.group)

    def since(self, key, t0):
        with self.lock:
            return [m for t, m in self.got[key] if t >= t0]

    def close(self):
        self.spinner.stop()
        for server in self.servers:
            server.destroy()
        self.node.destroy_node()


def statuses(peer, t0):
    return [json.loads(m.data) for m in peer.since("status", t0)]


def status_where(peer, t0, pred, timeout: float = 10.0) -> dict:
    """The first status since ``t0`` that satisfies ``pred``. The bridge publishes one on each
    change and every second, with what it did with the newest target and gripper command: a
    test waits for the bridge's account of its input instead of watching a silence."""
    found = []

    def seen():
        found[:] = [s for s in statuses(peer, t0) if pred(s)]
        return bool(found)
    assert wait_for(seen, timeout), statuses(peer, t0)[-3:]
    return found[0]


def next_status(peer, t0) -> dict:
    """The first status since ``t0``, whatever it says."""
    return status_where(peer, t0, lambda s: True)


def handled_target(peer, t0, stamp_ns: int) -> dict:
    return status_where(peer, t0, lambda s: s["last_target"]["stamp_ns"] == stamp_ns)


def handled_gripper(peer, t0, stamp_ns: int) -> dict:
    return status_where(peer, t0, lambda s: s["last_gripper"]["stamp_ns"] == stamp_ns)


def sees_pose(peer, pose, t0) -> bool:
    """The bridge republishes ``pose`` as the robot state (it has taken it as current)."""
    ee = peer.since("ee", t0)
    return bool(ee) and np.allclose(pose_to_numpy(ee[-1].pose), pose, atol=1e-6)


@pytest.fixture(scope="module")
def ros():
    stand_ins.ensure_built()
    stand_ins.activate_in_process()
    rclpy.init()
    yield
    rclpy.shutdown()


# --- Franka ---------------------------------------------------------------------------------
class FakeFranka(Peer):
    frame = "fr3_link0"

    def __init__(self):
        super().__init__("fake_franka")
        from franka_msgs.action import ErrorRecovery, Grasp, Homing, Move
        self.pose = np.array([0.5, 0.0, 0.3, *DOWN])
        self.width = 0.08
        self.publishing = True
        self.follow = True
        self.goals = []
        n = self.node
        self.pose_pub = n.create_publisher(PoseStamped, "/franka_robot_state_broadcaster/current_pose", SYSTEM_DEFAULT)
        self.grip_pub = n.create_publisher(JointState, "/franka_gripper/joint_states", SYSTEM_DEFAULT)
        n.create_subscription(PoseStamped, "/cartesian_impedance/target_pose", self._on_target, SYSTEM_DEFAULT,
                              callback_group=self.group)
        self.record("target", PoseStamped, "/cartesian_impedance/target_pose", SYSTEM_DEFAULT)
        self.record("ee", PoseStamped, topics.ROBOT_EE_POSE, qos.SENSOR)
        self.record("grip", JointState, topics.ROBOT_GRIPPER_STATE, qos.SENSOR)
        self.record("status", String, topics.ROBOT_STATUS, qos.CONTROL)
        from resrl.msg import EpisodeEvent
        self.record("events", EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        for name, cls in (("move", Move), ("grasp", Grasp), ("homing", Homing)):
            self.servers.append(ActionServer(n, cls, f"/franka_gripper/{name}", self._executor(name, cls),
                                             callback_group=self.group))
        self.servers.append(ActionServer(n, ErrorRecovery, "/action_server/error_recovery",
                                         self._executor("error_recovery", ErrorRecovery), callback_group=self.group))
        self.target_pub = n.create_publisher(PoseStamped, topics.TARGET_POSE, qos.CONTROL)
        self.gripper_pub = n.create_publisher(JointState, topics.GRIPPER_COMMAND, qos.CONTROL)
        n.create_timer(0.01, self._publish, callback_group=self.group)
        self.spinner.start()

    def _executor(self, name, cls):
        def execute(handle):
            with self.lock:
                self.goals.append((name, handle.request))
            if name in ("move", "grasp"):
                self.width = handle.request.width
            handle.succeed()
            result = cls.Result()
            if hasattr(result, "success"):
                result.success = True
            return result
        return execute

    def _on_target(self, msg):
        if self.follow:
            self.pose = pose_to_numpy(msg.pose).astype(float)

    def _publish(self):
        if not self.publishing:
            return
        stamp = self.node.get_clock().now().to_msg()
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = stamp, "fr3_link0"
        msg.pose = numpy_to_pose(self.pose)
        self.pose_pub.publish(msg)
        grip = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[self.width / 2] * 2)
        grip.header.stamp = stamp
        self.grip_pub.publish(grip)


@pytest.fixture(scope="class")
def franka(ros):
    peer = FakeFranka()
    proc = start_bridge({"robot": "franka", "franka.target_topic": "/cartesian_impedance/target_pose"})
    yield from bridge_with_peer(peer, proc)


class TestFranka:
    """One franka bridge for these tests (they share the fake arm, in order)."""

    def test_franka_state_snapshot_is_republished(self, franka):
        peer, _ = franka
        t0 = time.monotonic()
        # Ten snapshots: the median period survives the odd timer slip of a loaded machine.
        assert wait_for(lambda: len(peer.since("ee", t0)) >= 10 and peer.since("grip", t0), 10)
        ee = peer.since("ee", t0)
        np.testing.assert_allclose(pose_to_numpy(ee[-1].pose), peer.pose, atol=1e-6)
        assert ee[-1].header.frame_id == "fr3_link0"
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in ee]
        period_ns = int(1e9 / RATE_HZ)
        # One snapshot per control period, stamped on the period grid (one per arbiter step).
        assert all(ns % period_ns == 0 for ns in stamps) and all(np.diff(stamps) > 0)
        assert int(np.min(np.diff(stamps))) == period_ns     # consecutive periods, none skipped twice
        grip = peer.since("grip", t0)[-1]
        assert sum(grip.position) == pytest.approx(peer.width, abs=1e-6)   # Franka Hand: opening = width

    def test_franka_target_reaches_controller_clamped(self, franka):
        peer, _ = franka
        peer.follow = False
        try:
            peer.pose = np.array([0.5, 0.0, 0.3, *DOWN])
            t0 = time.monotonic()
            assert wait_for(lambda: sees_pose(peer, peer.pose, t0), 5)
            peer.send_target([2.0, 0.0, 0.3])                 # far outside the box
            assert wait_for(lambda: peer.since("target", t0), 5)
            out = pose_to_numpy(peer.since("target", t0)[0].pose)
            np.testing.assert_allclose(out[:3], [0.5 + MAX_SPEED / RATE_HZ, 0.0, 0.3], atol=1e-5)
            peer.pose = np.array([0.69, 0.0, 0.06, *DOWN])
            t1 = time.monotonic()
            assert wait_for(lambda: sees_pose(peer, peer.pose, t1), 5)
            peer.send_target([0.75, 0.0, -0.5])                # below the table, beyond x max
            assert wait_for(lambda: peer.since("target", t1), 5)
            out = pose_to_numpy(peer.since("target", t1)[0].pose)
            assert out[0] == pytest.approx(0.7, abs=1e-5) and out[2] == pytest.approx(0.05, abs=1e-5)
            assert out[3:] == pytest.approx(DOWN, abs=1e-6)
        finally:
            peer.follow = True

    def test_franka_gripper_goals_sent_once_per_change(self, franka):
        peer, _ = franka
        with peer.lock:
            peer.goals.clear()
        t0 = time.monotonic()
        before = next_status(peer, t0)["counts"]["gripper_goals"]
        for value in [0.0, 0.0, 1.0, 1.0, 0.9, 0.5, 0.0, 0.0]:
            last = peer.send_gripper(value)
            time.sleep(0.15)    # the arbiter's pace, not a wait
        # the bridge has handled all eight and says how many goals it sent: exactly one per change
        assert handled_gripper(peer, t0, last)["counts"]["gripper_goals"] - before == 3
        assert wait_for(lambda: len(peer.goals) >= 3, 5)
        names = [name for name, _ in peer.goals]
        assert names == ["move", "grasp", "move"], names
        grasp = peer.goals[1][1]
        assert grasp.force == pytest.approx(40.0) and grasp.epsilon.inner == pytest.approx(0.08)
        assert peer.goals[2][1].width == pytest.approx(0.08)

    def test_franka_stale_state_holds_and_says_so(self, franka):
        peer, _ = franka
        peer.publishing = False
        goals_before = len(peer.goals)
        try:
            # The bridge announces the hold itself once the state is older than max_state_age_s;
            # targets sent before that announcement could still (rightly) go out.
            t_quiet = time.monotonic()
            assert wait_for(lambda: any(s["state"] == "holding" and "stale" in s["reason"]
                                        for s in statuses(peer, t_quiet)), 30), statuses(peer, t_quiet)
            announced = next(s for s in statuses(peer, t_quiet)
                             if s["state"] == "holding" and "stale" in s["reason"])["counts"]
            t0 = time.monotonic()
            target = peer.send_target([0.51, 0.0, 0.3])
            handled_target(peer, t0, target)
            grip = handled_gripper(peer, t0, peer.send_gripper(1.0))
            assert grip["last_target"] == {"stamp_ns": target, "sent": False}
            assert grip["last_gripper"]["goal"] == ""                     # the gripper holds too
            counts = grip["counts"]
            assert counts["targets_out"] == announced["targets_out"]
            assert counts["gripper_goals"] == announced["gripper_goals"] and len(peer.goals) == goals_before
            assert counts["snapshots"] == announced["snapshots"]          # no observation from stale state
            assert peer.since("target", t0) == []
            assert not any(s["state"] == "ok" for s in statuses(peer, t0)), statuses(peer, t0)
        finally:
            peer.publishing = True
        assert wait_for(lambda: any(s["state"] == "ok" for s in statuses(peer, time.monotonic() - 0.05)), 5)

    def test_franka_target_in_another_frame_holds(self, franka):
        peer, _ = franka
        t0 = time.monotonic()
        status = handled_target(peer, t0, peer.send_target([0.51, 0.0, 0.3], frame="world"))
        assert status["last_target"]["sent"] is False
        assert any("frame" in s["reason"] for s in statuses(peer, t0))

    def test_franka_reset_recovers_opens_walks_home_and_starts_episode(self, franka):
        from resrl.msg import EpisodeEvent
        from resrl.srv import ResetEpisode
        peer, _ = franka
        peer.pose = np.array([0.62, 0.15, 0.12, *DOWN])
        peer.width = 0.02
        with peer.lock:
            peer.goals.clear()
        client = peer.node.create_client(ResetEpisode, topics.RESET_EPISODE)
        assert client.wait_for_service(timeout_sec=10)
        t0 = time.monotonic()
        future = client.call_async(ResetEpisode.Request(seed=-1, episode_type="eval"))
        assert wait_for(future.done, 30)
        res = future.result()
        assert res.success, res.message
        assert [name for name, _ in peer.goals][:2] == ["error_recovery", "move"]
        np.testing.assert_allclose(peer.pose[:3], [0.5, 0.0, 0.3], atol=0.011)
        steps = [pose_to_numpy(m.pose)[:3] for m in peer.since("target", t0)]
        assert len(steps) >= 10
        assert max(np.linalg.norm(np.diff(steps, axis=0), axis=1)) <= MAX_SPEED / RATE_HZ + 1e-5
        assert wait_for(lambda: peer.since("events", t0), 3)
        event = peer.since("events", t0)[-1]
        assert (event.event, event.episode_id, event.note) == (EpisodeEvent.START, res.episode_id, "eval")


def test_franka_stop_during_a_reset_answers_and_exits_cleanly(ros):
    """Ctrl-C while the bridge walks the arm home: the waiting reset call is answered (abandoned)
    and the bridge exits 0 within the stop contract, instead of its watchdog ending a stalled stop."""
    from resrl.srv import ResetEpisode
    peer = FakeFranka()
    peer.pose = np.array([0.62, 0.15, 0.12, *DOWN])
    peer.follow = False   # the arm never gets home: the reset runs until it is stopped
    proc = start_bridge({"robot": "franka", "franka.target_topic": "/cartesian_impedance/target_pose"})
    try:
        assert wait_for(lambda: peer.got["ee"] or proc.poll() is not None, 60), "no state snapshot"
        client = peer.node.create_client(ResetEpisode, topics.RESET_EPISODE)
        assert client.wait_for_service(timeout_sec=20)
        t0 = time.monotonic()
        future = client.call_async(ResetEpisode.Request(seed=-1, episode_type="train"))
        assert wait_for(lambda: len(peer.since("target", t0)) >= 3, 20)   # recovered, opened, walking home
        t_stop = time.monotonic()
        out = stop_process(proc, timeout=30)
        took = time.monotonic() - t_stop
        assert wait_for(future.done, 10) and not future.result().success
        assert "abandoned" in future.result().message, future.result().message
    finally:
        if proc.poll() is None:
            out = stop_process(proc)
        peer.close()
    assert proc.returncode == 0 and took < STOP_CONTRACT_S, (took, out)
    assert "stop stalled" not in out and not tracebacks(out), out


# --- UR -------------------------------------------------------------------------------------
class FakeUR(Peer):
    frame = "base"

    def __init__(self, with_gripper: bool = True):
        super().__init__("fake_ur")
        from control_msgs.action import GripperCommand
        from ur_dashboard_msgs.msg import SafetyMode
        self.SafetyMode = SafetyMode
        self.pose = np.array([0.5, 0.0, 0.3, *DOWN])
        self.calls, self.goals = [], []
        n = self.node
        self.pose_pub = n.create_publisher(PoseStamped, "/tcp_pose_broadcaster/pose", SYSTEM_DEFAULT)
        self.js_pub = n.create_publisher(JointState, "/joint_states", SYSTEM_DEFAULT)
        self.safety_pub = n.create_publisher(SafetyMode, "/io_and_status_controller/safety_mode", LATCHED)
        self.record("twist", TwistStamped, "/servo_node/delta_twist_cmds", SYSTEM_DEFAULT)
        self.record("ee", PoseStamped, topics.ROBOT_EE_POSE, qos.SENSOR)
        self.record("grip", JointState, topics.ROBOT_GRIPPER_STATE, qos.SENSOR)
        self.record("status", String, topics.ROBOT_STATUS, qos.CONTROL)
        if with_gripper:
            self.servers.append(ActionServer(n, GripperCommand, "/robotiq_gripper_controller/gripper_cmd",
                                             self._gripper, callback_group=self.group))
        self.record("servo_pose", PoseStamped, "/servo_node/pose_target_cmds", SYSTEM_DEFAULT)
        for name in ("/dashboard_client/unlock_protective_stop", "/dashboard_client/play"):
            n.create_service(Trigger, name, self._service(name), callback_group=self.group)
        self.target_pub = n.create_publisher(PoseStamped, topics.TARGET_POSE, qos.CONTROL)
        self.gripper_pub = n.create_publisher(JointState, topics.GRIPPER_COMMAND, qos.CONTROL)
        n.create_timer(0.01, self._publish, callback_group=self.group)
        self.set_safety(SafetyMode.NORMAL)
        self.spinner.start()

    def set_safety(self, mode):
        self.safety_pub.publish(self.SafetyMode(mode=mode))

    def _service(self, name):
        def cb(request, response):
            with self.lock:
                self.calls.append((time.monotonic(), name))
            response.success, response.message = True, "done"
            return response
        return cb

    def _gripper(self, handle):
        from control_msgs.action import GripperCommand
        with self.lock:
            self.goals.append(handle.request.command)
        handle.succeed()
        return GripperCommand.Result(position=handle.request.command.position, reached_goal=True)

    def _publish(self):
        stamp = self.node.get_clock().now().to_msg()
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = stamp, "base"
        msg.pose = numpy_to_pose(self.pose)
        self.pose_pub.publish(msg)
        js = JointState(name=["shoulder_pan_joint", "robotiq_85_left_knuckle_joint"], position=[0.1, 0.4])
        js.header.stamp = stamp
        self.js_pub.publish(js)


@pytest.fixture(scope="class")
def ur_robot(ros):
    peer = FakeUR()
    proc = start_bridge({"robot": "ur", "ur.command_mode": "servo_twist", "ur.unlock_delay_s": 0.3,
                         "ur.twist_gain": 2.0})
    yield from bridge_with_peer(peer, proc)


class TestUR:
    """One UR bridge (servo_twist mode) for these tests."""

    def test_ur_state_is_normalised(self, ur_robot):
        peer, _ = ur_robot
        t0 = time.monotonic()
        assert wait_for(lambda: peer.since("ee", t0) and peer.since("grip", t0), 5)
        ee = peer.since("ee", t0)[-1]
        assert ee.header.frame_id == "base"
        np.testing.assert_allclose(pose_to_numpy(ee.pose), peer.pose, atol=1e-6)
        # Robotiq knuckle 0.4 of 0.8 rad = half open -> half of resrl's 0.08 m opening scale.
        assert sum(peer.since("grip", t0)[-1].position) == pytest.approx(0.04, abs=1e-6)

    def test_ur_servo_twist_toward_target_within_speed_limit(self, ur_robot):
        peer, _ = ur_robot
        t0 = time.monotonic()
        moving_since = lambda: [m for m in peer.since("twist", t0) if abs(m.twist.linear.x) > 1e-6]  # noqa: E731
        # outside the box: clamped, then speed limited
        assert keep_sending_until(peer, [0.9, 0.3, 0.3], lambda: len(moving_since()) >= 2), "no twist toward the target"
        moving = moving_since()
        lin = np.array([moving[-1].twist.linear.x, moving[-1].twist.linear.y, moving[-1].twist.linear.z])
        assert np.linalg.norm(lin) <= MAX_SPEED + 1e-6
        assert lin[0] > 0 and lin[1] > 0 and abs(lin[2]) < 1e-6
        assert moving[-1].header.frame_id == "base"
        # The arbiter goes quiet: only zero twists once command_timeout_s (0.5 s) has passed
        # (a window of 0.25 s of them, within 3 s: slack for a loaded 2-core CI machine).
        def quiet():
            last = peer.since("twist", time.monotonic() - 0.25)
            return bool(last) and all(abs(m.twist.linear.x) < 1e-9 for m in last)
        assert wait_for(quiet, 5.0)

    def test_ur_gripper_command_goal(self, ur_robot):
        peer, _ = ur_robot
        t0 = time.monotonic()
        before = next_status(peer, t0)["counts"]["gripper_goals"]
        for value in (1.0, 1.0, 1.0):
            last = peer.send_gripper(value)
            time.sleep(0.15)    # the arbiter's pace, not a wait
        assert handled_gripper(peer, t0, last)["counts"]["gripper_goals"] - before == 1
        assert wait_for(lambda: peer.goals, 5)
        assert len(peer.goals) == 1
        assert peer.goals[0].position == pytest.approx(0.8) and peer.goals[0].max_effort == pytest.approx(50.0)

    def test_ur_protective_stop_holds_unlocks_and_restarts(self, ur_robot):
        peer, _ = ur_robot
        t0 = time.monotonic()
        peer.set_safety(peer.SafetyMode.PROTECTIVE_STOP)
        assert wait_for(lambda: any(n.endswith("unlock_protective_stop") for _, n in peer.calls), 5)
        unlock_at = next(t for t, n in peer.calls if n.endswith("unlock_protective_stop"))
        assert unlock_at - t0 >= 0.3                          # after unlock_delay_s
        t_sent = time.monotonic()
        assert handled_target(peer, t0, peer.send_target([0.55, 0.0, 0.3]))["last_target"]["sent"] is False
        assert wait_for(lambda: len(peer.since("twist", t_sent)) >= 3, 5)   # three control periods after it
        held = peer.since("twist", t0 + 0.1)
        assert held and all(abs(m.twist.linear.x) < 1e-9 for m in held)
        assert any("PROTECTIVE_STOP" in s["reason"] for s in statuses(peer, t0))
        peer.set_safety(peer.SafetyMode.NORMAL)
        assert wait_for(lambda: any(n.endswith("/play") for _, n in peer.calls), 5)
        t1 = time.monotonic()
        assert keep_sending_until(peer, [0.55, 0.0, 0.3],
                                  lambda: any(m.twist.linear.x > 1e-6 for m in peer.since("twist", t1))), \
            "motion did not resume"


@pytest.fixture(scope="class")
def ur_servo_pose(ros):
    peer = FakeUR(with_gripper=False)
    proc = start_bridge({"robot": "ur", "ur.command_mode": "servo_pose"})
    yield from bridge_with_peer(peer, proc)


class TestURServoPose:
    """UR bridge in servo_pose mode, with no gripper action server running."""

    def test_ur_servo_pose_command_is_clamped(self, ur_servo_pose):
        peer, _ = ur_servo_pose
        t0 = time.monotonic()
        assert keep_sending_until(peer, [0.5, 0.0, 0.9], lambda: peer.since("servo_pose", t0))   # above the box, far
        msg = peer.since("servo_pose", t0)[0]
        assert msg.header.frame_id == "base"
        np.testing.assert_allclose(pose_to_numpy(msg.pose)[:3], [0.5, 0.0, 0.3 + MAX_SPEED / RATE_HZ], atol=1e-5)
        handled_target(peer, t0, peer.last_stamp_ns)   # every target sent is handled before the next test

    def test_ur_reset_fails_clearly_without_a_gripper_server(self, ur_servo_pose):
        from resrl.srv import ResetEpisode
        peer, _ = ur_servo_pose
        client = peer.node.create_client(ResetEpisode, topics.RESET_EPISODE)
        assert client.wait_for_service(timeout_sec=10)
        t0 = time.monotonic()
        sent_before = next_status(peer, t0)["counts"]["targets_out"]
        future = client.call_async(ResetEpisode.Request(seed=-1, episode_type="train"))
        assert wait_for(future.done, 20)
        res = future.result()
        assert not res.success and "gripper_open" in res.message and "not available" in res.message, res.message
        failed = status_where(peer, t0, lambda s: s["state"] == "holding" and "gripper_open" in s["reason"])
        assert failed["counts"]["targets_out"] == sent_before   # no motion toward home after a failed step
        assert peer.since("servo_pose", t0) == []


# --- the whole real-robot graph, no robot attached --------------------------------------------
GRAPH_NODES = {"robot_bridge", "camera_depth", "pose_tracker", "vla_chunk_provider", "residual_policy",
               "vgm_arbiter", "replay_learner", "bag_recorder", "keyboard"}


def test_franka_graph_starts_and_holds_without_robot_state(ros, tmp_path):
    """`python -m resrl.launch_runner franka_vgm` (what franka_vgm.launch.py starts) brings every
    node up from the installed executables; with no driver, camera or VLA server nothing is
    commanded and the bridge says why; SIGINT stops the graph cleanly."""
    peer = Peer("graph_observer")
    peer.record("resrl_target", PoseStamped, topics.TARGET_POSE, qos.CONTROL)
    peer.record("controller", PoseStamped, "/target_pose", SYSTEM_DEFAULT)
    peer.record("status", String, topics.ROBOT_STATUS, qos.CONTROL)
    peer.spinner.start()
    proc = subprocess.Popen([sys.executable, "-m", "resrl.launch_runner", "franka_vgm", f"run_dir:={tmp_path}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=stand_ins.subprocess_env(), start_new_session=True, cwd=tmp_path)
    try:
        up = wait_for(lambda: GRAPH_NODES <= set(peer.node.get_node_names()) or proc.poll() is not None, 90, 0.5)
        assert proc.poll() is None, proc.stdout.read()
        assert up, f"missing nodes: {GRAPH_NODES - set(peer.node.get_node_names())}"
        # three reports of the bridge (one a second): none received or sent a target
        assert wait_for(lambda: len(statuses(peer, 0.0)) >= 3, 15), statuses(peer, 0.0)
        last = statuses(peer, 0.0)[-1]
        assert last["state"] == "holding" and "no ee_pose received yet" in last["reason"], last
        assert last["counts"]["targets_in"] == 0 and last["counts"]["targets_out"] == 0, last
        assert peer.since("resrl_target", 0.0) == [] and peer.since("controller", 0.0) == []
    finally:
        out = stop_process(proc)
        peer.close()
    assert proc.returncode == 0, out
    assert not tracebacks(out), out
