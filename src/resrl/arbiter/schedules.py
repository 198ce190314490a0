"""Lambda schedules of the peer residual-RL methods (ROS-free), beside VGM's value gates.

A schedule answers "how much of the residual at this step" from the training clock alone, no
critic. The arbiter runs it in static mode: ``lambda_static = schedule.lambda_for(step, train)``.

* ``constant``    -- a fixed residual scale (a static residual; ResFiT's small action scale:
  ResFiT, Ankile et al. 2025, trains the residual with TD3, n-step returns and critic-only warm-up
  steps and applies it at a fixed scale -- the algorithm side is resrl.algos.td3's config).
* ``progressive`` -- Policy Decorator (Yuan et al. 2024): during training the residual is applied
  with probability ``min(step / H_sched, 1)`` per step, at a bounded scale ``residual_scale``;
  evaluation always applies it at that scale.

``step`` is the online (train) env-step count of the session.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

KINDS = ("constant", "progressive")


@dataclass
class ScheduleConfig:
    kind: str = "progressive"
    residual_scale: float = 1.0   # lambda whenever the residual is applied (bounded residual scale)
    H_sched: int = 1000           # progressive: train steps until the residual is always applied

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"schedule kind {self.kind!r} unknown; known: {list(KINDS)}")
        if not (math.isfinite(self.residual_scale) and 0.0 <= self.residual_scale <= 1.0):
            raise ValueError("ScheduleConfig.residual_scale must be in [0, 1]")
        if not (isinstance(self.H_sched, int) and self.H_sched >= 1):
            raise ValueError("ScheduleConfig.H_sched must be an integer >= 1 (steps)")


class LambdaSchedule:
    """Stateless apart from its RNG (seeded: a run is reproducible)."""

    def __init__(self, config: ScheduleConfig, seed: int = 0) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)

    def apply_probability(self, step: int) -> float:
        """Probability that the residual acts at train step ``step``."""
        if self.config.kind == "constant":
            return 1.0
        return min(max(step, 0) / self.config.H_sched, 1.0)

    def lambda_for(self, step: int, train: bool = True) -> float:
        scale = self.config.residual_scale
        if not train:
            return scale
        p = self.apply_probability(step)
        if p >= 1.0:
            return scale
        return scale if self._rng.random() < p else 0.0


def build_schedule(spec: Optional[Mapping[str, object]], seed: int = 0) -> Optional[LambdaSchedule]:
    """``{"kind": "progressive", "H_sched": 1000, "residual_scale": 1.0}`` -> schedule; empty -> None."""
    if not spec:
        return None
    return LambdaSchedule(ScheduleConfig(**dict(spec)), seed)


__all__ = ["KINDS", "ScheduleConfig", "LambdaSchedule", "build_schedule"]
