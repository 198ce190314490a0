"""Probe: does exploration noise, not the learned residual, get the stagnation trap's training
episodes to succeed? One warm-up per seed, then on the same weights (no learning): 20 evaluation
episodes (deterministic residual, as the suite's frozen blocks) and 20 episodes with the training
exploration noise (resrl.residual: exploration_noise of config/sim_vgm.yaml), same start states.

    python benchmarks/results/suite/probes/noise_probe.py pick_place_stagnation 0 1
"""
import json
import sys
import time

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

task, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
for seed in seeds:
    t0 = time.monotonic()
    sess = suite._warmed_up(task, seed)
    sess.train_enabled = False           # no update: the warm-up's weights throughout
    row = {"task": task, "seed": seed, "warmup_s": round(time.monotonic() - t0)}
    for kind in ("eval", "train"):       # "train": the residual with its exploration noise
        ok = [bool(sess.run_episode(kind, suite._eval_seed(seed, i)).success) for i in range(suite.EVAL_EPISODES)]
        row[f"{kind}_successes"] = sum(ok)
    row["wall_s"] = round(time.monotonic() - t0)
    print(json.dumps(row), flush=True)
