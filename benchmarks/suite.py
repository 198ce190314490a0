"""Issue-15 benchmark suite: tasks where adaptation is needed x arms (static lambdas, peer schedules,
VGM as the paper defines it, VGM as resrl ships it, gate ablations) x seeds, in-process.

    # 1. warm-up-only rows: per (task, seed) the demos + Cal-QL warm-up run ONCE, then every arm's
    #    arbiter plays the same frozen 20-episode evaluation block on those weights (no online updates)
    python benchmarks/suite.py warmup --tasks pick_place pick_place_stagnation --seeds 0 1 2 3 4
    # 2. online rows: one full session per (task, arm, seed); frozen evaluation blocks every
    #    --eval-every train episodes (stop at the first failure), a full 20-episode block at the end
    python benchmarks/suite.py online --tasks pick_place_stagnation --arms static-1 vgm --seeds 0 1 2
    # 3. summary.json (issue-15 shape), summary.md, learning_curves.png from every stored run
    python benchmarks/suite.py summarize
    # task names may carry a demo count and Cal-QL settings for every arm (see _variant):
    python benchmarks/suite.py warmup --tasks pick_place_demos2 "pick_place_stagnation@v_target=mc" --arms static-1 vgm
    # ... and a label after '#' that only names a results directory (a paired repeat):
    python benchmarks/suite.py paired --tasks "pick_place_stagnation@v_target=mc#raw-advantage" --arms static-1 vgm

Every run's JSON (benchmarks/results/suite/runs/...) keeps its command line and wall time; a run
whose JSON exists is skipped (delete it to re-run). Every arm of a (task, seed) gets the same demos
(seeded expert), the same warm-up recipe and the same evaluation start states.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
OUT = REPO / "benchmarks" / "results" / "suite"
EVAL_EPISODES = 20

# arm -> InProcessConfig overrides. "vgm" is VGMConfig's shipped default (on top of the node graph's
# config/sim_vgm.yaml gate windows); "vgm-paper" is VGMConfig.paper(): every resrl option off.
PAPER = {"greedy_hold_steps": 0, "max_lambda_rate": None, "lambda_prior": 0.0, "clip_values": False,
         "critic_noise": 0.0, "greedy_input": "executed"}
AMPLIFY = {"lambda_max": 2.0, "per_group": True,
           "group_lambda_max": {"translation": 2.0, "rotation": 1.0, "gripper": 1.0}}
ARMS = {
    "base_only": {"mode": "base_only"},
    "static-0.25": {"mode": "static", "vgm": {"lambda_static": 0.25}},
    "static-0.5": {"mode": "static", "vgm": {"lambda_static": 0.5}},
    "static-1": {"mode": "static", "vgm": {"lambda_static": 1.0}},
    # Policy Decorator: residual applied with probability min(t / H_sched, 1) in training, scale 1
    # (the residual is already bounded by xi = 3 cm / 0.05 rad); always applied in evaluation.
    "policy-decorator": {"mode": "static", "schedule": {"kind": "progressive", "H_sched": 1000, "residual_scale": 1.0}},
    # ResFiT-style: TD3 online (no BC), 3-step returns (the replay's n_step), critic-only warm-up
    # steps before the actor moves, the residual at a fixed bounded scale.
    "resfit": {"mode": "static", "schedule": {"kind": "constant", "residual_scale": 1.0},
               "learner": {"algo": "td3"}, "algo": {"critic_warmup_steps": 300}},
    "vgm-paper": {"mode": "vgm", "vgm": dict(PAPER)},
    "vgm": {"mode": "vgm"},
    "vgm-no-greedy": {"mode": "vgm", "vgm": {"use_greedy": False}},
    "vgm-no-regress": {"mode": "vgm", "vgm": {"use_regress": False}},
    "vgm-no-escape": {"mode": "vgm", "vgm": {"use_escape": False}},
    # Each shipped option switched back to the paper's, one at a time (what each change buys).
    "vgm-no-prior": {"mode": "vgm", "vgm": {"lambda_prior": 0.0}},
    "vgm-no-rate-limit": {"mode": "vgm", "vgm": {"max_lambda_rate": None}},
    # Amplification (the paper's "VGM dynamically amplifies lambda_t to provide the necessary
    # corrective force" in a stagnation trap): lambda_max 2 on the translation group only (rotation
    # and gripper stay capped at 1), so a gate can push a residual that stalls short of its goal
    # further along its own direction; the rate limit makes that a sweep, not a jump. The static
    # references scale every dimension, as a user turning up a fixed lambda would.
    "static-1.25": {"mode": "static", "vgm": {"lambda_static": 1.25, "lambda_max": 1.25}},
    "static-1.5": {"mode": "static", "vgm": {"lambda_static": 1.5, "lambda_max": 1.5}},
    "vgm-amplify": {"mode": "vgm", "vgm": dict(AMPLIFY)},
    "vgm-paper-amplify": {"mode": "vgm", "vgm": {**PAPER, **AMPLIFY}},
    # ... with only the escape gate taking lambda above 1 (VGMConfig.amplify_only_on_escape).
    "vgm-escape-amplify": {"mode": "vgm", "vgm": {**AMPLIFY, "amplify_only_on_escape": True}},
    "vgm-paper-escape-amplify": {"mode": "vgm", "vgm": {**PAPER, **AMPLIFY, "amplify_only_on_escape": True}},
    # Escape by perturbation: the training exploration noise (0.2 xi, clip 0.5) on the residual
    # while the escape gate is latched, in evaluation too (VGMConfig.escape_noise).
    "vgm-escape-noise": {"mode": "vgm", "vgm": {"escape_noise": 0.2, "escape_noise_clip": 0.5}},
}
# Gate variants of the shipped gate and of its amplifying version (suffix -> VGMConfig overrides):
# judging the residual as executed, exploration noise included (greedy_input; the default until
# 2026-12-07, now "policy": the policy's action before the noise); the greedy gate's baseline V(s)
# instead of Q(s, a_VLA), an action the replay rarely holds once the residual runs; the advantage
# differenced from the raw Q values, then clipped (the critic's common offset cancels); an escape
# gate that a V at the top of its range does not latch (an overestimating critic's V sits there).
for _suffix, _vgm in (("executed-gate", {"greedy_input": "executed"}), ("value-baseline", {"greedy_baseline": "value"}),
                      ("raw-advantage", {"advantage_from_raw_q": True}),
                      ("unsaturated", {"escape_ignores_saturated_value": True}),
                      # ... and only while the arm is still: TCP < 1 cm over the 0.5 s escape window,
                      # above the exploration noise's jitter (0.1 xi = 3 mm per axis and step)
                      ("unsaturated-still", {"escape_ignores_saturated_value": True, "escape_stall_m": 0.01})):
    for _arm in ("vgm", "vgm-escape-amplify"):
        ARMS[f"{_arm}-{_suffix}"] = {**copy.deepcopy(ARMS[_arm]), "vgm": {**ARMS[_arm].get("vgm", {}), **_vgm}}
# ... and without the greedy gate (its harm branch is what loses pick_place's seed with the guards
# on): lambda is the warm-up's 1 plus what the regress gate adds (capped at 1) and the escape
# gate's amplification on a still arm.
ARMS["vgm-escape-amplify-unsaturated-still-no-greedy"] = {
    **copy.deepcopy(ARMS["vgm-escape-amplify-unsaturated-still"]),
    "vgm": {**ARMS["vgm-escape-amplify-unsaturated-still"]["vgm"], "use_greedy": False}}
# Human in the loop (resrl.sim.inprocess.TakeoverConfig): in train episodes the scripted expert takes
# over once the arm has hovered in a 1 cm box for 10 steps (1 s) while placing, and finishes the
# episode; its steps are labelled interventions, as an operator's gamepad takeover is on the graph.
TAKEOVER = {"after_steps": 10, "within_mm": 10.0}
for _arm in ("static-1", "vgm", "vgm-escape-amplify", "vgm-executed-gate", "vgm-escape-amplify-executed-gate"):
    ARMS[f"{_arm}-takeover"] = {**copy.deepcopy(ARMS[_arm]), "takeover": dict(TAKEOVER)}
# Train on what is evaluated: every 3rd train episode runs the deterministic policy that the frozen
# blocks deploy (ResidualNodeConfig.noise_free_every), so the critic also sees that policy stall.
for _arm in ("static-1", "vgm", "vgm-escape-amplify"):
    ARMS[f"{_arm}-noise-free3"] = {**copy.deepcopy(ARMS[_arm]), "noise_free_every": 3}
# Warm-up-only: these arms share weights and lambda with static-1 at evaluation (a schedule
# always applies the residual at its scale when evaluating; TD3 differs only online).
SAME_AS_STATIC1_AT_WARMUP = ("policy-decorator", "resfit")


# Session / learner overrides for every run ({}: config/sim_vgm.yaml; the smoke test shrinks them).
BASE_OVERRIDES: dict = {"session": {}, "learner": {}}


def parse_settings(text: str) -> list:
    """Probe settings: "k=v;k=v/k=v" -> [{k: v, k: v}, {k: v}] (numbers as floats, the rest as text)."""
    def value(v):
        try:
            return float(v)
        except ValueError:
            return v
    pairs = [[kv.split("=", 1) for kv in group.split(";")] for group in text.split("/")]
    bad = [kv[0] for group in pairs for kv in group if len(kv) != 2]
    if bad:
        raise ValueError(f"settings {text!r}: {bad} are not key=value (separate keys by ';', settings by '/')")
    return [{k: value(v) for k, v in group} for group in pairs]


def _variant(task: str) -> tuple:
    """A suite task name -> (config/tasks/ task, {section: overrides}) for every arm of it:

    * ``<task>_demos<N>``: N demos instead of the session's 20 (demo-starved: what the warm-up leaves
      to cover is online learning's job, and an imprecise residual is what a gate is for);
    * ``<task>@k=v;k=v``: settings of the algorithm (Cal-QL) section for the warm-up and online,
      e.g. ``pick_place_stagnation@v_target=mc``;
    * ``<task>#<label>``: the same task in a results directory of its own (a paired repeat whose
      arms share one warm-up per seed, beside the runs stored under the plain name).
    Every arm of a (task, seed) gets the same demos and the same settings."""
    name, _, algo = task.partition("#")[0].partition("@")
    sections = {"algo": parse_settings(algo)[0]} if algo else {}
    m = re.fullmatch(r"(.+)_demos(\d+)", name)
    if m:
        name, sections["session"] = m.group(1), {"num_demos": int(m.group(2))}
    return name, sections


def _cfg(task: str, arm: str, seed: int, **extra):
    from resrl.sim.inprocess import InProcessConfig
    task, variant = _variant(task)
    spec = copy.deepcopy(ARMS[arm])
    kw = {"task": task, "seed": seed, "mode": spec.pop("mode")}
    for section in ("vgm", "learner", "algo", "schedule", "session", "takeover"):
        kw[section] = {**BASE_OVERRIDES.get(section, {}), **variant.get(section, {}),
                       **spec.pop(section, {}), **extra.pop(section, {})}
    if "noise_free_every" in spec:
        kw["noise_free_every"] = spec.pop("noise_free_every")
    assert not spec, spec
    return InProcessConfig(**kw, **extra)


def _eval_seed(seed: int, i: int) -> int:
    return 1_000_000 + seed * 1000 + i   # resrl.session.SessionPlan's evaluation seeds


def _episode_summary(rec) -> dict:
    return {"success": bool(rec.success), "steps": rec.steps, "mean_lambda": rec.mean_lambda, **rec.gate_activity}


def _block(sess, seed: int, keep_trace: bool = True) -> dict:
    """One frozen evaluation block of EVAL_EPISODES (played to the end) with the session's networks."""
    eps, trace = [], None
    for i in range(EVAL_EPISODES):
        rec = sess.run_episode("eval", _eval_seed(seed, i))
        eps.append(_episode_summary(rec))
        if keep_trace and (trace is None or (not rec.success and trace["success"])):
            trace = {"episode": i, "success": bool(rec.success), "outcome": sess.last_outcome.strip(),
                     "steps": [list(map(float, r)) for r in sess.gate_trace]}
    ok = [e["success"] for e in eps]
    return {"success": float(np.mean(ok)), "successes": int(sum(ok)), "episodes": eps,
            "mean_lambda": float(np.mean([e["mean_lambda"] for e in eps])),
            "max_dlambda": float(max(e.get("max_dlambda", 0.0) for e in eps)),
            "max_jump_mm": float(max(e.get("max_jump_mm", 0.0) for e in eps)),
            "gate_trace": trace}


def _warmed_up(task: str, seed: int, session: dict | None = None, prepare=None, **extra):
    """A session after its 20 demos and the Cal-QL warm-up (what every arm of (task, seed) shares).
    Probes: ``extra`` overrides more of InProcessConfig (model, tracker, ...) and ``prepare(sess)``
    runs before the first demo."""
    from resrl.sim.inprocess import InProcessSession
    sess = InProcessSession(_cfg(task, "static-1", seed, session=dict(session or {}), **extra), log=lambda _: None)
    if prepare is not None:
        prepare(sess)
    while not sess.plan.warmup_done:
        if sess.plan.needs_warmup():
            sess.trainer.warmup_now()
            sess.plan.warmup_done = True
            sess._acting()
            break
        kind, ep_seed = sess.plan.next_episode()
        sess.plan.record(sess.run_episode(kind, ep_seed))
    return sess


def run_warmup(task: str, seed: int, arms: list, out: Path, command: str, sess=None, warm_s: float = 0.0) -> dict:
    """Demos + warm-up once for (task, seed); then every arm's frozen block on those weights
    (no online updates: evaluation episodes neither train nor enter the replay)."""
    t0 = time.monotonic()
    earlier = json.loads(out.read_text()) if out.exists() else None
    if earlier is not None:   # arms added to a stored (task, seed): static-1 again as a reproducibility check
        arms = [a for a in arms if a not in earlier["arms"]] + (["static-1"] if "static-1" in earlier["arms"] else [])
    if sess is None:
        sess = _warmed_up(task, seed)
        warm_s = time.monotonic() - t0
    result = {"task": task, "seed": seed, "command": command, "warmup_wall_s": warm_s, "arms": {}}
    for arm in arms:
        if arm in SAME_AS_STATIC1_AT_WARMUP:
            continue
        ta = time.monotonic()
        _configure(sess, task, arm, seed)
        block = _block(sess, seed)
        block["wall_s"] = time.monotonic() - ta
        result["arms"][arm] = block
        print(f"[warmup] {task} seed {seed} {arm:18s} {block['successes']:2d}/20 lambda {block['mean_lambda']:.2f} "
              f"max dlambda {block['max_dlambda']:.2f} jump {block['max_jump_mm']:.1f} mm ({block['wall_s']:.0f} s)",
              flush=True)
    for arm in SAME_AS_STATIC1_AT_WARMUP:
        if arm in arms and "static-1" in result["arms"]:
            result["arms"][arm] = {**result["arms"]["static-1"], "same_as": "static-1"}
    result["wall_s"] = time.monotonic() - t0 + warm_s
    if earlier is not None:
        again = result["arms"].pop("static-1", None)
        if again is not None:
            same = [e["success"] for e in again["episodes"]] == [e["success"] for e in earlier["arms"]["static-1"]["episodes"]]
            print(f"[warmup] {task} seed {seed} static-1 recomputed {again['successes']}/20, stored "
                  f"{earlier['arms']['static-1']['successes']}/20: {'same episodes' if same else 'DIFFERENT'}", flush=True)
            result.setdefault("static1_recheck", []).append({"successes": again["successes"], "same_episodes": same})
        added = {"command": command, "arms": sorted(result["arms"]), "wall_s": result["wall_s"]}
        result = {**earlier, "arms": {**earlier["arms"], **result["arms"]},
                  "added": earlier.get("added", []) + [added],
                  "static1_recheck": earlier.get("static1_recheck", []) + result.get("static1_recheck", [])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    return result


def run_online(task: str, arm: str, seed: int, max_env_steps: int, eval_every: int, out: Path, command: str) -> dict:
    """One full session (own demos + warm-up) for an arm that changes the learner (resfit)."""
    from resrl.sim.inprocess import InProcessSession
    t0 = time.monotonic()
    cfg = _cfg(task, arm, seed, session={"max_env_steps": max_env_steps, "eval_every": eval_every,
                                         "stop_eval_on_failure": True, "eval_trigger_streak": 10_000})
    log_lines = []
    sess = InProcessSession(cfg, log=log_lines.append)
    m = sess.run()
    result = _online_result(sess, m, task, arm, seed, max_env_steps, command, wall_s=time.monotonic() - t0,
                            warm_s=m["warmup_s"], log_lines=log_lines, shared_warmup=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    return result


def _configure(sess, task: str, arm: str, seed: int) -> None:
    """Point a (warmed-up) session at one arm's arbiter / schedule; the networks stay as they are."""
    from resrl.arbiter.schedules import build_schedule
    from resrl.arbiter.vgm import VGMArbiter, VGMConfig
    from resrl.configs import from_dict
    from resrl.sim.inprocess import TakeoverConfig
    cfg = _cfg(task, arm, seed)
    if ARMS[arm].get("learner") or ARMS[arm].get("algo"):
        raise ValueError(f"arm {arm} changes the learner: it needs its own session (suite.py online)")
    yaml_vgm = dataclasses.asdict(sess.graph.arbiter.vgm)   # the graph YAML's gate settings (resrl.node_config)
    sess.cfg = dataclasses.replace(sess.cfg, mode=cfg.mode, takeover=cfg.takeover)
    sess.control.vgm = VGMArbiter(VGMConfig(**{**yaml_vgm, **cfg.vgm, "mode": cfg.mode}))
    sess.schedule = build_schedule(cfg.schedule, seed + 13)
    sess.takeover = from_dict(TakeoverConfig, cfg.takeover, "takeover")
    sess.set_exploration(cfg)
    sess.train_enabled = cfg.mode != "base_only"


def _fork(sess):
    """Deep copy of a session; the replay buffers' locks cannot be copied, each copy gets new ones."""
    import threading
    lock_type = type(threading.Lock())
    memo = {}
    for owner in (sess.online, sess.offline, sess.trainer):
        for value in vars(owner).values():
            if isinstance(value, threading.Event):
                memo[id(value)] = threading.Event()
                continue
            if isinstance(value, lock_type) or type(value).__name__ in ("RLock", "Condition"):
                memo[id(value)] = type(value)() if not isinstance(value, lock_type) else threading.Lock()
    return copy.deepcopy(sess, memo)


def run_paired(task: str, seed: int, arms: list, max_env_steps: int, eval_every: int, out_dir: Path,
               command: str, warm_arms: tuple = ()) -> dict:
    """Demos + warm-up ONCE for (task, seed); the warm-up-only blocks of ``warm_arms`` on those
    weights; then every arm learns online from a copy of that state (same weights, replay,
    optimiser and RNG states): a paired comparison at the cost of one warm-up."""
    t0 = time.monotonic()
    base = _warmed_up(task, seed, {"max_env_steps": max_env_steps, "eval_every": eval_every,
                                   "stop_eval_on_failure": True, "eval_trigger_streak": 10_000})
    warm_s = time.monotonic() - t0
    warm_out = OUT / "runs" / "warmup" / task / f"seed{seed}.json"
    if warm_arms and not warm_out.exists():
        probe = _fork(base)   # evaluation moves RNGs / arbiter state: keep base untouched
        run_warmup(task, seed, list(warm_arms), warm_out, command, sess=probe, warm_s=warm_s)
    results = {}
    for arm in arms:
        out = out_dir / f"{arm}-seed{seed}.json"
        if out.exists():
            continue
        ta = time.monotonic()
        sess = _fork(base)
        _configure(sess, task, arm, seed)
        log_lines = []
        sess.log = log_lines.append
        m = sess.run()
        results[arm] = _online_result(sess, m, task, arm, seed, max_env_steps, command,
                                      wall_s=time.monotonic() - ta + warm_s, warm_s=warm_s, log_lines=log_lines,
                                      shared_warmup=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results[arm]))
    return results


def _online_result(sess, m, task, arm, seed, max_env_steps, command, wall_s, warm_s, log_lines, shared_warmup):
    solved = any(s == n == EVAL_EPISODES for _, s, n in m["eval_blocks"])
    final = {"success": 1.0, "successes": EVAL_EPISODES, "from": "last block (20/20)"} if solved else \
        {**_block(sess, seed), "from": "full frozen block after the budget"}
    train = [e for e in m["episodes"] if e["kind"] == "train"]
    result = {"task": task, "arm": arm, "seed": seed, "command": command, "max_env_steps": max_env_steps,
              "eval_blocks": m["eval_blocks"], "eval_train_steps": m["eval_train_steps"],
              "train_steps": m["train_steps"], "env_steps": m["env_steps"], "finished_reason": m["finished_reason"],
              "solved": solved, "final": final, "warmup_s": warm_s, "wall_s": wall_s,
              "shared_warmup": shared_warmup,
              "mean_lambda_train": float(np.mean([e["mean_lambda"] for e in train])) if train else None,
              "train_episodes": [{k: e[k] for k in ("steps", "success", "mean_lambda", "gate_activity")} for e in train],
              "log_tail": log_lines[-5:]}
    blocks = ", ".join(f"{t}: {s}/{n}" for (_, s, n), t in zip(m["eval_blocks"], m["eval_train_steps"]))
    print(f"[online] {task} {arm} seed {seed}: solved={solved} final {final['successes']}/20 blocks [{blocks}] "
          f"({wall_s:.0f} s)", flush=True)
    return result


def _job(args):
    kind, kw = args
    import torch
    torch.set_num_threads(1)
    return {"warmup": run_warmup, "online": run_online, "paired": run_paired}[kind](**kw)


def _run_jobs(jobs, workers: int):
    if workers <= 1:
        return [_job(j) for j in jobs]
    with cf.ProcessPoolExecutor(workers) as ex:
        return list(ex.map(_job, jobs))


# ----------------------------------------------------------------------------- summary
def _median_or_none(xs):
    return float(np.median(xs)) if xs else None


def summarize() -> dict:
    tasks: dict = {}
    runs_md = []
    for path in sorted((OUT / "runs" / "warmup").glob("*/*.json")):
        r = json.loads(path.read_text())
        t = tasks.setdefault(r["task"], {"warm": {}, "online": {}})
        for arm, block in r["arms"].items():
            t["warm"].setdefault(arm, []).append(block)
        runs_md.append((r["task"], "warm-up-only (all arms)", r["seed"], r["wall_s"], r["command"]))
    for path in sorted((OUT / "runs" / "online").glob("*/*.json")):
        r = json.loads(path.read_text())
        tasks.setdefault(r["task"], {"warm": {}, "online": {}})["online"].setdefault(r["arm"], []).append(r)
        runs_md.append((r["task"], r["arm"], r["seed"], r["wall_s"], r["command"]))
    summary = {"tasks": {}}
    for task, t in sorted(tasks.items()):
        base = t["warm"].get("base_only", [])
        entry = {"base_success": float(np.mean([b["success"] for b in base])) if base else None, "arms": {}}
        for arm in ARMS:
            if arm == "base_only" and not t["online"].get(arm):
                continue
            warm, online = t["warm"].get(arm, []), t["online"].get(arm, [])
            if not warm and not online:
                continue
            steps = [next(ts for (_, s, n), ts in zip(r["eval_blocks"], r["eval_train_steps"]) if s == n == EVAL_EPISODES)
                     for r in online if r["solved"]]
            lam = [r["mean_lambda_train"] for r in online if r["mean_lambda_train"] is not None]
            entry["arms"][arm] = {
                "seeds": len(online),
                "solved": sum(r["solved"] for r in online),
                # median over the solved seeds, None if fewer than half solved (unsolved seeds have no value)
                "median_steps_to_20of20": _median_or_none(steps) if 2 * len(steps) >= max(len(online), 1) and steps else None,
                "warmup_only_success": float(np.mean([b["success"] for b in warm])) if warm else None,
                "final_success": float(np.mean([r["final"]["success"] for r in online])) if online else None,
                "mean_lambda": float(np.mean(lam)) if lam else (float(np.mean([b["mean_lambda"] for b in warm])) if warm else None),
                # extra keys (not in the shape): seeds behind each number, authority jumps
                "warmup_only_seeds": len(warm),
                "warmup_only_per_seed": [b["successes"] for b in warm],
                "steps_to_20of20_per_seed": [next((ts for (_, s, n), ts in zip(r["eval_blocks"], r["eval_train_steps"])
                                                   if s == n == EVAL_EPISODES), None) for r in online],
                "max_dlambda": max([b.get("max_dlambda", 0.0) for b in warm], default=None),
                "max_jump_mm": max([b.get("max_jump_mm", 0.0) for b in warm], default=None),
            }
        summary["tasks"][task] = entry
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    (OUT / "summary.md").write_text(markdown(summary, runs_md))
    plot(tasks)
    return summary


def _fmt(x, pct=False):
    if x is None:
        return "—"
    return f"{100 * x:.0f}%" if pct else (f"{x:.0f}" if isinstance(x, float) and x >= 10 else f"{x:.2f}" if isinstance(x, float) else str(x))


def markdown(summary: dict, runs) -> str:
    lines = []
    for task, e in summary["tasks"].items():
        lines += [f"#### {task} (base alone {_fmt(e['base_success'], True)} over 20 evaluation states x seeds)", "",
                  "| arm | warm-up only (no online updates) | per seed /20 | online seeds solved 20/20 | median train steps to 20/20 | per seed | final success | mean lambda | max dlambda / target jump (warm-up block) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arm, a in e["arms"].items():
            lines.append(f"| {arm} | {_fmt(a['warmup_only_success'], True)} ({a['warmup_only_seeds']} seeds) | "
                         f"{', '.join(map(str, a['warmup_only_per_seed'])) or '—'} | "
                         f"{a['solved']}/{a['seeds']} | {_fmt(a['median_steps_to_20of20'])} | "
                         f"{', '.join('—' if s is None else str(s) for s in a['steps_to_20of20_per_seed']) or '—'} | "
                         f"{_fmt(a['final_success'], True)} | {_fmt(a['mean_lambda'])} | "
                         f"{_fmt(a['max_dlambda'])} / {_fmt(a['max_jump_mm'])} mm |")
        lines.append("")
    lines += ["Runs (command, wall seconds):", "", "| task | arm | seed | wall s | command |", "|---|---|---|---|---|"]
    lines += [f"| {t} | {a} | {s} | {w:.0f} | `{c}` |" for t, a, s, w, c in runs]
    return "\n".join(lines) + "\n"


def plot(tasks: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    online = {t: v["online"] for t, v in tasks.items() if v["online"]}
    if not online:
        return
    fig, axes = plt.subplots(1, len(online), figsize=(6 * len(online), 4), squeeze=False)
    for ax, (task, arms) in zip(axes[0], sorted(online.items())):
        for arm, runs in sorted(arms.items()):
            grid = np.linspace(0, max(r["max_env_steps"] for r in runs), 31)
            curves = []
            for r in runs:   # best evaluation success so far (k/20 lower bound of a stopped block)
                pts = [(ts, s / EVAL_EPISODES) for (_, s, n), ts in zip(r["eval_blocks"], r["eval_train_steps"])]
                curves.append([max([v for ts, v in pts if ts <= g], default=0.0) for g in grid])
            c = np.asarray(curves)
            line, = ax.plot(grid, np.median(c, 0), label=f"{arm} (n={len(runs)})")
            ax.fill_between(grid, c.min(0), c.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(task)
        ax.set_xlabel("online train env steps")
        ax.set_ylabel("best eval successes / 20 (median, min-max over seeds)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "learning_curves.png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=("warmup", "online", "paired", "summarize"),
                    help="paired: one warm-up per (task, seed), every arm online from a copy of it")
    ap.add_argument("--tasks", nargs="+", default=["pick_place_stagnation"])
    ap.add_argument("--arms", nargs="+", default=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--max-env-steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--warm-arms", nargs="*", default=[], help="paired: also the warm-up-only blocks of these arms")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        ap.error(f"unknown arms {unknown}; known: {list(ARMS)}")
    if args.phase == "summarize":
        print(json.dumps(summarize(), indent=1))
        return 0
    command = "python benchmarks/suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    jobs = []
    for task in args.tasks:
        for seed in args.seeds:
            if args.phase == "warmup":
                out = OUT / "runs" / "warmup" / task / f"seed{seed}.json"
                if not out.exists() or set(args.arms) - set(json.loads(out.read_text())["arms"]):
                    jobs.append(("warmup", dict(task=task, seed=seed, arms=args.arms, out=out, command=command)))
                continue
            if args.phase == "paired":
                out_dir = OUT / "runs" / "online" / task
                todo = [a for a in args.arms if not (out_dir / f"{a}-seed{seed}.json").exists()]
                if todo:
                    jobs.append(("paired", dict(task=task, seed=seed, arms=todo, max_env_steps=args.max_env_steps,
                                                eval_every=args.eval_every, out_dir=out_dir, command=command,
                                                warm_arms=tuple(args.warm_arms))))
                continue
            for arm in args.arms:
                out = OUT / "runs" / "online" / task / f"{arm}-seed{seed}.json"
                if not out.exists():
                    jobs.append(("online", dict(task=task, arm=arm, seed=seed, max_env_steps=args.max_env_steps,
                                                eval_every=args.eval_every, out=out, command=command)))
    t0 = time.monotonic()
    _run_jobs(jobs, args.workers)
    print(json.dumps({"phase": args.phase, "runs": len(jobs), "wall_s": round(time.monotonic() - t0, 1)}))
    summarize()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
