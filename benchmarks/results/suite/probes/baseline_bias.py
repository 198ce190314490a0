"""Probe: what does the online critic say about the greedy gate's two actions? One warm-up per
seed, then an online session of the shipped gate (`vgm`) for a budget of env steps. On 2048 states
of its online replay, before (the warm-up's critic) and after online learning: Q at the base action
a_VLA (the greedy gate's baseline), at the policy's action a_VLA + pi(s) (what the gate judges; Cal-QL
samples it and pushes it down every update), at the stored action a_data (what ran), and the
stored Monte-Carlo return; all ensemble means, raw (no clipping).

    python benchmarks/results/suite/probes/baseline_bias.py "pick_place_stagnation@v_target=mc" 1500 0 1
"""
import copy
import json
import sys
import time

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402

task, budget, seeds = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]


@torch.inference_mode()
def read(critic, actor, batch):
    obs = {k: torch.as_tensor(v) for k, v in batch["obs"].items()}
    base = obs["base_action"]
    pi = actor(obs)
    actions = torch.stack([base, base + pi, torch.as_tensor(batch["action"])])   # (3, B, 7)
    q = critic.q_multi(obs, actions).mean(0).numpy()                               # (3, B)
    mc = np.asarray(batch["mc_return"]).reshape(-1)
    adv = q[1] - q[0]
    return {"q_base": float(q[0].mean()), "q_policy": float(q[1].mean()), "q_data": float(q[2].mean()),
            "mc_return": float(mc.mean()), "adv_policy_vs_base": float(adv.mean()),
            "share_adv_below_-0.01": float((adv < -0.01).mean()), "share_adv_above_0.01": float((adv > 0.01).mean())}


for seed in seeds:
    t0 = time.monotonic()
    sess = suite._warmed_up(task, seed, session={"max_env_steps": budget, "eval_every": 10_000_000,
                                                 "eval_trigger_streak": 10_000_000})
    suite._configure(sess, task, "vgm", seed)
    before = (copy.deepcopy(sess.learner.critic).eval(), copy.deepcopy(sess.learner.deployed_actor).eval())
    sess.run()
    after = (copy.deepcopy(sess.learner.critic).eval(), copy.deepcopy(sess.learner.deployed_actor).eval())
    batch = sess.online.sample(2048, np.random.default_rng(seed))
    row = {"task": task, "seed": seed, "env_steps": budget, "train_steps": sess.plan.train_steps,
           "warmup_critic": read(*before, batch), "online_critic": read(*after, batch),
           "wall_s": round(time.monotonic() - t0)}
    print(json.dumps(row), flush=True)
