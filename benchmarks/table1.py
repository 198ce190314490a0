"""The VGM paper's Table I on the simulated pick-and-place: base-only vs static-lambda residual vs
VGM, over seeds, plus VGM with each gate switched off. Prints JSON; writes results + a PNG.

    python benchmarks/table1.py                               # in-process, 3 seeds, arms + ablations
    python benchmarks/table1.py --backend graph --seeds 0     # through the ROS 2 node graph
    python benchmarks/table1.py --markdown BENCHMARKS.md      # also (re)write the table section there

Every arm of one seed shares the same demos (the scripted expert is seeded), the same Cal-QL
warm-up recipe and the same evaluation start states. An evaluation block is 20 deterministic
episodes (no exploration noise); ``--full-eval`` plays every block to the end so the curve shows
k/20, otherwise a block stops at its first failure as in the main job.

backend ``inprocess`` (resrl.sim.inprocess: the nodes' modules wired by calls, several runs in
parallel) is what makes seeds x arms x ablations affordable on 2 cores; backend ``graph`` starts the
real node processes (resrl.launch_runner) once per run, sequentially, and reads their metrics.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CONTROL_HZ = 10.0
# (arm name, arbiter mode, VGM overrides)
ARMS = {
    "base_only": ("base_only", {}),
    "static": ("static", {}),            # one arm "static-<lambda>" per --static-lambdas value
    "vgm": ("vgm", {}),
}
VARIANTS = {   # not run by default: --arms vgm-value-baseline
    "vgm-value-baseline": ("vgm", {"greedy_baseline": "value"}),
}
ABLATIONS = {
    "vgm-no-greedy": ("vgm", {"use_greedy": False}),
    "vgm-no-regress": ("vgm", {"use_regress": False}),
    "vgm-no-escape": ("vgm", {"use_escape": False}),
}


def summarize(name: str, seed: int, metrics: dict, eval_episodes: int) -> dict:
    """Per run: the evaluation curve, and steps / minutes / wall-clock until the first N/N block."""
    blocks = metrics.get("eval_blocks") or []
    train_at = metrics.get("eval_train_steps") or [None] * len(blocks)
    curve = [{"env_steps": int(e), "train_steps": t, "successes": int(s), "attempted": int(n)}
             for (e, s, n), t in zip(blocks, train_at)]
    solved = next((c for c in curve if c["successes"] == eval_episodes), None)
    episodes = [e for e in metrics.get("episodes", []) if e["kind"] != "demo"]
    wall_to_solve = None
    if solved is not None:
        done = [e for e in episodes if e["env_steps_total"] == solved["env_steps"]]
        wall_to_solve = done[-1]["wall_s"] if done else None
    final = curve[-1] if curve else None
    return {
        "arm": name, "seed": seed, "curve": curve,
        "solved": solved is not None,
        "train_steps_to_solve": solved["train_steps"] if solved else None,
        "env_steps_to_solve": solved["env_steps"] if solved else None,
        "sim_minutes_to_solve": round(solved["train_steps"] / CONTROL_HZ / 60.0, 2) if solved and solved["train_steps"] is not None else None,
        "wall_s_to_solve": round(wall_to_solve, 1) if wall_to_solve else None,
        "final_success": f"{final['successes']}/{final['attempted']}" if final else None,
        "train_steps": metrics.get("train_steps"), "env_steps": metrics.get("env_steps"),
        "wall_s": round(float(metrics.get("wall_s", 0.0)), 1), "finished_reason": metrics.get("finished_reason"),
        "mean_lambda_train": round(float(np.mean([e["mean_lambda"] for e in episodes if e["kind"] == "train"] or [0.0])), 3),
        "gate_activity_train": {g: round(float(np.mean([e["gate_activity"].get(g, 0.0) for e in episodes
                                                         if e["kind"] == "train"] or [0.0])), 3)
                                for g in ("greedy", "regress", "escape")},
    }


def _session_overrides(args, mode: str) -> dict:
    budget = args.base_budget if mode == "base_only" else args.max_env_steps
    return {"max_env_steps": budget, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes,
            "stop_eval_on_failure": not args.full_eval, "eval_trigger_streak": 10_000}


def _run_inprocess(job):
    name, mode, vgm, seed, args = job
    from resrl.sim.inprocess import InProcessConfig, run_session
    cfg = InProcessConfig(mode=mode, seed=seed, vgm=vgm, session=_session_overrides(args, mode))
    log_path = Path(args.out) / "logs" / f"{name}-seed{seed}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        metrics = run_session(cfg, log=lambda line: print(line, file=log, flush=True))
    (Path(args.out) / "metrics").mkdir(exist_ok=True)
    (Path(args.out) / "metrics" / f"{name}-seed{seed}.json").write_text(json.dumps(metrics))
    return summarize(name, seed, metrics, args.eval_episodes)


def _run_graph(job):
    name, mode, vgm, seed, args = job
    run_dir = Path(args.out) / "graph_runs" / f"{name}-seed{seed}"
    if args.resume and (run_dir / "metrics.json").is_file():   # a finished run of an earlier call
        return summarize(name, seed, json.loads((run_dir / "metrics.json").read_text()), args.eval_episodes)
    if run_dir.exists():
        shutil.rmtree(run_dir)   # a half-written run (replay, bag) must not be resumed into
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = _session_overrides(args, mode)
    params = {"vgm_arbiter": {"ros__parameters": {f"vgm.{k}": v for k, v in vgm.items()}},
              "replay_learner": {"ros__parameters": {f"session_plan.{k}": v for k, v in plan.items()}}}
    extra = run_dir / "table1_params.yaml"
    import yaml
    extra.write_text(yaml.safe_dump(params))
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_DOMAIN_ID=str(args.domain_id), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "resrl.launch_runner", "sim_vgm", f"mode:={mode}", f"seed:={seed}",
           f"run_dir:={run_dir}", f"extra_params:={extra.resolve()}"]
    t0 = time.monotonic()
    with open(run_dir / "graph.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.graph_timeout_s, env=env)
    if proc.returncode != 0 or not (run_dir / "metrics.json").is_file():
        print(f"{name} seed {seed}: graph exited {proc.returncode}, see {run_dir / 'graph.log'}", file=sys.stderr)
        return {**summarize(name, seed, {}, args.eval_episodes), "error": f"graph exited {proc.returncode}"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.setdefault("wall_s", time.monotonic() - t0)
    return summarize(name, seed, metrics, args.eval_episodes)


def aggregate(runs: list, arms: list) -> list:
    rows = []
    for arm in arms:
        rs = [r for r in runs if r["arm"] == arm]
        solved = [r for r in rs if r["solved"]]
        med = lambda key: float(np.median([r[key] for r in solved])) if solved else None  # noqa: E731
        rows.append({"arm": arm, "seeds": len(rs), "solved": len(solved),
                     "median_train_steps_to_solve": med("train_steps_to_solve"),
                     "median_sim_minutes_to_solve": med("sim_minutes_to_solve"),
                     "median_wall_s_to_solve": med("wall_s_to_solve"),
                     "final_success": [r["final_success"] for r in rs],
                     "mean_lambda_train": round(float(np.mean([r["mean_lambda_train"] for r in rs])), 3) if rs else None})
    return rows


def markdown(rows: list, runs: list, args) -> str:
    lines = ["| arm | seeds solved (20/20) | median train steps to 20/20 | median sim minutes | median wall s | "
             "final eval per seed | mean lambda (train) |", "|---|---|---|---|---|---|---|"]
    fmt = lambda v: "—" if v is None else (f"{v:.0f}" if isinstance(v, float) and v >= 10 else f"{v}")  # noqa: E731
    for r in rows:
        lines.append(f"| {r['arm']} | {r['solved']}/{r['seeds']} | {fmt(r['median_train_steps_to_solve'])} | "
                     f"{fmt(r['median_sim_minutes_to_solve'])} | {fmt(r['median_wall_s_to_solve'])} | "
                     f"{', '.join(str(x) for x in r['final_success'])} | {r['mean_lambda_train']} |")
    lines.append("")
    lines.append("| arm | seed | train steps to 20/20 | sim min | wall s | evaluation blocks (train steps: k/n) |")
    lines.append("|---|---|---|---|---|---|")
    for r in runs:
        curve = ", ".join(f"{c['train_steps']}: {c['successes']}/{c['attempted']}" for c in r["curve"])
        lines.append(f"| {r['arm']} | {r['seed']} | {fmt(r['train_steps_to_solve'])} | {fmt(r['sim_minutes_to_solve'])} | "
                     f"{fmt(r['wall_s_to_solve'])} | {curve} |")
    return "\n".join(lines)


def plot(runs: list, arms: list, path: Path, eval_episodes: int, full_eval: bool = False) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    # One x grid for every arm: a run that stopped at 20/20 (or at its budget) holds its last block.
    ends = [r["curve"][-1]["train_steps"] or 0 for r in runs if r["curve"]]
    grid = np.linspace(0, max(ends, default=0) or 1, 120)
    for arm in arms:
        curves = [r["curve"] for r in runs if r["arm"] == arm and r["curve"]]
        if not curves:
            continue
        ys = []
        for c in curves:
            x = np.array([p["train_steps"] for p in c], dtype=float)
            y = np.array([p["successes"] / eval_episodes for p in c])
            # Sample-and-hold: a run that finished at 20/20 stays there.
            idx = np.searchsorted(x, grid, side="right") - 1
            ys.append(np.where(idx >= 0, y[np.clip(idx, 0, len(y) - 1)], np.nan))
        ys = np.array(ys)
        line, = ax.plot(grid, np.nanmean(ys, axis=0), label=f"{arm} (n={len(curves)})")
        ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("online train env steps (10 Hz)")
    ax.set_ylabel(f"evaluation successes / {eval_episodes}\n(a block stops at its first failure)" if not full_eval
                  else f"evaluation successes / {eval_episodes}")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("pick_place: mean over seeds, band = min..max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown_section(path: Path, text: str, marker: str = "table1") -> None:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    body = path.read_text() if path.exists() else ""
    block = f"{start}\n{text}\n{end}"
    if start in body and end in body:
        body = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    path.write_text(body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("inprocess", "graph"), default="inprocess")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS) + list(VARIANTS) + list(ABLATIONS))
    ap.add_argument("--no-ablations", action="store_true", help="skip VGM with each gate switched off")
    ap.add_argument("--static-lambdas", type=float, nargs="+", default=[0.5, 1.0],
                    help="one static-residual arm per value (0.5: the paper's setting, see BENCHMARKS.md)")
    ap.add_argument("--max-env-steps", type=int, default=8000, help="online budget per run (train + eval)")
    ap.add_argument("--base-budget", type=int, default=2500, help="budget of the base-only arm (it does not learn)")
    ap.add_argument("--eval-every", type=int, default=10, help="train episodes between evaluation blocks")
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--full-eval", action="store_true", help="play every evaluation block to the end")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--domain-id", type=int, default=61, help="ROS_DOMAIN_ID of graph runs (loopback only)")
    ap.add_argument("--graph-timeout-s", type=int, default=1800)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "table1"))
    ap.add_argument("--markdown", default="", help="write the table into this file between table1 markers")
    ap.add_argument("--tag", default="", help="suffix of the output files (e.g. _ablations)")
    ap.add_argument("--resume", action="store_true", help="graph backend: reuse runs whose metrics.json exists")
    ap.add_argument("--replot", default="", help="only redraw the PNG of an existing result JSON")
    args = ap.parse_args(argv)
    if args.replot:
        result = json.loads(Path(args.replot).read_text())
        plot(result["runs"], [r["arm"] for r in result["rows"]], Path(args.replot).with_suffix(".png"),
             args.eval_episodes, result.get("full_eval", False))
        return 0

    table = {**ARMS, **VARIANTS, **ABLATIONS}
    for lam in args.static_lambdas:
        table[f"static-{lam:g}"] = ("static", {"lambda_static": lam})
    arms = [a for arm in args.arms for a in ([f"static-{lam:g}" for lam in args.static_lambdas] if arm == "static" else [arm])]
    arms += [] if args.no_ablations else list(ABLATIONS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(arm, table[arm][0], table[arm][1], seed, args) for seed in args.seeds for arm in arms]
    t0 = time.monotonic()
    if args.backend == "inprocess":
        with mp.get_context("spawn").Pool(max(1, args.workers)) as pool:
            runs = pool.map(_run_inprocess, jobs, chunksize=1)
    else:
        runs = []
        for job in jobs:   # sequential: one graph at a time; --resume skips finished runs
            runs.append(_run_graph(job))
            print(json.dumps({k: runs[-1][k] for k in ("arm", "seed", "solved", "train_steps_to_solve",
                                                       "final_success", "wall_s")}), flush=True)
    rows = aggregate(runs, arms)
    result = {"backend": args.backend, "seeds": args.seeds, "static_lambdas": args.static_lambdas,
              "max_env_steps": args.max_env_steps, "eval_every": args.eval_every, "full_eval": args.full_eval,
              "wall_s": round(time.monotonic() - t0, 1), "rows": rows, "runs": runs}
    stem = f"table1_{args.backend}{args.tag}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    plot(runs, arms, out / f"{stem}.png", args.eval_episodes, args.full_eval)
    md = markdown(rows, runs, args)
    (out / f"{stem}.md").write_text(md + "\n")
    if args.markdown:
        write_markdown_section(Path(args.markdown), md, stem)
    print(json.dumps({"backend": args.backend, "wall_s": result["wall_s"], "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
