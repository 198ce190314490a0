"""Rigid transforms between 7-D poses [x y z qx qy qz qw] and 4x4 matrices (rotations: resrl.geometry)."""
from __future__ import annotations

import numpy as np

from resrl.geometry import mat_to_quat, quat_to_mat


def pose_to_matrix(pose) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (7,):
        raise ValueError(f"pose must be [x y z qx qy qz qw], got shape {pose.shape}")
    t = np.eye(4)
    t[:3, :3] = quat_to_mat(pose[3:])
    t[:3, 3] = pose[:3]
    return t


def matrix_to_pose(t) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return np.concatenate([t[:3, 3], mat_to_quat(t[:3, :3])])
