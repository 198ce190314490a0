"""Which row of which VLA action chunk is the base action at control step t.

A chunk ``A_k`` (H x D) with start step ``t_k`` gives ``a_VLA_t = A_k[t - t_k]``. The chunk in
charge at step t is the newest one (highest id) whose start step is <= t; a chunk whose start
lies in the future is pending and takes over when its start step is reached.

Status of ``action_at(t)``:

* ``ok``        row < execute_steps of the chunk in charge.
* ``late_tail`` row >= execute_steps: the successor should have taken over by now but has not
                arrived (or starts later), so the old chunk's tail keeps the robot moving.
* ``hold``      the chunk in charge has run out (short chunk, or no successor yet): the action is
                None and the caller holds the current pose.
* ``no_chunk``  nothing has started yet (none received, or all pending).

A chunk that arrives late (``start_step < t``) is indexed from its start step, so rows whose time
has passed are skipped. If all of its rows have passed, the scheduler holds rather than replaying
its last row: that row is a target planned for an instant that is already gone, from an older
observation, and an older chunk is never resurrected once a newer one has started.
"""
from __future__ import annotations

import math
import operator
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from resrl.actions import ACTION_DIM

STATUSES = ("ok", "late_tail", "hold", "no_chunk")


@dataclass
class ChunkConfig:
    # Rows per chunk the provider is configured for (H); longer chunks are rejected as a
    # provider/config mismatch, shorter ones are accepted (tail, then hold).
    horizon: int = 16
    action_dim: int = ACTION_DIM
    # Rows of a chunk expected to run before its successor starts. Rows past it are reported as
    # late_tail. Default = horizon: chunks are executed to the end, as in A_k[t mod H].
    execute_steps: int = 16
    # ACT-style temporal ensembling over all chunks covering step t, oldest first:
    # a_t = sum_i w_i A_i[t - t_i] / sum_i w_i with w_i = exp(-ensemble_m * i).
    # Larger m trusts older predictions more (smoother); negative m favours the newest.
    temporal_ensemble: bool = False
    ensemble_m: float = 0.1
    # Consecutive steps without an action (hold / no_chunk) after which info.stalled is set, so
    # the caller can abort the episode: 30 steps is 1 s at 30 Hz, several VLA inference times.
    max_hold_steps: int = 30

    def __post_init__(self) -> None:
        for name in ("horizon", "action_dim", "execute_steps"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"ChunkConfig.{name} must be an integer >= 1")
        if self.execute_steps > self.horizon:
            raise ValueError("ChunkConfig.execute_steps must be <= horizon")
        if not math.isfinite(self.ensemble_m):
            raise ValueError("ChunkConfig.ensemble_m must be finite")
        if not (isinstance(self.max_hold_steps, int) and self.max_hold_steps >= 0):
            raise ValueError("ChunkConfig.max_hold_steps must be an integer >= 0")


@dataclass
class ChunkInfo:
    status: str                 # one of STATUSES
    chunk_id: Optional[int]     # chunk in charge (None for no_chunk)
    row: Optional[int]          # t - start_step of that chunk (may be past its end for hold)
    late_by: int                # rows of that chunk already elapsed when it arrived
    n_ensembled: int            # chunks averaged into the action (0 when there is none)
    hold_steps: int             # consecutive steps without an action, this one included
    stalled: bool               # hold_steps > max_hold_steps


@dataclass(frozen=True)
class _Chunk:
    chunk_id: int
    start_step: int
    actions: np.ndarray         # (H, D) float32, read-only
    received_step: int

    @property
    def end_step(self) -> int:  # first step after the last row
        return self.start_step + self.actions.shape[0]


def _as_step(value, what: str, chunk_id) -> int:
    try:
        step = operator.index(value)
    except TypeError:
        raise ValueError(f"chunk {chunk_id}: {what} must be an integer, got {value!r}") from None
    if step < 0:
        raise ValueError(f"chunk {chunk_id}: {what} must be >= 0, got {step}")
    return step


class ChunkScheduler:
    def __init__(self, config: ChunkConfig | None = None) -> None:
        self.config = config or ChunkConfig()
        # At most `horizon` chunks can cover one step (one new chunk per step), ascending ids.
        self._chunks: deque[_Chunk] = deque(maxlen=self.config.horizon)
        self._hold_since: Optional[int] = None

    def reset(self) -> None:
        """Forget all chunks (episode boundary); the provider may restart its ids."""
        self._chunks.clear()
        self._hold_since = None

    @property
    def latest_chunk_id(self) -> Optional[int]:
        return self._chunks[-1].chunk_id if self._chunks else None

    def push(self, chunk_id: int, start_step: int, actions, received_step: int) -> bool:
        """Add a chunk. Returns False when it is ignored because its id is not newer than the
        latest accepted one; raises ValueError (and keeps the current chunks) when it is invalid."""
        cid = _as_step(chunk_id, "chunk_id", chunk_id)
        start = _as_step(start_step, "start_step", cid)
        received = _as_step(received_step, "received_step", cid)
        try:
            arr = np.array(actions, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"chunk {cid}: actions are not numeric ({exc})") from None
        cfg = self.config
        if arr.ndim != 2 or arr.shape[1] != cfg.action_dim:
            raise ValueError(f"chunk {cid}: expected an (H, {cfg.action_dim}) array, got shape {arr.shape}")
        if not 1 <= arr.shape[0] <= cfg.horizon:
            raise ValueError(f"chunk {cid}: {arr.shape[0]} rows, expected 1..{cfg.horizon} (chunks.horizon)")
        bad_rows = np.flatnonzero(~np.all(np.isfinite(arr), axis=1))
        if bad_rows.size:
            raise ValueError(f"chunk {cid}: non-finite values in rows {bad_rows.tolist()}")
        if self._chunks and cid <= self._chunks[-1].chunk_id:
            return False
        arr.flags.writeable = False
        self._chunks.append(_Chunk(cid, start, arr, received))
        return True

    def _in_charge(self, t: int) -> Optional[_Chunk]:
        for chunk in reversed(self._chunks):
            if chunk.start_step <= t:
                return chunk
        return None

    def action_at(self, t: int) -> tuple[Optional[np.ndarray], ChunkInfo]:
        """Base action (D,) float32 for step t, or None with status hold/no_chunk."""
        cfg = self.config
        chunk = self._in_charge(t)
        if chunk is None or t >= chunk.end_step:
            if self._hold_since is None or self._hold_since > t:
                self._hold_since = t
            hold_steps = t - self._hold_since + 1
            info = ChunkInfo(
                status="no_chunk" if chunk is None else "hold",
                chunk_id=None if chunk is None else chunk.chunk_id,
                row=None if chunk is None else t - chunk.start_step,
                late_by=0 if chunk is None else max(0, chunk.received_step - chunk.start_step),
                n_ensembled=0,
                hold_steps=hold_steps,
                stalled=hold_steps > cfg.max_hold_steps,
            )
            return None, info
        self._hold_since = None

        row = t - chunk.start_step
        if cfg.temporal_ensemble:
            # Every chunk up to the one in charge whose rows cover t, oldest first.
            rows = [c.actions[t - c.start_step] for c in self._chunks
                    if c.chunk_id <= chunk.chunk_id and c.start_step <= t < c.end_step]
            weights = np.exp(-cfg.ensemble_m * np.arange(len(rows)))
            action = (weights @ np.asarray(rows, dtype=np.float64) / weights.sum()).astype(np.float32)
        else:
            rows = [chunk.actions[row]]
            action = rows[0].copy()
        info = ChunkInfo(
            status="ok" if row < cfg.execute_steps else "late_tail",
            chunk_id=chunk.chunk_id,
            row=row,
            late_by=max(0, chunk.received_step - chunk.start_step),
            n_ensembled=len(rows),
            hold_steps=0,
            stalled=False,
        )
        return action, info

    def needs_prefetch(self, t: int, lead_steps: int) -> bool:
        """True when the next chunk should be requested: the chunk in charge has <= lead_steps
        rows left from t on (or there is none) and no newer chunk is already pending.
        It stays True until a chunk arrives; the provider must not request twice."""
        chunk = self._in_charge(t)
        if self._chunks and self._chunks[-1] is not chunk:
            return False
        if chunk is None:
            return True
        return chunk.end_step - t <= lead_steps
