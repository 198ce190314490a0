"""Residual forward latency at batch 1 (the control-loop cost); prints one JSON object.

    python benchmarks/bench_models.py [--iters 200] [--warmup 20] [--threads N]

Image residual at 96/128/224 px, full ResNet-18 (paper) and 3 stages, eager and
``fuse_for_inference`` (conv+BN folded, channels_last); object-centric residual; and the
arbiter's per-step critic call (one trunk pass, Q on 2 actions, V). Targets on the 2-core
dev CPU: image residual at 128 px <= 10 ms, object-centric <= 0.5 ms.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resrl.models import ModelConfig, build_critic, build_residual, fuse_for_inference  # noqa: E402
import torchvision  # noqa: E402

IMAGE_TARGET_MS = 10.0  # at 128 px
OBJECT_TARGET_MS = 0.5


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(fn: Callable[[], object], warmup: int, iters: int) -> dict:
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            fn()
            times.append((time.perf_counter_ns() - t0) / 1e6)
    times.sort()
    return {"median_ms": round(statistics.median(times), 3),
            "p99_ms": round(times[max(0, math.ceil(0.99 * len(times)) - 1)], 3),
            "min_ms": round(times[0], 3)}


def image_obs(size: int) -> dict:
    return {"state": torch.randn(1, 7), "base_action": torch.randn(1, 7),
            "image": torch.randint(0, 256, (1, size, size, 3), dtype=torch.uint8),
            "depth": torch.randint(0, 256, (1, size, size), dtype=torch.uint8)}


def object_obs(num_objects: int) -> dict:
    return {"state": torch.randn(1, 7), "base_action": torch.randn(1, 7),
            "object_poses": torch.randn(1, num_objects * 7), "object_conf": torch.ones(1, num_objects)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    results = []
    for size in (96, 128, 224):
        for stages in (4, 3):
            cfg = ModelConfig(obs_mode="image", image_size=size, encoder_stages=stages)
            policy = build_residual(cfg).eval()
            obs = image_obs(size)
            params = sum(p.numel() for p in policy.parameters())
            for variant, model in (("eager", policy), ("fused_channels_last", fuse_for_inference(policy))):
                results.append({"model": "image_residual", "image_size": size, "encoder_stages": stages,
                                "variant": variant, "params": params,
                                **measure(lambda: model(obs), args.warmup, args.iters)})

    cfg = ModelConfig(obs_mode="object", num_objects=2)
    policy, obs = build_residual(cfg).eval(), object_obs(2)
    results.append({"model": "object_residual", "num_objects": 2, "actor_hidden": list(cfg.actor_hidden),
                    "variant": "eager", "params": sum(p.numel() for p in policy.parameters()),
                    **measure(lambda: policy(obs), args.warmup, args.iters * 5)})

    # Arbiter step: Q(s, a_VLA + a_res), Q(s, a_VLA) and V(s) from one trunk pass.
    for cfg, obs in ((ModelConfig(obs_mode="image", image_size=128, encoder_stages=3), image_obs(128)),
                     (ModelConfig(obs_mode="object", num_objects=2), object_obs(2))):
        critic = fuse_for_inference(build_critic(cfg)) if cfg.obs_mode == "image" else build_critic(cfg).eval()
        actions = torch.randn(2, 1, 7)
        row = {"model": "critic_arbiter_step", "obs_mode": cfg.obs_mode, "ensemble_size": cfg.ensemble_size,
               "variant": "fused_channels_last" if cfg.obs_mode == "image" else "eager"}
        if cfg.obs_mode == "image":
            row.update(image_size=128, encoder_stages=3)
        results.append({**row, **measure(lambda: critic.q_and_v(obs, actions), args.warmup, args.iters)})

    def best(size: int, stages: int) -> float:
        return min(r["median_ms"] for r in results if r["model"] == "image_residual"
                   and r["image_size"] == size and r["encoder_stages"] == stages)

    obj_ms = next(r["median_ms"] for r in results if r["model"] == "object_residual")
    print(json.dumps({
        "machine": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "torch": torch.__version__, "torchvision": torchvision.__version__, "threads": torch.get_num_threads(),
        "batch": 1, "warmup": args.warmup, "iters": args.iters,
        "results": results,
        "targets": {
            "image_128px_ms": IMAGE_TARGET_MS,
            "image_128px_full_resnet18_best_median_ms": best(128, 4),
            "image_128px_full_resnet18_meets": best(128, 4) <= IMAGE_TARGET_MS,
            "image_128px_3_stages_best_median_ms": best(128, 3),
            "image_128px_3_stages_meets": best(128, 3) <= IMAGE_TARGET_MS,
            "object_ms": OBJECT_TARGET_MS,
            "object_median_ms": obj_ms,
            "object_meets": obj_ms <= OBJECT_TARGET_MS,
        },
    }, indent=1))


if __name__ == "__main__":
    main()
