"""``Learner``: the thin facade the learner node drives (ROS-free).

    learner = Learner.from_yaml("config/learner.yaml", actor, critic,
                                sampler=functools.partial(sample_mixed, rng=rng))
    learner.warmup(demo_buffer)                      # Cal-QL offline warm-up (VGM: 20 demos)
    while running:
        metrics = learner.train_step(online_buffer, demo_buffer)   # once per env step
        if learner.policy_version != published:
            publish(learner.actor_state_dict()); published = learner.policy_version

A sampler is ``sampler(online, offline, batch_size, offline_ratio) -> numpy batch dict`` (default:
``resrl.replay.sample_mixed`` with the learner's rng bound); it must accept an empty online buffer
(warm-up).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from resrl.algos.calql import CalQL, CalQLConfig
from resrl.algos.common import PRECISIONS, AgentBase, Polyak, make_target
from resrl.algos.rlpd import RLPD, RLPDConfig
from resrl.algos.td3 import TD3, TD3Config
from resrl.configs import ConfigError, from_dict, load_yaml, section
from resrl.replay.sampling import sample_mixed

ALGORITHMS: dict[str, tuple[type[AgentBase], type]] = {
    "calql": (CalQL, CalQLConfig),
    "rlpd": (RLPD, RLPDConfig),
    "td3": (TD3, TD3Config),
}

Sampler = Callable[[object, object, int, float], Mapping]


@dataclass
class LearnerConfig:
    algo: str = "rlpd"  # online algorithm: "calql" | "rlpd" | "td3"
    batch_size: int = 256
    offline_ratio: float = 0.5  # share of each batch from the demo/intervention buffer (RLPD: 0.5)
    warmup_steps: int = 2000  # Cal-QL offline updates on the demos before going online (0: none)
    learning_starts: int = 256  # transitions (online + offline) required before train_step learns
    publish_every: int = 1  # policy_version += 1 every this many actor updates
    # > 0: the deployed residual (published, checkpointed as "residual") is a Polyak average of the
    # trained actor, updated at this rate per actor update; it smooths the iterate-to-iterate swings
    # of the last-mile correction that a sparse-reward critic causes. 0: deploy the last iterate.
    policy_ema: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"  # "bf16": autocast the forward passes (about 2x matmul speed on AVX512-BF16 CPUs)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ConfigError(f"learner.algo must be one of {sorted(ALGORITHMS)}, got {self.algo!r}")
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise ConfigError(f"learner.offline_ratio must be in [0, 1], got {self.offline_ratio}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"learner.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0.0 <= self.policy_ema < 1.0:
            raise ConfigError(f"learner.policy_ema must be in [0, 1), got {self.policy_ema}")
        if self.batch_size < 1 or self.publish_every < 1 or self.warmup_steps < 0:
            raise ConfigError("learner: batch_size and publish_every must be >= 1, warmup_steps >= 0")


def load_configs(path: str | Path) -> tuple[LearnerConfig, dict[str, object]]:
    """``config/learner.yaml`` -> (LearnerConfig, {"calql": CalQLConfig, "rlpd": ..., "td3": ...})."""
    data = load_yaml(path)
    unknown = sorted(set(data) - {"learner", *ALGORITHMS})
    if unknown:
        raise ConfigError(f"{path}: unknown sections {unknown}")
    learner_cfg = from_dict(LearnerConfig, section(data, "learner"), "learner")
    algo_cfgs = {name: from_dict(cfg_cls, section(data, name), name) for name, (_, cfg_cls) in ALGORITHMS.items()}
    return learner_cfg, algo_cfgs


def make_agent(name: str, actor: nn.Module, critic: nn.Module, cfg=None, device="cpu",
               seed: int | None = None, precision: str = "fp32") -> AgentBase:
    """``name`` in {"calql", "rlpd", "td3"}; ``cfg`` defaults to that algorithm's config."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)}")
    agent_cls, cfg_cls = ALGORITHMS[name]
    return agent_cls(actor, critic, cfg if cfg is not None else cfg_cls(), device=device, seed=seed,
                     precision=precision)


class _Empty:
    """Stands in for the online buffer during the offline warm-up."""

    def __len__(self) -> int:
        return 0

    def sample(self, *args, **kwargs):
        raise ValueError("empty buffer")


class Learner:
    def __init__(self, actor: nn.Module, critic: nn.Module, config: LearnerConfig | None = None,
                 algo_configs: Mapping[str, object] | None = None, sampler: Sampler | None = None) -> None:
        self.config = config or LearnerConfig()
        self.algo_configs = dict(algo_configs or {})
        torch.manual_seed(self.config.seed)
        self.np_rng = np.random.default_rng(self.config.seed)
        self.sampler: Sampler = sampler or functools.partial(sample_mixed, rng=self.np_rng)
        name = self.config.algo
        self.agent = make_agent(name, actor, critic, self.algo_configs.get(name), self.config.device,
                                self.config.seed, self.config.precision)
        self._warmup_agent: AgentBase | None = self.agent if name == "calql" else None
        self.policy_version = 0
        self.num_updates = 0  # critic updates made by train_step (warm-up excluded)
        self.num_warmup_updates = 0
        self._actor_updates_unpublished = 0
        self._policy_ema = make_target(self.agent.actor) if self.config.policy_ema > 0 else None
        self._ema_step = Polyak(self._policy_ema, self.agent.actor) if self._policy_ema is not None else None

    @classmethod
    def from_yaml(cls, path: str | Path, actor: nn.Module, critic: nn.Module,
                  sampler: Sampler | None = None, **overrides) -> "Learner":
        """Build from ``config/learner.yaml``; ``overrides`` replace ``learner:`` fields."""
        learner_cfg, algo_cfgs = load_configs(path)
        if overrides:
            learner_cfg = dataclasses.replace(learner_cfg, **overrides)
        return cls(actor, critic, learner_cfg, algo_configs=algo_cfgs, sampler=sampler)

    @property
    def actor(self) -> nn.Module:
        return self.agent.actor

    @property
    def deployed_actor(self) -> nn.Module:
        """What the residual node runs: the Polyak-averaged actor (policy_ema > 0) or the actor."""
        return self._policy_ema if self._policy_ema is not None else self.agent.actor

    @property
    def critic(self) -> nn.Module:
        return self.agent.critic

    @property
    def warmup_agent(self) -> AgentBase:
        """The Cal-QL agent of the offline warm-up (shares actor and critic with ``agent``)."""
        if self._warmup_agent is None:
            self._warmup_agent = make_agent("calql", self.agent.actor, self.agent.critic,
                                            self.algo_configs.get("calql"), self.config.device,
                                            self.config.seed + 1, self.config.precision)
        return self._warmup_agent

    def warmup(self, offline_buffer, steps: int | None = None) -> dict[str, float]:
        """Cal-QL on the offline (demo) buffer alone; then the online agent's targets are synced
        and a new policy version is announced. Returns the last update's metrics."""
        steps = self.config.warmup_steps if steps is None else int(steps)
        if steps <= 0 or offline_buffer is None or len(offline_buffer) == 0:
            return {}
        agent = self.warmup_agent
        metrics: dict[str, float] = {}
        for _ in range(steps):
            batch = self.sampler(_Empty(), offline_buffer, self.config.batch_size, 1.0)
            metrics = agent.update([batch])
        self.num_warmup_updates += steps
        if agent is not self.agent:
            self.agent.sync_targets()
        self.reset_policy_average()   # the average starts at the warm-started policy
        self.policy_version += 1
        self._actor_updates_unpublished = 0
        return {**metrics, "warmup_steps": float(steps), "policy_version": float(self.policy_version)}

    def ready(self, online_buffer, offline_buffer=None) -> bool:
        total = (0 if online_buffer is None else len(online_buffer)) + \
                (0 if offline_buffer is None else len(offline_buffer))
        return total > 0 and total >= self.config.learning_starts

    def train_step(self, online_buffer, offline_buffer=None) -> dict[str, float]:
        """One env step's learning: ``utd`` mixed batches -> agent.update. {} while not ready."""
        if not self.ready(online_buffer, offline_buffer):
            return {}
        online = online_buffer if online_buffer is not None else _Empty()
        offline = offline_buffer if offline_buffer is not None else _Empty()
        utd = max(1, int(getattr(self.agent.cfg, "utd", 1)))
        batches = [self.sampler(online, offline, self.config.batch_size, self.config.offline_ratio)
                   for _ in range(utd)]
        actor_before = self.agent.actor_updates
        metrics = self.agent.update(batches)
        self.num_updates += utd
        self._actor_updates_unpublished += self.agent.actor_updates - actor_before
        if self._ema_step is not None and self.agent.actor_updates > actor_before:
            self._ema_step(self.config.policy_ema)
        if self._actor_updates_unpublished >= self.config.publish_every:
            self.policy_version += 1
            self._actor_updates_unpublished = 0
        return {**metrics, "num_updates": float(self.num_updates), "policy_version": float(self.policy_version)}

    def reset_policy_average(self) -> None:
        """Restart the deployed average at the current actor (after a warm-up or a loaded checkpoint)."""
        if self._ema_step is not None:
            self._ema_step(1.0)

    def explore(self, residual: torch.Tensor) -> torch.Tensor:
        return self.agent.explore(residual)

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        """Detached CPU copy of the deployed actor's weights, for publishing."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.deployed_actor.state_dict().items()}

    def state_dict(self) -> dict:
        out = {"agent": self.agent.state_dict(), "policy_version": self.policy_version,
               "num_updates": self.num_updates, "num_warmup_updates": self.num_warmup_updates,
               "algo": self.config.algo}
        if self._warmup_agent is not None and self._warmup_agent is not self.agent:
            out["warmup_agent"] = self._warmup_agent.state_dict()
        if self._policy_ema is not None:
            out["policy_ema"] = self._policy_ema.state_dict()
        return out

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("algo", self.config.algo) != self.config.algo:
            raise ValueError(f"checkpoint is for algo {state['algo']!r}, learner runs {self.config.algo!r}")
        self.agent.load_state_dict(state["agent"])
        if "warmup_agent" in state:
            self.warmup_agent.load_state_dict(state["warmup_agent"])
        if self._policy_ema is not None:
            self._policy_ema.load_state_dict(state.get("policy_ema", self.agent.actor.state_dict()))
        self.policy_version = int(state["policy_version"])
        self.num_updates = int(state["num_updates"])
        self.num_warmup_updates = int(state.get("num_warmup_updates", 0))
