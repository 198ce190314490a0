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


def normalise_inverse(inv: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse depth -> uint8 in 0..255 over the valid pixels of this frame (invalid -> 0)."""
    out = np.zeros(inv.shape, dtype=np.uint8)
    if not valid.any():
        return out
    lo, hi = float(inv[valid].min()), float(inv[valid].max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out[valid] = np.clip((inv[valid] - lo) * scale, 0, 255).astype(np.uint8) if scale else 255
    return out


def relative_from_metric(depth: np.ndarray, depth_scale: float = 1.0,
                         min_depth_m: float = 0.05, max_depth_m: float = 5.0) -> np.ndarray:
    """Metric depth (``depth * depth_scale`` metres; 0 / NaN = invalid) -> relative uint8 depth."""
    d = np.asarray(depth, dtype=np.float32) * depth_scale
    valid = np.isfinite(d) & (d >= min_depth_m) & (d <= max_depth_m)
    inv = np.zeros_like(d)
    inv[valid] = 1.0 / d[valid]
    return normalise_inverse(inv, valid)


def metric_to_uint16_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> RealSense-style 16UC1 millimetres (invalid -> 0)."""
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint16)


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
        return relative_from_metric(depth, self.depth_scale)


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
