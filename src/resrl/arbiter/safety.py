"""Last check before a command reaches the robot: clamp it, or decide to HOLD.

Actions are absolute end-effector targets in the robot base frame (see resrl.actions). The
filter clamps the target in this order:

1. translation into the workspace box;
2. translation step: the target may be at most ``max_step_translation`` (m, Euclidean) from the
   current EE position, scaled along the same direction;
3. rotation step: the target orientation may be at most ``max_step_rotation`` (rad) from the
   current EE orientation, moved along the shortest arc;
4. gripper into [0, 1].

The box comes first so the step limits always hold: if the EE is inside the box the stepped
target stays inside (the box is convex); if it is outside (after a human intervention) the
robot is walked back at no more than the step limit instead of jumping.

HOLD (command the current EE pose with the last gripper command) is decided when the state is
unusable, the observation is stale, there is no base action, or the action is invalid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from resrl.actions import GRIPPER, ROTATION, STATE_DIM, TRANSLATION, InvalidActionError, as_action

_AXES = "xyz"


@dataclass
class WorkspaceBox:
    """Allowed EE positions (m, robot base frame). Defaults: a Franka on a table, base at the
    table top (z = 0), TCP kept 1 cm above the table; raise min z if the EE frame is the flange."""

    min_xyz: tuple[float, float, float] = (0.25, -0.35, 0.01)
    max_xyz: tuple[float, float, float] = (0.75, 0.35, 0.5)

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.min_xyz, dtype=float), np.asarray(self.max_xyz, dtype=float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f"WorkspaceBox: min_xyz/max_xyz must be 3 finite values, got {self.min_xyz}, {self.max_xyz}")
        if not np.all(lo < hi):
            raise ValueError(f"WorkspaceBox: min_xyz {self.min_xyz} must be < max_xyz {self.max_xyz}")

    def clamp(self, xyz) -> tuple[np.ndarray, list[str]]:
        """Clamp a position into the box; returns it and the bounds hit, e.g. ["workspace:z_min"]."""
        xyz = np.asarray(xyz, dtype=np.float64)
        lo, hi = np.asarray(self.min_xyz), np.asarray(self.max_xyz)
        hits = [f"workspace:{_AXES[i]}_min" for i in range(3) if xyz[i] < lo[i]]
        hits += [f"workspace:{_AXES[i]}_max" for i in range(3) if xyz[i] > hi[i]]
        return np.clip(xyz, lo, hi), hits


@dataclass
class SafetyConfig:
    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    # Largest distance (m) / rotation (rad, ~11 deg) of the target from the current EE pose in one
    # step: bounds how far a single bad command can pull the impedance target. Residual corrections
    # are a few cm, so normal VLA + residual targets are not clipped; the robot's own controller
    # still enforces its velocity limits.
    max_step_translation: float = 0.05
    max_step_rotation: float = 0.2
    # Oldest observation (s) an action may be based on; older means the loop is lagging: HOLD.
    max_obs_age_s: float = 0.5
    # Gripper command used when holding before any command was sent this episode (0 = open).
    initial_gripper_command: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_step_translation", "max_step_rotation", "max_obs_age_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"SafetyConfig.{name} must be finite and > 0, got {value}")
        if not 0.0 <= self.initial_gripper_command <= 1.0:
            raise ValueError("SafetyConfig.initial_gripper_command must be in [0, 1]")


@dataclass
class SafetyDecision:
    action: Optional[np.ndarray]    # (7,) float32 to command: the clamped action, or the hold
                                    # pose when hold; None only if the state itself is unusable
    hold: bool
    reason: str                     # why the robot holds ("" otherwise)
    limits_hit: tuple[str, ...]     # limits that changed the action (empty when hold)


def _limit_rotation(target_rv: np.ndarray, current_rv: np.ndarray, max_angle: float) -> Optional[np.ndarray]:
    """Target orientation moved at most max_angle from current along the shortest arc, or None
    when already within. Orientations are base-frame rotation vectors."""
    current = Rotation.from_rotvec(current_rv)
    delta = (Rotation.from_rotvec(target_rv) * current.inv()).as_rotvec()  # current -> target, base frame
    angle = float(np.linalg.norm(delta))
    if angle <= max_angle:
        return None
    return (Rotation.from_rotvec(delta * (max_angle / angle)) * current).as_rotvec()


def clamp_action(action: np.ndarray, current_state: np.ndarray, config: SafetyConfig) -> tuple[np.ndarray, list[str]]:
    """Apply workspace, step and gripper limits to a valid action; returns it and the limits hit."""
    out = np.asarray(action, dtype=np.float64).copy()
    state = np.asarray(current_state, dtype=np.float64)
    out[TRANSLATION], hits = config.workspace.clamp(out[TRANSLATION])

    step = out[TRANSLATION] - state[TRANSLATION]
    dist = float(np.linalg.norm(step))
    if dist > config.max_step_translation:
        out[TRANSLATION] = state[TRANSLATION] + step * (config.max_step_translation / dist)
        hits.append("step_translation")

    limited = _limit_rotation(out[ROTATION], state[ROTATION], config.max_step_rotation)
    if limited is not None:
        out[ROTATION] = limited
        hits.append("step_rotation")

    if not 0.0 <= out[GRIPPER][0] <= 1.0:
        out[GRIPPER] = np.clip(out[GRIPPER], 0.0, 1.0)
        hits.append("gripper")
    return out.astype(np.float32), hits


class SafetyFilter:
    """Stateful only in the last gripper command, which a HOLD keeps (so a held object stays held)."""

    def __init__(self, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()
        self.last_gripper = self.config.initial_gripper_command

    def reset(self) -> None:
        self.last_gripper = self.config.initial_gripper_command

    def hold_action(self, current_state) -> np.ndarray:
        """Current EE pose with the last gripper command; raises InvalidActionError for a bad state."""
        state = as_action(current_state, dim=STATE_DIM, name="current_state")
        hold = state.copy()
        hold[GRIPPER] = self.last_gripper
        return hold

    def filter(self, action, current_state, stamp_age_s: float | None) -> SafetyDecision:
        """Safe action to command, or HOLD. ``action=None``: no base action this step;
        ``stamp_age_s``: age of the observation the action was computed from (None = unknown)."""
        try:
            hold_pose = self.hold_action(current_state)
        except InvalidActionError as exc:
            return SafetyDecision(None, True, f"invalid state: {exc}", ())

        age = math.nan if stamp_age_s is None else float(stamp_age_s)
        if not age <= self.config.max_obs_age_s:  # also catches NaN / unknown age
            return SafetyDecision(hold_pose, True,
                                  f"stale observation: age {age:.3f} s > {self.config.max_obs_age_s} s", ())
        if action is None:
            return SafetyDecision(hold_pose, True, "no base action", ())
        try:
            valid = as_action(action)
        except InvalidActionError as exc:
            return SafetyDecision(hold_pose, True, f"invalid action: {exc}", ())

        safe, hits = clamp_action(valid, hold_pose, self.config)
        self.last_gripper = float(safe[GRIPPER][0])
        return SafetyDecision(safe, False, "", tuple(hits))
