"""The arbiter core (ROS-free): VGM gating, VLA chunk scheduling and the safety filter.

``config/arbiter.yaml`` holds the documented defaults; ``load_arbiter_config`` reads it (or an
override file) strictly into ``ArbiterConfig``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from resrl.arbiter.chunks import ChunkConfig, ChunkInfo, ChunkScheduler
from resrl.arbiter.safety import SafetyConfig, SafetyDecision, SafetyFilter, WorkspaceBox, clamp_action
from resrl.arbiter.vgm import MODES, GateReport, VGMArbiter, VGMConfig, compose
from resrl.configs import from_dict, load_yaml


@dataclass
class ArbiterConfig:
    """Top-level sections of config/arbiter.yaml."""

    vgm: VGMConfig = field(default_factory=VGMConfig)
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


def load_arbiter_config(path: str | Path) -> ArbiterConfig:
    return from_dict(ArbiterConfig, load_yaml(path), where=str(path))


__all__ = [
    "MODES", "ArbiterConfig", "ChunkConfig", "ChunkInfo", "ChunkScheduler", "GateReport",
    "SafetyConfig", "SafetyDecision", "SafetyFilter", "VGMArbiter", "VGMConfig", "WorkspaceBox",
    "clamp_action", "compose", "load_arbiter_config",
]
