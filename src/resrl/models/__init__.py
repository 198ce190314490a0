"""Networks for the residual policy and the critic (ROS-free).

Observations are dicts of batched tensors (see ``resrl.actions`` for the layouts):
"state" (B, 7), "base_action" (B, 7), and either "image" uint8 (B, H, W, 3) + "depth" uint8
(B, H, W) or "object_poses" (B, K*7) + "object_conf" (B, K).
"""
from __future__ import annotations

from resrl.models.checkpoint import (CheckpointError, deserialize_into, load_checkpoint,
                                     load_state_dict_checked, payload_sha256, save_checkpoint,
                                     serialize_state_dict)
from resrl.models.config import ModelConfig
from resrl.models.critic import Critic
from resrl.models.encoders import ResNetEncoder, SpatialLearnedEmbeddings, fuse_for_inference
from resrl.models.residual import (ImageResidualPolicy, ObjectCentricResidualPolicy, PoseAugmentation,
                                   ResidualPolicyBase, mask_low_confidence)


def build_residual(cfg: ModelConfig) -> ResidualPolicyBase:
    return ImageResidualPolicy(cfg) if cfg.obs_mode == "image" else ObjectCentricResidualPolicy(cfg)


def build_critic(cfg: ModelConfig) -> Critic:
    return Critic(cfg)


__all__ = [
    "CheckpointError", "Critic", "ImageResidualPolicy", "ModelConfig", "ObjectCentricResidualPolicy",
    "PoseAugmentation", "ResNetEncoder", "ResidualPolicyBase", "SpatialLearnedEmbeddings", "build_critic",
    "build_residual", "deserialize_into", "fuse_for_inference", "load_checkpoint",
    "load_state_dict_checked", "mask_low_confidence", "payload_sha256", "save_checkpoint",
    "serialize_state_dict",
]
