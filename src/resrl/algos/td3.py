"""TD3 residual (Fujimoto et al. 2018, as in the object-centric residual RL paper, Alg. 1).

    exploration   res_t = clamp(actor(s) + clip(N(0, sigma xi), -c xi, c xi), -xi, xi)   (explore())
    smoothing     a'    = base' + clamp(actor_targ(s') + clip(N(0, sigma_t xi), -c_t xi, c_t xi), -xi, xi)
    twin target   y     = r_n + discount * min(Q_targ_1(s', a'), Q_targ_2(s', a'))
                          (first two heads of the ensemble; ``twin_heads=0`` = min over all)
    critic        L_Q   = sum_e mean_B (Q_e(s, a) - y)^2       (every head regresses to y)
                  L_V   = expectile_tau(mean_e Q_e(s, a).detach() - V(s))
    delayed actor every ``policy_delay`` critic steps (after ``critic_warmup_steps``):
                  L_pi  = -mean_B Q_1(s, base + actor(s)) + bc_weight * BC_intervention
                          + residual_l2 * mean(actor(s)^2)
    targets       polyak (tau) on the critic every ``policy_delay`` critic steps and on the actor
                  after each actor step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

import torch
from torch import nn

from resrl.algos.common import (AgentBase, bound_returns, clamp_residual, clipped_noise, expectile_loss,
                                frozen, q_and_v)
from resrl.algos.intervention import bc_loss


@dataclass
class TD3Config:
    actor_lr: float = 3e-4  # paper (Table 5): 1e-5 .. 3e-4 per task
    critic_lr: float = 3e-4  # paper: 1e-4 .. 3e-4
    critic_weight_decay: float = 0.0
    tau: float = 0.005
    utd: int = 1
    policy_delay: int = 2  # actor + target updates every this many critic updates
    twin_heads: int = 2  # target = min over the first N heads; 0 = min over all heads
    critic_warmup_steps: int = 0  # paper: 1k-2k critic-only steps
    # Noise scales are fractions of the residual bound xi (absolute when xi is unknown);
    # TD3's own defaults (0.1 explore, 0.2 / 0.5 smoothing, relative to the max action).
    explore_std: float = 0.1
    explore_clip: float = 0.5  # paper: c = 0.5
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    bc_weight: float = 0.0  # BC on intervention samples (the paper trains in sim, no humans)
    residual_l2: float = 0.0  # paper's "L2 reg." (0 .. 1 per task) on the residual
    v_expectile: float = 0.5
    v_weight: float = 1.0
    augment_pad: int = 4
    residual_clip: Optional[float] = None  # residual bound; None = the actor's xi
    return_bounds: Optional[Tuple[float, float]] = None  # clamp TD targets, e.g. [0, 1] for a 0/1 reward


class TD3(AgentBase):
    uses_target_actor = True

    def __init__(self, actor: nn.Module, critic: nn.Module, cfg: TD3Config | None = None,
                 device: str | torch.device = "cpu", seed: int | None = None, precision: str = "fp32") -> None:
        super().__init__(actor, critic, cfg or TD3Config(), device, seed, precision)

    def critic_loss(self, b: Mapping):
        cfg = self.cfg
        obs, next_obs = b["obs"], b["next_obs"]
        with torch.no_grad():
            next_res = self.actor_target(next_obs)  # target policy smoothing:
            next_res = clamp_residual(
                next_res + clipped_noise(next_res, self.rel(cfg.target_noise), self.rel(cfg.target_noise_clip),
                                         self.generator), self.limit)
            next_q = self.critic_target.q(next_obs, next_obs["base_action"] + next_res)  # (E, B)
            if cfg.twin_heads > 0:
                next_q = next_q[: cfg.twin_heads]
            target = b["reward"] + b["discount"] * next_q.min(dim=0).values  # clipped double Q
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
            q1 = self.critic.q(obs, obs["base_action"] + res)[0]
        bc = bc_loss(res, b["residual"], b["intervention"], self.limit)
        loss = -q1.mean() + cfg.bc_weight * bc + cfg.residual_l2 * res.pow(2).mean()
        return loss, {"actor_loss": loss, "bc_loss": bc, "q_pi_mean": q1.mean(),
                      "residual_abs": res.detach().abs().mean()}

    def after_actor_step(self) -> None:
        self.polyak_actor(self.cfg.tau)

    def update(self, batches) -> dict[str, float]:
        """A critic step per batch; every ``policy_delay``-th critic step (counted over the agent's
        lifetime) also updates the target critic and -- after the warm-up -- the actor and its
        target, on that same batch."""
        if isinstance(batches, Mapping):
            batches = [batches]
        metrics: dict[str, float] = {}
        for batch in batches:
            b = self.prepare(batch)
            metrics.update(self.update_critic(b, prepared=True))
            if self.critic_updates % self.cfg.policy_delay == 0:
                if self.critic_updates > self.cfg.critic_warmup_steps:
                    metrics.update(self.update_actor(b, prepared=True))
                self.polyak_critic(self.cfg.tau)
        return metrics
