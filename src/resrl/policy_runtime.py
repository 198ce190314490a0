"""Networks at run time: numpy observation -> residual action / critic values, and weight hot-swap.

Shared by the residual-policy node (actor) and the arbiter node (critic). ROS-free: the nodes pass
the payload of a PolicyWeights message in and get numpy out.
"""
from __future__ import annotations

import hashlib
import json
import threading
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from resrl.models import build_critic, build_residual
from resrl.models.checkpoint import deserialize_into, serialize_state_dict
from resrl.models.config import ModelConfig
from resrl.models.encoders import fuse_for_inference

OBS_KEYS = {"image": ("state", "base_action", "image", "depth"),
            "object": ("state", "base_action", "object_poses", "object_conf")}


def obs_keys(obs_mode: str) -> Tuple[str, ...]:
    if obs_mode not in OBS_KEYS:
        raise ValueError(f"obs_mode must be one of {sorted(OBS_KEYS)}, got '{obs_mode}'")
    return OBS_KEYS[obs_mode]


def to_batch(obs: Dict[str, np.ndarray], obs_mode: str, repeat: int = 1) -> Dict[str, torch.Tensor]:
    """One numpy observation -> a torch batch of ``repeat`` identical rows."""
    batch = {}
    for key in obs_keys(obs_mode):
        t = torch.from_numpy(np.ascontiguousarray(obs[key]))
        batch[key] = t.unsqueeze(0).expand(repeat, *t.shape) if repeat > 1 else t.unsqueeze(0)
    return batch


class WeightsError(ValueError):
    """A weights message could not be applied; the previous weights stay in use."""


def pack_weights(module: torch.nn.Module) -> Tuple[bytes, str]:
    payload = serialize_state_dict(module)
    return payload, hashlib.sha256(payload).hexdigest()


class PolicyRuntime:
    """Holds one network (``kind`` = "residual" or "critic") and swaps in new versions atomically."""

    def __init__(self, kind: str, cfg: ModelConfig, threads: int = 1):
        if kind not in ("residual", "critic"):
            raise ValueError(f"kind must be residual or critic, got {kind}")
        torch.set_num_threads(max(1, threads))
        self.kind = kind
        self.cfg = cfg
        self.module = fuse_for_inference(self._build(cfg))
        self.version = 0
        self._lock = threading.Lock()

    def _build(self, cfg: ModelConfig) -> torch.nn.Module:
        module = build_residual(cfg) if self.kind == "residual" else build_critic(cfg)
        return module.eval()

    def load(self, payload: bytes, sha256: str, version: int, config_json: str = "") -> None:
        """Apply serialized weights; on any error the old module and version stay."""
        if version <= self.version:
            raise WeightsError(f"{self.kind} weights version {version} is not newer than {self.version}")
        cfg = self.cfg
        if config_json:
            try:
                cfg = ModelConfig.from_dict(json.loads(config_json))
            except Exception as exc:
                raise WeightsError(f"{self.kind} weights v{version}: bad config_json ({exc})") from exc
        fresh = self._build(cfg)
        try:
            deserialize_into(fresh, bytes(payload), sha256 or None)
        except Exception as exc:
            raise WeightsError(f"{self.kind} weights v{version}: {exc}") from exc
        fused = fuse_for_inference(fresh)   # conv+BN folded, channels_last: the control-loop copy
        with self._lock:
            self.module, self.cfg, self.version = fused, cfg, int(version)

    @torch.inference_mode()
    def residual(self, obs: Dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            module = self.module
        out = module(to_batch(obs, self.cfg.obs_mode))[0].numpy().astype(np.float32)
        return out

    @torch.inference_mode()
    def critic(self, obs: Dict[str, np.ndarray], a_vla: np.ndarray,
               a_res: Optional[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, float]:
        """(Q_i(s, a_VLA + a_res), Q_i(s, a_VLA), V(s)) for the VGM gates."""
        with self._lock:
            module = self.module
        return gate_inputs(module, obs, a_vla, a_res, self.cfg.obs_mode)


@torch.inference_mode()
def gate_inputs(critic: torch.nn.Module, obs: Dict[str, np.ndarray], a_vla: np.ndarray,
                a_res: Optional[np.ndarray], obs_mode: str) -> Tuple[np.ndarray, np.ndarray, float]:
    """(Q_i(s, a_VLA + a_res), Q_i(s, a_VLA), V(s)) in one encoder pass (Q on N=2 actions, B=1)."""
    a_comb = a_vla if a_res is None else a_vla + a_res
    actions = torch.from_numpy(np.stack([a_comb, a_vla]).astype(np.float32))[:, None]
    q, v = critic.q_and_v(to_batch(obs, obs_mode), actions)   # (E, 2, 1), (1,)
    q = q[..., 0].numpy()
    return q[:, 0], q[:, 1], float(v[0])
