"""Fingerprint of what a refactor must not change: the three algorithms through the Learner
(default sampler, ReplayBuffers, Cal-QL warm-up then online steps; every network hashed, last
metrics) and scripted sim rollouts (success, length, the state / object-pose trajectory hashed
at float32 and kept to compare). Prints JSON.

Compare two trees with the same script:
    git archive <old-rev> src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src:$PYTHONPATH python benchmarks/refactor_fingerprint.py --out /tmp/old.json
    python benchmarks/refactor_fingerprint.py --out /tmp/new.json --compare /tmp/old.json
"""
from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np

try:  # torch's triton must load before MuJoCo's OSMesa (both bring an LLVM; the other order segfaults)
    import triton  # noqa: F401
except ImportError:
    pass
import torch

SPEC = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
        "object_poses": ((7,), "float32"), "object_conf": ((1,), "float32")}


def _fill(buf, rng, episodes, intervention, steps=8):
    def obs():
        return {"state": rng.normal(size=7).astype(np.float32), "base_action": rng.normal(size=7).astype(np.float32),
                "object_poses": rng.normal(size=7).astype(np.float32), "object_conf": np.ones(1, np.float32)}
    for _ in range(episodes):
        buf.start_episode(obs())
        for t in range(steps):
            buf.add_step(rng.normal(size=7).astype(np.float32), rng.normal(scale=0.01, size=7).astype(np.float32),
                         float(rng.uniform()), float(t == steps - 1), obs(), done=t == steps - 1,
                         intervention=intervention)
        buf.end_episode(True)


def _hash(module) -> str | None:
    if module is None:
        return None
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def learner_fingerprint(train_steps: int = 12) -> dict:
    from resrl.algos.learner import Learner, LearnerConfig
    from resrl.models import build_critic, build_residual
    from resrl.models.config import ModelConfig
    from resrl.replay import ReplayBuffer

    out = {}
    for algo in ("calql", "rlpd", "td3"):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        cfg = ModelConfig(obs_mode="object", num_objects=1)
        online, demos = ReplayBuffer(SPEC, 1000, n_step=3), ReplayBuffer(SPEC, 1000, name="demos", n_step=3)
        _fill(online, rng, 6, False)
        _fill(demos, rng, 6, True)
        learner = Learner(build_residual(cfg), build_critic(cfg),
                          LearnerConfig(algo=algo, batch_size=32, warmup_steps=5, learning_starts=0, seed=3))
        learner.warmup(demos)
        for _ in range(train_steps):
            metrics = learner.train_step(online, demos)
        a = learner.agent
        out[algo] = {"actor": _hash(a.actor), "critic": _hash(a.critic), "critic_target": _hash(a.critic_target),
                     "actor_target": _hash(a.actor_target), "metrics": {k: float(v) for k, v in sorted(metrics.items())}}
    return out


def sim_fingerprint(seeds=(0, 1, 2)) -> dict:
    from resrl.sim.franka_env import FrankaTableEnv
    from resrl.sim.scripted import ScriptedVLA, _as_task_config, run_episode

    out = {}
    for task in ("pick_lift", "pick_place"):
        tc = _as_task_config(task)
        env, vla = FrankaTableEnv(tc.sim), ScriptedVLA(tc)
        for mode in ("vla", "expert"):
            for seed in seeds:
                r = run_episode(env, mode, seed, vla=vla, record=True)
                out[f"{task}/{mode}/{seed}"] = {
                    "success": r["success"], "steps": r["steps"],
                    "state": np.stack([o["state"] for o in r["obs"]]).astype(np.float32).tolist(),
                    "object_poses": np.stack([o["object_poses"] for o in r["obs"]]).astype(np.float32).tolist()}
        env.close()
    return out


def compare(new: dict, old: dict) -> dict:
    learner_same = {k: {f: new["learner"][k][f] == old["learner"][k][f] for f in new["learner"][k]}
                    for k in new["learner"]}
    sim = {}
    for k, n in new["sim"].items():
        o = old["sim"][k]
        steps = min(n["steps"], o["steps"])
        sim[k] = {"success": [o["success"], n["success"]], "steps": [o["steps"], n["steps"]],
                  "max_abs_d_state": float(np.abs(np.subtract(n["state"][:steps], o["state"][:steps])).max()),
                  "max_abs_d_object": float(np.abs(np.subtract(n["object_poses"][:steps],
                                                               o["object_poses"][:steps])).max())}
    return {"learner_identical": learner_same, "sim": sim}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the full fingerprint (with trajectories) here")
    ap.add_argument("--compare", help="a fingerprint from another tree: print the comparison")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    fp = {"learner": learner_fingerprint(), "sim": sim_fingerprint()}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(fp, f)
    if args.compare:
        with open(args.compare) as f:
            print(json.dumps(compare(fp, json.load(f)), indent=1))
    else:
        print(json.dumps({"learner": fp["learner"],
                          "sim": {k: {"success": v["success"], "steps": v["steps"]} for k, v in fp["sim"].items()}},
                         indent=1))


if __name__ == "__main__":
    main()
