"""The action and observation layout shared by every node, model and buffer.

An action is a 7-vector in the robot base frame: an absolute end-effector target
``[x, y, z]`` (m), an orientation target as a rotation vector ``[rx, ry, rz]`` (rad), and a
gripper command in ``[0, 1]`` (0 = open, 1 = closed). The VLA emits absolute targets; the
residual emits a delta in the same layout, and the arbiter adds them:
``a_t = a_VLA_t + lambda_t * a_res_t``.
"""
from __future__ import annotations

import numpy as np

ACTION_DIM = 7
TRANSLATION = slice(0, 3)
ROTATION = slice(3, 6)
GRIPPER = slice(6, 7)
# Dimension groups for per-group lambda (translation / rotation / gripper).
ACTION_GROUPS = {"translation": TRANSLATION, "rotation": ROTATION, "gripper": GRIPPER}

# Proprioception: end-effector position (3), rotation vector (3), gripper opening in [0, 1] (1).
STATE_DIM = 7
# One tracked object pose: position (3) + quaternion xyzw (4).
POSE_DIM = 7


class InvalidActionError(ValueError):
    """An action had the wrong shape or non-finite values; callers must hold the robot."""


def as_action(values, dim: int = ACTION_DIM, name: str = "action") -> np.ndarray:
    """Return ``values`` as a finite float32 vector of length ``dim`` or raise InvalidActionError."""
    try:
        arr = np.asarray(values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"{name}: not numeric ({exc})") from exc
    if arr.shape[0] != dim:
        raise InvalidActionError(f"{name}: expected {dim} values, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise InvalidActionError(f"{name}: non-finite values {arr.tolist()}")
    return arr


def explore(a_res: np.ndarray, xi: np.ndarray, std: float, clip: float, rng: np.random.Generator) -> np.ndarray:
    """Training-episode residual: a_res + clip(N(0, std), -clip, clip) * xi, kept within +-xi."""
    noise = np.clip(rng.normal(0.0, std, a_res.shape), -clip, clip)
    return np.clip(a_res + noise * xi, -xi, xi).astype(np.float32)


def explores(kind: str, episode_id: int, noise_free_every: int) -> bool:
    """Whether an episode's residual gets exploration noise: train episodes only, except every
    ``noise_free_every``-th one (0: none), which runs the deterministic policy that evaluation
    deploys, so the replay (and the critic the gates read) also holds that policy's outcomes."""
    if kind != "train":
        return False
    return not (noise_free_every > 0 and episode_id % noise_free_every == 0)
