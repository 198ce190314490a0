"""franka_ros2 specifics: topics, franka_gripper goals, gripper width.

franka_ros2 ships no topic-driven Cartesian controller, so the target goes to a configurable
PoseStamped topic (crisp_controllers' cartesian impedance controller listens on ``target_pose``;
a user's own controller works the same). The gripper is driven through franka_gripper's
``move`` / ``grasp`` / ``homing`` actions (franka_msgs), reflexes are cleared with franka_hardware's
``/action_server/error_recovery`` action.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

from resrl.robots.common import BridgeError


@dataclass
class FrankaConfig:
    ee_pose_topic: str = "/franka_robot_state_broadcaster/current_pose"   # PoseStamped
    gripper_state_topic: str = "/franka_gripper/joint_states"              # finger joints (m each)
    target_topic: str = "/target_pose"                                     # PoseStamped to the Cartesian controller
    gripper_namespace: str = "/franka_gripper"                             # move, grasp, homing actions
    error_recovery_action: str = "/action_server/error_recovery"
    error_recovery_on_reset: bool = True
    homing_on_reset: bool = False        # re-calibrate the fingers at every reset (slow, ~5 s)
    max_width: float = 0.08              # m, fully open (Franka Hand)
    speed: float = 0.1                   # m/s finger speed
    grasp_width: float = 0.0             # m: close fully; the epsilons decide what counts as a grasp
    grasp_force: float = 40.0            # N
    grasp_epsilon_inner: float = 0.08
    grasp_epsilon_outer: float = 0.08

    def __post_init__(self) -> None:
        for name in ("max_width", "speed", "grasp_force"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise BridgeError(f"franka.{name} must be > 0, got {value}")
        if not 0.0 <= self.grasp_width < self.max_width:
            raise BridgeError(f"franka.grasp_width must be in [0, max_width), got {self.grasp_width}")


def gripper_goal(decision: str, cfg: FrankaConfig) -> Tuple[str, Dict]:
    """'open' -> Move to full width; 'close' -> Grasp (force-controlled, succeeds on any width
    within the epsilons). Returns (action name under the gripper namespace, goal fields)."""
    if decision == "open":
        return "move", {"width": cfg.max_width, "speed": cfg.speed}
    if decision == "close":
        return "grasp", {"width": cfg.grasp_width, "speed": cfg.speed, "force": cfg.grasp_force,
                         "epsilon": {"inner": cfg.grasp_epsilon_inner, "outer": cfg.grasp_epsilon_outer}}
    raise BridgeError(f"gripper decision must be 'open' or 'close', got {decision!r}")


def finger_width(positions: Sequence[float]) -> float:
    """Franka Hand finger joint positions (m, each finger) -> opening width (m)."""
    if len(positions) < 2 or not all(math.isfinite(p) for p in positions[:2]):
        raise BridgeError(f"franka gripper state needs two finite finger positions, got {list(positions)}")
    return float(positions[0] + positions[1])
