"""Residual policies a_res = xi * tanh(f(obs)) added by the arbiter to the frozen VLA action.

The last layer is zero-initialised so a fresh residual outputs exactly zero: deploying an
untrained residual reproduces the VLA.

Object-centric pose robustness (object-centric residual RL paper, Sec. 3.2 / A.6):
* noise: per timestep (= per sample) a scale s_p ~ U(0, sigma_p^max), then every position
  component gets U(-s_p, s_p); the orientation is right-multiplied by a rotation about a
  random axis with angle ~ U(0, s_q), s_q ~ U(0, sigma_q^max);
* dropout: an object's pose is zeroed with probability rho_drop;
* deployment: a pose whose tracking confidence is below tau_c is zeroed, which triggers the
  fallback that dropout trained. Noise/dropout run only in ``.train()``; masking always.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from resrl.actions import ACTION_DIM, POSE_DIM, STATE_DIM
from resrl.models.config import ModelConfig
from resrl.models.encoders import ImageObsTrunk, mlp


class BoundedHead(nn.Module):
    """MLP -> xi * tanh(.), last Linear zero-initialised (output exactly 0 until trained)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], xi: Sequence[float], layer_norm: bool) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, ACTION_DIM, layer_norm)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        # Not persistent: the bound is config, and travels with the config, not the weights.
        self.register_buffer("xi", torch.tensor(xi, dtype=torch.float32), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.xi * torch.tanh(self.net(x))


class ResidualPolicyBase(nn.Module):
    """Common surface of the residual policies: ``cfg`` and the bound ``xi`` (7,)."""

    head: BoundedHead

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg

    @property
    def xi(self) -> Tensor:
        return self.head.xi


class ImageResidualPolicy(ResidualPolicyBase):
    """VGM residual: ResNet(RGB, depth, CoordConv) features + state + VLA intent -> a_res."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.trunk = ImageObsTrunk(cfg)
        self.head = BoundedHead(self.trunk.out_dim, cfg.actor_hidden, cfg.xi, cfg.layer_norm)

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:  # -> (B, 7)
        return self.head(self.trunk(obs))


# ---------------------------------------------------------------------------------------------
# Object poses
# ---------------------------------------------------------------------------------------------
def quat_mul(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product of xyzw quaternions (broadcasting)."""
    x1, y1, z1, w1 = q1.unbind(-1)
    x2, y2, z2, w2 = q2.unbind(-1)
    return torch.stack([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2], dim=-1)


def _split_poses(poses: Tensor, num_objects: int) -> Tensor:
    if poses.shape[-1] != num_objects * POSE_DIM:
        raise ValueError(f"object_poses: expected last dim {num_objects} * {POSE_DIM}, "
                         f"got {tuple(poses.shape)}")
    return poses.unflatten(-1, (num_objects, POSE_DIM))


def mask_low_confidence(poses: Tensor, conf: Tensor, threshold: float) -> Tensor:
    """Zero each object's pose (..., K*7) whose confidence (..., K) is below ``threshold``.

    Non-finite poses or confidences count as lost too: zero is the fallback the policy was
    trained for, NaN would poison the whole action.
    """
    num_objects = conf.shape[-1]
    p = _split_poses(poses, num_objects)
    keep = (conf >= threshold) & torch.isfinite(p).all(-1)
    return torch.where(keep[..., None], p, torch.zeros((), dtype=p.dtype, device=p.device)).flatten(-2)


def object_centric_input(poses: Tensor, state: Tensor, base_action: Tensor) -> Tensor:
    """The object-centric MLP input: [poses (K*7), state (7), a_base (7)] plus the same geometry in
    the gripper's terms -- each object's position relative to the EE (K*3, zero for a lost object)
    and the VLA intent a_base - state (7). The corrections are functions of these differences; with
    ~20 demos an MLP fed only absolute coordinates has to rediscover the subtraction per region of
    the workspace and generalises poorly to object / target placements the demos did not cover.
    ``poses`` must already be confidence-masked (lost objects are all-zero)."""
    p = _split_poses(poses, poses.shape[-1] // POSE_DIM)
    present = (p.abs().sum(-1, keepdim=True) > 0).to(p.dtype)
    rel = (p[..., :3] - state[..., None, :3]) * present
    return torch.cat([poses, state, base_action, rel.flatten(-2), base_action - state], dim=-1)


def object_centric_dim(num_objects: int) -> int:
    return num_objects * (POSE_DIM + 3) + STATE_DIM + 2 * ACTION_DIM


class PoseAugmentation:
    """Hierarchical-uniform pose noise + per-object pose dropout, on (..., K*7) poses
    [pos(3), quat xyzw(4)] per object. Also used by the sim pose tracker, hence numpy in ->
    numpy out.

    By default every leading index is one timestep and draws its own noise scale (the paper
    resamples it per timestep). A caller that wants one noise level for a whole episode
    draws it with ``sample_scales()`` and passes it as ``scales``.

    Dropout is per object (independent), so with K > 1 the policy also sees the partial
    losses that per-object confidence masking produces at deployment; for K = 1 it is the
    paper's whole-vector dropout.
    """

    def __init__(self, num_objects: int, pos_noise_max: float, rot_noise_max: float,
                 dropout_p: float, generator: torch.Generator | None = None) -> None:
        self.num_objects = num_objects
        self.pos_noise_max = pos_noise_max
        self.rot_noise_max = rot_noise_max
        self.dropout_p = dropout_p
        self.generator = generator

    @classmethod
    def from_config(cls, cfg: ModelConfig, generator: torch.Generator | None = None) -> "PoseAugmentation":
        return cls(cfg.num_objects, cfg.pose_noise_pos, cfg.pose_noise_rot, cfg.pose_dropout, generator)

    def __call__(self, poses: Tensor | np.ndarray,
                 scales: tuple[float, float] | None = None) -> Tensor | np.ndarray:
        if isinstance(poses, np.ndarray):
            return self.dropout(self.noise(torch.from_numpy(poses), scales)).numpy()
        return self.dropout(self.noise(poses, scales))

    def _rand(self, shape: torch.Size | tuple, like: Tensor) -> Tensor:
        return torch.rand(shape, generator=self.generator, dtype=like.dtype, device=like.device)

    def sample_scales(self) -> tuple[float, float]:
        """One (s_p, s_q) draw: s_p ~ U(0, sigma_p^max), s_q ~ U(0, sigma_q^max)."""
        u = torch.rand(2, generator=self.generator, dtype=torch.float64)
        return float(u[0]) * self.pos_noise_max, float(u[1]) * self.rot_noise_max

    def noise(self, poses: Tensor, scales: tuple[float, float] | None = None) -> Tensor:
        p = _split_poses(poses, self.num_objects)  # (..., K, 7)
        lead, k = p.shape[:-2], self.num_objects
        if scales is None:
            pos_scale = self._rand(lead + (1, 1), p) * self.pos_noise_max
            rot_scale = self._rand(lead + (1,), p) * self.rot_noise_max
        else:
            pos_scale, rot_scale = scales
        pos = p[..., :3] + (2 * self._rand(lead + (k, 3), p) - 1) * pos_scale
        angle = self._rand(lead + (k,), p) * rot_scale
        axis = F.normalize(torch.randn(lead + (k, 3), generator=self.generator, dtype=p.dtype,
                                       device=p.device), dim=-1)
        half = 0.5 * angle[..., None]
        eps = torch.cat([axis * torch.sin(half), torch.cos(half)], dim=-1)
        return torch.cat([pos, quat_mul(p[..., 3:], eps)], dim=-1).flatten(-2)

    def dropout(self, poses: Tensor) -> Tensor:
        p = _split_poses(poses, self.num_objects)
        drop = self._rand(p.shape[:-1], p) < self.dropout_p
        return p.masked_fill(drop[..., None], 0.0).flatten(-2)


class ObjectCentricResidualPolicy(ResidualPolicyBase):
    """Object-centric residual: MLP over [object poses, state, base_action] (+ their differences,
    see ``object_centric_input``) -> a_res."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.num_objects = cfg.num_objects
        self.conf_threshold = cfg.conf_threshold
        self.augment = PoseAugmentation.from_config(cfg)
        self.head = BoundedHead(object_centric_dim(cfg.num_objects), cfg.actor_hidden, cfg.xi, cfg.layer_norm)

    def pose_input(self, obs: Mapping[str, Tensor]) -> Tensor:
        """The pose vector the MLP sees: augmented in training, confidence-masked always."""
        poses = obs["object_poses"]
        if self.training:
            poses = self.augment(poses)
        return mask_low_confidence(poses, obs["object_conf"], self.conf_threshold)

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:  # -> (B, 7)
        return self.head(object_centric_input(self.pose_input(obs), obs["state"], obs["base_action"]))
