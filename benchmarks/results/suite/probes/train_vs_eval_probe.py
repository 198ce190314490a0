"""Probe: why do train episodes succeed where frozen evaluation blocks fail on the stagnation trap?
One warm-up per seed (static 1), then 20 episodes per condition on the warm-up's weights:

* eval:                    the evaluation start states, no noise, no update (the warm-up-only block)
* train_states_frozen:     the start states train episodes get (seed * 100000 + id), no noise, no update
* eval_states_noise:       the evaluation start states with the exploration noise, no update

    python benchmarks/results/suite/probes/train_vs_eval_probe.py "pick_place_stagnation@v_target=mc" 0 1
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

task, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
N = suite.EVAL_EPISODES
for seed in seeds:
    t0 = time.monotonic()
    base = suite._warmed_up(task, seed)
    suite._configure(base, task, "static-1", seed)
    first_id = len(base.plan.records)
    row = {"task": task, "seed": seed, "conditions": {}}

    def run(name, kind, seeds_, noise_free_every, train_enabled):
        sess = suite._fork(base)
        sess.noise_free_every = noise_free_every
        sess.train_enabled = train_enabled
        sess.noise_rng = np.random.default_rng(seed)
        ok = []
        for s in seeds_:
            rec = sess.run_episode(kind, s)
            if train_enabled:
                sess.plan.record(rec)
            ok.append(bool(rec.success))
        row["conditions"][name] = {"successes": int(sum(ok)), "per_episode": "".join("1" if o else "0" for o in ok)}

    eval_seeds = [suite._eval_seed(seed, i) for i in range(N)]
    run("eval", "eval", eval_seeds, 0, False)
    run("train_states_frozen", "train", [seed * 100_000 + first_id + i for i in range(N)], 1, False)
    run("eval_states_noise", "train", eval_seeds, 0, False)
    row["wall_s"] = round(time.monotonic() - t0)
    print(json.dumps(row), flush=True)
