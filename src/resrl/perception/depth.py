"""Relative depth for the 6-channel residual input.

Two sources with the same output (uint8, near = bright, per-frame normalised inverse depth, the
form Depth-Anything-V2's relative head produces):
- ``SensorRelativeDepth``: from a metric depth image (RealSense 16UC1 mm, or sim metres);
- ``DepthAnythingV2``: the Depth-Anything-V2 network via transformers, from a local checkpoint
  directory (no download), or built from its config with random weights for tests/benchmarks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np


def valid_depth_mask(depth_m, min_depth: float = 1e-3, max_depth: float = float("inf")) -> np.ndarray:
    d = np.asarray(depth_m, dtype=np.float64)
    return np.isfinite(d) & (d > min_depth) & (d < max_depth)


def normalise_inverse(inv: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse depth -> uint8 over the valid pixels of this frame: nearest 255, farthest 0,
    invalid 0; a frame whose valid pixels share one depth is 255 there."""
    out = np.zeros(inv.shape, dtype=np.uint8)
    if not valid.any():
        return out
    lo, hi = float(inv[valid].min()), float(inv[valid].max())
    if hi - lo <= 1e-12:
        out[valid] = 255
        return out
    out[valid] = np.clip(np.rint((inv[valid] - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
    return out


def metric_to_relative_depth(depth_m, min_depth: float = 1e-3, max_depth: float = 20.0) -> np.ndarray:
    """Metric depth (H, W) in m -> relative depth uint8 (H, W): inverse depth normalised per frame.

    Non-finite, <= ``min_depth`` or >= ``max_depth`` pixels (no return, background at the far
    plane) are invalid and map to 0 (the far end).
    """
    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    valid = valid_depth_mask(d, min_depth, max_depth)
    inv = np.zeros_like(d)
    inv[valid] = 1.0 / d[valid]
    return normalise_inverse(inv, valid)


def sensor_depth_to_uint16_mm(depth_m, max_depth: float = 10.0, min_depth: float = 1e-3) -> np.ndarray:
    """Metric depth (H, W) in m -> RealSense-style uint16 millimetres (16UC1), 0 where invalid."""
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


def resize_nearest(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize by nearest neighbour (exact for integer factors; no OpenCV needed)."""
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    rows = (np.arange(size) * h // size).clip(0, h - 1)
    cols = (np.arange(size) * w // size).clip(0, w - 1)
    return img[rows][:, cols]


def resize_area(img: np.ndarray, size: int) -> np.ndarray:
    """Square resize by block averaging when the input is an integer multiple, else nearest."""
    h, w = img.shape[:2]
    if h % size == 0 and w % size == 0 and (h > size or w > size):
        fh, fw = h // size, w // size
        blocks = img.reshape(size, fh, size, fw, *img.shape[2:]).astype(np.float32)
        return blocks.mean(axis=(1, 3)).round().astype(img.dtype)
    return resize_nearest(img, size)


class SensorRelativeDepth:
    name = "sensor"

    def __init__(self, depth_scale: float = 0.001):
        self.depth_scale = depth_scale   # 16UC1 RealSense: mm -> m

    def __call__(self, rgb: np.ndarray, depth: Optional[np.ndarray]) -> np.ndarray:
        if depth is None:
            raise ValueError("sensor relative depth needs a depth image")
        return metric_to_relative_depth(np.asarray(depth, dtype=np.float64) * self.depth_scale)


class DepthAnythingV2:
    """Depth-Anything-V2 relative depth through transformers (local weights only)."""

    name = "depth_anything_v2"

    def __init__(self, checkpoint_dir: str = "", input_size: int = 224, config=None, threads: int = 1):
        import torch
        from transformers import AutoModelForDepthEstimation, DepthAnythingConfig, DepthAnythingForDepthEstimation
        torch.set_num_threads(max(1, threads))
        if checkpoint_dir:
            path = Path(checkpoint_dir)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"Depth-Anything-V2 checkpoint dir {path} has no config.json")
            self.model = AutoModelForDepthEstimation.from_pretrained(str(path), local_files_only=True)
        else:  # architecture from config, random weights (tests, latency benchmarks)
            self.model = DepthAnythingForDepthEstimation(config or DepthAnythingConfig())
        self.model.eval()
        self.input_size = input_size
        self.mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
        self.std = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def __call__(self, rgb: np.ndarray, depth: Optional[np.ndarray] = None) -> np.ndarray:
        import torch
        x = resize_nearest(rgb, self.input_size).astype(np.float32) / 255.0
        x = ((x - self.mean) / self.std).transpose(2, 0, 1)[None]
        with torch.inference_mode():
            pred = self.model(pixel_values=torch.from_numpy(np.ascontiguousarray(x))).predicted_depth[0].numpy()
        # The relative head predicts disparity-like values (large = near), like inverse depth.
        rel = normalise_inverse(pred, np.isfinite(pred))
        return resize_nearest(rel, rgb.shape[0]) if rgb.shape[0] == rgb.shape[1] else rel


def make_depth_source(kind: str, checkpoint_dir: str = "", input_size: int = 224, depth_scale: float = 0.001):
    if kind == "sensor":
        return SensorRelativeDepth(depth_scale)
    if kind == "depth_anything_v2":
        return DepthAnythingV2(checkpoint_dir, input_size)
    raise ValueError(f"unknown depth source '{kind}' (sensor | depth_anything_v2)")
