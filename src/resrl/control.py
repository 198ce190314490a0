"""One control step, ROS-free: what the arbiter node and the in-process runner both run.

    step = ControlStep(VGMArbiter(vgm_cfg), SafetyFilter(safety_cfg), critic=runtime.critic)
    decision = step.decide(state, obs, a_vla, a_res, human)
    # decision.action: the safety-filtered target to command; decision.record: what the replay stores

Given the robot state, the learner's observation (None while it is incomplete), the current chunk
row a_VLA (None: no base action), the residual a_res (None: none arrived) and a human takeover
(None: none), it returns the gate report, lambda per dimension, the composed action, the filtered
target and the transition fields the recorder stores. The gates step every control step, also on
takeovers (so their windows see every state); on a takeover they are evaluated at a_res = None
(the human acts, not the residual), and the transition teaches a_human - a_VLA.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from resrl.actions import InvalidActionError
from resrl.arbiter.safety import SafetyFilter
from resrl.arbiter.vgm import GateReport, VGMArbiter, compose

# critic(obs, a_vla, a_res or None) -> (Q_i(s, a_VLA + a_res), Q_i(s, a_VLA), V(s))
CriticFn = Callable[[dict, np.ndarray, Optional[np.ndarray]], Tuple[np.ndarray, np.ndarray, float]]


@dataclass
class StoredStep:
    """The transition fields of this step (resrl.recorder / ReplayBuffer.add_step)."""

    action: np.ndarray          # the command sent (after the safety filter)
    residual: np.ndarray        # a_res, or a_human - a_VLA on a takeover (the human's intent, pre-clamp)
    lambda_per_dim: np.ndarray  # (7,) lambda the arbiter applied per action dimension
    intervention: bool


@dataclass
class Decision:
    report: GateReport
    action: np.ndarray                  # (7,) target to command (the hold pose when held)
    composed: Optional[np.ndarray]      # pre-filter candidate: a_VLA + lambda * a_res, or the human's action
    base: np.ndarray                    # a_VLA, or the state when there is none
    residual: np.ndarray                # a_res as received (zeros when none)
    held: bool
    hold_reason: str
    limits_hit: Tuple[str, ...]
    intervention: bool
    critic_error: str = ""              # the critic raised: the gates saw "no evidence"

    @property
    def lambda_per_dim(self) -> np.ndarray:
        return self.report.lambda_per_dim

    @property
    def record(self) -> StoredStep:
        """What the recorder stores for this step (None-free; held steps store the hold command)."""
        if self.intervention and self.composed is not None:
            residual = (self.composed - self.base).astype(np.float32)
        else:
            residual = self.residual
        return StoredStep(self.action.astype(np.float32), residual, self.report.lambda_per_dim.astype(np.float32),
                          self.intervention)


class ControlStep:
    """The arbiter's decision for one control step: gates -> compose -> safety filter."""

    def __init__(self, vgm: VGMArbiter, safety: SafetyFilter, critic: Optional[CriticFn] = None):
        self.vgm, self.safety, self.critic = vgm, safety, critic

    def reset(self) -> None:
        """A new episode: gate windows, latches and the held gripper command start over."""
        self.vgm.reset()
        self.safety.reset()

    def needs_residual(self, a_vla, human) -> bool:
        return self.vgm.mode != "base_only" and human is None and a_vla is not None

    def decide(self, state: np.ndarray, obs: Optional[dict], a_vla: Optional[np.ndarray],
               a_res: Optional[np.ndarray], human: Optional[np.ndarray] = None,
               no_base_reason: str = "no base action", obs_age_s: float = 0.0) -> Decision:
        takeover = human is not None
        gate_res = None if takeover else a_res
        q_comb = q_base = value = None
        critic_error = ""
        if obs is not None and a_vla is not None and self.vgm.mode == "vgm" and self.critic is not None:
            try:
                q_comb, q_base, value = self.critic(obs, a_vla, gate_res)
            except Exception as exc:   # a broken critic must not move the robot: the gates see no evidence
                critic_error = f"critic failed: {exc}"
        report = self.vgm.step(q_comb, q_base, value)
        hold_reason = ""
        if takeover:
            candidate = np.asarray(human, dtype=np.float32)
        elif a_vla is None:
            candidate, hold_reason = None, no_base_reason
        else:
            try:
                candidate = compose(a_vla, a_res, report)
            except InvalidActionError as exc:
                candidate, hold_reason = None, str(exc)
        limits: Tuple[str, ...] = ()
        if candidate is None:
            action, held = self.safety.hold_action(state), True
        else:
            filtered = self.safety.filter(candidate, state, obs_age_s)
            action, held, hold_reason, limits = filtered.action, filtered.hold, filtered.reason, filtered.limits_hit
        base = np.asarray(a_vla if a_vla is not None else state, dtype=np.float32)
        residual = np.asarray(a_res, np.float32) if a_res is not None else np.zeros(7, np.float32)
        return Decision(report, np.asarray(action, np.float32), candidate, base, residual, bool(held), hold_reason,
                        tuple(limits), takeover, critic_error)


def session_seeds(seed: int) -> dict:
    """Per-component seeds of one session (the residual node's exploration noise, the simulated
    tracker's noise): the nodes and the in-process runner derive them here, not by convention."""
    return {"exploration": seed + 7, "tracker": seed + 11}
