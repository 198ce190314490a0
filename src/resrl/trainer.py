"""The trainer: owns the Learner (networks, optimisers), the lock every update holds, and the weight
snapshots that leave it (ROS-free; the learner node and the tests drive it).

    trainer = Trainer(learner, online, offline)
    trainer.start()
    trainer.request_warmup()          # Cal-QL on the demos, on the trainer thread
    trainer.add_credits(n)            # n updates to make (one per stored env step x updates_per_step)
    snap = trainer.snapshot()         # serialized residual + critic, taken between two updates
    trainer.wait_idle(); trainer.stop()

Every update, warm-up slice, snapshot, checkpoint and weight load holds ``lock``, so a snapshot is
always the networks at an update boundary (never half of an optimiser step), and ``credits == 0``
means the last update has finished (the count drops after the update, not before). The thread
never touches ROS: publishing is the caller's, so a shut-down ROS context cannot break it.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from resrl.models.checkpoint import serialize_state_dict


@dataclass
class WeightsSnapshot:
    version: int
    weights: Dict[str, Tuple[bytes, str]]    # model -> (payload, sha256): "residual" (deployed actor), "critic"


def parse_cpus(text: str) -> Tuple[int, ...]:
    """"0,1" -> (0, 1); "" -> () (any CPU). Refuses CPUs this process may not run on."""
    try:
        cpus = tuple(sorted({int(c) for c in text.replace(" ", "").split(",") if c}))
    except ValueError:
        raise ValueError(f"train_cpus must be comma-separated CPU ids, got {text!r}") from None
    allowed = os.sched_getaffinity(0)
    if set(cpus) - allowed:
        raise ValueError(f"train_cpus {sorted(set(cpus) - allowed)} are not among this process's CPUs {sorted(allowed)}")
    return cpus


class Trainer:
    WARMUP_SLICE = 10   # warm-up updates per lock hold: a stop or a snapshot waits for at most one slice

    def __init__(self, learner, online, offline, log: Callable[[str], None] = print,
                 after_update: Optional[Callable[[], None]] = None, nice: int = 0, cpus: Tuple[int, ...] = ()):
        """``nice`` (>= 0) and ``cpus`` (empty: any) apply to the training thread only (Linux
        schedules threads, not processes): the process's callbacks -- recording the transitions the
        control loop sends -- keep their priority while the gradient updates yield the cores."""
        if not (isinstance(nice, int) and 0 <= nice <= 19):
            raise ValueError(f"the training thread's nice must be an integer in [0, 19], got {nice!r}")
        self.nice, self.cpus = nice, tuple(cpus)
        self.learner, self.online, self.offline = learner, online, offline
        self.log = log
        self.after_update = after_update       # called under the lock after every update (tests hash here)
        self.lock = threading.RLock()
        self._cond = threading.Condition()
        self._credits = 0
        self._warmup_requested = False
        self.warmup_done = False
        self.warmup_s = 0.0
        self.warmup_metrics: dict = {}
        self.last_metrics: dict = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- control (any thread) ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trainer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the update in flight (a process exiting under a running torch op aborts) and join."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def add_credits(self, n: int) -> None:
        if n > 0:
            with self._cond:
                self._credits += int(n)
                self._cond.notify_all()

    @property
    def credits(self) -> int:
        with self._cond:
            return self._credits

    def request_warmup(self) -> None:
        with self._cond:
            self._warmup_requested = True
            self._cond.notify_all()

    def idle(self) -> bool:
        """No update owed or in flight, and no warm-up pending."""
        with self._cond:
            return self._credits == 0 and not self._warmup_requested

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._stop.is_set() or
                                       (self._credits == 0 and not self._warmup_requested), timeout)

    # --- without a thread (the in-process runner): the same updates, on the caller's thread ---------
    def drain(self) -> None:
        """Make the owed updates now (only when the thread is not started)."""
        assert not self.running, "drain() is for a trainer without its thread"
        while self.credits > 0:
            self._update()

    def warmup_now(self) -> None:
        assert not self.running, "warmup_now() is for a trainer without its thread"
        self._warmup()

    # --- what leaves the trainer (under the lock) ---------------------------------------------------
    def snapshot(self) -> WeightsSnapshot:
        with self.lock:
            weights = {}
            for model, module in (("residual", self.learner.deployed_actor), ("critic", self.learner.critic)):
                payload = serialize_state_dict(module)   # bytes: a copy, not a view of live tensors
                weights[model] = (payload, hashlib.sha256(payload).hexdigest())
            return WeightsSnapshot(self.learner.policy_version, weights)

    def save_state(self, path: Path) -> None:
        """Everything needed to resume training (agent, optimisers, policy average, counters)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with self.lock:
            state = {"learner": self.learner.state_dict(), "warmup_done": self.warmup_done}
            torch.save(state, tmp)
        with open(tmp, "rb+") as f:
            import os
            os.fsync(f.fileno())
        tmp.replace(path)

    def load_state(self, path: Path) -> None:
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
        with self.lock:
            self.learner.load_state_dict(state["learner"])
            self.warmup_done = bool(state.get("warmup_done", True))

    def load_weights(self, states: dict, version: int) -> int:
        """Residual + critic weights (a checkpoint); returns the new policy version."""
        with self.lock:
            self.learner.actor.load_state_dict(states["residual"])
            self.learner.critic.load_state_dict(states["critic"])
            self.learner.agent.sync_targets()
            self.learner.reset_policy_average()
            self.learner.policy_version = max(self.learner.policy_version, version) + 1
            self.warmup_done = True
            with self._cond:
                self._warmup_requested = False
                self._cond.notify_all()
            return self.learner.policy_version

    # --- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        tid = threading.get_native_id()
        if self.nice:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice)
        if self.cpus:
            os.sched_setaffinity(tid, self.cpus)
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._stop.is_set() or self._warmup_requested or self._credits > 0)
                warmup, work = self._warmup_requested, self._credits > 0
            if self._stop.is_set():
                break
            if warmup:
                self._warmup()
                continue
            if work:
                self._update()

    def _update(self) -> None:
        try:
            with self.lock:
                metrics = self.learner.train_step(self.online, self.offline)
                if self.after_update is not None:
                    self.after_update()
            if metrics:
                self.last_metrics = metrics
        except Exception as exc:   # bad data must not kill the learner
            self.errors += 1
            if self.errors <= 3 or self.errors % 100 == 0:
                self.log(f"train step failed ({self.errors}): {exc!r}")
        finally:
            with self._cond:
                self._credits -= 1
                self._cond.notify_all()

    def _warmup(self) -> None:
        import time
        steps = self.learner.config.warmup_steps
        self.log(f"Cal-QL warm-up: {steps} updates on {len(self.offline)} demo transitions")
        t0, done, metrics = time.monotonic(), 0, {}
        while done < steps and not self._stop.is_set():
            n = min(self.WARMUP_SLICE, steps - done)
            with self.lock:
                metrics = self.learner.warmup(self.offline, steps=n) or metrics
                if self.after_update is not None:
                    self.after_update()
            done += n
        self.warmup_s = time.monotonic() - t0
        self.warmup_metrics = metrics
        if self._stop.is_set():
            return   # interrupted: the warm-up is not done (a resumed session warms up again)
        self.log(f"warm-up: {done} updates in {self.warmup_s:.1f}s; "
                 + ", ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:6]))
        with self._cond:
            self.warmup_done = True
            self._warmup_requested = False
            self._cond.notify_all()
