#!/usr/bin/env python3
"""Learner throughput: gradient updates per second on this machine's CPU.

Prints ONE JSON object. One "update" = one critic step (+ the actor step when it is due:
every step for RLPD/Cal-QL at UTD 1, every ``policy_delay`` for TD3), including the numpy ->
torch conversion of a fresh replay-shaped batch (sampling from the replay itself is not timed).

* state/object mode: batch 256, ensemble 2, hidden 256x2 (actor and critic), UTD 1 -- with
  ``resrl.models`` (object-centric policy + critic) when importable, else plain MLPs over
  [state, base_action] with the same interface (reported as "mlp_fallback").
* image mode: 64 px, batch 64, ``resrl.models`` image policy/critic (ResNet-18 trunk); skipped
  with a reason when resrl.models is not importable.

    python benchmarks/bench_learner.py [--seconds 5] [--threads N] [--algos rlpd,td3,calql]
                                       [--precisions fp32,bf16]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resrl.actions import ACTION_DIM, POSE_DIM, STATE_DIM  # noqa: E402
from resrl.algos.learner import make_agent  # noqa: E402

HIDDEN = (256, 256)
ENSEMBLE = 2


# ---- fallback networks (the model contract, no resrl.models) -------------------------------
def _mlp(i, hidden, o):
    layers = []
    for w in hidden:
        layers += [nn.Linear(i, w), nn.LayerNorm(w), nn.ReLU()]
        i = w
    return nn.Sequential(*layers, nn.Linear(i, o))


class MLPActor(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("xi", torch.tensor([0.03] * 3 + [0.1] * 3 + [1.0]))
        self.net = _mlp(STATE_DIM + ACTION_DIM, HIDDEN, ACTION_DIM)

    def forward(self, obs):
        return self.xi * torch.tanh(self.net(torch.cat([obs["state"], obs["base_action"]], -1)))


class MLPCritic(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleList(_mlp(STATE_DIM + 2 * ACTION_DIM, HIDDEN, 1) for _ in range(ENSEMBLE))
        self.v_head = _mlp(STATE_DIM + ACTION_DIM, HIDDEN, 1)

    def q(self, obs, action):
        x = torch.cat([obs["state"], obs["base_action"], action], -1)
        return torch.stack([h(x).squeeze(-1) for h in self.heads])

    def v(self, obs):
        return self.v_head(torch.cat([obs["state"], obs["base_action"]], -1)).squeeze(-1)


# ---- batches ----------------------------------------------------------------------------------
def make_obs(rng, n, mode, image_size=64):
    obs = {"state": rng.normal(size=(n, STATE_DIM)).astype(np.float32),
           "base_action": rng.normal(size=(n, ACTION_DIM)).astype(np.float32)}
    if mode == "object":
        obs["object_poses"] = rng.normal(size=(n, POSE_DIM)).astype(np.float32)
        obs["object_conf"] = np.ones((n, 1), np.float32)
    elif mode == "image":
        obs["image"] = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
        obs["depth"] = rng.integers(0, 256, (n, image_size, image_size), dtype=np.uint8)
    return obs


def make_batch(rng, n, mode):
    return {"obs": make_obs(rng, n, mode), "next_obs": make_obs(rng, n, mode),
            "action": rng.normal(size=(n, ACTION_DIM)).astype(np.float32) * 0.05,
            "residual": rng.normal(size=(n, ACTION_DIM)).astype(np.float32) * 0.01,
            "lambda": np.ones(n, np.float32), "intervention": rng.random(n) < 0.1,
            "reward": (rng.random(n) < 0.1).astype(np.float32), "discount": np.full(n, 0.97, np.float32),
            "done": np.zeros(n, bool), "mc_return": rng.random(n).astype(np.float32)}


def build_nets(mode):
    if mode == "state":
        return MLPActor(), MLPCritic(), "mlp_fallback"
    from resrl.models import ModelConfig, build_critic, build_residual
    cfg = ModelConfig(obs_mode=mode, image_size=64, actor_hidden=HIDDEN, critic_hidden=HIDDEN,
                      ensemble_size=ENSEMBLE, num_objects=1)
    return build_residual(cfg), build_critic(cfg), "resrl.models"


def bench(algo, mode, batch_size, seconds, precision="fp32", warmup=5):
    """updates/s by wall clock, plus by process CPU time (cpu_updates_per_s = what one core
    sustains when nobody else competes for it; with 1 thread it is the uncontended rate)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    actor, critic, nets = build_nets(mode)
    agent = make_agent(algo, actor, critic, seed=0, precision=precision)
    batches = [make_batch(rng, batch_size, mode) for _ in range(8)]
    for i in range(warmup):
        agent.update([batches[i % len(batches)]])
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        agent.update([batches[n % len(batches)]])
        n += 1
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return {"updates_per_s": round(n / dt, 1), "cpu_updates_per_s": round(n / dc, 1),
            "ms_per_update": round(1e3 * dt / n, 2), "updates": n, "batch": batch_size, "nets": nets}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--algos", default="rlpd,td3,calql")
    ap.add_argument("--image-seconds", type=float, default=10.0)
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32,bf16")
    ap.add_argument("--batch-scaling", default="64,128",
                    help="extra object-mode rlpd batch sizes to time (empty: none)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    algos = args.algos.split(",")
    precs = args.precisions.split(",")
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
           "cpu": platform.processor() or platform.machine(), "load_avg_1m": round(os.getloadavg()[0], 2),
           "ensemble": ENSEMBLE, "hidden": list(HIDDEN), "utd": 1, "target_updates_per_s": 200}
    out["state"] = {f"{a}_{p}": bench(a, "state", 256, args.seconds, p) for p in precs for a in algos}
    try:
        import resrl.models  # noqa: F401
        have_models, why = True, ""
    except Exception as exc:  # noqa: BLE001 - report any import problem as the skip reason
        have_models, why = False, f"resrl.models not importable: {exc!r}"
    if have_models:
        out["object"] = {f"{a}_{p}": bench(a, "object", 256, args.seconds, p) for p in precs for a in algos}
        out["image_64px"] = {f"{a}_{p}": bench(a, "image", 64, args.image_seconds, p, warmup=2)
                             for p in precs for a in algos}
        sizes = [int(x) for x in args.batch_scaling.split(",") if x]
        out["object_rlpd_batch_scaling"] = {f"b{n}_{p}": bench("rlpd", "object", n, args.seconds, p)
                                            for p in precs for n in sizes}
    else:
        out["object"] = {"skipped": why}
        out["image_64px"] = {"skipped": why}
    for p in precs:
        rates = [v["updates_per_s"] for k in ("state", "object") if "skipped" not in out[k]
                 for name, v in out[k].items() if name.endswith(p)]
        out[f"min_updates_per_s_{p}"] = min(rates)
        out[f"meets_200_{p}"] = min(rates) >= 200
    print(json.dumps(out))


if __name__ == "__main__":
    main()
