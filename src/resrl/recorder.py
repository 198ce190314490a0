"""Turn the control loop's stream (commands, observations, terminal events) into replay episodes.

ROS-free: the learner node feeds it CommandedAction contents and a function that returns the
observation for a stamp; it writes complete transitions (o_t, a_t, r_t, o_{t+1}) into the
buffers as soon as o_{t+1} is known. Observations and commands may arrive in any order.

Routing: demo episodes go to the offline (demo/intervention) buffer; train and eval episodes go to
the online buffer, and a train episode with any human intervention also goes to the offline buffer
(its intervention steps carry the flag, so the actors' BC term sees exactly those).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional

import numpy as np


def episode_buffers(kind: str, online, offline) -> list:
    """Where an episode's transitions go: demos -> the demo buffer, train -> online, eval -> nowhere
    (evaluation measures a frozen policy; its episodes never enter the replay). The live learner,
    the in-process runner and the bag rebuild all route through here."""
    return {"demo": [offline], "eval": []}.get(kind, [online])


@dataclass
class Command:
    step: int
    stamp_ns: int
    action: np.ndarray
    base_action: np.ndarray
    residual: np.ndarray
    lambda_: np.ndarray                      # (7,) lambda per action dimension (scalar: the same for all)
    intervention: bool
    composed: Optional[np.ndarray] = None   # pre-safety-filter action (the human's intent on takeovers)


def command(step: int, stamp_ns: int, action, base_action, residual, lambda_per_dim, intervention: bool,
            composed=None) -> Command:
    """A Command from a CommandedAction's fields (learner node) or a resrl.control.Decision (in-process)."""
    lam = np.asarray(lambda_per_dim, np.float32)
    composed = None if composed is None or len(composed) != 7 else np.asarray(composed, np.float32)
    return Command(step=int(step), stamp_ns=int(stamp_ns), action=np.asarray(action, np.float32),
                   base_action=np.asarray(base_action, np.float32), residual=np.asarray(residual, np.float32),
                   lambda_=lam if lam.size else np.zeros(7, np.float32), intervention=bool(intervention),
                   composed=composed)


@dataclass
class Terminal:
    stamp_ns: int
    success: bool
    reward: float
    truncated: bool      # time limit / operator stop: bootstrap from the last observation


class EpisodeRecorder:
    def __init__(self, kind: str, buffers: List, get_obs: Callable[[int, np.ndarray], Optional[dict]],
                 meta: Optional[dict] = None, period_ns: Optional[int] = None):
        self.kind = kind
        self.buffers = list(buffers)
        self.get_obs = get_obs
        self.meta = dict(meta or {}, kind=kind)
        # Control period on a stamp grid: the terminal transition waits for the command that acted on
        # the observation right before the terminal one (the terminal event can overtake it).
        self.period_ns = period_ns
        self.queue: Deque[Command] = deque()
        self.prev: Optional[Command] = None
        self.terminal: Optional[Terminal] = None
        self.steps = 0
        self.interventions = 0
        self.finished = False
        self._started = False
        self._history: list = []      # obs0, then (args, kwargs) per step: for _copy_to

    def add_command(self, cmd: Command) -> None:
        # A command may arrive after the terminal event (different topics): it still belongs to the
        # episode when it was stamped before the terminal observation.
        if self.finished or (self.terminal is not None and cmd.stamp_ns >= self.terminal.stamp_ns):
            return
        if self.queue and cmd.step <= self.queue[-1].step or (self.prev and cmd.step <= self.prev.step):
            return   # duplicate or out-of-order command
        self.queue.append(cmd)

    def set_terminal(self, terminal: Terminal) -> None:
        if self.terminal is None:
            self.terminal = terminal
            # The arbiter may already have answered the terminal observation (its command raced
            # the terminal event): that command acts on no step of this episode.
            self.queue = deque(c for c in self.queue if c.stamp_ns < terminal.stamp_ns)

    def _store_step(self, cmd: Command, next_obs: dict, reward: float, done: bool, truncated: bool) -> None:
        # A takeover teaches the residual the human's intent, a_human - a_VLA, measured before the
        # safety filter clamped it to the per-step motion limit.
        human = cmd.composed if cmd.composed is not None else cmd.action
        residual = human - cmd.base_action if cmd.intervention else cmd.residual
        args = (cmd.action, residual, cmd.lambda_, reward, next_obs)
        kwargs = dict(done=done, truncated=truncated, intervention=cmd.intervention)
        for buf in self.buffers:
            buf.add_step(*args, **kwargs)
        self._history.append((args, kwargs))
        self.steps += 1
        self.interventions += int(cmd.intervention)

    def pump(self, offline_buffer=None, force: bool = False, terminal_obs=None) -> bool:
        """Store whatever is complete; returns True once the episode has been written entirely.
        ``force``: finish with the commands that came (the caller gave the missing one up);
        ``terminal_obs``: the terminal observation's lookup, if not ``get_obs``."""
        while self.queue:
            cmd = self.queue[0]
            if self._started and self.terminal is None and len(self.queue) < 2:
                # o(cmd) ends the transition of the previous command; it is a plain (non-terminal)
                # observation only if the loop went on past it, i.e. a later command exists.
                # Until then it could still turn out to be the terminal one.
                return False
            obs = self.get_obs(cmd.stamp_ns, cmd.base_action)
            if obs is None:
                return False
            if not self._started:
                for buf in self.buffers:
                    buf.start_episode(obs, self.meta)
                self._history.append(obs)
                self._started = True
            else:
                self._store_step(self.prev, obs, 0.0, False, False)
            self.prev = self.queue.popleft()
        if self.terminal is None or self.prev is None:
            return False
        t = self.terminal
        if self.period_ns and not force and self.prev.stamp_ns + self.period_ns < t.stamp_ns:
            return False
        obs = (terminal_obs or self.get_obs)(t.stamp_ns, self.prev.base_action)
        if obs is None:
            return False
        self._store_step(self.prev, obs, t.reward, done=not t.truncated, truncated=t.truncated)
        for buf in self.buffers:
            buf.end_episode(t.success)
        if offline_buffer is not None and self.kind == "train" and self.interventions:
            self._copy_to(offline_buffer)
        self.finished = True
        return True

    def _copy_to(self, buffer) -> None:
        """Write this (finished) episode into another buffer, e.g. a train episode with interventions."""
        buffer.start_episode(self._history[0], self.meta)
        for args, kwargs in self._history[1:]:
            buffer.add_step(*args, **kwargs)
        buffer.end_episode(self.terminal.success)

    def finish_now(self, offline_buffer=None, terminal_obs=None) -> bool:
        """Stop waiting for the rest of a labelled episode (its terminal wait ran out, or the next
        episode starts): store it with the commands that came if its terminal observation is there
        (a command lost or late under load must not cost a whole episode -- in manual sessions a
        takeover the operator just labelled); drop it otherwise. ``terminal_obs``: a looser lookup
        for the terminal observation (a key press is stamped between two state samples). True
        when stored."""
        if self.finished:
            return False
        if self.terminal is not None and self.pump(offline_buffer, force=True, terminal_obs=terminal_obs):
            return True
        self.abort()
        return False

    def abort(self) -> None:
        if self._started and not self.finished:
            for buf in self.buffers:
                buf.abort_episode()
        self.finished = True
