"""SafetyFilter: workspace clamp, per-step limits, gripper clip, HOLD decisions."""
import math

import numpy as np
import pytest

from resrl.arbiter import SafetyConfig, SafetyFilter, WorkspaceBox

STATE = np.array([0.5, 0.0, 0.2, 0.0, 0.0, 0.0, 0.3])  # EE pose inside the box, gripper opening


def rotmat(rv) -> np.ndarray:
    """Rodrigues' formula: an independent check of the filter's quaternion arithmetic."""
    rv = np.asarray(rv, dtype=float)
    angle = np.linalg.norm(rv)
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rv / angle
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def angle_between(rv_a, rv_b) -> float:
    r = rotmat(rv_a) @ rotmat(rv_b).T
    return math.acos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))


def act(xyz=(0.5, 0.0, 0.2), rv=(0.0, 0.0, 0.0), grip=0.0) -> np.ndarray:
    return np.array([*xyz, *rv, grip], dtype=float)


def state(xyz=(0.5, 0.0, 0.2), rv=(0.0, 0.0, 0.0)) -> np.ndarray:
    return np.array([*xyz, *rv, 0.3])


def test_safe_action_passes_unchanged():
    d = SafetyFilter().filter(act((0.52, 0.01, 0.19), (0.0, 0.05, 0.0), 1.0), STATE, 0.1)
    assert not d.hold and d.reason == "" and d.limits_hit == ()
    np.testing.assert_allclose(d.action, act((0.52, 0.01, 0.19), (0.0, 0.05, 0.0), 1.0), atol=1e-7)
    assert d.action.dtype == np.float32


def test_workspace_box_clamps_each_axis_and_names_the_bound():
    xyz, hits = WorkspaceBox().clamp([0.1, 0.5, -0.1])
    np.testing.assert_allclose(xyz, [0.25, 0.35, 0.01])
    assert set(hits) == {"workspace:x_min", "workspace:y_max", "workspace:z_min"}
    d = SafetyFilter().filter(act((0.8, 0.0, 0.2)), state((0.74, 0.0, 0.2)), 0.0)
    np.testing.assert_allclose(d.action[:3], [0.75, 0.0, 0.2], atol=1e-7)
    assert d.limits_hit == ("workspace:x_max",)


def test_translation_step_is_limited_along_the_commanded_direction():
    d = SafetyFilter().filter(act((0.56, 0.08, 0.2)), STATE, 0.0)   # 0.1 m away
    np.testing.assert_allclose(d.action[:3], [0.53, 0.04, 0.2], atol=1e-7)
    assert d.limits_hit == ("step_translation",)


def test_outside_the_box_the_robot_is_walked_back_at_the_step_limit():
    d = SafetyFilter().filter(act((0.5, 0.0, 0.2)), state((0.5, 0.0, 0.7)), 0.0)
    np.testing.assert_allclose(d.action[:3], [0.5, 0.0, 0.65], atol=1e-7)
    assert d.limits_hit == ("step_translation",)


@pytest.mark.parametrize("current, target", [
    ((0.0, 0.0, 1.0), (0.0, 0.0, 1.5)),
    ((0.3, -0.2, 0.1), (-0.4, 0.5, 0.9)),
    ((0.0, 0.0, 3.0), (0.0, 0.0, -3.0)),    # 0.28 rad apart across the +-pi wrap
])
def test_rotation_step_is_limited_along_the_shortest_arc(current, target):
    d = SafetyFilter().filter(act(rv=target), state(rv=current), 0.0)
    out = d.action[3:6].astype(float)
    assert d.limits_hit == ("step_rotation",)
    assert angle_between(out, current) == pytest.approx(0.2, abs=1e-5)
    # On the geodesic: the rest of the way to the target is the full distance minus 0.2.
    assert angle_between(target, out) == pytest.approx(angle_between(target, current) - 0.2, abs=1e-5)


def test_small_rotation_is_not_touched():
    d = SafetyFilter().filter(act(rv=(0.0, 0.0, 2.95)), state(rv=(0.0, 0.0, 3.1)), 0.0)
    np.testing.assert_allclose(d.action[3:6], [0.0, 0.0, 2.95], atol=1e-7)
    assert d.limits_hit == ()


@pytest.mark.parametrize("grip, expected", [(1.3, 1.0), (-0.2, 0.0)])
def test_gripper_clipped_to_unit_interval(grip, expected):
    d = SafetyFilter().filter(act(grip=grip), STATE, 0.0)
    assert d.action[6] == expected and d.limits_hit == ("gripper",)


@pytest.mark.parametrize("bad", [act(grip=np.nan), act(xyz=(np.inf, 0, 0)), np.zeros(6), "seven"])
def test_invalid_action_holds_at_current_pose(bad):
    d = SafetyFilter().filter(bad, STATE, 0.0)
    assert d.hold and d.reason.startswith("invalid action")
    np.testing.assert_allclose(d.action, [0.5, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0])  # initial gripper


@pytest.mark.parametrize("age", [0.51, math.nan, math.inf, None])
def test_stale_or_unknown_observation_age_holds(age):
    d = SafetyFilter().filter(act(), STATE, age)
    assert d.hold and d.reason.startswith("stale observation")
    assert d.limits_hit == ()


def test_observation_at_the_age_limit_is_still_fresh():
    assert not SafetyFilter().filter(act(), STATE, 0.5).hold


def test_no_base_action_holds():
    d = SafetyFilter().filter(None, STATE, 0.0)
    assert d.hold and d.reason == "no base action"


def test_invalid_state_holds_without_a_pose():
    d = SafetyFilter().filter(act(), np.full(7, np.nan), 0.0)
    assert d.hold and d.action is None and d.reason.startswith("invalid state")


def test_hold_keeps_the_last_gripper_command_until_reset():
    f = SafetyFilter()
    f.filter(act(grip=1.0), STATE, 0.0)
    d = f.filter(None, STATE, 0.0)
    assert d.hold and d.action[6] == 1.0             # an object in the gripper stays held
    np.testing.assert_array_equal(f.hold_action(STATE)[:6], STATE[:6].astype(np.float32))
    f.reset()
    assert f.hold_action(STATE)[6] == 0.0


def test_config_validation():
    with pytest.raises(ValueError, match="must be <"):
        WorkspaceBox(min_xyz=(0.5, 0.0, 0.0), max_xyz=(0.4, 0.1, 0.1))
    with pytest.raises(ValueError, match="max_obs_age_s"):
        SafetyConfig(max_obs_age_s=0.0)
    with pytest.raises(ValueError, match="max_step_translation"):
        SafetyConfig(max_step_translation=math.nan)
