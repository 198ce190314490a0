"""Critic shared by the learner and the VGM arbiter: one trunk, an ensemble of Q heads and a
V head (Cal-QL / VGM "unified critic backbone").

The arbiter needs Q(s, a_VLA + a_res), Q(s, a_VLA) and V(s) every control step, so the API
separates the (expensive) trunk from the (cheap) heads: ``features`` once, then
``q_from_features`` on any number of actions and ``v_from_features``.

Q heads see the absolute commanded action a = a_VLA + lambda * a_res (7), the layout the
arbiter sends to the robot.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from resrl.actions import ACTION_DIM
from resrl.models.config import ModelConfig
from resrl.models.encoders import ImageObsTrunk, mlp
from resrl.models.residual import mask_low_confidence, object_centric_dim, object_centric_input


class EnsembleLinear(nn.Module):
    """E independent Linear layers evaluated as one batched matmul: (M|E, M, in) -> (E, M, out)."""

    def __init__(self, ensemble_size: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, drawn per member
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, self.weight) + self.bias


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate affine per ensemble member, on (E, M, D)."""

    def __init__(self, ensemble_size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ensemble_size, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:]) * self.weight + self.bias


def ensemble_mlp(ensemble_size: int, in_dim: int, hidden: Sequence[int], out_dim: int,
                 layer_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(EnsembleLinear(ensemble_size, in_dim, width))
        if layer_norm:
            layers.append(EnsembleLayerNorm(ensemble_size, width))
        layers.append(nn.ReLU())
        in_dim = width
    layers.append(EnsembleLinear(ensemble_size, in_dim, out_dim))
    return nn.Sequential(*layers)


class ObjectObsTrunk(nn.Module):
    """[confidence-masked object poses, state, base_action] -> (B, object_trunk_dim).

    No pose noise/dropout here (asymmetric actor-critic: the actor is what must survive
    tracker noise); a learner that wants an augmented critic input applies
    ``PoseAugmentation`` to the batch itself.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conf_threshold = cfg.conf_threshold
        self.net = nn.Sequential(nn.Linear(object_centric_dim(cfg.num_objects), cfg.object_trunk_dim),
                                 nn.LayerNorm(cfg.object_trunk_dim), nn.Tanh())
        self.out_dim = cfg.object_trunk_dim

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        poses = mask_low_confidence(obs["object_poses"], obs["object_conf"], self.conf_threshold)
        return self.net(object_centric_input(poses, obs["state"], obs["base_action"]))


class Critic(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ensemble_size = cfg.ensemble_size
        self.trunk = ImageObsTrunk(cfg) if cfg.obs_mode == "image" else ObjectObsTrunk(cfg)
        self.q_heads = ensemble_mlp(cfg.ensemble_size, self.trunk.out_dim + ACTION_DIM,
                                    cfg.critic_hidden, 1, cfg.layer_norm)
        self.v_head = mlp(self.trunk.out_dim, cfg.critic_hidden, 1, cfg.layer_norm)

    def features(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Trunk features (B, F): the one expensive pass per observation."""
        return self.trunk(obs)

    def q_from_features(self, features: Tensor, action: Tensor) -> Tensor:
        """action (B, 7) -> (E, B); action (N, B, 7) -> (E, N, B)."""
        if action.shape[-1] != ACTION_DIM or action.dim() not in (2, 3) or action.shape[-2] != features.shape[0]:
            raise ValueError(f"action must be (B, {ACTION_DIM}) or (N, B, {ACTION_DIM}) with "
                             f"B={features.shape[0]}, got {tuple(action.shape)}")
        lead = action.shape[:-1]
        x = torch.cat([features.expand(lead + features.shape[-1:]), action], dim=-1)
        q = self.q_heads(x.reshape(-1, x.shape[-1]))  # (E, N*B, 1)
        return q.reshape((self.ensemble_size,) + lead)

    def v_from_features(self, features: Tensor) -> Tensor:  # -> (B,)
        return self.v_head(features).squeeze(-1)

    def q(self, obs: Mapping[str, Tensor], action: Tensor) -> Tensor:  # -> (E, B)
        return self.q_from_features(self.features(obs), action)

    def q_multi(self, obs: Mapping[str, Tensor], actions: Tensor) -> Tensor:
        """Q of N candidate actions (N, B, 7) from one trunk pass -> (E, N, B)."""
        if actions.dim() != 3:
            raise ValueError(f"q_multi expects actions (N, B, {ACTION_DIM}), got {tuple(actions.shape)}")
        return self.q_from_features(self.features(obs), actions)

    def v(self, obs: Mapping[str, Tensor]) -> Tensor:  # -> (B,)
        return self.v_from_features(self.features(obs))

    def q_and_v(self, obs: Mapping[str, Tensor], action: Tensor) -> tuple[Tensor, Tensor]:
        """(Q (E, B) or (E, N, B) for action (B, 7) or (N, B, 7), V (B,)) from one trunk pass."""
        f = self.features(obs)
        return self.q_from_features(f, action), self.v_from_features(f)

    forward = q
