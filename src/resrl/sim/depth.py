"""Depth conversions (numpy only, ROS-free).

``metric_to_relative_depth`` mimics what a monocular relative-depth model such as
Depth-Anything-V2 outputs after the usual visualisation normalisation: an inverse-depth
(disparity-like) map, min-max normalised per frame to 0..255 uint8, near = bright.
``sensor_depth_to_uint16_mm`` produces a RealSense-style aligned depth image (16UC1, millimetres,
0 = no data) for a ``sensor_msgs/Image``.
"""
from __future__ import annotations

import numpy as np


def valid_depth_mask(depth_m, min_depth: float = 1e-3, max_depth: float = float("inf")) -> np.ndarray:
    d = np.asarray(depth_m, dtype=np.float64)
    return np.isfinite(d) & (d > min_depth) & (d < max_depth)


def metric_to_relative_depth(depth_m, min_depth: float = 1e-3, max_depth: float = 20.0) -> np.ndarray:
    """Metric depth (H, W) in m -> relative depth uint8 (H, W): inverse depth normalised per frame.

    Pixels with non-finite, <= ``min_depth`` or >= ``max_depth`` depth (no return, sky/background
    at the far plane) are invalid and map to 0 (the far/black end). Among valid pixels the nearest
    maps to 255 and the farthest to 0, monotone in between. A frame whose valid pixels all share
    one depth maps them to 255; a frame without valid pixels is all 0.
    """
    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    valid = valid_depth_mask(d, min_depth, max_depth)
    out = np.zeros(d.shape, dtype=np.uint8)
    if not valid.any():
        return out
    inv = np.zeros_like(d)
    inv[valid] = 1.0 / d[valid]
    lo = inv[valid].min()
    hi = inv[valid].max()
    if hi - lo <= 1e-12:
        out[valid] = 255
        return out
    scaled = (inv[valid] - lo) / (hi - lo) * 255.0
    out[valid] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def sensor_depth_to_uint16_mm(depth_m, max_depth: float = 10.0, min_depth: float = 1e-3) -> np.ndarray:
    """Metric depth (H, W) in m -> uint16 millimetres (16UC1), 0 where invalid or out of range."""
    d = np.asarray(depth_m, dtype=np.float64)
    valid = valid_depth_mask(d, min_depth, max_depth)
    mm = np.zeros(d.shape, dtype=np.uint16)
    mm[valid] = np.clip(np.rint(d[valid] * 1000.0), 1, 65535).astype(np.uint16)
    return mm


def uint16_mm_to_metric(depth_mm) -> np.ndarray:
    """Inverse of ``sensor_depth_to_uint16_mm``: float32 metres, NaN where 0 (no data)."""
    d = np.asarray(depth_mm).astype(np.float32) / 1000.0
    d[np.asarray(depth_mm) == 0] = np.nan
    return d
