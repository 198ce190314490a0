"""Value-Gated Modulation (VGM): how much of the residual action to apply at each step.

    a_t      = a_VLA_t + lambda_t * a_res_t
    lambda_t = clip(alpha * g_greedy + beta * g_regress + gamma * g_escape, 0, lambda_max)

The arbiter owns no networks. Each step the caller passes the critic's outputs for the current
state: ``q_combined[i] = Q_i(s, a_VLA + a_res)`` and ``q_base[i] = Q_i(s, a_VLA)`` for each
ensemble member ``i``, and ``value = V(s_t)``. The three gates look at different time scales:

* greedy  (instantaneous): the ensemble is confident the residual helps,
  ``mean(A) - kappa * std(A) > eps_A`` with ``A_i = q_combined_i - q_base_i`` (``greedy_baseline``
  "value": ``A_i = q_combined_i - V(s)``).
* regress (short horizon): V fell from its recent peak,
  ``g = clip((max_{t-W_r <= k <= t} V_k - V_t) / delta_r, 0, 1)``.
* escape  (long horizon):  V has not risen by ``eta_e`` over ``W_e`` steps (stagnation trap);
  latched until progress exceeds ``eta_e`` again or the episode ends.

Defaults assume a sparse 0/1 success reward with discount ~0.99, so V lies in [0, 1].

Options beyond the paper (issue 15; each measured in BENCHMARKS.md, "Suite"). ``VGMConfig.paper()``
switches all of them off and is exactly the gate above:

* do no harm (``lambda_prior``): lambda starts from the authority the warm-up gave the residual
  instead of 0, and the greedy gate is signed -- it opens (+1) where the ensemble is confident the
  residual helps and closes (-1) where it is confident it hurts, ``mean(A) + kappa * std(A) <
  -eps_A``. A critic that cannot tell leaves lambda at the prior.
  ``lambda_raw = prior + alpha * (g_greedy - g_harm) + beta * g_regress + gamma * g_escape``.
* calibrated inputs (``clip_values``, ``value_min``/``value_max``): Q and V are clipped into the
  range the reward and discount allow before any gate reads them, and ``critic_noise`` is a floor
  below which a change is not evidence (greedy margin, regress drop, escape progress).
* smooth authority (``max_lambda_rate``): lambda moves at most this much per step; after a reset
  it starts from the prior.
* greedy horizon (``greedy_hold_steps``): a fired greedy decision holds for N steps.
* escape by perturbation (``escape_noise``, off by default): while the escape gate is latched the
  control step (resrl.control) perturbs the residual, as training exploration does.
* escape by amplification (``amplify_only_on_escape`` with ``lambda_max`` > 1, off by default):
  only the escape gate takes lambda above 1; ``escape_ignores_saturated_value`` (off by default):
  a V at the top of its range is no evidence of a stall; ``escape_stall_m`` (off by default): the
  escape gate latches only while the arm is still, the paper's "ceases movement near the target".
* what the gates judge in training (``greedy_input``): the residual policy's own action
  ("policy"), not the residual as executed with its exploration noise (the paper's "executed").
* the advantage of an offset critic (``advantage_from_raw_q``, off by default): the greedy gate
  differences the raw Q values and clips the difference, instead of clipping each Q first.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from resrl.actions import ACTION_DIM, ACTION_GROUPS, GRIPPER, STATE_DIM, TRANSLATION, as_action

MODES = ("vgm", "static", "base_only", "residual_only")
# The gripper is still (VGMConfig.escape_stall_m) when its opening changed by less than this
# fraction of its stroke over the escape window: a closing gripper is a grasp, not a stall.
GRIPPER_STILL = 0.05


def _unit_groups() -> dict[str, float]:
    return {name: 1.0 for name in ACTION_GROUPS}


@dataclass
class VGMConfig:
    # Mode at start-up: "vgm" (gated), "static" (lambda_static), "base_only" (0), "residual_only" (1).
    mode: str = "vgm"
    # Gate weights in lambda = clip(alpha*g_greedy + beta*g_regress + gamma*g_escape, 0, lambda_max).
    # With all three at 1 any single gate can open the residual fully.
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    lambda_max: float = 1.0
    # Greedy gate: lower confidence bound mean(A) - kappa*std(A) over the Q ensemble must exceed
    # eps_A. eps_A is a small margin above 0 so critic noise on a flat Q surface does not open it.
    kappa: float = 1.0
    eps_A: float = 0.005
    # What the residual action must beat: "base" -- Q(s, a_VLA), the VLA's own action; "value" --
    # V(s), the value of what the arbiter has been doing (A = Q(s, a) - V(s), the usual advantage).
    greedy_baseline: str = "base"
    # Which residual the gates judge in a training episode: "policy" -- the residual policy's own
    # action, before the exploration noise (the noise is the learner's search; lambda arbitrates
    # the policy); "executed" -- the residual as composed, noise included (the paper: the gate
    # "filters out unhelpful residual noise"). Evaluation adds no noise: both are the same. Judging
    # the noise turned the signed gate's harm branch on in 82-97 % of training steps on the
    # warm-up's own weights (5 seeds), so a residual that solved the task trained at lambda ~0.5
    # (BENCHMARKS.md, "The gates judged the exploration noise").
    greedy_input: str = "policy"
    # Steps the greedy gate stays open (or, with lambda_prior, closed) after it fired (0:
    # instantaneous, the paper's gate). A one-step advantage is ~0 when later steps could still
    # correct; holding the gate turns it into "commit to the residual for a while" (Table I
    # analysis, BENCHMARKS.md: 5 steps solved 5/5 seeds vs 4/5 without).
    greedy_hold_steps: int = 5
    # Regress gate: look-back window (steps) for the recent peak of V, and the drop from that peak
    # that opens the gate fully (5% of the [0, 1] value range).
    W_r: int = 5
    delta_r: float = 0.05
    # Escape gate: lag window (steps) and minimum rise of V over it that counts as progress.
    # 15 steps is ~0.5 s at 30 Hz; over that a succeeding episode's V rises by well over 0.01.
    W_e: int = 15
    eta_e: float = 0.01
    # Escape by perturbation (beyond the paper; 0: off): while the escape gate is latched, the
    # control step adds clip(N(0, escape_noise), +-escape_noise_clip) * xi to the residual, in
    # evaluation too. The stagnation trap's exit measured as a perturbation, not a correction
    # (BENCHMARKS.md, "Suite"); the paper's escape gate only raises lambda, which a residual at
    # lambda 1 already has.
    escape_noise: float = 0.0
    escape_noise_clip: float = 0.5
    # Amplification (lambda_max > 1; the paper: in a stagnation trap "VGM dynamically amplifies
    # lambda_t to provide the necessary corrective force"): True lets only the escape gate take
    # lambda above 1, the scale the residual was trained at -- the other gates' sum is capped at 1
    # before gamma * g_escape is added -- so a residual that stalls short of its goal is pushed
    # further along its own direction while V makes no progress, and nowhere else. False: every
    # gate counts towards lambda_max (the paper's sum).
    amplify_only_on_escape: bool = False
    # A V at the top of its range (>= value_max - critic_noise) is no evidence of stagnation: a
    # value clipped at value_max cannot rise, so the lag test reads saturation as a stall. True:
    # such a step does not latch the escape gate (progress still releases it). With Cal-QL's V
    # (above 1 on pick_place) the lag test latched on 52-95 % of the training steps of a task the
    # warm-up solves, and amplification then broke 4 of 5 seeds (BENCHMARKS.md, "Escape
    # amplification on the task the warm-up solves"). False: the paper's lag test.
    escape_ignores_saturated_value: bool = False
    # The paper's stagnation trap is the robot that "ceases movement near the target". > 0: the
    # escape gate latches only while the arm is also still -- the TCP moved less than this (m) and
    # the gripper less than GRIPPER_STILL of its stroke over the same W_e steps -- not wherever V
    # is flat (a flat V also marks a grasp or a carry that is going well). Needs the robot state
    # (VGMArbiter.step(state=...)); without it the gate has no evidence and does not latch.
    # 0: V alone (the paper's lag test).
    escape_stall_m: float = 0.0
    # Lambda used in "static" mode (the static-residual baseline).
    lambda_static: float = 0.5
    # Largest change of lambda per step in "vgm" mode; None or 0 disables the limit. 0.25: a 0->1
    # flip takes 4 steps, so the commanded target moves by at most a quarter of the residual
    # (<= 0.25 * |xi_translation| ~ 1.3 cm at xi = 3 cm per axis) from one step to the next.
    max_lambda_rate: Optional[float] = 0.25
    # Do no harm: lambda where the gates have no evidence (the warm-up trains the residual at full
    # authority, so 1.0 keeps the authority where the warm-up put it); > 0 also makes the greedy
    # gate signed (it can take authority away). 0: the paper's gate (no evidence -> lambda 0).
    lambda_prior: float = 1.0
    # Calibrated critic inputs: clip Q and V into [value_min, value_max] (a terminal 0/1 success
    # reward bounds every return to [0, 1]) before the gates read them.
    clip_values: bool = True
    value_min: float = 0.0
    value_max: float = 1.0
    # The greedy gate's advantage from the raw Q values, clipped to +-(value_max - value_min)
    # afterwards, instead of from Q values clipped one by one (V is clipped either way). A
    # conservative critic carries an offset: Cal-QL's push-up on the data actions put Q at 1.0-1.2
    # where the return is 0.4-0.46 (probes/baseline_bias.py), so the clipped gate compared 1 with 1
    # on most steps; a common offset cancels in the difference. Needs greedy_baseline "base" (V
    # carries another offset than Q).
    advantage_from_raw_q: bool = False
    # Changes below this are critic noise, not evidence: the greedy gate needs |LCB| above
    # eps_A + critic_noise, the regress gate ignores drops up to it, and the escape gate counts a
    # rise as progress only above eta_e + critic_noise. 0: the paper's gate.
    critic_noise: float = 0.01
    # Gate switches for ablations; a switched-off gate contributes exactly 0.
    use_greedy: bool = True
    use_regress: bool = True
    use_escape: bool = True
    # Per-group lambda (translation / rotation / gripper): lambda_g = clip(w_g * gate_sum, 0,
    # min(lambda_max, group_lambda_max[g])). Off: one scalar lambda for every dimension.
    per_group: bool = False
    group_weights: dict[str, float] = field(default_factory=_unit_groups)
    group_lambda_max: dict[str, float] = field(default_factory=_unit_groups)

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if not (self.escape_noise >= 0.0 and self.escape_noise_clip >= 0.0):
            raise ValueError("VGMConfig.escape_noise and escape_noise_clip must be >= 0")
        for name in ("alpha", "beta", "gamma", "eps_A", "delta_r", "eta_e", "value_min", "value_max"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"VGMConfig.{name} must be finite")
        if not self.lambda_max >= 0.0:
            raise ValueError("VGMConfig.lambda_max must be >= 0")
        if not self.kappa >= 0.0:
            raise ValueError("VGMConfig.kappa must be >= 0")
        if not (isinstance(self.greedy_hold_steps, int) and self.greedy_hold_steps >= 0):
            raise ValueError("VGMConfig.greedy_hold_steps must be an integer >= 0")
        if self.greedy_input not in ("executed", "policy"):
            raise ValueError(f"VGMConfig.greedy_input must be 'executed' or 'policy', got {self.greedy_input!r}")
        if self.greedy_baseline not in ("base", "value"):
            raise ValueError(f"VGMConfig.greedy_baseline must be 'base' or 'value', got {self.greedy_baseline!r}")
        if self.advantage_from_raw_q and self.greedy_baseline != "base":
            raise ValueError("VGMConfig.advantage_from_raw_q needs greedy_baseline 'base': Q(s, a) - V(s) mixes "
                             "the critic's offset with V's")
        if not self.delta_r > 0.0:
            raise ValueError("VGMConfig.delta_r must be > 0")
        for name in ("W_r", "W_e"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"VGMConfig.{name} must be an integer >= 1 (steps)")
        _check_lambda_static(self.lambda_static)
        if self.max_lambda_rate is not None and not self.max_lambda_rate >= 0.0:
            raise ValueError("VGMConfig.max_lambda_rate must be >= 0 or None")
        if not (math.isfinite(self.lambda_prior) and 0.0 <= self.lambda_prior <= self.lambda_max):
            raise ValueError("VGMConfig.lambda_prior must be in [0, lambda_max]")
        if not self.value_max > self.value_min:
            raise ValueError("VGMConfig.value_max must be > value_min")
        if not (math.isfinite(self.critic_noise) and self.critic_noise >= 0.0):
            raise ValueError("VGMConfig.critic_noise must be finite and >= 0")
        if not (math.isfinite(self.escape_stall_m) and self.escape_stall_m >= 0.0):
            raise ValueError("VGMConfig.escape_stall_m must be finite and >= 0")
        # Missing groups default to 1; an unknown group name is a typo and must not be ignored.
        for name in ("group_weights", "group_lambda_max"):
            given = dict(getattr(self, name))
            unknown = sorted(set(given) - set(ACTION_GROUPS))
            if unknown:
                raise ValueError(f"VGMConfig.{name}: unknown groups {unknown}; known: {list(ACTION_GROUPS)}")
            merged = {g: float(given.get(g, 1.0)) for g in ACTION_GROUPS}
            if not all(math.isfinite(v) and v >= 0.0 for v in merged.values()):
                raise ValueError(f"VGMConfig.{name}: values must be finite and >= 0, got {merged}")
            setattr(self, name, merged)

    @classmethod
    def paper(cls, **overrides) -> "VGMConfig":
        """The gate exactly as the VGM paper defines it: every resrl option off."""
        return cls(**{"greedy_hold_steps": 0, "max_lambda_rate": None, "lambda_prior": 0.0,
                      "clip_values": False, "critic_noise": 0.0, "greedy_input": "executed", **overrides})


@dataclass
class GateReport:
    """Everything the arbiter computed in one step (maps onto resrl/msg/GateState)."""

    mode: str
    critic_valid: bool          # False: some critic input was missing/non-finite this step
    critic_issue: str           # why critic_valid is False ("" when valid)
    advantage_mean: float       # mean_i A_i (0 when the Q inputs were invalid)
    advantage_std: float        # population std over the ensemble (0 for one member)
    advantage_lcb: float        # advantage_mean - kappa * advantage_std
    value: float                # V(s_t) (0 when invalid)
    value_window_max: float     # max V over the last W_r steps and now
    value_drop: float           # value_window_max - value (>= 0)
    value_progress: float       # V(s_t) - V(s_{t-W_e}); 0 without W_e steps of history
    g_greedy: float             # 1: confident the residual helps (incl. hold); 0 otherwise
    g_harm: float               # 1: confident it hurts (signed greedy, lambda_prior > 0 only)
    g_regress: float
    g_escape: float
    escape_latched: bool
    lambda_raw: float           # alpha*g_greedy + beta*g_regress + gamma*g_escape, unclipped
    lambda_value: float         # applied lambda (mean over groups when per_group)
    lambda_max: float
    lambda_per_dim: np.ndarray  # (ACTION_DIM,) lambda applied to each action dimension
    rate_limited: bool          # max_lambda_rate changed lambda this step
    lambda_delta: float = 0.0   # max over dims of |lambda_t - lambda_{t-1}| (authority jump this step)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"invalid arbiter mode {mode!r}; valid modes: {list(MODES)}")


def _check_lambda_static(value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"lambda_static must be finite and >= 0, got {value}")


def _finite_vector(values) -> Optional[np.ndarray]:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return arr if arr.size > 0 and np.all(np.isfinite(arr)) else None


class VGMArbiter:
    """Stateful gate computation for one control loop; call ``reset()`` at episode boundaries."""

    def __init__(self, config: VGMConfig | None = None) -> None:
        self.config = config or VGMConfig()
        self.mode = self.config.mode
        self.lambda_static = self.config.lambda_static
        # One V per valid step of this episode, newest last; long enough for both windows.
        self._values: deque[float] = deque(maxlen=max(self.config.W_r, self.config.W_e) + 1)
        self._states: deque[np.ndarray] = deque(maxlen=self.config.W_e + 1)   # escape_stall_m
        self._latched = False
        self._greedy_hold = 0         # steps the greedy decision holds (greedy_hold_steps)
        self._greedy_sign = 0.0       # +1 help / -1 harm: what the hold repeats
        self.reset()

    def reset(self) -> None:
        self._values.clear()
        self._states.clear()
        self._latched = False
        self._greedy_hold = 0
        self._greedy_sign = 0.0
        # Lambda applied last step, per group; after a reset the rate limit ramps from the prior.
        self._prev_group_lambda = np.minimum(self.config.lambda_prior, self._group_caps())
        self._prev_applied: Optional[np.ndarray] = None   # for lambda_delta (None: first step)

    def set_mode(self, mode: str, lambda_static: float | None = None) -> str:
        """Switch mode at runtime (None keeps lambda_static); returns the previous mode."""
        _check_mode(mode)
        if lambda_static is not None:
            _check_lambda_static(float(lambda_static))
            self.lambda_static = float(lambda_static)
        previous, self.mode = self.mode, mode
        return previous

    def step(self, q_combined, q_base, value, done: bool = False, state=None) -> GateReport:
        """Compute the gates and lambda for the current step.

        ``q_combined``/``q_base``: (E,) ensemble Q values or None; ``value``: V(s_t) or None.
        Missing or non-finite inputs are "no evidence": the affected gates give 0 and the value
        history/latch are left untouched. ``done=True`` marks the last step of the episode: the
        escape gate cannot fire on it and the arbiter resets itself afterwards. ``state``: the
        robot state (resrl.actions STATE_DIM layout), what ``escape_stall_m`` reads.
        """
        cfg = self.config
        issues = []

        qc, qb = _finite_vector(q_combined), _finite_vector(q_base)
        if qc is not None and qb is not None and qc.shape != qb.shape:
            raise ValueError(f"q_combined {qc.shape} and q_base {qb.shape} must have the same ensemble size")
        v_in = _finite_vector(value)
        qc_raw, qb_raw = qc, qb
        if cfg.clip_values:   # calibrated inputs: no return outside what the reward allows
            qc = None if qc is None else np.clip(qc, cfg.value_min, cfg.value_max)
            qb = None if qb is None else np.clip(qb, cfg.value_min, cfg.value_max)
            v_in = None if v_in is None else np.clip(v_in, cfg.value_min, cfg.value_max)
        adv_mean = adv_std = adv_lcb = 0.0
        sign = 0.0
        baseline = qb
        if cfg.greedy_baseline == "value":   # V(s) as the baseline of every head; no V, no evidence
            baseline = None if v_in is None or qc is None else np.full_like(qc, v_in[0])
        if qc is None or baseline is None:
            issues.append("Q missing or non-finite")
        else:
            if cfg.advantage_from_raw_q:   # the critic's common offset cancels; then bound the difference
                span = cfg.value_max - cfg.value_min
                adv = np.clip(qc_raw - qb_raw, -span, span)
            else:
                adv = qc - baseline
            adv_mean, adv_std = float(adv.mean()), float(adv.std())
            adv_lcb = adv_mean - cfg.kappa * adv_std
            margin = cfg.eps_A + cfg.critic_noise
            if cfg.use_greedy and adv_lcb > margin:
                sign = 1.0
            elif cfg.use_greedy and cfg.lambda_prior > 0.0 and adv_mean + cfg.kappa * adv_std < -margin:
                sign = -1.0   # signed gate: confident the residual hurts
        if sign != 0.0:
            self._greedy_hold, self._greedy_sign = cfg.greedy_hold_steps, sign
        elif cfg.use_greedy and self._greedy_hold > 0:
            self._greedy_hold -= 1
            sign = self._greedy_sign
        g_greedy, g_harm = float(sign > 0.0), float(sign < 0.0)

        if cfg.escape_stall_m > 0.0:
            arm = _finite_vector(state)
            if arm is not None and arm.size >= STATE_DIM:
                self._states.append(arm[:STATE_DIM])
        v = float(v_in[0]) if v_in is not None else math.nan
        window_max = drop = progress = 0.0
        g_regress = g_escape = 0.0
        if not math.isfinite(v):
            issues.append("V missing or non-finite")
            v = 0.0
        else:
            self._values.append(v)
            history = list(self._values)
            window_max = max(history[-(cfg.W_r + 1):])
            drop = window_max - v
            if cfg.use_regress:
                g_regress = min(max((drop - cfg.critic_noise) / cfg.delta_r, 0.0), 1.0)
            has_lag = len(history) > cfg.W_e
            if has_lag:
                progress = v - history[-(cfg.W_e + 1)]
            eta = cfg.eta_e + cfg.critic_noise
            saturated = cfg.escape_ignores_saturated_value and v >= cfg.value_max - cfg.critic_noise
            if not cfg.use_escape or done:
                self._latched = False
            elif has_lag and progress < eta and not saturated and self._arm_still():
                self._latched = True
            elif has_lag and progress > eta:
                self._latched = False
            g_escape = 1.0 if self._latched else 0.0

        lambda_raw = cfg.lambda_prior + cfg.alpha * (g_greedy - g_harm) + cfg.beta * g_regress
        if cfg.amplify_only_on_escape:
            lambda_raw = min(lambda_raw, 1.0)
        lambda_raw += cfg.gamma * g_escape
        group_lambda, rate_limited = self._group_lambda(lambda_raw)
        self._prev_group_lambda = group_lambda

        # Exactly the scalar when all groups agree (a mean of equal floats can drift by 1 ulp).
        uniform = bool(np.all(group_lambda == group_lambda[0]))
        lambda_value = float(group_lambda[0] if uniform else group_lambda.mean())
        per_dim = np.zeros(ACTION_DIM, dtype=np.float32)
        for lam, sl in zip(group_lambda, ACTION_GROUPS.values()):
            per_dim[sl] = lam
        lambda_delta = 0.0 if self._prev_applied is None else float(np.max(np.abs(per_dim - self._prev_applied)))
        self._prev_applied = per_dim.copy()
        report = GateReport(
            mode=self.mode,
            critic_valid=not issues,
            critic_issue="; ".join(issues),
            advantage_mean=adv_mean,
            advantage_std=adv_std,
            advantage_lcb=adv_lcb,
            value=v,
            value_window_max=window_max,
            value_drop=drop,
            value_progress=progress,
            g_greedy=g_greedy,
            g_harm=g_harm,
            g_regress=g_regress,
            g_escape=g_escape,
            escape_latched=self._latched,
            lambda_raw=lambda_raw,
            lambda_value=lambda_value,
            lambda_max=cfg.lambda_max,
            lambda_per_dim=per_dim,
            rate_limited=rate_limited,
            lambda_delta=lambda_delta,
        )
        if done:
            self.reset()
        return report

    def _arm_still(self) -> bool:
        """escape_stall_m: the TCP and the gripper were still over the escape window (True when
        the option is off; False without W_e steps of state)."""
        cfg = self.config
        if cfg.escape_stall_m <= 0.0:
            return True
        if len(self._states) <= cfg.W_e:
            return False
        now, then = self._states[-1], self._states[0]
        return bool(np.linalg.norm(now[TRANSLATION] - then[TRANSLATION]) < cfg.escape_stall_m
                    and abs(float(now[GRIPPER][0] - then[GRIPPER][0])) < GRIPPER_STILL)

    def _group_lambda(self, lambda_raw: float) -> tuple[np.ndarray, bool]:
        """Lambda per action group for the current mode, and whether the rate limit acted."""
        cfg = self.config
        n = len(ACTION_GROUPS)
        # The fixed modes are exact references for ablations; base_only must cut the residual at once.
        if self.mode == "base_only":
            return np.zeros(n), False
        if self.mode == "residual_only":
            return np.ones(n), False
        if self.mode == "static":
            return np.full(n, self.lambda_static), False

        weights = np.array([cfg.group_weights[g] for g in ACTION_GROUPS]) if cfg.per_group else np.ones(n)
        caps = self._group_caps()
        target = np.clip(weights * lambda_raw, 0.0, caps)
        if not cfg.max_lambda_rate:
            return target, False
        step = np.clip(target - self._prev_group_lambda, -cfg.max_lambda_rate, cfg.max_lambda_rate)
        # Re-clip: after a switch from residual_only the previous lambda may exceed the caps.
        limited = np.clip(self._prev_group_lambda + step, 0.0, caps)
        return limited, bool(np.any(limited != target))


    def _group_caps(self) -> np.ndarray:
        cfg = self.config
        if cfg.per_group:
            return np.minimum(cfg.lambda_max, [cfg.group_lambda_max[g] for g in ACTION_GROUPS])
        return np.full(len(ACTION_GROUPS), cfg.lambda_max)


def target_jump_m(lambda_delta_per_dim, a_res) -> float:
    """How far (m) a change of lambda alone moves the commanded TCP target this step:
    ``|delta_lambda[:3] * a_res[:3]|`` -- what a real arm sees when the authority flips."""
    if a_res is None:
        return 0.0
    d = np.asarray(lambda_delta_per_dim, np.float64).reshape(-1)[:3] * np.asarray(a_res, np.float64).reshape(-1)[:3]
    return float(np.linalg.norm(d))


def compose(a_vla, a_res, report: GateReport) -> np.ndarray:
    """Final action ``a_VLA + lambda_per_dim * a_res``; ``a_res=None`` means no residual yet.

    Raises resrl.actions.InvalidActionError for a non-finite or wrongly sized input, also where
    lambda is 0 (0 * NaN is NaN): pass None when there is no usable residual.
    """
    base = as_action(a_vla, name="a_VLA")
    if a_res is None:
        return base
    res = as_action(a_res, name="a_res")
    return (base + report.lambda_per_dim * res).astype(np.float32)
