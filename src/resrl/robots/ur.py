"""ur_robot_driver specifics: command forms, Robotiq gripper, safety modes and dashboard recovery.

State: ``/tcp_pose_broadcaster/pose`` (PoseStamped) and the gripper joint in ``/joint_states``.
Commands, by ``command_mode``: MoveIt Servo ``pose_target_cmds`` (PoseStamped) or
``delta_twist_cmds`` (TwistStamped), or FZI cartesian_controllers' ``target_frame`` (PoseStamped).
Gripper: control_msgs/GripperCommand (e.g. ros2_robotiq_gripper's ``robotiq_gripper_controller``).
A protective stop is unlocked through the dashboard client after UR's mandatory wait, a bounded
number of times; every other safety stop holds and waits for the operator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from resrl.robots.common import BridgeError

COMMAND_MODES = ("servo_pose", "servo_twist", "cartesian_target_frame")

# ur_dashboard_msgs/msg/SafetyMode constants.
SAFETY_NORMAL, SAFETY_REDUCED, SAFETY_PROTECTIVE_STOP, SAFETY_RECOVERY = 1, 2, 3, 4
SAFETY_NAMES = {1: "NORMAL", 2: "REDUCED", 3: "PROTECTIVE_STOP", 4: "RECOVERY", 5: "SAFEGUARD_STOP",
                6: "SYSTEM_EMERGENCY_STOP", 7: "ROBOT_EMERGENCY_STOP", 8: "VIOLATION", 9: "FAULT",
                10: "VALIDATE_JOINT_ID", 11: "UNDEFINED_SAFETY_MODE", 12: "AUTOMATIC_MODE_SAFEGUARD_STOP",
                13: "SYSTEM_THREE_POSITION_ENABLING_STOP"}


@dataclass
class URConfig:
    ee_pose_topic: str = "/tcp_pose_broadcaster/pose"
    joint_states_topic: str = "/joint_states"
    command_mode: str = "servo_pose"
    servo_pose_topic: str = "/servo_node/pose_target_cmds"
    servo_twist_topic: str = "/servo_node/delta_twist_cmds"
    target_frame_topic: str = "/cartesian_motion_controller/target_frame"
    twist_gain: float = 2.0                      # 1/s, servo_twist: twist = gain * pose error
    gripper_action: str = "/robotiq_gripper_controller/gripper_cmd"
    gripper_joint: str = "robotiq_85_left_knuckle_joint"
    gripper_open_position: float = 0.0           # joint / GripperCommand position when open
    gripper_closed_position: float = 0.8         # ... and when closed (Robotiq 2F-85: rad)
    gripper_max_width: float = 0.085             # m opening when open
    gripper_max_effort: float = 50.0
    safety_mode_topic: str = "/io_and_status_controller/safety_mode"
    program_running_topic: str = "/io_and_status_controller/robot_program_running"
    dashboard_namespace: str = "/dashboard_client"
    restart_program_service: str = "/dashboard_client/play"   # or /io_and_status_controller/resend_robot_program
    unlock_delay_s: float = 5.0                  # UR refuses an unlock earlier than 5 s after the stop
    max_auto_unlocks: int = 3                    # per episode; then hold for the operator

    def __post_init__(self) -> None:
        if self.command_mode not in COMMAND_MODES:
            raise BridgeError(f"ur.command_mode must be one of {COMMAND_MODES}, got {self.command_mode!r}")
        if self.gripper_open_position == self.gripper_closed_position:
            raise BridgeError("ur.gripper_open_position and gripper_closed_position must differ")
        if not (self.gripper_max_width > 0 and self.twist_gain > 0 and self.unlock_delay_s >= 0):
            raise BridgeError("ur.gripper_max_width and twist_gain must be > 0, unlock_delay_s >= 0")

    def command_topic(self) -> str:
        return {"servo_pose": self.servo_pose_topic, "servo_twist": self.servo_twist_topic,
                "cartesian_target_frame": self.target_frame_topic}[self.command_mode]


def gripper_goal(decision: str, cfg: URConfig) -> Dict[str, float]:
    """control_msgs/GripperCommand fields for 'open' / 'close'."""
    if decision not in ("open", "close"):
        raise BridgeError(f"gripper decision must be 'open' or 'close', got {decision!r}")
    position = cfg.gripper_closed_position if decision == "close" else cfg.gripper_open_position
    return {"position": float(position), "max_effort": float(cfg.gripper_max_effort)}


def gripper_width(joint_position: float, cfg: URConfig) -> float:
    """Gripper joint position -> opening width (m), linear between closed (0) and open (max)."""
    if not math.isfinite(joint_position):
        raise BridgeError(f"gripper joint position must be finite, got {joint_position}")
    frac = (joint_position - cfg.gripper_closed_position) / (cfg.gripper_open_position - cfg.gripper_closed_position)
    return float(min(1.0, max(0.0, frac)) * cfg.gripper_max_width)


class ProtectiveStopRecovery:
    """What to do about the current safety mode. ``step(mode, now)`` returns
    (ok_to_move, action, message); action is None, 'unlock' or 'restart_program'."""

    def __init__(self, cfg: URConfig):
        self.cfg = cfg
        self.stopped_at: Optional[float] = None
        self.unlocks = 0
        self.unlocked = False   # unlock sent, program restart still due

    def reset_episode(self) -> None:
        self.unlocks = 0

    def unlock_failed(self, now: float) -> None:
        """The dashboard refused the unlock: wait the delay again before the next try."""
        self.unlocked = False
        self.stopped_at = now

    def step(self, mode: Optional[int], now: float) -> Tuple[bool, Optional[str], str]:
        if mode is None:
            return False, None, "no safety mode received yet"
        name = SAFETY_NAMES.get(mode, f"unknown safety mode {mode}")
        if mode in (SAFETY_NORMAL, SAFETY_REDUCED):
            self.stopped_at = None
            if self.unlocked:
                self.unlocked = False
                return False, "restart_program", "protective stop unlocked: restarting the robot program"
            return True, None, ""
        if mode != SAFETY_PROTECTIVE_STOP:
            self.stopped_at = None
            return False, None, f"safety mode {name}: holding; the operator must clear it on the pendant"
        if self.stopped_at is None:
            self.stopped_at = now
        if self.unlocks >= self.cfg.max_auto_unlocks:
            return False, None, (f"PROTECTIVE_STOP again after {self.unlocks} automatic unlocks this episode: "
                                 f"holding for the operator")
        if now - self.stopped_at < self.cfg.unlock_delay_s or self.unlocked:
            return False, None, "PROTECTIVE_STOP: holding, unlock pending"
        self.unlocks += 1
        self.unlocked = True
        return False, "unlock", f"PROTECTIVE_STOP: unlocking ({self.unlocks}/{self.cfg.max_auto_unlocks})"
