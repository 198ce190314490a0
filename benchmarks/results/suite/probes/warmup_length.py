"""Probe: is the warm-up residual short of the correction because 500 Cal-QL updates underfit the
demos? One warm-up per (seed, warm-up length, cql_alpha), then frozen 20-episode blocks at static
lambda 1 and 1.25 on those weights (no learning), the suite's evaluation start states.

    python benchmarks/results/suite/probes/warmup_length.py pick_place_stagnation 0,1,2,3,4 500,2000 1.0
    # any Cal-QL settings ('/' between settings, ';' between keys) and any suite arms:
    python benchmarks/results/suite/probes/warmup_length.py pick_place_stagnation 0,1,2,3,4 500 \
        "v_target=mc" static-1,static-1.25,vgm,vgm-escape-amplify
"""
import json
import sys
import time

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

task, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
lengths = [int(n) for n in sys.argv[3].split(",")]
settings = suite.parse_settings(sys.argv[4]) if "=" in sys.argv[4] else \
    [{"cql_alpha": float(a)} for a in sys.argv[4].split(",")]
arms = sys.argv[5].split(",") if len(sys.argv) > 5 else ["static-1", "static-1.25"]
for setting in settings:
    for n in lengths:
        suite.BASE_OVERRIDES = {"session": {}, "learner": {"warmup_steps": n}, "algo": dict(setting)}
        for seed in seeds:
            t0 = time.monotonic()
            sess = suite._warmed_up(task, seed)
            warm_s = time.monotonic() - t0
            row = {"task": task, "seed": seed, "warmup_steps": n, **setting, "warmup_s": round(warm_s)}
            for arm in arms:
                suite._configure(sess, task, arm, seed)
                block = suite._block(sess, seed, keep_trace=False)
                row[arm] = block["successes"]
                row[f"{arm}_mean_lambda"] = round(block["mean_lambda"], 3)
                row[f"{arm}_escape"] = round(sum(e.get("escape", 0.0) for e in block["episodes"]) / len(block["episodes"]), 3)
            row["wall_s"] = round(time.monotonic() - t0)
            print(json.dumps(row), flush=True)
