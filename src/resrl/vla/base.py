"""The VLA layer's base: the error every backend raises, the backend interface, the chunk check,
and the registry of backends with their typed configs.

Every backend module imports this one and this one imports no backend, no simulator and no ROS:
a backend is named in ``BACKENDS`` by where its factory lives ("module:attribute") and imported
only when it is chosen, so the openpi / LeRobot client libraries (and the sim stand-in's MuJoCo)
load only for the backend that is used.

``obs`` is a dict with at least "state" (7,) and, depending on the backend, "image" (H, W, 3)
uint8, "depth", "instruction" and privileged sim keys ("object_pose", "target_pose"). ``infer``
returns an (H, D) chunk of absolute actions or raises VLAError; the chunk provider then retries
and the arbiter holds the robot when the current chunk runs out.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Protocol

import numpy as np


class VLAError(RuntimeError):
    """The base policy could not produce a chunk (server down, bad output, bad configuration, ...)."""


class VLABackend(Protocol):
    name: str

    def infer(self, obs: Dict[str, np.ndarray]) -> np.ndarray: ...


def check_chunk(chunk, horizon: int, action_dim: int, source: str) -> np.ndarray:
    """``chunk`` as a finite float32 (1..horizon, action_dim) array, or VLAError naming ``source``."""
    arr = np.asarray(chunk, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != action_dim or not 1 <= arr.shape[0] <= horizon:
        raise VLAError(f"{source}: chunk of shape {arr.shape}, expected (<= {horizon}, {action_dim})")
    if not np.all(np.isfinite(arr)):
        raise VLAError(f"{source}: chunk has non-finite values")
    return arr


# --------------------------------------------------------------------------------------------
# typed backend configs
# --------------------------------------------------------------------------------------------
def _positive(name: str, value) -> None:
    if not value > 0:
        raise VLAError(f"VLA backend: {name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class SimScriptedConfig:
    """The sim stand-in VLA (resrl.sim.scripted): a task config name and the chunk length."""
    task: str = "pick_place"
    horizon: int = 16

    def __post_init__(self) -> None:
        _positive("horizon", self.horizon)


@dataclass(frozen=True)
class ReplayConfig:
    """Recorded chunks replayed in order: an .npz with ``chunks`` (N, H, D)."""
    replay_path: str = ""

    def __post_init__(self) -> None:
        if not self.replay_path:
            raise VLAError("replay backend: replay_path is empty")


@dataclass(frozen=True)
class OpenPIConfig:
    """An openpi policy server (websocket) and how to map its actions (resrl.vla.action_mapping)."""
    host: str = "127.0.0.1"
    port: int = 8000
    horizon: int = 16
    prompt: str = ""
    action_space: str = "eef_absolute"
    kinematics: str = "franka"
    connect_timeout_s: float = 2.0
    timeout_s: float = 5.0
    api_key: str = ""

    def __post_init__(self) -> None:
        _positive("horizon", self.horizon)
        _positive("connect_timeout_s", self.connect_timeout_s)
        _positive("timeout_s", self.timeout_s)
        if not 0 < int(self.port) < 65536:
            raise VLAError(f"openpi backend: port must be in 1..65535, got {self.port!r}")


@dataclass(frozen=True)
class LeRobotConfig:
    """A local LeRobot policy checkpoint directory (``save_pretrained`` output)."""
    checkpoint_dir: str = ""
    horizon: int = 16
    prompt: str = ""
    device: str = "cpu"
    action_space: str = "eef_absolute"
    kinematics: str = "franka"
    vlm_dir: str = ""            # SmolVLA: local copy of its VLM (config, tokenizer, processor)

    def __post_init__(self) -> None:
        _positive("horizon", self.horizon)


@dataclass(frozen=True)
class BackendSpec:
    config: type                 # the typed config the factory takes
    factory: str                 # "module:attribute", called as factory(config) -> VLABackend


BACKENDS: Dict[str, BackendSpec] = {
    "sim_scripted": BackendSpec(SimScriptedConfig, "resrl.sim.vla_stand_in:SimScriptedBackend"),
    "replay": BackendSpec(ReplayConfig, "resrl.vla.backends:ReplayBackend"),
    "openpi": BackendSpec(OpenPIConfig, "resrl.vla.backends:build_openpi"),
    "lerobot": BackendSpec(LeRobotConfig, "resrl.vla.backends:build_lerobot"),
}


def _spec(kind: str) -> BackendSpec:
    if kind not in BACKENDS:
        raise VLAError(f"unknown VLA backend '{kind}' ({' | '.join(BACKENDS)})")
    return BACKENDS[kind]


def backend_config(kind: str, params: Mapping[str, Any]) -> Any:
    """The typed config of backend ``kind`` from ``params``, a flat dict that may also hold the
    other backends' settings (the chunk node declares them all). A name that no backend knows is
    an error (a typo must not silently fall back to a default)."""
    spec = _spec(kind)
    known = {f.name for s in BACKENDS.values() for f in dataclasses.fields(s.config)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise VLAError(f"VLA backend '{kind}': unknown parameters {unknown}; known: {sorted(known)}")
    mine = {f.name for f in dataclasses.fields(spec.config)}
    return spec.config(**{k: v for k, v in params.items() if k in mine})


def make_backend(kind: str, **params) -> VLABackend:
    """Build backend ``kind`` from its typed config; its module is imported only now."""
    cfg = backend_config(kind, params)
    module, _, attr = _spec(kind).factory.partition(":")
    factory: Callable[[Any], VLABackend] = getattr(importlib.import_module(module), attr)
    return factory(cfg)
