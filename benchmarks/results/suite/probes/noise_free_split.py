"""Train-episode outcomes of a paired online run, split into episodes with and without exploration
noise (ResidualNodeConfig.noise_free_every: episode ids divisible by N run the deterministic policy).

    python benchmarks/results/suite/probes/noise_free_split.py "<task dir under runs/online>" [N] [NUM_DEMOS]

Episode ids are the session plan's record index: the demos first (0 .. NUM_DEMOS-1; the paired
runner's warm-up-only blocks run on a fork and take no id), then train episodes and evaluation
blocks in order. A block ends at the train steps stored in ``eval_train_steps`` and holds
``eval_blocks[k][2]`` episodes, so the ids are rebuilt from the stored train episodes' lengths.
Prints one JSON line per (arm, seed)."""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1] / "runs" / "online"


def split(run: dict, every: int, num_demos: int) -> dict:
    next_id, cum, block = num_demos, 0, 0
    blocks = list(zip(run["eval_blocks"], run["eval_train_steps"]))
    quiet, noisy = [], []
    for ep in run["train_episodes"]:
        (quiet if every and next_id % every == 0 else noisy).append(ep)
        next_id += 1
        cum += ep["steps"]
        while block < len(blocks) and blocks[block][1] == cum:
            next_id += blocks[block][0][2]
            block += 1

    def rate(eps):
        return round(float(np.mean([e["success"] for e in eps])), 3) if eps else None

    def share(eps, gate):   # step-weighted share of train steps with the gate on
        steps = sum(e["steps"] for e in eps)
        return round(sum(e["gate_activity"].get(gate, 0.0) * e["steps"] for e in eps) / steps, 3) if steps else None

    return {"arm": run["arm"], "seed": run["seed"], "solved": run["solved"],
            "solved_at_train_steps": next((t for (_, s, n), t in blocks if s == n == 20), None),
            "final": run["final"]["successes"], "train_success_noisy": rate(noisy), "noisy_episodes": len(noisy),
            "train_success_noise_free": rate(quiet), "noise_free_episodes": len(quiet),
            "mean_lambda_train": round(run["mean_lambda_train"], 3),
            **{f"{gate}_on": share(run["train_episodes"], gate) for gate in ("greedy", "harm", "escape")},
            **{f"{gate}_on_noise_free": share(quiet, gate) for gate in ("harm", "escape")},
            "v_last20_failed_final": v_stall(run["final"].get("gate_trace"))}


def v_stall(trace):
    """Mean V over the last 20 steps of the final block's stored failed episode (None: none failed
    or the run ended at 20/20): what the critic says where the deterministic policy stalls."""
    if not trace or trace["success"]:
        return None
    return round(float(np.mean([row[5] for row in trace["steps"][-20:]])), 3)


def main() -> int:
    task = sys.argv[1]
    every = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    num_demos = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    for path in sorted((ROOT / task).glob("*.json")):
        run = json.loads(path.read_text())
        print(json.dumps(split(run, every if "noise-free" in run["arm"] else 0, num_demos)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
