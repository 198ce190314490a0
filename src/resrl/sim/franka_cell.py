"""A simulated Franka cell as a real one presents itself to resrl (ROS-free; franka_sim_node wires it).

The MuJoCo table scene (FrankaTableEnv) behind the contract of a real cell, so that the real-robot
graph (robot bridge, operator console, manual session) can be rehearsed without an arm:

- franka_ros2's end-effector pose, in the fr3_hand_tcp convention (z along the fingers, so a hand
  pointing down is qx = 1); the sim's own TCP frame differs from it by pi about x (franka_env);
- a Cartesian impedance-style controller that tracks the latest absolute target, one control
  period per step, and holds where the arm is while no target has come;
- franka_gripper's ``move`` (to a width) and ``grasp`` (close) goals;
- error recovery, which here also puts the scene back (on a real cell the operator does that);
- object poses as FoundationPose reports them: in the camera's optical frame, with a score, so
  the pose tracker's hand-eye extrinsic is exercised as on a real cell.

No success oracle: as on a real cell, the operator's keys (or a learned classifier) label episodes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy.spatial.transform import Rotation

from resrl.perception.transforms import matrix_to_pose, pose_to_matrix
from resrl.sim.franka_env import FrankaTableEnv, tracked_objects
from resrl.sim.scripted import load_task_config

# fr3_hand_tcp from the sim's TCP frame (self-inverse: the same rotation maps back).
TOOL_FLIP = Rotation.from_euler("x", np.pi)
FINGERS = 2
# franka_ros2's joint names (FR3) for the sim arm's seven joints and two fingers.
JOINT_NAMES = tuple(f"fr3_joint{i}" for i in range(1, 8)) + ("fr3_finger_joint1", "fr3_finger_joint2")


@dataclass
class FrankaCellConfig:
    task: str = "pick_place"            # config/tasks/<task>.yaml: the scene
    seed: int = 0                       # first scene; each error recovery puts the next one
    control_rate_hz: float = 15.0       # one physics control period per step
    render: bool = False                # colour + depth (the camera topics); off: poses only
    camera_size: int = 96
    max_width: float = 0.08             # m, Franka Hand fully open
    detection_score: float = 0.95       # FoundationPose's hypothesis score for a visible object


class FrankaCell:
    def __init__(self, cfg: FrankaCellConfig):
        if not cfg.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz must be > 0, got {cfg.control_rate_hz}")
        self.cfg = cfg
        task_cfg = load_task_config(cfg.task, overrides={"sim": dict(
            seed=cfg.seed, render=cfg.render, control_hz=cfg.control_rate_hz,
            image_width=cfg.camera_size, image_height=cfg.camera_size)})
        self.env = FrankaTableEnv(task_cfg.sim)
        self.scenes = 0
        self.obs = self.env.reset(seed=cfg.seed)
        self.info: Dict = {}
        self.target: Optional[np.ndarray] = None   # the sim's action, without the gripper
        self.closing = 0.0                          # 1 = closed, the sim's gripper command

    # --- the driver's state -------------------------------------------------------------------
    def ee_pose(self) -> np.ndarray:
        """[x y z qx qy qz qw] of fr3_hand_tcp in the base frame."""
        rot = Rotation.from_quat(self.obs["ee_quat"]) * TOOL_FLIP
        return np.concatenate([self.obs["ee_pos"], rot.as_quat()])

    def finger_positions(self) -> List[float]:
        """franka_gripper's joint states: each finger at half the opening (m)."""
        return [float(self.obs["gripper_width"][0]) / FINGERS] * FINGERS

    # --- commands in --------------------------------------------------------------------------
    def set_target(self, pose) -> None:
        """An absolute fr3_hand_tcp target [x y z qx qy qz qw] (the Cartesian controller's input)."""
        pose = np.asarray(pose, np.float64)
        if pose.shape != (7,) or not np.all(np.isfinite(pose)) or np.linalg.norm(pose[3:]) < 1e-6:
            raise ValueError(f"target must be 7 finite values with a non-zero quaternion, got {pose.tolist()}")
        rot = Rotation.from_quat(pose[3:]) * TOOL_FLIP
        self.target = np.concatenate([pose[:3], rot.as_rotvec()])

    def move(self, width: float) -> None:
        """franka_gripper/move: open to ``width`` (m)."""
        self.closing = float(np.clip(1.0 - width / self.cfg.max_width, 0.0, 1.0))

    def grasp(self) -> None:
        """franka_gripper/grasp: close until the fingers stop (on the object or each other)."""
        self.closing = 1.0

    # --- time and scenes ----------------------------------------------------------------------
    def step(self) -> Dict:
        """One control period toward the latest target (where the arm is, when none came)."""
        hold = np.concatenate([self.obs["ee_pos"], Rotation.from_quat(self.obs["ee_quat"]).as_rotvec()])
        pose = self.target if self.target is not None else hold
        self.obs, _, _, _, self.info = self.env.step(np.concatenate([pose, [self.closing]]).astype(np.float32))
        if self.info.get("failure") == "simulation_unstable":
            self.reset_scene()
            self.info = {"failure": "simulation_unstable", "scene_reset": True}
        return self.info

    def reset_scene(self) -> int:
        """A new scene (object placed again, arm at its start pose); returns the scene's seed."""
        self.scenes += 1
        seed = self.cfg.seed * 1000 + self.scenes
        self.obs = self.env.reset(seed=seed)
        self.target, self.closing, self.info = None, 0.0, {}
        return seed

    # --- perception ---------------------------------------------------------------------------
    def camera_pose_in_base(self) -> Tuple[float, ...]:
        """The hand-eye extrinsic [x y z qx qy qz qw] (camera optical frame in the base frame)."""
        ex = self.env.camera_extrinsics()
        return tuple(float(v) for v in np.concatenate([ex["position"], ex["quat_xyzw"]]))

    def detections(self) -> List[Tuple[str, float, np.ndarray]]:
        """(class id, score, pose in the camera optical frame) per tracked object."""
        cam_from_base = np.linalg.inv(pose_to_matrix(self.camera_pose_in_base()))
        return [(object_id, self.cfg.detection_score, matrix_to_pose(cam_from_base @ pose_to_matrix(pose)))
                for object_id, pose in tracked_objects(self.env.cfg.task, self.obs)]

    def success(self) -> bool:
        """The task's own check, for diagnostics only (the cell publishes no reward)."""
        return bool(self.info.get("success", False))


def scene_camera_pose(task: str) -> Tuple[float, ...]:
    """The sim camera's extrinsic for ``task``, for the pose tracker of a graph on the sim cell."""
    cell = FrankaCell(FrankaCellConfig(task=task))
    try:
        return cell.camera_pose_in_base()
    finally:
        cell.env.close()
