"""Robot-independent pieces of the real-robot bridge: last-line-of-defence target limits, Servo
twists, state staleness, gripper hysteresis and the reset-to-home motion.

Poses are 7-vectors [x, y, z, qx, qy, qz, qw] in the robot base frame (as resrl.ros.convert).
The arbiter already clamps its actions (resrl.arbiter.safety); the bridge clamps again against
its own box and speed limits because it is the last process before the driver: a bug or a
stray publisher on /resrl/target_pose must not be able to move the arm further or faster.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from resrl.arbiter.safety import SafetyConfig, WorkspaceBox, clamp_action
from resrl.geometry import quat_to_rotvec, rotation_between, rotvec_to_quat


class BridgeError(ValueError):
    """Bad configuration or input for a robot bridge."""


@dataclass
class BridgeConfig:
    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    # Speed limits of the commanded target: per control period the target may move at most
    # max_linear_speed / rate (m) and max_angular_speed / rate (rad) away from the measured pose.
    max_linear_speed: float = 0.15
    max_angular_speed: float = 0.6
    # Robot state older than this (s, arrival time) -> hold and stop publishing observations.
    max_state_age_s: float = 0.2
    # No arbiter target for this long (s) -> servo twist mode sends zero twists.
    command_timeout_s: float = 0.5
    # Gripper: close above / open below (command in [0, 1], 1 = closed); in between keep the last goal.
    gripper_close_above: float = 0.6
    gripper_open_below: float = 0.4
    gripper_retry_s: float = 2.0
    # Episode reset: home pose [x, y, z, qx, qy, qz, qw] reached at the speed limits.
    home_pose: Tuple[float, ...] = (0.45, 0.0, 0.35, 1.0, 0.0, 0.0, 0.0)
    home_tolerance_m: float = 0.01
    home_tolerance_rad: float = 0.05
    home_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_linear_speed", "max_angular_speed", "max_state_age_s", "command_timeout_s",
                     "gripper_retry_s", "home_tolerance_m", "home_tolerance_rad", "home_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise BridgeError(f"bridge.{name} must be finite and > 0, got {value!r}")
        if not 0.0 <= self.gripper_open_below < self.gripper_close_above <= 1.0:
            raise BridgeError(f"bridge.gripper_open_below ({self.gripper_open_below}) must be < "
                              f"gripper_close_above ({self.gripper_close_above}), both in [0, 1]")
        home = np.asarray(self.home_pose, dtype=float)
        if home.shape != (7,) or not np.all(np.isfinite(home)) or abs(np.linalg.norm(home[3:]) - 1.0) > 1e-3:
            raise BridgeError(f"bridge.home_pose must be [x, y, z, qx, qy, qz, qw] with a unit quaternion, "
                              f"got {self.home_pose}")
        _, hits = self.workspace.clamp(home[:3])
        if hits:
            raise BridgeError(f"bridge.home_pose {tuple(home[:3])} is outside the workspace box ({', '.join(hits)})")


def check_pose(pose, name: str = "pose") -> np.ndarray:
    """A finite 7-vector pose with a normalised quaternion; BridgeError otherwise."""
    v = np.asarray(pose, dtype=np.float64).reshape(-1)
    if v.shape != (7,) or not np.all(np.isfinite(v)):
        raise BridgeError(f"{name}: expected 7 finite values [x, y, z, qx, qy, qz, qw], got {v.tolist()}")
    norm = float(np.linalg.norm(v[3:]))
    if norm < 1e-6:
        raise BridgeError(f"{name}: zero quaternion")
    v[3:] /= norm
    return v


def _to_action(pose: np.ndarray) -> np.ndarray:
    return np.concatenate([pose[:3], quat_to_rotvec(pose[3:]), [0.0]])


def limit_target(target, current, config: BridgeConfig, dt: float) -> Tuple[np.ndarray, List[str]]:
    """Clamp ``target`` into the workspace box, then to at most one control period of travel at
    the speed limits from the measured pose ``current``. Returns the pose and the limits hit."""
    target = check_pose(target, "target pose")
    current = check_pose(current, "measured pose")
    limits = SafetyConfig(workspace=config.workspace, max_step_translation=config.max_linear_speed * dt,
                          max_step_rotation=config.max_angular_speed * dt)
    action, hits = clamp_action(_to_action(target), _to_action(current), limits)
    out = np.concatenate([action[:3].astype(np.float64), rotvec_to_quat(action[3:6])])
    if not any(h.startswith("step_rotation") for h in hits):
        out[3:] = target[3:]   # unclamped orientation passes through exactly (no rotvec round trip)
    return out, hits


def pose_error(target, current) -> Tuple[np.ndarray, np.ndarray]:
    """(translation error (3,), rotation error as a base-frame rotation vector (3,))."""
    target, current = check_pose(target, "target pose"), check_pose(current, "measured pose")
    return target[:3] - current[:3], rotation_between(target[3:], current[3:])


def twist_toward(target, current, config: BridgeConfig, gain: float) -> Tuple[np.ndarray, np.ndarray]:
    """Proportional Cartesian twist (m/s, rad/s, base frame) from ``current`` to ``target``,
    each part scaled down to its speed limit (MoveIt Servo delta_twist_cmds)."""
    dp, dr = pose_error(target, current)
    lin, ang = gain * dp, gain * dr
    for vec, limit in ((lin, config.max_linear_speed), (ang, config.max_angular_speed)):
        norm = float(np.linalg.norm(vec))
        if norm > limit:
            vec *= limit / norm
    return lin, ang


class StateMonitor:
    """Arrival times of the robot-state streams; stale or missing -> the reason to hold."""

    def __init__(self, parts, max_age_s: float):
        self.parts = tuple(parts)
        self.max_age_s = float(max_age_s)
        self.arrived: Dict[str, float] = {}

    def update(self, part: str, now: float) -> None:
        if part not in self.parts:
            raise KeyError(f"unknown robot state part '{part}' (known: {self.parts})")
        self.arrived[part] = now

    def problem(self, now: float) -> str:
        """'' when every part is fresh, else why not (names the part and its age)."""
        for part in self.parts:
            if part not in self.arrived:
                return f"no {part} received yet"
            age = now - self.arrived[part]
            if age > self.max_age_s:
                return f"{part} is stale: last message {age:.2f} s ago (> {self.max_age_s} s)"
        return ""


class GripperHysteresis:
    """Turns the continuous gripper command into open/close goals, each sent once: a goal is
    sent when the command crosses a threshold away from the last goal; a failed goal may be
    sent again after ``retry_s``."""

    def __init__(self, close_above: float, open_below: float, retry_s: float):
        self.close_above, self.open_below, self.retry_s = close_above, open_below, retry_s
        self.sent: Optional[str] = None
        self.retry_at = -math.inf

    def update(self, command: float, now: float) -> Optional[str]:
        """'close' / 'open' when a goal must be sent now, else None."""
        if not math.isfinite(command):
            raise BridgeError(f"gripper command must be finite, got {command}")
        if command >= self.close_above:
            wanted = "close"
        elif command <= self.open_below:
            wanted = "open"
        else:
            return None   # dead band: keep whatever was sent
        if wanted == self.sent or now < self.retry_at:
            return None
        self.sent = wanted
        return wanted

    def failed(self, goal: str, now: float) -> None:
        if self.sent == goal:
            self.sent = None
            self.retry_at = now + self.retry_s

    def reset(self) -> None:
        self.sent, self.retry_at = None, -math.inf


class HomeMotion:
    """Walks the target from the measured pose to ``config.home_pose`` at the speed limits."""

    def __init__(self, config: BridgeConfig, dt: float, started: float):
        self.config, self.dt, self.started = config, dt, started
        self.home = check_pose(config.home_pose, "bridge.home_pose")

    def step(self, current, now: float) -> Tuple[Optional[np.ndarray], bool, str]:
        """(next target or None, reached, error). Reached: within both tolerances."""
        dp, dr = pose_error(self.home, current)
        if np.linalg.norm(dp) <= self.config.home_tolerance_m and np.linalg.norm(dr) <= self.config.home_tolerance_rad:
            return None, True, ""
        if now - self.started > self.config.home_timeout_s:
            return None, False, (f"home not reached in {self.config.home_timeout_s} s "
                                 f"(still {np.linalg.norm(dp):.3f} m / {np.linalg.norm(dr):.3f} rad away)")
        target, _ = limit_target(self.home, current, self.config, self.dt)
        return target, False, ""
