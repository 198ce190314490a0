"""Rigid transforms between 7-D poses [x y z qx qy qz qw] and 4x4 matrices (numpy only)."""
from __future__ import annotations

import numpy as np

from resrl.geometry import unit_quat


def quat_to_rotmat(q) -> np.ndarray:
    x, y, z, w = unit_quat(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rotmat_to_quat(r) -> np.ndarray:
    """3x3 rotation matrix -> quaternion [x y z w] (Shepperd's method, numerically safe)."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def pose_to_matrix(pose) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (7,):
        raise ValueError(f"pose must be [x y z qx qy qz qw], got shape {pose.shape}")
    t = np.eye(4)
    t[:3, :3] = quat_to_rotmat(pose[3:])
    t[:3, 3] = pose[:3]
    return t


def matrix_to_pose(t) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return np.concatenate([t[:3, 3], rotmat_to_quat(t[:3, :3])])
