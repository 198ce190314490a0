"""Rotation helpers against scipy and against known values.

Round trips alone cannot catch a convention error made both ways (xyzw vs wxyz, body vs base
frame, a transposed matrix), so every helper is also checked against a value written down by
hand or built with scipy's ``from_euler`` / MuJoCo's own conversions, and the safety clamp is
checked at its limits against scipy's Slerp.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from resrl import geometry
from resrl.arbiter.safety import SafetyConfig, clamp_action
from resrl.models.residual import PoseAugmentation, quat_mul
from resrl.perception.transforms import matrix_to_pose, pose_to_matrix
from resrl.robots.common import pose_error

RANDOM = Rotation.random(200, random_state=0)
Z90 = [0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5)]   # 90 deg about z, [x y z w]


def same_rotation_quat(a, b, atol=1e-9):
    """q and -q are one rotation."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.allclose(a, b, atol=atol) or np.allclose(a, -b, atol=atol)


# --------------------------------------------------------------------------------------------
# known values: the conventions themselves
# --------------------------------------------------------------------------------------------
def test_known_values_fix_the_conventions():
    # 90 deg about z maps base x onto base y: the matrix's first column is +y.
    np.testing.assert_allclose(geometry.quat_to_mat(Z90), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(geometry.quat_to_rotvec(Z90), [0, 0, math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(geometry.rotvec_to_quat([0, 0, math.pi / 2]), Z90, atol=1e-12)
    np.testing.assert_allclose(geometry.rotvec_to_mat([0, 0, math.pi / 2]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # the Franka "gripper down" orientation: 180 deg about x
    np.testing.assert_allclose(geometry.quat_to_rotvec([1, 0, 0, 0]), [math.pi, 0, 0], atol=1e-12)
    # scalar first is MuJoCo's layout: [w x y z] of 90 deg about z
    np.testing.assert_allclose(geometry.quat_xyzw_to_wxyz(Z90), [math.sqrt(0.5), 0, 0, math.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(geometry.quat_wxyz_to_xyzw([math.sqrt(0.5), 0, 0, math.sqrt(0.5)]), Z90, atol=1e-12)
    # composition "a * b" is b first, then a, both in the base frame: x90 maps y -> z, z90 leaves
    # z; x90 leaves x, z90 maps x -> y.
    zx = geometry.rotation_of_quat(Z90) * Rotation.from_euler("x", 90, degrees=True)
    np.testing.assert_allclose(zx.apply([[0, 1, 0], [1, 0, 0]]), [[0, 0, 1], [0, 1, 0]], atol=1e-12)
    # yaw of a yaw-pitch-roll orientation (intrinsic ZYX) is the yaw
    q = Rotation.from_euler("ZYX", [0.7, 0.3, -0.4]).as_quat()
    assert geometry.yaw_of_quat_xyzw(q) == pytest.approx(0.7, abs=1e-12)


def test_shortest_rotation_and_invalid_quaternions():
    # 270 deg about z is -90 deg about z (angle in [0, pi]); q and -q give the same rotation vector.
    q = geometry.rotvec_to_quat([0, 0, 1.5 * math.pi])
    np.testing.assert_allclose(geometry.quat_to_rotvec(q), [0, 0, -math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(geometry.quat_to_rotvec(-q), [0, 0, -math.pi / 2], atol=1e-12)
    np.testing.assert_allclose(geometry.quat_to_rotvec([0, 0, 2e-12, 1.0]), [0, 0, 4e-12], atol=1e-20)
    for bad in ([0, 0, 0, 0], [np.nan, 0, 0, 1], [np.inf, 0, 0, 1]):
        with pytest.raises(ValueError):
            geometry.quat_to_rotvec(bad)
        with pytest.raises(ValueError):
            pose_to_matrix([0, 0, 0, *bad])


def test_yaw_is_defined_at_gimbal_lock():
    """Pitch +-90 deg (a tipped cube): the heading of the x axis, no warning."""
    for pitch in (math.pi / 2, -math.pi / 2):
        q = (Rotation.from_euler("z", 0.4) * Rotation.from_euler("y", pitch)).as_quat()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yaw = geometry.yaw_of_quat_xyzw(q)
        assert math.isfinite(yaw)
    # a tipped cube's heading still turns with the cube
    tipped = Rotation.from_euler("y", math.pi / 2 - 1e-3)
    assert geometry.yaw_of_quat_xyzw((Rotation.from_euler("z", 0.4) * tipped).as_quat()) == pytest.approx(0.4, abs=1e-9)


# --------------------------------------------------------------------------------------------
# random rotations against scipy, and against MuJoCo's own conversions
# --------------------------------------------------------------------------------------------
def test_helpers_match_scipy_on_random_rotations():
    for r in RANDOM:
        q, rv, m = r.as_quat(), r.as_rotvec(), r.as_matrix()
        np.testing.assert_allclose(geometry.quat_to_rotvec(q), rv, atol=1e-9)
        np.testing.assert_allclose(geometry.quat_to_rotvec(-q), rv, atol=1e-9)
        assert same_rotation_quat(geometry.rotvec_to_quat(rv), q)
        np.testing.assert_allclose(geometry.quat_to_mat(q), m, atol=1e-12)
        np.testing.assert_allclose(geometry.rotvec_to_mat(rv), m, atol=1e-12)
        np.testing.assert_allclose(geometry.mat_to_rotvec(m), rv, atol=1e-9)
        assert same_rotation_quat(geometry.mat_to_quat(m), q)
        np.testing.assert_allclose(geometry.quat_xyzw_to_wxyz(q), [q[3], q[0], q[1], q[2]], atol=1e-12)
        yaw, pitch, _ = r.as_euler("ZYX")
        if abs(abs(pitch) - math.pi / 2) > 1e-3:
            assert geometry.yaw_of_quat_xyzw(q) == pytest.approx(yaw, abs=1e-9)


def test_wxyz_helpers_match_mujoco():
    """MuJoCo's own quaternion -> matrix and matrix -> quaternion (wxyz) agree with ours."""
    mujoco = pytest.importorskip("mujoco")
    for r in RANDOM[:50]:
        wxyz = geometry.quat_xyzw_to_wxyz(r.as_quat())
        m = np.zeros(9)
        mujoco.mju_quat2Mat(m, wxyz)
        np.testing.assert_allclose(m.reshape(3, 3), geometry.quat_to_mat(r.as_quat()), atol=1e-12)
        back = np.zeros(4)
        mujoco.mju_mat2Quat(back, r.as_matrix().reshape(9))
        assert same_rotation_quat(geometry.quat_wxyz_to_xyzw(back), r.as_quat())
        vel = np.zeros(3)   # MuJoCo's quaternion -> rotation vector (for |angle| <= pi)
        mujoco.mju_quat2Vel(vel, wxyz if wxyz[0] >= 0 else -wxyz, 1.0)
        np.testing.assert_allclose(geometry.quat_to_rotvec(r.as_quat()), vel, atol=1e-9)


def test_pose_matrices_and_pose_error_match_scipy():
    rng = np.random.default_rng(0)
    for r, s in zip(RANDOM[:50], RANDOM[50:100]):
        pose = np.concatenate([rng.normal(size=3), r.as_quat()])
        t = pose_to_matrix(pose)
        np.testing.assert_allclose(t[:3, :3], r.as_matrix(), atol=1e-12)
        np.testing.assert_allclose(t[:3, 3], pose[:3])
        back = matrix_to_pose(t)
        np.testing.assert_allclose(back[:3], pose[:3])
        assert same_rotation_quat(back[3:], pose[3:])
        # pose_error's rotation is the BASE-frame rotation current -> target
        current = np.concatenate([[0.5, 0.0, 0.3], r.as_quat()])
        target = np.concatenate([[0.5, 0.1, 0.3], (s * r).as_quat()])
        dp, dr = pose_error(target, current)
        np.testing.assert_allclose(dp, [0, 0.1, 0], atol=1e-12)
        np.testing.assert_allclose(dr, s.as_rotvec(), atol=1e-9)


# --------------------------------------------------------------------------------------------
# the safety rotation clamp at its limits
# --------------------------------------------------------------------------------------------
def _action(rv):
    return np.concatenate([[0.5, 0.0, 0.2], rv, [0.5]])


def _step_rotation(target_rv, current_rv, max_angle):
    cfg = SafetyConfig(max_step_rotation=max_angle)
    out, hits = clamp_action(_action(target_rv), _action(current_rv), cfg)
    return out[3:6].astype(np.float64), hits


@pytest.mark.parametrize("angle_factor", [0.5, 1.0 - 1e-6])
def test_rotation_within_the_limit_passes_unchanged(angle_factor):
    max_angle = 0.2
    for r, axis_r in zip(RANDOM[:40], RANDOM[40:80]):
        axis = axis_r.apply([1.0, 0.0, 0.0])
        target = Rotation.from_rotvec(axis * max_angle * angle_factor) * r
        out, hits = _step_rotation(target.as_rotvec(), r.as_rotvec(), max_angle)
        assert "step_rotation" not in hits
        np.testing.assert_allclose(out, target.as_rotvec().astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("angle", [0.2 * (1 + 1e-4), 0.5, 2.0, math.pi - 1e-3])
def test_rotation_beyond_the_limit_stops_on_the_arc_at_the_limit(angle):
    """The clamped target lies on the shortest arc from current to target (scipy's Slerp) at
    exactly max_step_rotation from the current orientation."""
    max_angle = 0.2
    for r, axis_r in zip(RANDOM[:40], RANDOM[80:120]):
        axis = axis_r.apply([0.0, 0.0, 1.0])
        target = Rotation.from_rotvec(axis * angle) * r
        out, hits = _step_rotation(target.as_rotvec(), r.as_rotvec(), max_angle)
        assert "step_rotation" in hits
        expected = Slerp([0.0, 1.0], Rotation.concatenate([r, target]))([max_angle / angle])[0]
        got = Rotation.from_rotvec(out)
        assert (got * expected.inv()).magnitude() < 1e-6   # float32 action
        assert (got * r.inv()).magnitude() == pytest.approx(max_angle, abs=1e-6)


def test_rotation_clamp_known_values_base_frame_and_shortest_way():
    """Current: gripper down (180 deg about x). Target: 0.5 rad about base z from there -> the
    clamp turns 0.2 rad about base z, so the gripper's x axis points at yaw +0.2 (the gripper's
    own z axis points along base -z: a delta taken in one frame and applied in the other turns
    the other way). 3.5 rad about +z is 2.78 rad about -z: the clamp takes the short way."""
    down = Rotation.from_euler("x", 180, degrees=True)
    target = Rotation.from_euler("z", 0.5) * down
    out, hits = _step_rotation(target.as_rotvec(), down.as_rotvec(), 0.2)
    assert hits == ["step_rotation"]
    expected = Rotation.from_euler("xyz", [180, 0, 0.2 * 180 / math.pi], degrees=True)   # extrinsic: x, then z
    assert (Rotation.from_rotvec(out) * expected.inv()).magnitude() < 1e-6
    np.testing.assert_allclose(Rotation.from_rotvec(out).apply([1, 0, 0]), [math.cos(0.2), math.sin(0.2), 0], atol=1e-6)

    long_way = Rotation.from_euler("z", 3.5) * down
    out, _ = _step_rotation(long_way.as_rotvec(), down.as_rotvec(), 0.2)
    np.testing.assert_allclose(Rotation.from_rotvec(out).apply([1, 0, 0]), [math.cos(0.2), -math.sin(0.2), 0], atol=1e-6)


# --------------------------------------------------------------------------------------------
# the torch helper (network side)
# --------------------------------------------------------------------------------------------
def test_torch_quat_mul_is_scipy_composition():
    a, b = RANDOM[:100], RANDOM[100:]
    got = quat_mul(torch.as_tensor(a.as_quat()), torch.as_tensor(b.as_quat())).numpy()
    want = (a * b).as_quat()
    for g, w in zip(got, want):
        assert same_rotation_quat(g, w, atol=1e-12)
    # known value and order: z90 * x90 != x90 * z90
    x90 = torch.tensor([math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)], dtype=torch.float64)
    zx = quat_mul(torch.tensor(Z90, dtype=torch.float64), x90)
    np.testing.assert_allclose(zx.numpy(), [0.5, 0.5, 0.5, 0.5], atol=1e-12)
    assert not np.allclose(quat_mul(x90, torch.tensor(Z90, dtype=torch.float64)).numpy(), zx.numpy())


def test_pose_augmentation_rotates_by_at_most_its_noise_scale():
    """Measured with scipy: the angle between the clean and the noisy orientation never exceeds
    rot_noise_max and uses the range; positions move by at most pos_noise_max per axis."""
    aug = PoseAugmentation(num_objects=1, pos_noise_max=0.01, rot_noise_max=0.3, dropout_p=0.0,
                           generator=torch.Generator().manual_seed(0))
    poses = np.concatenate([np.zeros((300, 3)), RANDOM.as_quat()[np.arange(300) % 200]], axis=1).astype(np.float32)
    noisy = aug.noise(torch.from_numpy(poses)).numpy().astype(np.float64)
    angles = (Rotation.from_quat(noisy[:, 3:]) * Rotation.from_quat(poses[:, 3:].astype(np.float64)).inv()).magnitude()
    assert angles.max() <= 0.3 + 1e-5 and angles.max() > 0.2
    assert np.abs(noisy[:, :3]).max() <= 0.01 + 1e-6
