"""Rotations on the numpy side, all through ``scipy.spatial.transform.Rotation``.

Conventions: quaternions are [x, y, z, w] (ROS and scipy's default); MuJoCo's [w, x, y, z] is
read and written with scipy's ``scalar_first=True``. Rotation vectors are axis * angle (rad) with
the angle in [0, pi] (the shortest rotation). Composition ``a * b`` is "b, then a" in the base
frame (the quaternion product a b). The network side (torch) has its own one helper,
``resrl.models.residual.quat_mul``; test/unit/test_rotations.py checks both against scipy.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def unit_quat(q) -> np.ndarray:
    """[x, y, z, w] normalised; ValueError for a zero or non-finite quaternion."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"invalid quaternion {q.tolist()}")
    return q / n


def rotation_of_quat(q) -> Rotation:
    """Rotation of an [x, y, z, w] quaternion (validated: ValueError for zero / non-finite)."""
    return Rotation.from_quat(unit_quat(q))


def quat_to_rotvec(q) -> np.ndarray:
    """[x, y, z, w] -> rotation vector of the shortest rotation (angle in [0, pi])."""
    return rotation_of_quat(q).as_rotvec()


def rotvec_to_quat(r) -> np.ndarray:
    """Rotation vector -> [x, y, z, w] with w = cos(|r| / 2) (negative only for |r| > pi)."""
    return Rotation.from_rotvec(np.asarray(r, dtype=np.float64)).as_quat()


def quat_to_mat(q) -> np.ndarray:
    return rotation_of_quat(q).as_matrix()


def mat_to_quat(m) -> np.ndarray:
    """3x3 rotation matrix -> [x, y, z, w] (scipy's sign: the largest component positive)."""
    return Rotation.from_matrix(np.asarray(m, dtype=np.float64)).as_quat()


def rotvec_to_mat(r) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(r, dtype=np.float64)).as_matrix()


def mat_to_rotvec(m) -> np.ndarray:
    return Rotation.from_matrix(np.asarray(m, dtype=np.float64)).as_rotvec()


def quat_wxyz_to_xyzw(q) -> np.ndarray:
    """MuJoCo's [w, x, y, z] -> [x, y, z, w] (normalised, sign kept)."""
    return Rotation.from_quat(np.asarray(q, dtype=np.float64), scalar_first=True).as_quat()


def quat_xyzw_to_wxyz(q) -> np.ndarray:
    """[x, y, z, w] -> MuJoCo's [w, x, y, z] (normalised, sign kept)."""
    return Rotation.from_quat(np.asarray(q, dtype=np.float64)).as_quat(scalar_first=True)


def rotation_between(target_q, current_q) -> np.ndarray:
    """Base-frame rotation vector taking orientation ``current_q`` to ``target_q`` (both
    [x, y, z, w]): ``target * current^-1``, the shortest arc."""
    return (rotation_of_quat(target_q) * rotation_of_quat(current_q).inv()).as_rotvec()


def yaw_of_quat_xyzw(q) -> float:
    """Heading of the frame's x axis in the base xy plane: the yaw of a ZYX (yaw-pitch-roll)
    decomposition, still defined (and warning-free) where that decomposition has gimbal lock."""
    m = quat_to_mat(q)
    return float(np.arctan2(m[1, 0], m[0, 0]))
