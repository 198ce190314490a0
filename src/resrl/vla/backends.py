"""VLA chunk backends behind one interface: ``infer(obs) -> (H, D) absolute actions``.

``obs`` is a dict with at least "state" (7,) and, depending on the backend, "image" (H, W, 3)
uint8, "depth", "instruction" and privileged sim keys ("object_pose", "target_pose").
Every backend raises VLAError on failure; the chunk provider then retries and the arbiter holds
the robot when the current chunk runs out. Real backends: ``openpi_backend`` (websocket policy
server) and ``lerobot_backend`` (local checkpoint); ``action_mapping`` maps their native action
spaces to absolute EE targets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Protocol

import numpy as np


class VLAError(RuntimeError):
    """The base policy could not produce a chunk (server down, bad output, ...)."""


class VLABackend(Protocol):
    name: str

    def infer(self, obs: Dict[str, np.ndarray]) -> np.ndarray: ...


def check_chunk(chunk, horizon: int, action_dim: int, source: str) -> np.ndarray:
    arr = np.asarray(chunk, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != action_dim or not 1 <= arr.shape[0] <= horizon:
        raise VLAError(f"{source}: chunk of shape {arr.shape}, expected (<= {horizon}, {action_dim})")
    if not np.all(np.isfinite(arr)):
        raise VLAError(f"{source}: chunk has non-finite values")
    return arr


class SimScriptedBackend:
    """The sim stand-in VLA: right intent, systematic last-mile errors (see resrl.sim.scripted)."""

    name = "sim_scripted"

    def __init__(self, task: str, horizon: int):
        from resrl.sim.scripted import ScriptedVLA, load_task_config
        self.policy = ScriptedVLA(load_task_config(task, overrides={"vla": {"chunk_size": horizon}}))

    def reset(self, seed: int) -> None:
        self.policy.reset()

    def infer(self, obs):
        return self.policy.infer(obs)


class ReplayBackend:
    """Replays recorded chunks (an .npz with `chunks` (N, H, D)) in order, looping."""

    name = "replay"

    def __init__(self, path: str):
        p = Path(path)
        if not p.is_file():
            raise VLAError(f"replay: chunk file {p} not found")
        with np.load(p) as data:
            if "chunks" not in data:
                raise VLAError(f"replay: {p} has no 'chunks' array")
            self.chunks = np.asarray(data["chunks"], dtype=np.float32)
        self.i = 0

    def reset(self, seed: int) -> None:
        self.i = 0

    def infer(self, obs):
        chunk = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        return chunk


BACKENDS = ("sim_scripted", "replay", "openpi", "lerobot")


def make_backend(kind: str, **kwargs) -> VLABackend:
    """Build a backend; the network/model backends import their libraries only when chosen."""
    if kind == "sim_scripted":
        return SimScriptedBackend(kwargs["task"], kwargs["horizon"])
    if kind == "replay":
        return ReplayBackend(kwargs["replay_path"])
    if kind == "openpi":
        from resrl.vla.openpi_backend import OpenPIBackend
        return OpenPIBackend(kwargs["host"], kwargs["port"], kwargs["horizon"], kwargs.get("prompt", ""),
                             kwargs.get("action_space", "eef_absolute"), kwargs.get("kinematics", "franka"),
                             kwargs.get("connect_timeout_s", 2.0), kwargs.get("timeout_s", 5.0),
                             kwargs.get("api_key", ""))
    if kind == "lerobot":
        from resrl.vla.lerobot_backend import LeRobotBackend
        return LeRobotBackend(kwargs["checkpoint_dir"], kwargs["horizon"], kwargs.get("prompt", ""),
                              kwargs.get("device", "cpu"), kwargs.get("action_space", "eef_absolute"),
                              kwargs.get("kinematics", "franka"))
    raise VLAError(f"unknown VLA backend '{kind}' ({' | '.join(BACKENDS)})")
