"""Pieces shared by the residual RL algorithms (ROS-free).

Conventions used by every algorithm in ``resrl.algos``:

* ``obs`` is a dict of tensors with leading batch dim B; ``obs["base_action"]`` (B, D) is the
  frozen VLA action a_VLA. The residual actor returns ``a_res`` (B, D) and the action the policy
  proposes to execute is ``base_action + a_res`` (lambda = 1: the value of the residual policy
  itself; the arbiter's lambda is recorded in the batch but not used by the losses).
* ``critic.q(obs, action) -> (E, B)`` scores the EXECUTED (combined) action with an ensemble of
  E heads; ``critic.v(obs) -> (B,)`` is a state value on the same trunk.
* Replay batches carry n-step quantities: ``reward`` is the discounted n-step sum and
  ``discount`` is gamma**n (0 after a terminal), so TD targets are
  ``reward + discount * Q_target(next_obs, next_action)`` and no gamma appears here.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

IMAGE_KEYS = ("image", "depth")
PRECISIONS = ("fp32", "bf16")


# --------------------------------------------------------------------------------------------
# the settings every agent reads
# --------------------------------------------------------------------------------------------
V_TARGETS = ("q", "mc")   # what the V head regresses to (AgentConfig.v_target)


@dataclass
class AgentConfig:
    """What ``AgentBase``, the TD target, the V head and the BC term read; each algorithm's config
    subclasses it, adds its own fields and overrides only the defaults it changes.

    Noise scales are fractions of the residual bound xi (absolute when xi is unknown)."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    critic_weight_decay: float = 0.0  # AdamW decay on the critic (RLPD relies on LayerNorm instead)
    tau: float = 0.005  # polyak rate of the target networks
    utd: int = 1  # critic updates per env step (len(batches) of one ``update``)
    critic_warmup_steps: int = 0  # critic-only updates before the actor starts training
    explore_std: float = 0.1  # exploration: res + clip(N(0, std*xi), -clip*xi, clip*xi)
    explore_clip: float = 0.3
    target_noise: float = 0.2  # smoothing noise on the next action in the TD target
    target_noise_clip: float = 0.5
    bc_weight: float = 1.0  # BC on intervention/demo samples: ||actor(s) - (a_human - a_VLA)||^2
    residual_l2: float = 0.0  # penalty on the residual magnitude in the actor loss
    v_expectile: float = 0.5  # V(s) fits this expectile of its target (0.5: the mean)
    v_weight: float = 1.0
    # What V(s) -- the gates' value, it feeds no TD target -- regresses to: "q", the critic's
    # Q(s, a_data) (the behaviour value as the critic sees it: it inherits the conservative
    # regulariser's offset -- V read 0.86-0.91 at an episode's first step where the returns are
    # ~0.55, BENCHMARKS.md "Suite"); "mc", the data's Monte-Carlo return-to-go (calibrated by
    # construction; steps of a running episode carry the replay's lower bound 0 until it ends).
    v_target: str = "q"
    augment_pad: int = 4  # DrQ shift in px for image/depth keys (0 disables)
    residual_clip: Optional[float] = None  # residual bound; None = the actor's xi
    return_bounds: Optional[Tuple[float, float]] = None  # clamp TD targets, e.g. [0, 1] for a 0/1 reward

    def __post_init__(self):
        if self.v_target not in V_TARGETS:
            raise ValueError(f"v_target must be one of {V_TARGETS}, got {self.v_target!r}")


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------
def to_torch(batch: Mapping, device: str | torch.device = "cpu"):
    """numpy replay batch (nested dicts of arrays) -> the same structure of torch tensors.

    float arrays become float32, bool stays bool, uint8 stays uint8 (images are augmented and
    normalised inside the networks), other integers become int64. Tensors pass through (moved
    to ``device``). Scalars become 0-d tensors.
    """
    if isinstance(batch, Mapping):
        return {k: to_torch(v, device) for k, v in batch.items()}
    if isinstance(batch, Tensor):
        return batch.to(device)
    arr = np.asarray(batch)
    if arr.dtype == np.bool_ or arr.dtype == np.uint8:
        pass
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64, copy=False)
    else:
        raise TypeError(f"to_torch: unsupported dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # e.g. np.frombuffer views; torch wants writeable memory
        arr = arr.copy()
    return torch.from_numpy(arr).to(device)


# --------------------------------------------------------------------------------------------
# target networks
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: ``target <- (1 - tau) * target + tau * source`` for every parameter;
    buffers (e.g. BatchNorm running stats) are copied."""
    t_params = [p for p in target.parameters()]
    s_params = [p for p in source.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("soft_update: target and source have different parameter lists")
    if tau >= 1.0:
        torch._foreach_copy_(t_params, s_params)
    else:
        torch._foreach_lerp_(t_params, s_params, float(tau))
    for tb, sb in zip(target.buffers(), source.buffers()):
        tb.copy_(sb)


class Polyak:
    """``soft_update`` with the parameter/buffer lists gathered once (saves ~1 ms per update
    on a CPU learner, where walking the module tree costs as much as the lerp itself)."""

    def __init__(self, target: nn.Module, source: nn.Module) -> None:
        self.t_params, self.s_params = list(target.parameters()), list(source.parameters())
        if len(self.t_params) != len(self.s_params):
            raise ValueError("Polyak: target and source have different parameter lists")
        self.t_bufs, self.s_bufs = list(target.buffers()), list(source.buffers())

    @torch.no_grad()
    def __call__(self, tau: float) -> None:
        if tau >= 1.0:
            torch._foreach_copy_(self.t_params, self.s_params)
        else:
            torch._foreach_lerp_(self.t_params, self.s_params, float(tau))
        if self.t_bufs:
            torch._foreach_copy_(self.t_bufs, self.s_bufs)


def hard_update(target: nn.Module, source: nn.Module) -> None:
    soft_update(target, source, 1.0)


def make_target(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` used as a target network (eval mode: no dropout)."""
    import copy

    target = copy.deepcopy(module)
    target.requires_grad_(False)
    target.eval()
    return target


@contextlib.contextmanager
def frozen(module: nn.Module | Sequence[Tensor]):
    """Temporarily stop gradients into ``module``'s parameters (input gradients still flow).

    Used for the actor loss -Q(s, base + actor(s)): gradients reach the actor through the
    action, and the critic's weight gradients are not even computed. Accepts a module or a
    pre-gathered parameter list."""
    params = module.parameters() if isinstance(module, nn.Module) else module
    params = [p for p in params if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def make_optimizer(params: Iterable[Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam (AdamW when weight_decay > 0); fused kernels where torch supports them."""
    params = [p for p in params if p.requires_grad]
    cls = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    kwargs = {"lr": lr}
    if weight_decay > 0:
        kwargs["weight_decay"] = weight_decay
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, foreach=True, **kwargs)


# --------------------------------------------------------------------------------------------
# residual bounds and exploration
# --------------------------------------------------------------------------------------------
def residual_limit(actor: nn.Module, override=None, like: Tensor | None = None) -> Tensor | None:
    """Per-dimension residual bound xi as a tensor (or None when unknown).

    ``override`` (float or sequence) wins; else the actor's ``xi`` attribute (tensor/sequence),
    else ``actor.cfg.xi``; else None."""
    xi = override
    if xi is None:
        xi = getattr(actor, "xi", None)
    if xi is None:
        xi = getattr(getattr(actor, "cfg", None), "xi", None)
    if xi is None:
        return None
    xi = torch.as_tensor(xi, dtype=torch.float32)
    if like is not None:
        xi = xi.to(like.device)
    return xi


def clamp_residual(res: Tensor, limit: Tensor | None) -> Tensor:
    return res if limit is None else torch.maximum(torch.minimum(res, limit), -limit)


def clipped_noise(like: Tensor, std, clip, generator: torch.Generator | None = None) -> Tensor:
    """clip(N(0, std), -clip, clip); ``std``/``clip`` may be per-dimension tensors."""
    noise = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype) * std
    if clip is None:
        return noise
    clip = torch.as_tensor(clip, dtype=like.dtype, device=like.device)
    return torch.maximum(torch.minimum(noise, clip), -clip)


def gaussian_explore(residual: Tensor, std, clip, limit: Tensor | None,
                     generator: torch.Generator | None = None) -> Tensor:
    """Exploration on a deterministic residual: ``clamp(res + clip(N(0, std), -c, c), -xi, xi)``
    (object-centric residual RL, Alg. 1 line 12). ``std`` and ``clip`` are in the residual's
    units; pass ``std * xi`` for a bound-relative scale."""
    return clamp_residual(residual + clipped_noise(residual, std, clip, generator), limit)


def scale_by_limit(value: float, limit: Tensor | None):
    """``value * xi`` when the bound is known, else ``value`` (scales noise per action dim)."""
    return value if limit is None else value * limit


# --------------------------------------------------------------------------------------------
# Q targets and the V head
# --------------------------------------------------------------------------------------------
def min_over_subset(qs: Tensor, subset: int, generator: torch.Generator | None = None) -> Tensor:
    """(E, B) -> (B,): min over a random subset of ``subset`` heads (REDQ / RLPD);
    ``subset <= 0`` or ``>= E`` -> min over all heads."""
    num = qs.shape[0]
    if subset <= 0 or subset >= num:
        return qs.min(dim=0).values
    dev = generator.device if generator is not None else qs.device
    idx = torch.randperm(num, generator=generator, device=dev)[:subset].to(qs.device)
    return qs.index_select(0, idx).min(dim=0).values


def bound_returns(target: Tensor, bounds) -> Tensor:
    """Clamp TD targets to the range returns can take (``[lo, hi]``; None: unbounded). With a
    sparse 0/1 success reward every return lies in [0, 1]; bootstrapping past that is pure
    overestimation, which the actor's Q-gradient would chase."""
    if bounds is None:
        return target
    lo, hi = bounds
    return target.clamp(min=float(lo), max=float(hi))


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """IQL asymmetric L2: |tau - 1(diff < 0)| * diff**2, with diff = target - prediction."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


def td_and_value_losses(q_data: Tensor, target: Tensor, v: Tensor, cfg: AgentConfig,
                        b: Mapping) -> tuple[Tensor, Tensor]:
    """The regression terms every critic here has: ``L_TD = sum_e mean_B (Q_e(s, a) - y)^2`` (every
    head regresses to the one target y) and ``L_V = expectile(V_target - V(s))`` with V_target
    ``mean_e Q_e(s, a).detach()`` (``cfg.v_target`` "q") or the Monte-Carlo return-to-go ("mc"):
    V is the value of the behaviour in the data; the arbiter reads it."""
    td_loss = (q_data - target).pow(2).mean(dim=1).sum()
    v_target = b["mc_return"] if cfg.v_target == "mc" else q_data.detach().mean(dim=0)
    v_loss = expectile_loss(v_target - v, cfg.v_expectile)
    return td_loss, v_loss


def critic_metrics(loss: Tensor, td_loss: Tensor, v_loss: Tensor, q_data: Tensor, target: Tensor,
                   v: Tensor) -> dict[str, Tensor]:
    """The metrics every critic step reports (the same names for every algorithm)."""
    return {"critic_loss": loss, "td_loss": td_loss, "v_loss": v_loss, "q_mean": q_data.mean(),
            "q_target_mean": target.mean(), "v_mean": v.mean()}


def actor_metrics(loss: Tensor, bc: Tensor, q_pi: Tensor, res: Tensor) -> dict[str, Tensor]:
    """The metrics every actor step reports (the same names for every algorithm)."""
    return {"actor_loss": loss, "bc_loss": bc, "q_pi_mean": q_pi.mean(), "residual_abs": res.detach().abs().mean()}


# --------------------------------------------------------------------------------------------
# DrQ random shift
# --------------------------------------------------------------------------------------------
def random_shift_indices(batch: int, height: int, width: int, pad: int,
                         generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
    """Per-sample row/col gather indices equivalent to 'replicate-pad by ``pad`` then randomly
    crop back to H x W' (DrQ): shift s ~ U{-pad..pad}, index = clamp(i + s, 0, size-1)."""
    dev = generator.device if generator is not None else (device or "cpu")
    shifts = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator, device=dev) - pad
    if device is not None:
        shifts = shifts.to(device)
    rows = (torch.arange(height, device=shifts.device)[None, :] + shifts[:, :1]).clamp_(0, height - 1)
    cols = (torch.arange(width, device=shifts.device)[None, :] + shifts[:, 1:]).clamp_(0, width - 1)
    return rows, cols


def random_shift(obs: Mapping[str, Tensor], pad: int = 4, keys: Sequence[str] = IMAGE_KEYS,
                 generator: torch.Generator | None = None) -> dict:
    """DrQ augmentation: pad ``pad`` px (edge replicate) + random crop, the SAME shift for every
    image key of a sample (RGB and depth stay pixel-aligned), independent across samples.

    Works on any dtype (uint8 included, exact: a pure gather). Image tensors are (B, H, W[, C])
    -- spatial dims 1 and 2 (RGB NHWC, depth NHW). Other keys are returned unchanged."""
    present = [k for k in keys if k in obs]
    if not present or pad <= 0:
        return dict(obs)
    ref = obs[present[0]]
    b, h, w = ref.shape[0], ref.shape[1], ref.shape[2]
    rows, cols = random_shift_indices(b, h, w, pad, generator, device=ref.device)
    bidx = torch.arange(b, device=ref.device)[:, None, None]
    out = dict(obs)
    for k in present:
        x = obs[k]
        if x.shape[:3] != (b, h, w):
            raise ValueError(f"random_shift: {k} has shape {tuple(x.shape)}, expected (B, H, W, ...) = "
                             f"{(b, h, w)} like {present[0]}")
        out[k] = x[bidx, rows[:, :, None], cols[:, None, :]]
    return out


def augment_batch(batch: Mapping, pad: int, generator: torch.Generator | None = None) -> dict:
    """Apply ``random_shift`` to ``obs`` and ``next_obs`` (independent shifts, as in DrQ)."""
    if pad <= 0 or not any(k in batch["obs"] for k in IMAGE_KEYS):
        return dict(batch)
    out = dict(batch)
    out["obs"] = random_shift(batch["obs"], pad, generator=generator)
    out["next_obs"] = random_shift(batch["next_obs"], pad, generator=generator)
    return out


# --------------------------------------------------------------------------------------------
# n-step / Monte-Carlo helpers (reference implementations; the replay owns the real ones)
# --------------------------------------------------------------------------------------------
def mc_returns(rewards: np.ndarray, gamma: float, bootstrap: float = 0.0) -> np.ndarray:
    """Discounted return-to-go G_t = r_t + gamma * G_{t+1} of one episode (G_T = bootstrap)."""
    out = np.empty(len(rewards), dtype=np.float64)
    acc = float(bootstrap)
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out.astype(np.float32)


def n_step(rewards: np.ndarray, terminal: bool, gamma: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step fields of one episode: (reward_sum, discount, next_index) per step t.

    reward_sum = sum_{k<m} gamma^k r_{t+k} with m = min(n, T - t); next_index = t + m (index of
    the bootstrap observation, T meaning the final next_obs); discount = gamma^m, or 0 when the
    window reaches the end of a terminal episode."""
    T = len(rewards)
    rsum = np.zeros(T, dtype=np.float32)
    disc = np.zeros(T, dtype=np.float32)
    nxt = np.zeros(T, dtype=np.int64)
    for t in range(T):
        m = min(n, T - t)
        rsum[t] = sum(gamma ** k * float(rewards[t + k]) for k in range(m))
        nxt[t] = t + m
        disc[t] = 0.0 if (terminal and t + m == T) else gamma ** m
    return rsum, disc, nxt


def as_float_metrics(metrics: Mapping[str, object]) -> dict[str, float]:
    return {k: float(v.detach()) if isinstance(v, Tensor) else float(v) for k, v in metrics.items()}


# --------------------------------------------------------------------------------------------
# bookkeeping shared by the agents (the losses live in calql.py / rlpd.py / td3.py)
# --------------------------------------------------------------------------------------------
def q_and_v(critic: nn.Module, obs: Mapping[str, Tensor], action: Tensor,
            candidates: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """Q(s, action) (E, B), optionally Q of candidate actions (N, B, D) -> (E, N, B), and V(s) (B,).

    One trunk pass when the critic exposes ``features`` / ``q_from_features`` /
    ``v_from_features`` (resrl.models.Critic: the image encoder is the expensive part);
    otherwise through ``q`` / ``q_multi`` / ``v``."""
    if all(hasattr(critic, n) for n in ("features", "q_from_features", "v_from_features")):
        f = critic.features(obs)
        q_cand = None if candidates is None else critic.q_from_features(f, candidates)
        return critic.q_from_features(f, action), q_cand, critic.v_from_features(f)
    q_cand = None if candidates is None else q_multi(critic, obs, candidates)
    return critic.q(obs, action), q_cand, critic.v(obs)


def q_multi(critic: nn.Module, obs: Mapping[str, Tensor], actions: Tensor) -> Tensor:
    """Q of N candidate actions per state: actions (N, B, D) -> (E, N, B).

    Uses ``critic.q_multi`` when the critic provides it (it can encode the observation once);
    otherwise repeats the observation N times through ``critic.q``."""
    if hasattr(critic, "q_multi"):
        return critic.q_multi(obs, actions)
    n, b = actions.shape[0], actions.shape[1]
    rep = {k: v.repeat(n, *([1] * (v.dim() - 1))) for k, v in obs.items()}
    return critic.q(rep, actions.reshape(n * b, -1)).reshape(-1, n, b)


class AgentBase:
    """Networks, target networks, optimisers, counters, exploration and (de)serialisation.

    An algorithm defines its whole loss in ``critic_loss(b)`` / ``actor_loss(b)`` (each returns
    ``(loss, metrics)``), its target bookkeeping in ``after_critic_step`` / ``after_actor_step``,
    and, when it is not the default below, its schedule in ``update(batches)``. ``cfg`` is an
    ``AgentConfig`` (``config_class()`` when None)."""

    uses_target_actor = False
    config_class: type = AgentConfig

    def __init__(self, actor: nn.Module, critic: nn.Module, cfg: AgentConfig | None = None,
                 device: str | torch.device = "cpu", seed: int | None = None, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        cfg = cfg if cfg is not None else self.config_class()
        self.cfg = cfg
        self.precision = precision
        self.device = torch.device(device)
        self.actor = actor.to(self.device)
        self.critic = critic.to(self.device)
        self.critic_target = make_target(self.critic)
        self.actor_target = make_target(self.actor) if self.uses_target_actor else None
        self.actor_opt = make_optimizer(self.actor.parameters(), cfg.actor_lr)
        self.critic_opt = make_optimizer(self.critic.parameters(), cfg.critic_lr, cfg.critic_weight_decay)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2**31 - 1, ()).item()))
        self.limit = residual_limit(self.actor, cfg.residual_clip)
        if self.limit is not None:
            self.limit = self.limit.to(self.device)
        self.critic_updates = 0
        self.actor_updates = 0
        self.critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.polyak_critic = Polyak(self.critic_target, self.critic)
        self.polyak_actor = Polyak(self.actor_target, self.actor) if self.actor_target is not None else None

    # -- one optimisation step (the losses are the subclasses' critic_loss / actor_loss) --
    def critic_loss(self, b: Mapping) -> tuple[Tensor, dict]:
        raise NotImplementedError

    def actor_loss(self, b: Mapping) -> tuple[Tensor, dict]:
        raise NotImplementedError

    def after_critic_step(self) -> None:
        """Target-network bookkeeping after a critic step (algorithm specific)."""

    def after_actor_step(self) -> None:
        """Target-network bookkeeping after an actor step (algorithm specific)."""

    def update_critic(self, batch: Mapping, prepared: bool = False) -> dict[str, float]:
        metrics = self._gradient_step(batch, prepared, self.critic_loss, self.critic_opt)
        self.critic_updates += 1
        self.after_critic_step()
        return metrics

    def update_actor(self, batch: Mapping, prepared: bool = False) -> dict[str, float]:
        metrics = self._gradient_step(batch, prepared, self.actor_loss, self.actor_opt)
        self.actor_updates += 1
        self.after_actor_step()
        return metrics

    def _gradient_step(self, batch: Mapping, prepared: bool, loss_fn, optimizer) -> dict[str, float]:
        b = batch if prepared else self.prepare(batch)
        with self.autocast():
            loss, metrics = loss_fn(b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return as_float_metrics(metrics)

    # -- the TD target (one for every algorithm; what differs is passed in) ----------------
    @torch.no_grad()
    def td_target(self, b: Mapping, next_actor: nn.Module, reduce_heads: Callable[[Tensor], Tensor],
                  next_lambda: Tensor | None = None) -> Tensor:
        """``y = clamp(r_n + discount * reduce_heads(Q_targ(s', a')), return_bounds)`` with the
        smoothed next action ``a' = base' + lambda' * clamp(res' + clip(N(0, sigma_t xi), -c_t xi,
        c_t xi), -xi, xi)``, ``res' = next_actor(s')``. ``reduce_heads``: (E, B) -> (B,), the
        algorithm's pessimism over the target heads. ``next_lambda`` (B,) or (B, D), the arbiter's
        lambda at s', evaluates the gated policy; None: lambda' = 1 (the full residual).
        ``reward`` / ``discount`` are the replay's n-step sum and gamma^n (0 after a terminal)."""
        cfg = self.cfg
        next_obs = b["next_obs"]
        next_res = next_actor(next_obs)
        next_res = clamp_residual(
            next_res + clipped_noise(next_res, self.rel(cfg.target_noise), self.rel(cfg.target_noise_clip),
                                     self.generator), self.limit)
        if next_lambda is not None:
            next_res = (next_lambda if next_lambda.dim() == next_res.dim() else next_lambda[:, None]) * next_res
        next_q = self.critic_target.q(next_obs, next_obs["base_action"] + next_res)  # (E, B)
        return bound_returns(b["reward"] + b["discount"] * reduce_heads(next_q), cfg.return_bounds)

    def policy_q(self, obs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``res = actor(s)`` and ``Q(s, base + res)`` (E, B) with the critic's weights frozen: the
        actor's loss reaches the actor through the action only."""
        res = self.actor(obs)
        with frozen(self.critic_params):
            return res, self.critic.q(obs, obs["base_action"] + res)

    # -- helpers -------------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast around the forward passes when ``precision == "bf16"`` (CPUs with
        AVX512-BF16 / AMX roughly double matmul throughput); a no-op in fp32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def rel(self, value: float):
        """A noise scale given as a fraction of the residual bound xi (absolute if xi unknown)."""
        return scale_by_limit(value, self.limit)

    def prepare(self, batch: Mapping) -> dict:
        """to_torch (if numpy) + DrQ shift of image keys."""
        batch = to_torch(batch, self.device)
        return augment_batch(batch, self.cfg.augment_pad, self.generator)

    @torch.no_grad()
    def explore(self, residual: Tensor) -> Tensor:
        """Exploration residual: ``clamp(res + clip(N(0, std*xi), -clip*xi, clip*xi), -xi, xi)``."""
        return gaussian_explore(residual, self.rel(self.cfg.explore_std), self.rel(self.cfg.explore_clip),
                                self.limit, self.generator)

    def sync_targets(self) -> None:
        """Hard-copy online networks into the targets (after an offline warm-up by another agent)."""
        self.polyak_critic(1.0)
        if self.polyak_actor is not None:
            self.polyak_actor(1.0)

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

    def state_dict(self) -> dict:
        out = {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
               "critic_target": self.critic_target.state_dict(), "actor_opt": self.actor_opt.state_dict(),
               "critic_opt": self.critic_opt.state_dict(), "critic_updates": self.critic_updates,
               "actor_updates": self.actor_updates}
        if self.actor_target is not None:
            out["actor_target"] = self.actor_target.state_dict()
        return out

    def load_state_dict(self, state: Mapping) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.critic_updates = int(state["critic_updates"])
        self.actor_updates = int(state["actor_updates"])
        if self.actor_target is not None:
            if "actor_target" in state:
                self.actor_target.load_state_dict(state["actor_target"])
            else:
                hard_update(self.actor_target, self.actor)
