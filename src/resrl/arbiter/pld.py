"""PLD hybrid rollouts ("base policy probing", Probe-Learn-Distill, ICLR 2026).

resrl.control.ControlStep runs the schedule for the arbiter node and the in-process runner
(``vgm_arbiter.pld``: ``alpha`` > 0 turns it on); ``python -m resrl.base_policy.pld`` closes the loop
in sim (collect, distill into the LeRobot base, evaluate).

Each data-collection episode the frozen base policy acts alone for ``T_base ~ U{0, ..., floor(alpha*T)}``
steps (T = ``max_steps``), then the residual expert takes over (``a = a_b + a_delta``) until the end.
The trajectory is therefore pinned to states the base policy actually visits and contains the
expert's recovery from them. Successful trajectories are marked for export (SFT distillation
data for the base model); failures are kept for RL but not exported.

    sched = HybridRolloutSchedule(alpha=0.5, max_steps=300, rng=0)
    t_base = sched.start_episode()
    for t in range(T):
        lam = 1.0 if sched.residual_active(t) else 0.0   # arbiter override: base-only before t_base
        ...
    export = sched.end_episode(success)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class PLDConfig:
    """``vgm_arbiter.pld``: hybrid rollouts in train episodes (alpha 0: off, the residual from step 0)."""

    alpha: float = 0.0
    max_steps: int = 100     # T: the episode length the prefix is drawn against (sim: 100 steps)

    def __post_init__(self) -> None:
        HybridRolloutSchedule(self.alpha, self.max_steps)   # the same checks, at config time


def build_hybrid(cfg: PLDConfig, seed: int) -> Optional["HybridRolloutSchedule"]:
    return HybridRolloutSchedule(cfg.alpha, cfg.max_steps, rng=seed) if cfg.alpha > 0 else None


@dataclass
class EpisodeRecord:
    index: int
    t_base: int  # first step the residual acts (0 = residual from the start)
    success: bool = False
    export: bool = False  # successful hybrid trajectory -> distillation data


class HybridRolloutSchedule:
    def __init__(self, alpha: float, max_steps: int, rng: np.random.Generator | int | None = None) -> None:
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.alpha = float(alpha)
        self.max_steps = int(max_steps)
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.episodes: list[EpisodeRecord] = []
        self._t_base: int | None = None

    @property
    def max_base_steps(self) -> int:
        """Upper end of the T_base range: floor(alpha * max_steps)."""
        return int(np.floor(self.alpha * self.max_steps + 1e-9))

    @property
    def t_base(self) -> int | None:
        return self._t_base

    def start_episode(self) -> int:
        """Draw T_base ~ U{0, ..., floor(alpha*T)} (integers, both ends included) for a new episode."""
        self._t_base = int(self.rng.integers(0, self.max_base_steps + 1))
        return self._t_base

    def residual_active(self, t: int) -> bool:
        """True from step ``t_base`` on (0-based steps): steps 0..t_base-1 are base-only."""
        if self._t_base is None:
            raise RuntimeError("residual_active() before start_episode()")
        if t < 0:
            raise ValueError(f"step index must be >= 0, got {t}")
        return t >= self._t_base

    def end_episode(self, success: bool) -> bool:
        """Record the finished episode; returns whether its trajectory should be exported."""
        if self._t_base is None:
            raise RuntimeError("end_episode() before start_episode()")
        rec = EpisodeRecord(index=len(self.episodes), t_base=self._t_base, success=bool(success),
                            export=bool(success))
        self.episodes.append(rec)
        self._t_base = None
        return rec.export

    def exported(self) -> list[EpisodeRecord]:
        return [e for e in self.episodes if e.export]
