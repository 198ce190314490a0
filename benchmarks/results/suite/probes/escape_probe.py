"""Probe: does perturbing the residual while the escape gate is latched (VGMConfig.escape_noise)
get a frozen policy out of the stagnation trap, and how does it compare with exploration noise on
every step? One warm-up per seed, then on the same weights (no learning), the same 20 evaluation
start states for each row:

* static-1         -- deterministic residual at lambda 1 (the suite's frozen block)
* static-1-noisy   -- the same with the training exploration noise on every step
* vgm              -- the shipped gate, deterministic
* vgm-escape-noise -- the shipped gate, exploration noise only while the escape gate is latched

    python benchmarks/results/suite/probes/escape_probe.py pick_place_stagnation 0 1 2 3 4
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

task, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
for seed in seeds:
    t0 = time.monotonic()
    sess = suite._warmed_up(task, seed)
    row = {"task": task, "seed": seed, "warmup_s": round(time.monotonic() - t0)}
    for name, arm, kind in (("static-1", "static-1", "eval"), ("static-1-noisy", "static-1", "train"),
                            ("vgm", "vgm", "eval"), ("vgm-escape-noise", "vgm-escape-noise", "eval")):
        suite._configure(sess, task, arm, seed)
        sess.train_enabled = False       # no update: the warm-up's weights throughout
        ok, escape = [], []
        for i in range(suite.EVAL_EPISODES):
            ok.append(bool(sess.run_episode(kind, suite._eval_seed(seed, i)).success))
            escape.append(float(np.mean([step[4] for step in sess.gate_trace])) if sess.gate_trace else 0.0)
        row[name] = {"successes": sum(ok), "escape_latched_frac": round(float(np.mean(escape)), 3)}
    row["wall_s"] = round(time.monotonic() - t0)
    print(json.dumps(row), flush=True)
