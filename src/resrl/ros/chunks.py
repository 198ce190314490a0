"""Receive ActionChunk messages into a ChunkScheduler, per episode.

Chunks of an episode whose START event has not arrived yet are kept until it does (topics are
not ordered against each other); chunks of earlier episodes are dropped. Episode 0 means the
sender has seen no START since it started (a VLA node respawned mid-episode): its chunks are for
the episode running now; their rows are indexed by control step, so none can act in the past.
Likewise a receiver that restarted mid-episode joins the episode of the first chunk it gets.
"""
from __future__ import annotations

import threading
from typing import Callable, Dict, List

import numpy as np
from rclpy.node import Node

from resrl import topics
from resrl.arbiter.chunks import ChunkConfig, ChunkScheduler
from resrl.msg import ActionChunk
from resrl.ros import qos


class ChunkSubscriber:
    def __init__(self, node: Node, cfg: ChunkConfig, current_step: Callable[[], int],
                 on_chunk: Callable[[], None] = lambda: None):
        self.node = node
        self.scheduler = ChunkScheduler(cfg)
        self.current_step = current_step
        self.on_chunk = on_chunk
        self.episode_id = 0
        self._early: Dict[int, List[tuple]] = {}
        self._lock = threading.RLock()
        node.create_subscription(ActionChunk, topics.VLA_CHUNK, self._on_chunk, qos.CONTROL)

    def _on_chunk(self, msg: ActionChunk):
        rows = np.asarray(msg.actions, dtype=np.float32)
        if rows.size != msg.horizon * msg.action_dim or msg.horizon == 0:
            self.node.get_logger().error(
                f"chunk {msg.chunk_id}: {rows.size} values for H={msg.horizon} x D={msg.action_dim}; rejected")
            return
        entry = (msg.chunk_id, msg.start_step, rows.reshape(msg.horizon, msg.action_dim))
        with self._lock:
            if msg.episode_id == 0:
                msg.episode_id = self.episode_id
            elif self.episode_id == 0:
                self.start_episode(msg.episode_id)   # this node restarted mid-episode: join it
            if msg.episode_id > self.episode_id:
                self._early.setdefault(msg.episode_id, []).append(entry)
                return
            if msg.episode_id < self.episode_id:
                return
            self._push(entry)
        self.on_chunk()

    def _push(self, entry):
        try:
            self.scheduler.push(*entry, received_step=max(self.current_step(), 0))
        except ValueError as exc:
            self.node.get_logger().error(f"chunk rejected: {exc}")

    def start_episode(self, episode_id: int) -> None:
        with self._lock:
            if episode_id == self.episode_id:
                return    # joined already from its chunks (after a restart): keep them
            self.episode_id = episode_id
            self.scheduler.reset()
            for entry in self._early.pop(episode_id, []):
                self._push(entry)
            self._early = {k: v for k, v in self._early.items() if k > episode_id}

    def action_at(self, step: int):
        with self._lock:
            return self.scheduler.action_at(step)
