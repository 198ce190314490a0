"""A simulated object-pose tracker (FoundationPose/SAM2 stand-in) for the sim pose-tracker node.

Ground truth + the object-centric paper's hierarchical uniform noise (a noise scale drawn per
episode, per-step noise drawn uniformly within it), track losses (dropout: the pose is reported
invalid with low confidence for a few steps) and a confidence value that drops with the noise.
Consumers zero poses whose confidence is below their threshold.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resrl.geometry import quat_to_rotvec, rotvec_to_quat


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
