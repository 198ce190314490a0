"""``ModelConfig``: everything needed to rebuild the residual policy and the critic.

The same config travels inside checkpoints and PolicyWeights messages (as JSON), so a node
can rebuild a network from the weights it receives.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping

from resrl.actions import ACTION_DIM
from resrl import configs
from resrl.configs import ConfigError

OBS_MODES = ("image", "object")


@dataclass
class ModelConfig:
    # "image": RGB + relative depth + proprioception (VGM); "object": tracked object poses.
    obs_mode: str = "image"

    # --- image encoder (ResNet-18, 6-channel early fusion) ---
    image_size: int = 128  # square input side in px; the VGM paper uses 224, 96/128 suit a CPU
    encoder_stages: int = 4  # ResNet stages kept: 4 = full ResNet-18, 3 drops layer4, ...
    num_spatial_features: int = 8  # learned spatial embeddings per channel (SERL)
    encoder_feature_dim: int = 256  # bottleneck after the spatial embedding
    encoder_dropout: float = 0.1  # dropout on the flattened spatial embedding
    pretrained_path: str | None = None  # torchvision ResNet-18 ImageNet state_dict (.pth)
    freeze_encoder: bool = False  # fix pretrained trunk weights + BN stats (conv1 stays trainable)

    # --- object-centric mode (object-centric residual RL paper, A.6) ---
    num_objects: int = 1
    pose_noise_pos: float = 0.005  # sigma_p^max (m): per-step scale ~ U(0, max), noise ~ U(-s, s)
    pose_noise_rot: float = 0.1  # sigma_q^max (rad), same hierarchy for the rotation angle
    pose_dropout: float = 0.1  # rho_drop: prob. of zeroing an object's pose in training
    conf_threshold: float = 0.5  # tau_c: poses with confidence below this are zeroed, always
    object_trunk_dim: int = 256  # critic trunk width over [poses, state, base_action]

    # --- heads ---
    actor_hidden: tuple[int, ...] = (256, 256)  # object-centric paper: (512, 512)
    critic_hidden: tuple[int, ...] = (256, 256)  # object-centric paper: (1024, 1024)
    ensemble_size: int = 2  # Q heads; 10 for REDQ
    layer_norm: bool = True  # LayerNorm after every hidden Linear (actor and critic)
    # Residual bound per action dim: xi * tanh(.) -> [x, y, z] m, [rx, ry, rz] rad, gripper.
    xi: tuple[float, ...] = (0.03, 0.03, 0.03, 0.1, 0.1, 0.1, 1.0)

    def __post_init__(self) -> None:
        self.actor_hidden = tuple(int(h) for h in self.actor_hidden)
        self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
        self.xi = tuple(float(x) for x in self.xi)
        errors = []
        if self.obs_mode not in OBS_MODES:
            errors.append(f"obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.image_size < 16:
            errors.append(f"image_size must be >= 16, got {self.image_size}")
        if not 1 <= self.encoder_stages <= 4:
            errors.append(f"encoder_stages must be in 1..4, got {self.encoder_stages}")
        for name in ("num_spatial_features", "encoder_feature_dim", "num_objects",
                     "object_trunk_dim", "ensemble_size"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_dropout", "pose_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                errors.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.pose_noise_pos < 0 or self.pose_noise_rot < 0:
            errors.append("pose noise scales must be >= 0")
        if not self.actor_hidden or not self.critic_hidden or min(self.actor_hidden + self.critic_hidden) < 1:
            errors.append("actor_hidden / critic_hidden must be non-empty positive widths")
        if len(self.xi) != ACTION_DIM or min(self.xi) <= 0:
            errors.append(f"xi must be {ACTION_DIM} positive values, got {self.xi}")
        if errors:
            raise ConfigError("ModelConfig: " + "; ".join(errors))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "ModelConfig":
        return configs.from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"ModelConfig: invalid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError("ModelConfig: JSON must be an object")
        return configs.from_dict(cls, data)


def obs_spec(obs_mode: str, cfg: ModelConfig) -> dict:
    """The replay's observation layout {key: (shape, dtype)} that the networks of ``cfg`` read in
    ``obs_mode`` ("image" or "object"); the learner node, offline_train and export share it."""
    spec = {"state": ((7,), "float32"), "base_action": ((7,), "float32")}
    if obs_mode == "image":
        s = cfg.image_size
        spec.update(image=((s, s, 3), "uint8"), depth=((s, s), "uint8"))
    else:
        spec.update(object_poses=((cfg.num_objects * 7,), "float32"), object_conf=((cfg.num_objects,), "float32"))
    return spec
