"""Cal-QL (Nakamoto et al. 2023) for a deterministic residual actor: the offline warm-up on the
~20 demos (VGM, Sec. III-C) and, optionally, online fine-tuning with the same loss.

Per update (batch of B transitions, heads e = 1..E, residual bound xi):

  TD      a'   = base' + clamp(actor(s') + clip(N(0, sigma_t xi), -c_t xi, c_t xi), -xi, xi)
                                                                     (no target actor)
                 (``gated_target``: base' + lambda' * (...), lambda' the arbiter's at s')
          y    = r_n + discount * min_{e in random subset} Q_targ_e(s', a')
          L_TD = sum_e mean_B (Q_e(s, a) - y)^2                      (a = executed action)

  CQL     candidate actions around the VLA action (the residual's reachable set):
            random:  a_r = base + U(-random_scale * xi, random_scale * xi)         (num_random)
            policy:  a_p = base + clamp(actor(s) + N(0, (policy_noise * xi)^2), -xi, xi)
                                                                       (num_policy, actor detached)
          Cal-QL calibration (``use_calibration``): Q_e(s, a_p) <- max(Q_e(s, a_p), mc_return(s))
          -- the Monte-Carlo return-to-go of the data is a lower bound the regulariser may not
          push the policy's values below (random actions are not bounded).
          L_CQL = alpha * sum_e mean_B [ T * logsumexp_{a in {a_r, a_p, a_data}} (Q_e(s, a) / T) - Q_e(s, a_data) ]
          (CQL's un-importance-weighted form, which also puts the data action in the logsumexp so
          the push-up on Q(s, a_data) fades once it dominates: the deterministic actor has no
          density, and a narrow Gaussian's density would drown the policy samples.)

  V       L_V = expectile_tau( mean_e Q_e(s, a_data).detach() - V(s) )
          V is the value of the behaviour in the data (tau = 0.5: its mean; > 0.5 leans towards
          the best in-support action, IQL). It shares the critic trunk; the arbiter reads it.

  critic  L_critic = L_TD + L_CQL + v_weight * L_V      ;  target critic: polyak (tau) every step
  actor   L_pi = -mean_B min_e Q_e(s, base + actor(s)) + bc_weight * BC + residual_l2 * mean(res^2)
          BC = mean over intervention/demo samples of ||actor(s) - clamp(a_human - a_VLA, +-xi)||^2
          (+ success_bc_weight * the same toward a - a_VLA on online steps of successful episodes)

``use_calibration=False`` gives plain CQL with the same code (the test compares the two).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from resrl.algos.common import (AgentBase, AgentConfig, actor_metrics, clamp_residual, critic_metrics,
                                min_over_subset, q_and_v, td_and_value_losses)
from resrl.algos.intervention import bc_loss


@dataclass
class CalQLConfig(AgentConfig):
    actor_lr: float = 1e-4  # Cal-QL: 1e-4 policy (critic 3e-4, the shared default)
    # Cal-QL uses 5 on Kitchen/AntMaze reward scales; with a 0/1 success reward (V in [0, 1]) the
    # per-step push-up on data actions compounds over the horizon, so start lower and tune.
    cql_alpha: float = 1.0
    use_calibration: bool = True  # False -> plain CQL
    cql_temp: float = 1.0  # logsumexp temperature T
    num_random: int = 4  # random actions per state (CQL uses 10; 4 keeps a CPU fast)
    num_policy: int = 4  # noisy policy actions per state
    random_scale: float = 1.0  # random residuals ~ U(-scale*xi, scale*xi) around the VLA action
    policy_noise: float = 0.05  # std of the policy samples' noise, fraction of xi
    target_subset: int = 2  # min over this many random target heads (0 = all heads)
    # Smoothing noise on the next action of the TD target (fractions of xi); keep it equal to
    # policy_noise: the regulariser treats the policy as actor(s) + N(0, policy_noise*xi). On 20
    # successful 10-step demos (0/1 reward, gamma 0.99, MC return 0.96) Q(s, a_data) came out
    # 2.36 with no smoothing (policy_noise 0.2), 1.00 with 0.05/0.05, 0.67 with 0.1/0.1.
    target_noise: float = 0.05
    success_bc_weight: float = 0.0  # BC on the executed correction of online steps that led to a success
    # Evaluate the gated policy: the next action in the TD target is base' + lambda' * res' with the
    # lambda the arbiter applied at that step (replay's next_lambda), so Q(s, a_VLA) means "one base
    # step, then what VGM does", not "then the full residual" (which let the greedy gate close).
    gated_target: bool = True


class CalQL(AgentBase):
    config_class = CalQLConfig

    def critic_loss(self, b: Mapping):
        cfg = self.cfg
        obs = b["obs"]
        base = obs["base_action"]
        xi = self.limit if self.limit is not None else torch.ones((), device=base.device)

        # --- TD target: min over a random subset of target heads, next action from the actor --
        next_lambda = b["next_lambda"] if cfg.gated_target and "next_lambda" in b else None
        target = self.td_target(b, self.actor, lambda q: min_over_subset(q, cfg.target_subset, self.generator),
                                next_lambda)

        # --- candidate actions for the CQL regulariser ------------------------------------
        with torch.no_grad():
            n_r, n_p = cfg.num_random, cfg.num_policy
            rand_res = (torch.rand((n_r,) + base.shape, generator=self.generator, device=base.device) * 2 - 1) \
                * (cfg.random_scale * xi)
            pol_res = clamp_residual(
                self.actor(obs) + torch.randn((n_p,) + base.shape, generator=self.generator, device=base.device)
                * (cfg.policy_noise * xi), self.limit)
            cand = base + torch.cat([rand_res, pol_res], dim=0)  # (N, B, D)
        q_data, q_cand, v = q_and_v(self.critic, obs, b["action"], cand)  # (E, B), (E, N, B), (B,)
        td_loss, v_loss = td_and_value_losses(q_data, target, v, cfg, b)

        # --- CQL regulariser with the Monte-Carlo lower bound -----------------------------
        q_rand, q_pol = q_cand[:, :n_r], q_cand[:, n_r:]
        if cfg.use_calibration:
            q_pol = torch.maximum(q_pol, b["mc_return"])  # Cal-QL: max(Q_pi, MC return-to-go)
        q_cat = torch.cat([q_rand, q_pol, q_data[:, None]], dim=1)  # (E, N + 1, B)
        lse = cfg.cql_temp * torch.logsumexp(q_cat / cfg.cql_temp, dim=1)  # (E, B)
        cql_gap = lse - q_data
        cql_loss = cfg.cql_alpha * cql_gap.mean(dim=1).sum()

        loss = td_loss + cql_loss + cfg.v_weight * v_loss
        return loss, {
            **critic_metrics(loss, td_loss, v_loss, q_data, target, v), "cql_loss": cql_loss,
            "cql_gap": cql_gap.mean(), "q_policy_sample_mean": q_cand[:, n_r:].mean(), "q_random_mean": q_rand.mean(),
            "calibrated_frac": (q_cand[:, n_r:] < b["mc_return"]).float().mean()}

    def actor_loss(self, b: Mapping):
        cfg = self.cfg
        obs = b["obs"]
        res, q = self.policy_q(obs)
        q_pi = q.min(dim=0).values  # pessimistic: min over heads
        bc = bc_loss(res, b["residual"], b["intervention"], self.limit)
        # Self-imitation: the correction actually executed on the way to a success (MC return > 0).
        succeeded = (b["mc_return"] > 0) & ~b["intervention"].bool()
        self_bc = bc_loss(res, b["action"] - obs["base_action"], succeeded, self.limit) \
            if cfg.success_bc_weight > 0 else torch.zeros((), device=res.device)
        loss = -q_pi.mean() + cfg.bc_weight * bc + cfg.success_bc_weight * self_bc \
            + cfg.residual_l2 * res.pow(2).mean()
        return loss, {**actor_metrics(loss, bc, q_pi, res), "self_bc_loss": self_bc}

    def after_critic_step(self) -> None:
        self.polyak_critic(self.cfg.tau)
