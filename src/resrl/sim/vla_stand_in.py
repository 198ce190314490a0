"""The sim stand-in VLA as a chunk backend (``vla.backend: sim_scripted``): right intent,
systematic last-mile errors (see resrl.sim.scripted). It lives with the simulator so that the VLA
layer (resrl.vla) imports no sim code; ``resrl.vla.base.BACKENDS`` names it."""
from __future__ import annotations

from resrl.sim.scripted import ScriptedVLA, load_task_config
from resrl.vla.base import SimScriptedConfig


class SimScriptedBackend:
    name = "sim_scripted"

    def __init__(self, cfg: SimScriptedConfig):
        self.policy = ScriptedVLA(load_task_config(cfg.task, overrides={"vla": {"chunk_size": cfg.horizon}}))

    def reset(self, seed: int) -> None:
        self.policy.reset()

    def infer(self, obs):
        return self.policy.infer(obs)
