"""RLPD-style online residual RL (Ball et al. 2023, as used by PLD / ResFiT), deterministic
residual actor with Gaussian exploration.

Ingredients and where they live:
  * symmetric sampling (offline_ratio of each batch from the demo/intervention buffer): the
    caller's sampler (``resrl.algos.learner``);
  * LayerNorm ensemble critic: the critic module (``critic.q -> (E, B)``);
  * REDQ target: min over a random subset of ``target_subset`` (=2) heads;
  * UTD: ``update(batches)`` (``AgentBase``'s schedule) does one critic step per batch
    (len(batches) = ``utd``), then one actor step on the last batch once ``critic_warmup_steps``
    critic steps have been made;
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
from typing import Mapping

from resrl.algos.common import (AgentBase, AgentConfig, actor_metrics, critic_metrics, min_over_subset, q_and_v,
                                td_and_value_losses)
from resrl.algos.intervention import bc_loss


@dataclass
class RLPDConfig(AgentConfig):
    utd: int = 2  # critic updates per env step (RLPD uses 20 with 10 heads; 2 keeps a CPU at 30 Hz)
    target_subset: int = 2  # REDQ: min over this many random heads; 0 = min over all heads


class RLPD(AgentBase):
    config_class = RLPDConfig

    def critic_loss(self, b: Mapping):
        cfg = self.cfg
        # TD target: REDQ min over a random 2-subset of target heads, next action from the actor.
        target = self.td_target(b, self.actor, lambda q: min_over_subset(q, cfg.target_subset, self.generator))
        q, _, v = q_and_v(self.critic, b["obs"], b["action"])  # (E, B), -, (B,): one trunk pass
        td_loss, v_loss = td_and_value_losses(q, target, v, cfg, b)
        loss = td_loss + cfg.v_weight * v_loss
        return loss, critic_metrics(loss, td_loss, v_loss, q, target, v)

    def after_critic_step(self) -> None:
        self.polyak_critic(self.cfg.tau)

    def actor_loss(self, b: Mapping):
        cfg = self.cfg
        res, q = self.policy_q(b["obs"])
        q_pi = q.mean(dim=0)  # REDQ: mean over heads
        bc = bc_loss(res, b["residual"], b["intervention"], self.limit)
        loss = -q_pi.mean() + cfg.bc_weight * bc + cfg.residual_l2 * res.pow(2).mean()
        return loss, actor_metrics(loss, bc, q_pi, res)
