"""Small rotation helpers (quaternions are [x, y, z, w], as in ROS)."""
from __future__ import annotations

import numpy as np


def unit_quat(q) -> np.ndarray:
    """[x, y, z, w] normalised; ValueError for a zero or non-finite quaternion."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"invalid quaternion {q.tolist()}")
    return q / n


def quat_to_rotvec(q) -> np.ndarray:
    x, y, z, w = unit_quat(q)
    if w < 0:  # shortest rotation
        x, y, z, w = -x, -y, -z, -w
    s = np.sqrt(max(1.0 - w * w, 0.0))
    angle = 2.0 * np.arctan2(s, w)
    if s < 1e-9:
        return np.array([x, y, z]) * 2.0  # small-angle limit
    return np.array([x, y, z]) / s * angle


def rotvec_to_quat(r) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    angle = np.linalg.norm(r)
    if angle < 1e-12:
        return np.array([r[0] / 2, r[1] / 2, r[2] / 2, 1.0]) / np.sqrt(1 + angle ** 2 / 4)
    axis = r / angle
    return np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])
