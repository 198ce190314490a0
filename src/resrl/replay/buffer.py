"""Episode-structured replay buffer: frames stored once, n-step sampling, crash-safe persistence.

Memory layout: two rings indexed by global monotonic counters (ring slot = counter % size).
  * frame ring (``frame_capacity(C)`` slots): o_0..o_T of each episode, contiguous.
  * transition ring (C slots): per-step fields + ``obs_slot`` (frame of o_t) + episode id.
Transition t reads o_t at ``obs_slot`` and o_{t+1} at ``obs_slot + 1``: T steps use T+1 frames.
Whole oldest episodes are evicted (FIFO) when either ring is full; an episode longer than the
buffer raises CapacityError. Disk files are never deleted: they are the dataset.

Steps of the running episode are sampleable as soon as they are added (their next_obs exists).
n-step windows stop at the newest step, so a young step gets a shorter, still valid, bootstrap.
Monte-Carlo returns-to-go are only known at ``end_episode``; until then a step's ``mc_return`` is
``mc_lower_bound`` (default 0: a lower bound for sparse nonnegative rewards, which is all Cal-QL
needs). An episode reloaded without its END record (crash) gets MC returns of its observed
rewards, as if truncated, and bootstraps from its last observation (it is not terminal).
"""
from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from resrl.actions import ACTION_DIM, as_action
from resrl.replay.storage import (ABORT, END, STEP, STEP_FIELDS, EpisodeWriter, ObsSpec,
                                  list_episode_files, nbytes, normalize_spec, pack,
                                  read_episode, read_header)

log = logging.getLogger(__name__)

# Per-transition memory: the STEP record fields + MC return + where o_t lives + episode id.
_TRANSITION_FIELDS = {**STEP_FIELDS, "mc_return": ((), np.dtype(np.float32)),
                      "obs_slot": ((), np.dtype(np.int64)), "episode": ((), np.dtype(np.int64))}


class CapacityError(RuntimeError):
    """The running episode alone does not fit in the buffer."""


def frame_capacity(capacity_transitions: int) -> int:
    """Frame slots for ``capacity_transitions``: one per transition + one final frame per episode.

    The headroom (5%, min 16) fits episodes of >= 20 steps; with shorter episodes the frame ring
    binds first and fewer than ``capacity_transitions`` transitions are held.
    """
    return capacity_transitions + max(16, capacity_transitions // 20)


def estimate_bytes(obs_spec: dict, capacity_transitions: int) -> int:
    """Memory the buffer allocates for ``capacity_transitions`` (frames + transition fields).

    Per transition: 87 B of step fields + 1.05 frames. Object mode (K=4): ~280 B, so 1e6
    transitions ~ 280 MB. Image mode 96x96 RGB + depth: ~38.9 KB, so 1e5 transitions ~ 3.9 GB.
    """
    spec = normalize_spec(obs_spec)
    return (frame_capacity(capacity_transitions) * nbytes(spec)
            + capacity_transitions * nbytes(_TRANSITION_FIELDS))


@dataclass
class _Episode:
    episode_id: int
    frame_start: int  # global frame counter of o_0
    trans_start: int  # global transition counter of step 0
    meta: dict
    n_steps: int = 0
    closed: bool = False  # last step was done/truncated: no more steps
    success: bool | None = None  # None until ended (or never, if reloaded without END)


@dataclass
class Episode:
    """An exported episode: T steps, T+1 observations (copies)."""

    episode_id: int
    obs: dict[str, np.ndarray]  # each (T+1, ...)
    action: np.ndarray  # (T, 7) executed
    residual: np.ndarray  # (T, 7) residual target
    lambda_: np.ndarray  # (T, 7): the arbiter's lambda per action dimension
    reward: np.ndarray
    done: np.ndarray
    truncated: np.ndarray
    intervention: np.ndarray
    mc_return: np.ndarray
    success: bool | None  # None: reloaded without an END record (crashed session)
    meta: dict = field(default_factory=dict)


class ReplayBuffer:
    """See the module docstring. Public calls are thread-safe (one adder, many samplers).

    ``directory``: when given, existing ``episode-*.rrb`` files there are loaded (their obs_spec
    must match), and every start/add/end/abort is appended and fsynced before the call returns.
    """

    def __init__(self, obs_spec: dict, capacity_transitions: int, directory: str | Path | None = None,
                 gamma: float = 0.99, n_step: int = 1, name: str = "online",
                 mc_lower_bound: float = 0.0):
        if capacity_transitions < 1 or n_step < 1 or not 0.0 < gamma <= 1.0:
            raise ValueError("need capacity_transitions >= 1, n_step >= 1, 0 < gamma <= 1")
        self.spec: ObsSpec = normalize_spec(obs_spec)
        self.capacity = int(capacity_transitions)
        self.frame_capacity = frame_capacity(self.capacity)
        self.gamma, self.n_step, self.name = float(gamma), int(n_step), name
        self.mc_lower_bound = float(mc_lower_bound)
        self.directory = Path(directory) if directory is not None else None
        self._frames = {k: np.zeros((self.frame_capacity, *s), dt.newbyteorder("="))
                        for k, (s, dt) in self.spec.items()}
        self._tr = {k: np.zeros((self.capacity, *s), dt.newbyteorder("="))
                    for k, (s, dt) in _TRANSITION_FIELDS.items()}
        self._gamma_pows = (self.gamma ** np.arange(self.n_step)).astype(np.float32)
        self._frame_head = self._frame_tail = self._trans_head = self._trans_tail = 0
        self._episodes: deque[_Episode] = deque()
        self._running: _Episode | None = None
        self._writer: EpisodeWriter | None = None
        self._next_id = 0
        # _lock guards memory (held briefly); _io_lock serialises writers across slow fsyncs,
        # so samplers never wait for the disk.
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load_files()

    @classmethod
    def load(cls, directory: str | Path, capacity_transitions: int, **kwargs) -> "ReplayBuffer":
        """Open an existing buffer directory, taking the obs_spec from its files."""
        files = list_episode_files(Path(directory))
        if not files:
            raise FileNotFoundError(f"{directory}: no episode-*.rrb files")
        path = files[0][1]
        spec = read_header(path, path.read_bytes())[0]
        return cls(spec, capacity_transitions, directory=directory, **kwargs)

    # ---- adding -------------------------------------------------------------------------------

    def start_episode(self, obs0: dict, meta: dict | None = None) -> int:
        """Begin an episode with its first observation; returns its id (unique in ``directory``)."""
        with self._io_lock:
            if self._running is not None:
                raise RuntimeError(f"{self.name}: episode {self._running.episode_id} still running; "
                                   "end_episode() or abort_episode() first")
            obs0 = self._check_obs(obs0, "obs0")
            meta = dict(meta or {})
            json.dumps(meta)  # TypeError now, with or without a directory: it goes in the file header
            episode_id = self._next_id
            if self.directory is not None:
                self._writer = EpisodeWriter(self.directory, episode_id, self.spec, meta,
                                             pack(self.spec, obs0))
            self._next_id += 1
            with self._lock:
                self._mem_start(episode_id, obs0, meta)
            return episode_id

    def add_step(self, action, residual, lambda_, reward: float, next_obs: dict,
                 done: bool, truncated: bool = False, intervention: bool = False) -> None:
        """Record one transition from the newest observation of the running episode to ``next_obs``.

        ``action`` is the executed action, ``residual`` the residual target (``a_human - a_VLA``
        for interventions), ``lambda_`` the arbiter's lambda per action dimension ((7,); a scalar
        means the same lambda for every dimension). After ``done`` or ``truncated`` the episode takes no more steps.
        """
        with self._io_lock:
            ep = self._running
            if ep is None or ep.closed:
                raise RuntimeError(f"{self.name}: add_step without a running episode "
                                   "(or after its done/truncated step)")
            if ep.n_steps + 1 > self.capacity:  # the frame ring is always larger
                raise CapacityError(f"{self.name}: episode {ep.episode_id} exceeds capacity "
                                    f"{self.capacity}; raise capacity_transitions")
            step = {"action": as_action(action, name="action"),
                    "residual": as_action(residual, name="residual"),
                    "lambda": _lambda_per_dim(lambda_),
                    "reward": _finite_scalar(reward, "reward"),
                    "done": np.bool_(done), "truncated": np.bool_(truncated),
                    "intervention": np.bool_(intervention)}
            next_obs = self._check_obs(next_obs, "next_obs")
            if self._writer is not None:
                self._writer.append(STEP, pack(STEP_FIELDS, step) + pack(self.spec, next_obs))
            with self._lock:
                self._mem_step(step, next_obs)

    def end_episode(self, success: bool) -> None:
        """Finish the running episode and compute its MC returns-to-go.

        The episode is terminal only if its last step had ``done``; otherwise its last step
        bootstraps (time limit / operator stop).
        """
        with self._io_lock:
            self._require_running("end_episode")
            self._finish_file(END, bytes([bool(success)]))
            with self._lock:
                self._mem_end(bool(success))

    def abort_episode(self) -> None:
        """Drop the running episode from memory. Its file stays on disk, marked ABORT, and is
        skipped by reloads (an operator reset mid-episode is not training data)."""
        with self._io_lock:
            ep = self._require_running("abort_episode")
            self._finish_file(ABORT, b"")
            with self._lock:
                self._frame_head, self._trans_head = ep.frame_start, ep.trans_start
                self._episodes.pop()
                self._running = None

    # ---- reading ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Transitions in memory (all sampleable, including the running episode's)."""
        return self._trans_head - self._trans_tail

    @property
    def num_frames(self) -> int:
        """Observations held in memory (sum of T+1 over the episodes)."""
        return self._frame_head - self._frame_tail

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for frames and transitions (== estimate_bytes(spec, capacity))."""
        return sum(a.nbytes for a in self._frames.values()) + sum(a.nbytes for a in self._tr.values())

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict:
        """Uniform batch of n-step transitions.

        Keys: obs, next_obs (dicts of (B, ...) arrays; next_obs is o_{t+h}, h = n_step or fewer at
        an episode's end or the running episode's newest step), action, residual, lambda,
        intervention (of step t), reward (sum_k gamma^k r_{t+k}, k < h), discount (gamma^h, 0 if
        step t+h-1 is terminal), done (terminal within the window), mc_return, next_lambda (the
        arbiter's lambda per dimension at step t+h, (B, 7); 1 when unknown or a human acted there).
        """
        return sample_parts([(self, batch_size)], rng)

    def _draw(self, n: int, rng: np.random.Generator, frames: dict, obs_rows: slice,
              next_rows: slice) -> dict:
        """Draw ``n`` transitions: gather their frames into ``frames[k][rows]``, return the rest.

        Caller holds ``self._lock`` (the rings may be overwritten otherwise).
        """
        if len(self) == 0:
            raise ValueError(f"{self.name}: cannot sample an empty replay buffer")
        g = rng.integers(self._trans_tail, self._trans_head, size=n)
        window = g[:, None] + np.arange(self.n_step)
        slots = window % self.capacity
        tr = self._tr
        # Windows are contiguous in the ring and end at the episode's (or the buffer's) last step.
        valid = (window < self._trans_head) & (tr["episode"][slots] == tr["episode"][slots[:, :1]])
        h = valid.sum(axis=1)
        first, last = slots[:, 0], slots[np.arange(n), h - 1]
        obs_slots = tr["obs_slot"][first]
        next_slots = (tr["obs_slot"][last] + 1) % self.frame_capacity
        for k, a in self._frames.items():
            # mode="wrap": slots are always in range, and "raise" would buffer the copy.
            np.take(a, obs_slots, axis=0, out=frames[k][obs_rows], mode="wrap")
            np.take(a, next_slots, axis=0, out=frames[k][next_rows], mode="wrap")
        done = tr["done"][last]
        # lambda the arbiter applied at the bootstrap step t+h (gated-policy TD targets); 1 where
        # that step is not in memory yet, belongs to another episode, or was a human's action.
        boot = g + h
        boot_slots = boot % self.capacity
        known = ((boot < self._trans_head) & (tr["episode"][boot_slots] == tr["episode"][first])
                 & ~tr["intervention"][boot_slots].astype(bool))
        next_lambda = np.where(known[:, None], tr["lambda"][boot_slots], 1.0).astype(np.float32)   # (n, 7)
        return {
            "action": tr["action"][first], "residual": tr["residual"][first],
            "lambda": tr["lambda"][first], "intervention": tr["intervention"][first],
            "reward": (tr["reward"][slots] * valid @ self._gamma_pows).astype(np.float32),
            "discount": np.where(done, 0.0, self.gamma ** h).astype(np.float32),
            "done": done, "mc_return": tr["mc_return"][first], "next_lambda": next_lambda,
        }

    def episodes(self) -> Iterator[Episode]:
        """Copies of the finished episodes in memory, oldest first (for export: PLD, SFT).

        Episodes evicted while iterating are skipped; the running episode is not included.
        """
        with self._lock:
            eps = [e for e in self._episodes if e is not self._running]
        for ep in eps:
            with self._lock:
                if ep.frame_start < self._frame_tail:
                    continue
                frames = (ep.frame_start + np.arange(ep.n_steps + 1)) % self.frame_capacity
                slots = (ep.trans_start + np.arange(ep.n_steps)) % self.capacity
                tr = {k: a[slots] for k, a in self._tr.items()}
                obs = {k: a[frames] for k, a in self._frames.items()}
            yield Episode(ep.episode_id, obs, tr["action"], tr["residual"], tr["lambda"], tr["reward"],
                          tr["done"], tr["truncated"], tr["intervention"], tr["mc_return"],
                          ep.success, dict(ep.meta))

    # ---- internals ----------------------------------------------------------------------------

    def _check_obs(self, obs: dict, what: str) -> dict[str, np.ndarray]:
        if set(obs) != set(self.spec):
            raise KeyError(f"{self.name}: {what} keys {sorted(obs)} != obs_spec keys {sorted(self.spec)}")
        out = {}
        for k, (shape, dt) in self.spec.items():
            arr = np.asarray(obs[k])
            if not np.can_cast(arr.dtype, dt, "same_kind") or arr.shape != shape:
                raise ValueError(f"{self.name}: {what}[{k!r}] is {arr.dtype}{arr.shape}, "
                                 f"expected {dt.name}{shape}")
            out[k] = arr.astype(dt.newbyteorder("="), copy=False)
        return out

    def _require_running(self, what: str) -> _Episode:
        if self._running is None:
            raise RuntimeError(f"{self.name}: {what} without a running episode")
        return self._running

    def _finish_file(self, rtype: int, payload: bytes) -> None:
        if self._writer is not None:
            self._writer.append(rtype, payload)
            self._writer = None

    def _make_room(self, frames: int, transitions: int) -> None:
        """Evict whole oldest episodes until ``frames``/``transitions`` more fit."""
        while (self._frame_head - self._frame_tail + frames > self.frame_capacity
               or self._trans_head - self._trans_tail + transitions > self.capacity):
            ep = self._episodes[0]
            if ep is self._running:  # add_step checks this before touching the disk
                raise CapacityError(f"{self.name}: episode {ep.episode_id} exceeds capacity")
            self._episodes.popleft()
            self._frame_tail += ep.n_steps + 1
            self._trans_tail += ep.n_steps

    def _mem_start(self, episode_id: int, obs0: dict, meta: dict) -> None:
        self._make_room(1, 0)
        slot = self._frame_head % self.frame_capacity
        for k, a in self._frames.items():
            a[slot] = obs0[k]
        self._running = _Episode(episode_id, self._frame_head, self._trans_head, meta)
        self._episodes.append(self._running)
        self._frame_head += 1

    def _mem_step(self, step: dict, next_obs: dict) -> None:
        self._make_room(1, 1)
        ep, slot = self._running, self._trans_head % self.capacity
        for k, v in step.items():
            self._tr[k][slot] = v
        self._tr["mc_return"][slot] = self.mc_lower_bound
        self._tr["obs_slot"][slot] = (self._frame_head - 1) % self.frame_capacity
        self._tr["episode"][slot] = ep.episode_id
        frame = self._frame_head % self.frame_capacity
        for k, a in self._frames.items():
            a[frame] = next_obs[k]
        ep.n_steps += 1
        ep.closed = bool(step["done"] or step["truncated"])
        self._frame_head += 1
        self._trans_head += 1

    def _mem_end(self, success: bool | None) -> None:
        ep = self._running
        slots = (ep.trans_start + np.arange(ep.n_steps)) % self.capacity
        self._tr["mc_return"][slots] = discounted_returns(self._tr["reward"][slots], self.gamma)
        ep.success, ep.closed = success, True
        self._running = None

    def _load_files(self) -> None:
        for episode_id, path in list_episode_files(self.directory):
            self._next_id = max(self._next_id, episode_id + 1)
            f = read_episode(path, self.spec)
            if f.aborted:
                continue
            if len(f.steps) > self.capacity:
                raise CapacityError(f"{path}: {len(f.steps)} steps exceed capacity {self.capacity}")
            if f.success is None:
                log.info("%s: no END record (crashed session?); loaded %d steps as truncated",
                         path, len(f.steps))
            with self._lock:
                self._mem_start(f.episode_id, f.obs0, f.meta)
                for step, next_obs in f.steps:
                    self._mem_step(step, next_obs)
                self._mem_end(f.success)


def sample_parts(parts: list[tuple[ReplayBuffer, int]], rng: np.random.Generator) -> dict:
    """One batch made of ``n`` samples from each ``(buffer, n)``, rows in ``parts`` order.

    Frames are gathered straight into one array per key (obs rows, then next_obs rows) instead
    of concatenating per-buffer batches: for image batches the fresh allocations dominate.
    """
    spec = parts[0][0].spec
    if any(buf.spec != spec for buf, _ in parts):
        raise ValueError("sample_parts: buffers have different obs_specs")
    total = sum(n for _, n in parts)
    frames = {k: np.empty((2 * total, *shape), dt.newbyteorder("=")) for k, (shape, dt) in spec.items()}
    fields, row = [], 0
    for buf, n in parts:
        with buf._lock:
            fields.append(buf._draw(n, rng, frames, slice(row, row + n),
                                    slice(total + row, total + row + n)))
        row += n
    batch = {k: np.concatenate([f[k] for f in fields]) for k in fields[0]}
    batch["obs"] = {k: a[:total] for k, a in frames.items()}
    batch["next_obs"] = {k: a[total:] for k, a in frames.items()}
    return batch


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Monte-Carlo returns-to-go G_t = r_t + gamma * G_{t+1}, with G_T = 0."""
    out = np.empty(len(rewards), dtype=np.float32)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out


def _lambda_per_dim(value) -> np.ndarray:
    lam = np.asarray(value, dtype=np.float32)
    if lam.ndim == 0:
        lam = np.full(ACTION_DIM, lam, np.float32)
    if lam.shape != (ACTION_DIM,) or not np.all(np.isfinite(lam)):
        raise ValueError(f"lambda_ must be a finite scalar or ({ACTION_DIM},) vector, got {value!r}")
    return lam


def _finite_scalar(value, name: str) -> np.float32:
    v = np.float32(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} is not finite: {value}")
    return v
