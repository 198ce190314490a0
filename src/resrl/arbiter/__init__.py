"""The arbiter core (ROS-free): VGM gating, VLA chunk scheduling and the safety filter.

The dataclasses document their defaults; the arbiter node's parameters are
resrl.node_config.ArbiterNodeConfig (vgm.*, chunks.*) and SharedConfig (safety.*), set in the
graph YAML (config/sim_vgm.yaml, ...).
"""
from __future__ import annotations

from resrl.arbiter.chunks import ChunkConfig, ChunkInfo, ChunkScheduler
from resrl.arbiter.safety import SafetyConfig, SafetyDecision, SafetyFilter, WorkspaceBox, clamp_action
from resrl.arbiter.vgm import MODES, GateReport, VGMArbiter, VGMConfig, compose

__all__ = [
    "MODES", "ChunkConfig", "ChunkInfo", "ChunkScheduler", "GateReport",
    "SafetyConfig", "SafetyDecision", "SafetyFilter", "VGMArbiter", "VGMConfig", "WorkspaceBox",
    "clamp_action", "compose",
]
