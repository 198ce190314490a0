"""Probe: one warm-up per seed on a task, then static-1 / base blocks under VLA variants (same weights)."""
import sys, json, time
sys.path.insert(0, 'benchmarks')
import suite
from resrl.sim.scripted import ScriptedVLA, load_task_config
task, seed = sys.argv[1], int(sys.argv[2]); variants = json.loads(sys.argv[3])
from resrl.sim.inprocess import InProcessSession
t0 = time.monotonic()
sess = InProcessSession(suite._cfg(task, "static-1", seed, learner={"learning_starts": 10 ** 9}), log=lambda _: None)
while not sess.plan.warmup_done:
    if sess.plan.needs_warmup():
        sess.learner.warmup(sess.offline); sess.plan.warmup_done = True; sess._acting(); break
    k, s = sess.plan.next_episode(); sess.plan.record(sess.run_episode(k, s))
print(f"warm-up {time.monotonic()-t0:.0f}s", flush=True)
for name, over in variants.items():
    over_t = {k: v for k, v in over.items() if k != "base"}
    tc = load_task_config(task, overrides={**over_t, "sim": {"seed": seed, "render": False, **over.get("sim", {})}})
    sess.vla = ScriptedVLA(tc)
    if "sim" in over:
        from resrl.sim.franka_env import FrankaTableEnv
        sess.env = FrankaTableEnv(tc.sim)
    for arm in (("static-1", "base_only") if over.get("base") else ("static-1",)):
        suite._configure(sess, task, arm, seed)
        b = suite._block(sess, seed, keep_trace=False)
        print(json.dumps({"task": task, "seed": seed, "variant": name, "arm": arm, "successes": b["successes"],
                          "fails": [e.get("steps") for e in b["episodes"] if not e["success"]]}), flush=True)
