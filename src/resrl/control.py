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

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from resrl.actions import InvalidActionError, explore
from resrl.arbiter.pld import HybridRolloutSchedule
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
    residual: np.ndarray                # a_res as composed (zeros when none; perturbed when escape_noise is)
    held: bool
    hold_reason: str
    limits_hit: Tuple[str, ...]
    intervention: bool
    critic_error: str = ""              # the critic raised: the gates saw "no evidence"
    perturbed: bool = False             # escape_noise was added to the residual this step

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

    def __init__(self, vgm: VGMArbiter, safety: SafetyFilter, critic: Optional[CriticFn] = None,
                 xi: Optional[np.ndarray] = None, seed: Optional[int] = None,
                 hybrid: Optional[HybridRolloutSchedule] = None):
        """``xi``: the residual bound per dimension (ModelConfig.xi), the unit of ``escape_noise``;
        ``seed``: its noise generator's (resrl.control.session_seeds: "escape"); ``hybrid``: PLD
        hybrid rollouts (resrl.arbiter.pld.build_hybrid), None: off."""
        self.vgm, self.safety, self.critic = vgm, safety, critic
        self.xi = None if xi is None else np.asarray(xi, dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        self.hybrid = hybrid
        self.t_base = 0           # PLD: this episode's base-only steps (0: none)
        self.steps = 0            # decisions made in this episode
        self._hybrid_open = False

    def _escape_perturbation(self, a_res, report: GateReport):
        """a_res perturbed while the escape gate is latched (VGMConfig.escape_noise > 0), else None."""
        cfg = self.vgm.config
        if a_res is None or cfg.escape_noise <= 0.0 or self.vgm.mode != "vgm" or not report.escape_latched:
            return None
        if self.xi is None:
            raise ValueError("VGMConfig.escape_noise needs the residual bound: ControlStep(..., xi=ModelConfig.xi)")
        return explore(np.asarray(a_res, np.float32), self.xi, cfg.escape_noise, cfg.escape_noise_clip, self.rng)

    def reset(self) -> None:
        """Gate windows, latches and the held gripper command start over."""
        self.vgm.reset()
        self.safety.reset()

    def start_episode(self, kind: str) -> int:
        """A new episode (kind: train | eval | demo): reset, and with PLD draw a train episode's
        base-only prefix T_base; returns T_base."""
        self.reset()
        self.steps = 0
        self._hybrid_open = self.hybrid is not None and kind == "train"
        self.t_base = self.hybrid.start_episode() if self._hybrid_open else 0
        return self.t_base

    def end_episode(self, success: bool) -> None:
        if self._hybrid_open:
            self.hybrid.end_episode(success)
            self._hybrid_open = False

    @property
    def in_base_prefix(self) -> bool:
        """PLD: the base acts alone this step (lambda 0, no residual asked for)."""
        return self.steps < self.t_base

    def needs_residual(self, a_vla, human) -> bool:
        return self.vgm.mode != "base_only" and not self.in_base_prefix and human is None and a_vla is not None

    def decide(self, state: np.ndarray, obs: Optional[dict], a_vla: Optional[np.ndarray],
               a_res: Optional[np.ndarray], human: Optional[np.ndarray] = None,
               no_base_reason: str = "no base action", obs_age_s: float = 0.0,
               a_res_policy: Optional[np.ndarray] = None) -> Decision:
        """``a_res``: the residual to compose (with a training episode's exploration noise);
        ``a_res_policy``: the policy's action before that noise (None: no noise was added), what
        the gates judge with ``VGMConfig.greedy_input: policy``."""
        prefix = self.in_base_prefix
        self.steps += 1
        if not prefix:
            return self._decide(state, obs, a_vla, a_res, human, no_base_reason, obs_age_s, a_res_policy)
        previous = self.vgm.set_mode("base_only")   # PLD's prefix: the arbiter as in base_only mode
        try:
            return self._decide(state, obs, a_vla, None, human, no_base_reason, obs_age_s, None)
        finally:
            self.vgm.set_mode(previous)

    def _decide(self, state, obs, a_vla, a_res, human, no_base_reason: str, obs_age_s: float,
                a_res_policy=None) -> Decision:
        takeover = human is not None
        judged = a_res_policy if a_res_policy is not None and self.vgm.config.greedy_input == "policy" else a_res
        gate_res = None if takeover or a_res is None else judged
        q_comb = q_base = value = None
        critic_error = ""
        if obs is not None and a_vla is not None and self.vgm.mode == "vgm" and self.critic is not None:
            try:
                q_comb, q_base, value = self.critic(obs, a_vla, gate_res)
            except Exception as exc:   # a broken critic must not move the robot: the gates see no evidence
                critic_error = f"critic failed: {exc}"
        report = self.vgm.step(q_comb, q_base, value, state=state)
        perturbed = None if takeover else self._escape_perturbation(a_res, report)
        if perturbed is not None:
            a_res = perturbed   # what is composed is what is stored: the critic learns what ran
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
                        tuple(limits), takeover, critic_error, perturbed is not None)


LATE_POLICIES = ("base", "hold")


class StepDeadline:
    """How long one control step waits for its inputs, and what a step does whose inputs are late.

    The step opens when its observation is first seen (``open()``, on ``clock``: the node's
    monotonic clock, a test's fake one). ``check`` then says ``None`` (keep waiting) or the step goes
    now, naming the input that missed its deadline ("" when everything arrived):

    * no base action within ``chunk_wait_s`` -> the step goes without one: the robot holds;
    * no residual within ``residual_wait_s`` -> ``on_late_residual``: "base" sends a_VLA alone
      (no residual composed this step: the arbiter never guesses one), "hold" holds the pose;
    * a demo step waits ``residual_wait_s`` for the teleoperator, then goes as a late residual;
    * an incomplete observation (no critic input) waits ``residual_wait_s``, then goes without it.

    ``missed`` counts the late steps per input, so a loop that cannot keep up is visible.
    """

    def __init__(self, chunk_wait_s: float, residual_wait_s: float, on_late_residual: str = "base",
                 clock: Callable[[], float] = time.monotonic):
        if on_late_residual not in LATE_POLICIES:
            raise ValueError(f"on_late_residual must be one of {LATE_POLICIES}, got {on_late_residual!r}")
        if chunk_wait_s < 0 or residual_wait_s < 0:
            raise ValueError(f"deadlines must be >= 0 s (chunk {chunk_wait_s}, residual {residual_wait_s})")
        self.chunk_wait_s, self.residual_wait_s = chunk_wait_s, residual_wait_s
        self.on_late_residual, self.clock = on_late_residual, clock
        self.missed: Counter = Counter()
        self.steps = 0

    def open(self) -> float:
        return self.clock()

    def check(self, opened: float, *, human: bool, demo: bool, has_base: bool, needs_residual: bool,
              has_residual: bool, has_obs: bool) -> Optional[str]:
        """None: wait on. Else the late inputs, comma-separated ("" = all on time); counted."""
        waited = self.clock() - opened
        late = []
        if not human and demo:
            if waited < self.residual_wait_s:
                return None   # demo steps are driven by the teleoperator: wait for its action
            late.append("teleop")
        if not human and not has_base:
            if waited < self.chunk_wait_s:
                return None
            late.append("chunk")
        if needs_residual and not has_residual:
            if waited < self.residual_wait_s:
                return None
            late.append("residual")
        if not has_obs:
            if waited < self.residual_wait_s:
                return None
            late.append("observation")
        self.steps += 1
        self.missed.update(late)
        return ",".join(late)

    def hold_reason(self, late: str) -> str:
        """Why a late step holds ("" when it may go on: the base alone, or on time)."""
        if "residual" in late.split(",") and self.on_late_residual == "hold":
            return f"residual missed its {self.residual_wait_s * 1e3:.0f} ms deadline"
        return ""

    def summary(self) -> str:
        late = ", ".join(f"{k} {v}" for k, v in sorted(self.missed.items())) or "none"
        return f"{self.steps} steps decided; late inputs: {late}"


# Intervention.source of the sim's scripted demonstrator: it answers each observation with the same
# stamp (lockstep), so the arbiter matches it exactly; a human device streams on its own clock.
SCRIPTED_DEMONSTRATOR = "scripted_expert"


def session_seeds(seed: int) -> dict:
    """Per-component seeds of one session (the residual node's exploration noise, the simulated
    tracker's noise): the nodes and the in-process runner derive them here, not by convention."""
    return {"exploration": seed + 7, "tracker": seed + 11, "escape": seed + 17, "pld": seed + 19}
