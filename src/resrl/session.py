"""The learning session plan (ROS-free): demos -> Cal-QL warm-up -> online episodes with periodic
evaluation, until an evaluation block is all successes or the env-step budget is spent.

Frozen-policy evaluation: an evaluation block runs one weight snapshot. While ``in_eval_block``
the runners deploy no new weights, and evaluation episodes never enter the replay.

Resume: :class:`SessionStore` keeps the plan's records in ``<run_dir>/session.json`` (written
atomically after each episode's replay data is on disk); :meth:`SessionPlan.restore` replays them,
so the episode counter, the evaluation schedule and the step budget continue where they stopped.
"""
from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Deque, List, Optional, Tuple


@dataclass
class SessionConfig:
    num_demos: int = 20                 # scripted/teleop demonstrations recorded first
    eval_episodes: int = 20             # an evaluation block; the goal is all of them succeeding
    stop_eval_on_failure: bool = True   # end a block at its first failure (it cannot reach N/N)
    eval_every: int = 20                # train episodes between evaluation blocks ...
    eval_trigger_streak: int = 10       # ... or sooner, after this many train successes in a row
    max_env_steps: int = 20000          # online step budget (train + eval; demos excluded)
    max_episodes: int = 1000
    train_window: int = 20              # success rate reported over the last N train episodes
    stop_at_goal: bool = True           # False: keep learning after an all-success block (stability runs)


@dataclass
class EpisodeRecord:
    index: int
    kind: str            # demo | train | eval
    seed: int
    steps: int
    success: bool
    env_steps_total: int
    mean_lambda: float = 0.0
    gate_activity: dict = field(default_factory=dict)
    wall_s: float = 0.0


class SessionPlan:
    def __init__(self, cfg: SessionConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed
        self.records: List[EpisodeRecord] = []
        self.env_steps = 0               # online steps (train + eval)
        self.train_steps = 0             # online steps of train episodes only (what learning costs)
        self.warmup_done = cfg.num_demos == 0
        self._eval_left = 0
        self._eval_successes = 0
        self._train_since_eval = 0
        self._streak = 0
        self._recent: Deque[bool] = deque(maxlen=cfg.train_window)
        self.finished_reason: Optional[str] = None
        self.eval_results: List[Tuple[int, int, int]] = []    # (env_steps, successes, episodes)
        self.eval_train_steps: List[int] = []                 # train_steps when each block ended

    @property
    def demos_recorded(self) -> int:
        return sum(1 for r in self.records if r.kind == "demo")

    def needs_warmup(self) -> bool:
        return not self.warmup_done and self.demos_recorded >= self.cfg.num_demos

    def next_episode(self) -> Optional[Tuple[str, int]]:
        """(kind, seed) of the next episode, or None when the session is over."""
        if self.finished_reason:
            return None
        n = len(self.records)
        if n >= self.cfg.max_episodes:
            self.finished_reason = "episode budget"
            return None
        if self.demos_recorded < self.cfg.num_demos:
            return "demo", self.seed * 100_000 + n
        if self.env_steps >= self.cfg.max_env_steps and self._eval_left == 0:
            self.finished_reason = "step budget"
            return None
        if self._eval_left == 0 and (self._train_since_eval >= self.cfg.eval_every
                                     or self._streak >= self.cfg.eval_trigger_streak):
            self._eval_left, self._eval_successes = self.cfg.eval_episodes, 0
            self._train_since_eval = self._streak = 0
        if self._eval_left > 0:
            # Evaluation seeds are a fixed set, so every block measures the same start states.
            return "eval", 1_000_000 + self.seed * 1000 + (self.cfg.eval_episodes - self._eval_left)
        return "train", self.seed * 100_000 + n

    def record(self, rec: EpisodeRecord) -> None:
        self.records.append(rec)
        if rec.kind == "demo":
            return
        self.env_steps += rec.steps
        rec.env_steps_total = self.env_steps
        if rec.kind == "train":
            self.train_steps += rec.steps
            self._recent.append(rec.success)
            self._train_since_eval += 1
            self._streak = self._streak + 1 if rec.success else 0
        elif rec.kind == "eval":
            self._eval_left -= 1
            self._eval_successes += int(rec.success)
            attempted = self.cfg.eval_episodes - self._eval_left
            if not rec.success and self.cfg.stop_eval_on_failure:
                self._eval_left = 0   # the block can no longer be all successes: back to training
            if self._eval_left == 0:
                self.eval_results.append((self.env_steps, self._eval_successes, attempted))
                self.eval_train_steps.append(self.train_steps)
                if self._eval_successes == self.cfg.eval_episodes and self.cfg.stop_at_goal:
                    self.finished_reason = f"{self.cfg.eval_episodes}/{self.cfg.eval_episodes} evaluation successes"

    @property
    def in_eval_block(self) -> bool:
        """An evaluation block has started and not ended: the deployed weights must not change."""
        return self._eval_left > 0

    def restore(self, records: List[dict]) -> None:
        """Replay stored records on a fresh plan (same config and seed): the schedule continues."""
        if self.records:
            raise RuntimeError("restore() needs a fresh plan")
        for r in records:
            if self.next_episode() is None:
                break
            self.record(EpisodeRecord(**r))

    def train_success_rate(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0


class SessionStore:
    """``<run_dir>/session.json``: the plan's episode records and whether the warm-up finished."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "session.json"

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, plan: SessionPlan, **extra) -> None:
        data = {"seed": plan.seed, "config": asdict(plan.cfg), "warmup_done": plan.warmup_done,
                "records": [asdict(r) for r in plan.records], **extra}
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def load(self) -> dict:
        return json.loads(self.path.read_text())

    def restore(self, plan: SessionPlan) -> dict:
        """Fill a fresh ``plan`` from the store; refuses a store written by another seed."""
        data = self.load()
        if int(data["seed"]) != plan.seed:
            raise ValueError(f"{self.path}: written by a session with seed {data['seed']}, this one has {plan.seed}")
        plan.restore(data["records"])
        return data
