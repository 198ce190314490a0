"""The built-in VLA backends behind one interface (``resrl.vla.base``): ``infer(obs) -> (H, D)``
absolute actions, VLAError on failure.

Real backends: ``openpi_backend`` (websocket policy server) and ``lerobot_backend`` (local
checkpoint), built here from their typed configs and imported only when chosen; ``action_mapping``
maps their native action spaces to absolute EE targets. ``replay`` replays recorded chunks. The
sim stand-in lives with the simulator (``resrl.sim.vla_stand_in``). ``make_backend`` and the
registry: ``resrl.vla.base``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resrl.vla.base import (BACKENDS, LeRobotConfig, OpenPIConfig, ReplayConfig, VLABackend, VLAError,  # noqa: F401
                            check_chunk, make_backend)


class ReplayBackend:
    """Replays recorded chunks (an .npz with `chunks` (N, H, D)) in order, looping."""

    name = "replay"

    def __init__(self, cfg: ReplayConfig):
        p = Path(cfg.replay_path)
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


def build_openpi(cfg: OpenPIConfig) -> VLABackend:
    from resrl.vla.openpi_backend import OpenPIBackend
    return OpenPIBackend(cfg.host, cfg.port, cfg.horizon, cfg.prompt, cfg.action_space, cfg.kinematics,
                         cfg.connect_timeout_s, cfg.timeout_s, cfg.api_key)


def build_lerobot(cfg: LeRobotConfig) -> VLABackend:
    from resrl.vla.lerobot_backend import LeRobotBackend
    return LeRobotBackend(cfg.checkpoint_dir, cfg.horizon, cfg.prompt, cfg.device, cfg.action_space, cfg.kinematics,
                          vlm_dir=cfg.vlm_dir)
