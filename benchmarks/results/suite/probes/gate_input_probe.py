"""Probe: does the exploration noise turn the shipped gate's harm branch on in training episodes?
One warm-up per seed, then on the same weights (no learning) 20 *train* episodes per arm (the
residual with its exploration noise), same start states: the gate judging the residual as executed
(noise included, VGMConfig.greedy_input "executed": the "-executed-gate" arms) or the policy's own
action ("policy", the default since this probe: "vgm", "vgm-escape-amplify").

    python benchmarks/results/suite/probes/gate_input_probe.py "pick_place_stagnation@v_target=mc" 0 1 2 3 4
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

ARMS = ("static-1", "vgm-executed-gate", "vgm", "vgm-escape-amplify-executed-gate", "vgm-escape-amplify")
task, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
for seed in seeds:
    t0 = time.monotonic()
    sess = suite._warmed_up(task, seed)
    sess.train_enabled = False           # no update: the warm-up's weights throughout
    row = {"task": task, "seed": seed, "warmup_s": round(time.monotonic() - t0), "arms": {}}
    for arm in ARMS:
        suite._configure(sess, task, arm, seed)
        sess.train_enabled = False
        sess.noise_rng = np.random.default_rng(seed)   # the same exploration noise draws per arm
        eps = [sess.run_episode("train", suite._eval_seed(seed, i)) for i in range(suite.EVAL_EPISODES)]
        row["arms"][arm] = {"successes": sum(e.success for e in eps),
                            "harm": round(float(np.mean([e.gate_activity["harm"] for e in eps])), 3),
                            "escape": round(float(np.mean([e.gate_activity["escape"] for e in eps])), 3),
                            "mean_lambda": round(float(np.mean([e.mean_lambda for e in eps])), 3)}
    row["wall_s"] = round(time.monotonic() - t0)
    print(json.dumps(row), flush=True)
