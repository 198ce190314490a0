"""Object-pose tracking for the object-centric residual: detections from an external tracker
(Isaac ROS FoundationPose's vision_msgs/Detection3DArray) mapped to resrl's object slots, and a
simulated tracker (FoundationPose/SAM2 stand-in) for the sim pose-tracker node.

Simulated tracker: ground truth + the object-centric paper's hierarchical uniform noise (a noise scale drawn per
episode, per-step noise drawn uniformly within it), track losses (dropout: the pose is reported
invalid with low confidence for a few steps) and a confidence value that drops with the noise.
Consumers zero poses whose confidence is below their threshold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from resrl.geometry import quat_to_rotvec, rotvec_to_quat
from resrl.perception.transforms import matrix_to_pose, pose_to_matrix

IDENTITY_POSE = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class DetectionTrackerConfig:
    # Object class ids (FoundationPose's hypothesis.class_id, or the detection id) in the
    # residual's object-slot order; empty = the detections in the order they arrive.
    object_ids: Tuple[str, ...] = ()
    # Static extrinsic: pose of the detections' frame (the camera's optical frame) in the robot
    # base frame, [x y z qx qy qz qw], from hand-eye calibration. Identity = already in base.
    camera_pose_in_base: Tuple[float, ...] = IDENTITY_POSE
    base_frame: str = "fr3_link0"

    def __post_init__(self):
        pose_to_matrix(self.camera_pose_in_base)   # a malformed extrinsic fails at start, not per frame


# One detection: (detection id, [(class_id, score, pose [x y z qx qy qz qw] in the camera frame)]).
Detection = Tuple[str, Sequence[Tuple[str, float, Sequence[float]]]]


def detections_to_objects(detections: Sequence[Detection], cfg: DetectionTrackerConfig
                          ) -> List[Tuple[str, np.ndarray, float, bool]]:
    """Detections -> one (object_id, pose in base (7,), confidence, valid) per object slot.

    Each slot takes its best-scoring hypothesis (matched on class id or detection id); a slot
    with no detection, or whose best pose is not a finite pose with a unit-normable quaternion,
    is reported invalid with confidence 0 and a zero pose. The score is the confidence.
    """
    base_from_cam = pose_to_matrix(cfg.camera_pose_in_base)
    candidates = []   # (slot key, score, pose)
    for det_id, hypotheses in detections:
        for class_id, score, pose in hypotheses:
            candidates.append((class_id or det_id, det_id, float(score), np.asarray(pose, dtype=np.float64)))
    if cfg.object_ids:
        slots = list(cfg.object_ids)
    else:
        slots = []
        for key, _, _, _ in candidates:
            if key not in slots:
                slots.append(key)
    out = []
    for slot in slots:
        best = None
        for key, det_id, score, pose in candidates:
            if slot in (key, det_id) and (best is None or score > best[0]):
                best = (score, pose)
        if best is None or not np.all(np.isfinite(best[1])) or not np.isfinite(best[0]):
            out.append((slot, np.zeros(7, dtype=np.float32), 0.0, False))
            continue
        try:
            pose_base = matrix_to_pose(base_from_cam @ pose_to_matrix(best[1]))
        except ValueError:   # zero quaternion
            out.append((slot, np.zeros(7, dtype=np.float32), 0.0, False))
            continue
        out.append((slot, pose_base.astype(np.float32), float(np.clip(best[0], 0.0, 1.0)), True))
    return out


@dataclass
class TrackerNoiseConfig:
    max_pos_noise_m: float = 0.005      # episode noise scale ~ U(0, max); per-step noise ~ U(-s, s)
    max_rot_noise_rad: float = 0.05
    dropout_prob: float = 0.02          # per step, probability a track loss starts
    dropout_steps: int = 3              # length of a track loss
    lost_confidence: float = 0.1


class SimulatedTracker:
    def __init__(self, cfg: TrackerNoiseConfig, seed: int = 0):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.pos_scale = self.rng.uniform(0.0, self.cfg.max_pos_noise_m)
        self.rot_scale = self.rng.uniform(0.0, self.cfg.max_rot_noise_rad)
        self.lost_for = 0

    def track(self, pose: np.ndarray):
        """GT pose [pos(3), quat xyzw(4)] -> (noisy pose, confidence, valid)."""
        c = self.cfg
        if self.lost_for == 0 and self.rng.random() < c.dropout_prob:
            self.lost_for = c.dropout_steps
        if self.lost_for > 0:
            self.lost_for -= 1
            return np.zeros(7, dtype=np.float32), c.lost_confidence, False
        pos = pose[:3] + self.rng.uniform(-self.pos_scale, self.pos_scale, 3)
        rot = quat_to_rotvec(pose[3:7]) + self.rng.uniform(-self.rot_scale, self.rot_scale, 3)
        # Confidence falls with the episode's noise level: a sloppier track reports less certainty.
        conf = 1.0 - 0.5 * (self.pos_scale / max(c.max_pos_noise_m, 1e-9))
        return np.concatenate([pos, rotvec_to_quat(rot)]).astype(np.float32), float(conf), True


class SimulatedTrackers:
    """One ``SimulatedTracker`` per object id (own noise level and track losses), created on first
    sight in a fixed seed order: the first object keeps ``seed``, the i-th gets ``seed + 1000 i``."""

    def __init__(self, cfg: TrackerNoiseConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed
        self.by_id: Dict[str, SimulatedTracker] = {}

    def reset(self) -> None:
        for tracker in self.by_id.values():
            tracker.reset()

    def track(self, object_id: str, pose: np.ndarray):
        if object_id not in self.by_id:
            self.by_id[object_id] = SimulatedTracker(self.cfg, self.seed + 1000 * len(self.by_id))
        return self.by_id[object_id].track(pose)
