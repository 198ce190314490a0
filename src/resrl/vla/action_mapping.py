"""Map a VLA's native action space to resrl's: absolute EE targets [x y z rx ry rz gripper].

Supported output spaces (parameter ``vla.action_space``):

* ``eef_absolute``: the policy already outputs absolute EE targets in the robot base frame
  (a model fine-tuned on resrl's action space); the first 7 columns are used as they are.
* ``joint_velocity``: DROID-style rows [7 joint velocities, gripper]. DROID's controller turns a
  velocity row v (normalised, |v| <= 1 per joint after scaling) into a joint delta
  ``v * max_joint_delta`` per control step; we integrate the chunk from the measured joint
  positions and run forward kinematics on every row. The kinematics is ``franka`` (the
  FR3 / Panda Denavit-Hartenberg model below, hand TCP) or ``module:function`` (the user's
  own FK: joint positions (7,) -> 4x4 base-to-TCP homogeneous transform).

Not supported: joint-position targets from policies whose joint order differs from the arm's,
relative/delta EE outputs (they would need the executing controller's integration rule) and
any mapping without forward kinematics for the arm in use.
"""
from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

from resrl.geometry import mat_to_rotvec

ACTION_SPACES = ("eef_absolute", "joint_velocity")

# FR3 / Panda kinematics, Craig's (modified) DH: (a, d, alpha) per joint, from Franka's docs.
FRANKA_DH = ((0.0, 0.333, 0.0), (0.0, 0.0, -np.pi / 2), (0.0, 0.316, np.pi / 2),
             (0.0825, 0.0, np.pi / 2), (-0.0825, 0.384, -np.pi / 2), (0.0, 0.0, np.pi / 2),
             (0.088, 0.0, np.pi / 2))
FRANKA_FLANGE_D = 0.107
FRANKA_HAND_TCP_D = 0.1034       # flange -> fingertip centre (franka_hand_tcp), rotated -45 deg about z
DROID_MAX_JOINT_DELTA_RAD = 0.2  # DROID's per-step joint delta at |v| = 1


def _modified_dh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array([[ct, -st, 0.0, a],
                     [st * ca, ct * ca, -sa, -d * sa],
                     [st * sa, ct * sa, ca, d * ca],
                     [0.0, 0.0, 0.0, 1.0]])


def franka_fk(q) -> np.ndarray:
    """FR3 / Panda joint positions (7,) -> 4x4 transform base (fr3_link0) -> hand TCP."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (7,):
        raise ValueError(f"franka_fk needs 7 joint positions, got shape {q.shape}")
    t = np.eye(4)
    for (a, d, alpha), theta in zip(FRANKA_DH, q):
        t = t @ _modified_dh(a, d, alpha, theta)
    t = t @ _modified_dh(0.0, FRANKA_FLANGE_D, 0.0, 0.0)
    return t @ _modified_dh(0.0, FRANKA_HAND_TCP_D, 0.0, -np.pi / 4)


def transform_to_pose6(t) -> np.ndarray:
    """4x4 transform -> [x y z rx ry rz] (rotation vector)."""
    t = np.asarray(t, dtype=np.float64)
    return np.concatenate([t[:3, 3], mat_to_rotvec(t[:3, :3])])


def load_kinematics(spec: str) -> Callable[[np.ndarray], np.ndarray]:
    """``franka`` or ``package.module:function`` -> FK callable (q (7,) -> 4x4)."""
    if spec == "franka":
        return franka_fk
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"kinematics '{spec}': expected 'franka' or 'package.module:function'")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise ValueError(f"kinematics '{spec}': {module} has no callable '{attr}'")
    return fn


def integrate_joint_velocity(chunk, q0, fk: Callable[[np.ndarray], np.ndarray],
                             max_joint_delta: float = DROID_MAX_JOINT_DELTA_RAD) -> np.ndarray:
    """DROID rows [v(7), gripper] (H, >=8) from joints ``q0`` -> absolute EE rows (H, 7).

    Row t is the pose after t+1 steps: q_t = q0 + sum_{i<=t} clip(v_i) * max_joint_delta, as
    DROID's controller executes them (each velocity row rescaled so no joint exceeds 1).
    """
    chunk = np.asarray(chunk, dtype=np.float64)
    q = np.asarray(q0, dtype=np.float64)
    if chunk.ndim != 2 or chunk.shape[1] < 8:
        raise ValueError(f"joint-velocity chunk must be (H, >= 8), got shape {chunk.shape}")
    if q.shape != (7,) or not np.all(np.isfinite(q)):
        raise ValueError(f"joint positions must be 7 finite values, got {q}")
    vel = chunk[:, :7]
    vel = vel / np.maximum(np.abs(vel).max(axis=1, keepdims=True), 1.0)
    joints = q + np.cumsum(vel * max_joint_delta, axis=0)
    out = np.empty((chunk.shape[0], 7))
    for t, qt in enumerate(joints):
        out[t, :6] = transform_to_pose6(fk(qt))
    out[:, 6] = np.clip(chunk[:, 7], 0.0, 1.0)   # DROID gripper: 0 open .. 1 closed, as resrl's
    return out.astype(np.float32)


class ActionMapper:
    """Native VLA chunk -> resrl absolute EE chunk, per ``action_space``."""

    def __init__(self, action_space: str = "eef_absolute", kinematics: str = "franka",
                 max_joint_delta: float = DROID_MAX_JOINT_DELTA_RAD):
        if action_space not in ACTION_SPACES:
            raise ValueError(f"unknown action space '{action_space}' ({' | '.join(ACTION_SPACES)})")
        self.action_space = action_space
        self.max_joint_delta = max_joint_delta
        self.fk = load_kinematics(kinematics) if action_space == "joint_velocity" else None

    def __call__(self, chunk, obs) -> np.ndarray:
        chunk = np.asarray(chunk)
        if self.action_space == "eef_absolute":
            if chunk.ndim != 2 or chunk.shape[1] < 7:
                raise ValueError(f"eef_absolute chunk must be (H, >= 7), got shape {chunk.shape}")
            return chunk[:, :7].astype(np.float32)
        if "joint_position" not in obs:
            raise ValueError("joint_velocity mapping needs the measured joint positions (no joint_states yet)")
        return integrate_joint_velocity(chunk, obs["joint_position"], self.fk, self.max_joint_delta)
