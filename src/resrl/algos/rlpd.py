"""RLPD-style online residual RL (Ball et al. 2023, as used by PLD / ResFiT), deterministic
residual actor with Gaussian exploration.

Ingredients and where they live:
  * symmetric sampling (offline_ratio of each batch from the demo/intervention buffer): the
    caller's sampler (``resrl.algos.learner``);
  * LayerNorm ensemble critic: the critic module (``critic.q -> (E, B)``);
  * REDQ target: min over a random subset of ``target_subset`` (=2) heads;
  * UTD: ``update(batches)`` does one critic step per batch (len(batches) = ``utd``), then one
    actor step on the last batch once ``critic_warmup_steps`` critic steps have been made;
  * DrQ random shift on image/depth observations (``augment_pad``).

Losses (one update, batch of B transitions, heads e = 1..E):

    a'      = base' + clamp(actor(s') + clip(N(0, sigma_t xi), -c_t xi, c_t xi), -xi, xi)
    y       = r_n + discount * min_{e in random 2-subset} Q_targ_e(s', a')   (discount = gamma^n, 0 if terminal)
    L_Q     = sum_e mean_B (Q_e(s, a) - y)^2                      (a = executed action)
    L_V     = expectile_tau( mean_e Q_e(s, a).detach() - V(s) )    (V = value of the behaviour)
    L_critic = L_Q + v_weight * L_V
    L_actor = -mean_B mean_e Q_e(s, base + actor(s))  + bc_weight * BC_intervention
              + residual_l2 * mean(actor(s)^2)
    targets: polyak after every critic step (no target actor: the next action uses the current
    actor, as SAC/RLPD do).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

import torch
from torch import nn

from resrl.algos.common import (AgentBase, bound_returns, clamp_residual, clipped_noise, expectile_loss,
                                frozen, min_over_subset, q_and_v)
from resrl.algos.intervention import bc_loss


@dataclass
class RLPDConfig:
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    critic_weight_decay: float = 0.0  # AdamW decay on the critic (RLPD relies on LayerNorm instead)
    tau: float = 0.005  # polyak rate of the target critic
    utd: int = 2  # critic updates per env step (RLPD uses 20 with 10 heads; 2 keeps a CPU at 30 Hz)
    target_subset: int = 2  # REDQ: min over this many random heads; 0 = min over all heads
    critic_warmup_steps: int = 0  # critic-only updates before the actor starts training
    # Noise scales are fractions of the residual bound xi (absolute when xi is unknown).
    explore_std: float = 0.1  # exploration: res + clip(N(0, std*xi), -clip*xi, clip*xi)
    explore_clip: float = 0.3
    target_noise: float = 0.2  # smoothing noise on the next action in the TD target
    target_noise_clip: float = 0.5
    bc_weight: float = 1.0  # BC on intervention samples: ||actor(s) - (a_human - a_VLA)||^2
    residual_l2: float = 0.0  # penalty on the residual magnitude in the actor loss
    v_expectile: float = 0.5  # V(s) fits this expectile of Q(s, a_data) (0.5: behaviour value)
    v_weight: float = 1.0
    augment_pad: int = 4  # DrQ shift in px for image/depth keys (0 disables)
    residual_clip: Optional[float] = None  # residual bound; None = the actor's xi
    return_bounds: Optional[Tuple[float, float]] = None  # clamp TD targets, e.g. [0, 1] for a 0/1 reward


class RLPD(AgentBase):
    def __init__(self, actor: nn.Module, critic: nn.Module, cfg: RLPDConfig | None = None,
                 device: str | torch.device = "cpu", seed: int | None = None, precision: str = "fp32") -> None:
        super().__init__(actor, critic, cfg or RLPDConfig(), device, seed, precision)

    def critic_loss(self, b: Mapping):
        cfg = self.cfg
        obs, next_obs = b["obs"], b["next_obs"]
        with torch.no_grad():
            next_res = self.actor(next_obs)
            next_res = clamp_residual(
                next_res + clipped_noise(next_res, self.rel(cfg.target_noise), self.rel(cfg.target_noise_clip),
                                         self.generator), self.limit)
            next_q = self.critic_target.q(next_obs, next_obs["base_action"] + next_res)  # (E, B)
            next_q = min_over_subset(next_q, cfg.target_subset, self.generator)  # REDQ min of 2
            target = b["reward"] + b["discount"] * next_q
            target = bound_returns(target, cfg.return_bounds)

        q, _, v = q_and_v(self.critic, obs, b["action"])  # (E, B), -, (B,): one trunk pass
        td_loss = (q - target).pow(2).mean(dim=1).sum()
        v_loss = expectile_loss(q.detach().mean(dim=0) - v, cfg.v_expectile)
        loss = td_loss + cfg.v_weight * v_loss
        return loss, {"critic_loss": loss, "td_loss": td_loss, "v_loss": v_loss, "q_mean": q.mean(),
                      "q_target_mean": target.mean(), "v_mean": v.mean()}

    def actor_loss(self, b: Mapping):
        cfg = self.cfg
        obs = b["obs"]
        res = self.actor(obs)
        with frozen(self.critic_params):
            q_pi = self.critic.q(obs, obs["base_action"] + res).mean(dim=0)  # REDQ: mean over heads
        bc = bc_loss(res, b["residual"], b["intervention"], self.limit)
        loss = -q_pi.mean() + cfg.bc_weight * bc + cfg.residual_l2 * res.pow(2).mean()
        return loss, {"actor_loss": loss, "bc_loss": bc, "q_pi_mean": q_pi.mean(),
                      "residual_abs": res.detach().abs().mean()}

    def after_critic_step(self) -> None:
        self.polyak_critic(self.cfg.tau)

    def update(self, batches) -> dict[str, float]:
        """One env step's worth of learning: a critic step per batch (UTD = len(batches)), then one
        actor step on the last batch unless still in the critic-only warm-up."""
        if isinstance(batches, Mapping):
            batches = [batches]
        metrics: dict[str, float] = {}
        prepared = None
        for batch in batches:
            prepared = self.prepare(batch)
            metrics.update(self.update_critic(prepared, prepared=True))
        if self.critic_updates > self.cfg.critic_warmup_steps:
            metrics.update(self.update_actor(prepared, prepared=True))
        return metrics
