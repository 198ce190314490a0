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
from typing import Mapping

from resrl.algos.common import AgentBase, AgentConfig, actor_metrics, critic_metrics, q_and_v, td_and_value_losses
from resrl.algos.intervention import bc_loss


@dataclass
class TD3Config(AgentConfig):
    # Paper (Table 5): actor lr 1e-5 .. 3e-4, critic 1e-4 .. 3e-4 per task; 1k-2k critic-only
    # warm-up steps; "L2 reg." (residual_l2) 0 .. 1. TD3's own noise defaults (0.1 explore,
    # 0.2 / 0.5 smoothing, relative to the max action) are the shared ones, but for c:
    explore_clip: float = 0.5  # paper: c = 0.5
    bc_weight: float = 0.0  # BC on intervention samples (the paper trains in sim, no humans)
    policy_delay: int = 2  # actor + target updates every this many critic updates
    twin_heads: int = 2  # target = min over the first N heads; 0 = min over all heads


class TD3(AgentBase):
    uses_target_actor = True
    config_class = TD3Config

    def critic_loss(self, b: Mapping):
        cfg = self.cfg
        # TD target: clipped double Q over the first twin_heads target heads, next action from the
        # target actor (target policy smoothing).
        target = self.td_target(b, self.actor_target,
                                lambda q: (q[: cfg.twin_heads] if cfg.twin_heads > 0 else q).min(dim=0).values)
        q, _, v = q_and_v(self.critic, b["obs"], b["action"])  # (E, B), -, (B,): one trunk pass
        td_loss, v_loss = td_and_value_losses(q, target, v, cfg, b)
        loss = td_loss + cfg.v_weight * v_loss
        return loss, critic_metrics(loss, td_loss, v_loss, q, target, v)

    def after_critic_step(self) -> None:
        # The target critic moves with the delayed actor (the actor step reads neither target, so
        # running this before that step changes nothing).
        if self.critic_updates % self.cfg.policy_delay == 0:
            self.polyak_critic(self.cfg.tau)

    def actor_loss(self, b: Mapping):
        cfg = self.cfg
        res, q = self.policy_q(b["obs"])
        q1 = q[0]  # TD3: the first head's value
        bc = bc_loss(res, b["residual"], b["intervention"], self.limit)
        loss = -q1.mean() + cfg.bc_weight * bc + cfg.residual_l2 * res.pow(2).mean()
        return loss, actor_metrics(loss, bc, q1, res)

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
            if self.critic_updates % self.cfg.policy_delay == 0 and \
                    self.critic_updates > self.cfg.critic_warmup_steps:
                metrics.update(self.update_actor(b, prepared=True))
        return metrics
