"""Probe: does the warm-started critic's V track progress? One warm-up per (seed, cql_alpha), then
20 evaluation episodes at lambda 1 on those weights (no learning), V(s_t) read at every step, raw
(no clipping). For a 0/1 success reward at the last step the value of a state t steps before a
success is gamma^(T-1-t): V should rise along a successful episode and stay low in a stall.

    python benchmarks/results/suite/probes/critic_calibration.py pick_place_stagnation 0,1 1.0,0.1,0.01
    # other Cal-QL settings than cql_alpha: settings separated by '/', keys by ';'
    python benchmarks/results/suite/probes/critic_calibration.py pick_place_stagnation 0,1 "cql_temp=0.1/cql_temp=0.03"
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

# lambda 1 on every step (prior 1, no greedy gate; regress / escape cannot raise it past lambda_max 1),
# V reported raw: the gates' input, not their decision, is what is probed.
suite.ARMS["probe-v"] = {"mode": "vgm", "vgm": {"clip_values": False, "use_greedy": False}}
task, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
if "=" in sys.argv[3]:
    settings = suite.parse_settings(sys.argv[3])
else:
    settings = [{"cql_alpha": float(a)} for a in sys.argv[3].split(",")]
gamma = 0.97
for setting in settings:
    suite.BASE_OVERRIDES = {"session": {}, "learner": {}, "algo": dict(setting)}
    for seed in seeds:
        t0 = time.monotonic()
        sess = suite._warmed_up(task, seed)
        sess.train_enabled = False
        suite._configure(sess, task, "probe-v", seed)
        ok, v0, vend_ok, vend_fail, err, corr = [], [], [], [], [], []
        for i in range(suite.EVAL_EPISODES):
            rec = sess.run_episode("eval", suite._eval_seed(seed, i))
            v = np.array([row[5] for row in sess.gate_trace])
            ok.append(bool(rec.success))
            v0.append(v[0])
            if rec.success:
                mc = gamma ** np.arange(len(v) - 1, -1, -1)
                err.append(float(np.mean(np.abs(v - mc))))
                corr.append(float(np.corrcoef(v, mc)[0, 1]) if v.std() > 0 else 0.0)
                vend_ok.append(v[-1])
            else:
                vend_fail.append(v[-1])
        row = {"task": task, "seed": seed, **setting, "successes": sum(ok),
               "V_first_step": round(float(np.mean(v0)), 3),
               "V_last_step_success": round(float(np.mean(vend_ok)), 3) if vend_ok else None,
               "V_last_step_failure": round(float(np.mean(vend_fail)), 3) if vend_fail else None,
               "mean_abs_error_vs_mc_success": round(float(np.mean(err)), 3) if err else None,
               "corr_with_mc_success": round(float(np.mean(corr)), 3) if corr else None,
               "wall_s": round(time.monotonic() - t0)}
        print(json.dumps(row), flush=True)
