"""ROS-free robot adapter logic: target limits, servo twists, staleness, gripper hysteresis,
reset-to-home motion, franka / UR goal mapping, UR protective-stop recovery."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from resrl.arbiter.safety import WorkspaceBox
from resrl.robots import franka, ur
from resrl.robots.common import (BridgeConfig, BridgeError, GripperHysteresis, HomeMotion, StateMonitor,
                                 limit_target, pose_error, twist_toward)

DOWN = [1.0, 0.0, 0.0, 0.0]   # gripper pointing down (180 deg about x)
CFG = BridgeConfig(workspace=WorkspaceBox((0.3, -0.3, 0.05), (0.7, 0.3, 0.5)), max_linear_speed=0.2,
                   max_angular_speed=1.0, home_pose=(0.5, 0.0, 0.3, *DOWN))
DT = 0.1


def pose(x, y, z, q=DOWN):
    return np.array([x, y, z, *q], dtype=float)


def test_target_inside_limits_passes_through_unchanged():
    target = pose(0.51, 0.01, 0.3)
    out, hits = limit_target(target, pose(0.5, 0.0, 0.3), CFG, DT)
    assert hits == []
    np.testing.assert_allclose(out, target, atol=1e-6)


def test_target_outside_box_is_clamped_then_speed_limited():
    out, hits = limit_target(pose(2.0, 0.0, -1.0), pose(0.69, 0.0, 0.06), CFG, DT)
    assert "workspace:x_max" in hits and "workspace:z_min" in hits
    assert out[0] <= 0.7 + 1e-9 and out[2] >= 0.05 - 1e-9
    # Far target: travel per period bounded by max_linear_speed * dt.
    far, hits = limit_target(pose(0.3, 0.3, 0.5), pose(0.6, -0.2, 0.1), CFG, DT)
    assert "step_translation" in hits
    assert np.linalg.norm(far[:3] - [0.6, -0.2, 0.1]) == pytest.approx(CFG.max_linear_speed * DT, rel=1e-5)


def test_rotation_is_speed_limited_along_the_shortest_arc():
    current = pose(0.5, 0.0, 0.3)
    qz = Rotation.from_rotvec([0.0, 0.0, math.pi / 2])   # 90 deg about the base z axis
    target = pose(0.5, 0.0, 0.3, (qz * Rotation.from_quat(DOWN)).as_quat())
    out, hits = limit_target(target, current, CFG, DT)
    assert "step_rotation" in hits
    _, dr = pose_error(out, current)
    assert np.linalg.norm(dr) == pytest.approx(CFG.max_angular_speed * DT, rel=1e-4)
    assert dr[2] > 0   # toward the target, not the long way round


@pytest.mark.parametrize("bad", [[np.nan, 0, 0.3, *DOWN], [0.5, 0, 0.3, 0, 0, 0, 0], [0.5, 0.0]])
def test_bad_target_is_a_clear_error(bad):
    with pytest.raises(BridgeError, match="target pose"):
        limit_target(bad, pose(0.5, 0, 0.3), CFG, DT)


def test_twist_points_at_the_target_and_respects_speed_limits():
    lin, ang = twist_toward(pose(0.52, 0.0, 0.3), pose(0.5, 0.0, 0.3), CFG, gain=2.0)
    np.testing.assert_allclose(lin, [0.04, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(ang, 0.0, atol=1e-6)
    lin, _ = twist_toward(pose(0.9, 0.3, 0.3), pose(0.5, 0.0, 0.3), CFG, gain=2.0)
    assert np.linalg.norm(lin) == pytest.approx(CFG.max_linear_speed)
    assert lin[0] / lin[1] == pytest.approx(0.4 / 0.3)


def test_state_monitor_names_missing_and_stale_parts():
    mon = StateMonitor(("ee_pose", "gripper"), max_age_s=0.2)
    assert mon.problem(0.0) == "no ee_pose received yet"
    mon.update("ee_pose", 1.0)
    mon.update("gripper", 1.0)
    assert mon.problem(1.1) == ""
    mon.update("ee_pose", 1.3)
    assert "gripper is stale" in mon.problem(1.35)
    with pytest.raises(KeyError):
        mon.update("camera", 0.0)


def test_gripper_hysteresis_sends_each_change_once():
    h = GripperHysteresis(close_above=0.6, open_below=0.4, retry_s=2.0)
    sent = [h.update(c, t) for t, c in enumerate([0.0, 0.1, 0.5, 0.7, 0.9, 0.5, 0.45, 0.3, 0.0])]
    assert sent == ["open", None, None, "close", None, None, None, "open", None]


def test_gripper_goal_failure_is_retried_after_the_delay_only():
    h = GripperHysteresis(0.6, 0.4, retry_s=2.0)
    assert h.update(1.0, 0.0) == "close"
    h.failed("close", 0.5)
    assert h.update(1.0, 1.0) is None
    assert h.update(1.0, 2.6) == "close"
    with pytest.raises(BridgeError):
        h.update(float("nan"), 3.0)


def test_home_motion_walks_home_at_the_speed_limit_and_stops():
    home = HomeMotion(CFG, DT, started=0.0)
    current, t, steps = pose(0.65, 0.2, 0.1), 0.0, 0
    while True:
        target, reached, error = home.step(current, t)
        assert not error
        if reached:
            break
        assert np.linalg.norm(target[:3] - current[:3]) <= CFG.max_linear_speed * DT + 1e-6
        current, t, steps = target, t + DT, steps + 1
    dist = np.linalg.norm(np.array([0.65, 0.2, 0.1]) - [0.5, 0.0, 0.3])
    assert steps == pytest.approx(math.ceil((dist - CFG.home_tolerance_m) / (CFG.max_linear_speed * DT)), abs=1)


def test_home_motion_times_out_when_the_arm_does_not_follow():
    home = HomeMotion(CFG, DT, started=0.0)
    _, reached, error = home.step(pose(0.65, 0.2, 0.1), CFG.home_timeout_s + 1.0)
    assert not reached and "home not reached" in error


def test_bridge_config_rejects_unsafe_values():
    with pytest.raises(BridgeError, match="outside the workspace"):
        BridgeConfig(home_pose=(2.0, 0.0, 0.3, *DOWN))
    with pytest.raises(BridgeError, match="max_linear_speed"):
        BridgeConfig(max_linear_speed=0.0)
    with pytest.raises(BridgeError, match="gripper_open_below"):
        BridgeConfig(gripper_open_below=0.7, gripper_close_above=0.6)


def test_franka_gripper_goals_and_width():
    cfg = franka.FrankaConfig(grasp_force=30.0)
    assert franka.gripper_goal("open", cfg) == ("move", {"width": 0.08, "speed": 0.1})
    name, goal = franka.gripper_goal("close", cfg)
    assert name == "grasp" and goal["force"] == 30.0 and goal["epsilon"] == {"inner": 0.08, "outer": 0.08}
    assert franka.finger_width([0.02, 0.021]) == pytest.approx(0.041)
    with pytest.raises(BridgeError):
        franka.finger_width([0.02])
    with pytest.raises(BridgeError):
        franka.FrankaConfig(grasp_width=0.09)


def test_ur_gripper_mapping_and_command_topics():
    cfg = ur.URConfig()
    assert ur.gripper_goal("close", cfg) == {"position": 0.8, "max_effort": 50.0}
    assert ur.gripper_width(0.0, cfg) == pytest.approx(0.085)
    assert ur.gripper_width(0.4, cfg) == pytest.approx(0.0425)
    assert ur.gripper_width(0.9, cfg) == 0.0
    assert ur.URConfig(command_mode="servo_twist").command_topic() == "/servo_node/delta_twist_cmds"
    assert ur.URConfig(command_mode="cartesian_target_frame").command_topic().endswith("/target_frame")
    with pytest.raises(BridgeError, match="command_mode"):
        ur.URConfig(command_mode="joint_velocity")


def test_ur_protective_stop_unlocks_after_delay_then_restarts_program():
    rec = ur.ProtectiveStopRecovery(ur.URConfig(unlock_delay_s=5.0, max_auto_unlocks=1))
    assert rec.step(ur.SAFETY_NORMAL, 0.0) == (True, None, "")
    assert rec.step(ur.SAFETY_PROTECTIVE_STOP, 1.0)[:2] == (False, None)
    assert rec.step(ur.SAFETY_PROTECTIVE_STOP, 5.9)[:2] == (False, None)   # UR's 5 s wait
    assert rec.step(ur.SAFETY_PROTECTIVE_STOP, 6.1)[:2] == (False, "unlock")
    assert rec.step(ur.SAFETY_PROTECTIVE_STOP, 6.2)[:2] == (False, None)   # no second unlock while pending
    assert rec.step(ur.SAFETY_NORMAL, 6.5)[:2] == (False, "restart_program")
    assert rec.step(ur.SAFETY_NORMAL, 6.6) == (True, None, "")
    # The budget is spent: the next protective stop waits for the operator.
    rec.step(ur.SAFETY_PROTECTIVE_STOP, 10.0)
    ok, action, message = rec.step(ur.SAFETY_PROTECTIVE_STOP, 20.0)
    assert (ok, action) == (False, None) and "operator" in message
    rec.reset_episode()
    assert rec.step(ur.SAFETY_PROTECTIVE_STOP, 30.0)[1] == "unlock"


@pytest.mark.parametrize("mode", [5, 6, 7, 8, 9])
def test_ur_other_safety_stops_hold_without_automatic_action(mode):
    rec = ur.ProtectiveStopRecovery(ur.URConfig(unlock_delay_s=0.0))
    ok, action, message = rec.step(mode, 100.0)
    assert (ok, action) == (False, None) and ur.SAFETY_NAMES[mode] in message
    assert rec.step(None, 0.0)[0] is False
