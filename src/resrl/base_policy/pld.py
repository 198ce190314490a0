"""PLD closed in sim: probe the learned base with hybrid rollouts, learn a residual, distill it back.

Probe-Learn-Distill (resrl.arbiter.pld) with the sim's LeRobot base (resrl.base_policy.train):

    python -m resrl.base_policy.pld --base runs/base_policy/act_d50/train/checkpoints/last/pretrained_model \\
        --base-demos 50 --out runs/pld/act_d50 [--session-steps 3000] [--alpha 0.5] [--finetune-steps 1000]

1. before: the base alone, open-loop chunks, on the evaluation seeds (``train.evaluate``);
2. probe + learn: one resrl session -- the in-process runner, the node graph's code path -- with the
   base as ``vla.backend: lerobot``: the session plan's scripted-expert demos, the Cal-QL warm-up, then
   online residual RL in which every train episode is a PLD hybrid rollout (the base alone for
   T_base ~ U{0..alpha*T} steps, then base + residual at the arbiter's mode);
3. distill: the successful train episodes' executed actions, exported as a LeRobotDataset together
   with the base's own demos (re-recorded from their seeds, so the base does not forget them), and
   LeRobot's trainer fine-tunes the base from its checkpoint (architecture kept, ``--policy.path``);
4. after: the fine-tuned base alone on the same evaluation seeds;
5. control (``--no-control`` skips it): the same fine-tuning on the base's demos alone, evaluated the
   same way -- what the extra training steps give without the rollouts.

The improved behaviour ends up in the base: no residual, critic or arbiter runs at evaluation.
Prints (and writes ``<out>/result.json``) a JSON summary: success before / after, the session's
successes, frames distilled, and the wall time of each phase.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from resrl.base_policy.train import EVAL_SEED0, TASK_TEXT, TrainOptions, _emit, evaluate, record_demos, train


NEVER = 1 << 30


@dataclass
class PLDLoopConfig:
    base: str                        # the base's pretrained_model folder (LeRobot checkpoint)
    out: str                         # run folder: session/, dataset/, finetune/, result.json
    task: str = "pick_place"
    base_demos: int = 50             # the demos the base was trained on (0: distill the rollouts alone)
    noise_std: float = 0.004         # ... with train.py's teleop jitter, so they are the same episodes
    yaw_noise_std: float = 0.05
    seed: int = 0                    # the session's seed
    alpha: float = 0.5               # PLD: T_base ~ U{0..floor(alpha*T)}
    mode: str = "residual_only"      # the arbiter after the base-only prefix (PLD: base + residual)
    session_steps: int = 3000        # online env steps of the session
    num_demos: int = 20              # the session's scripted-expert demos (the residual's warm-up)
    execute_steps: int = 8           # rows of each chunk run open-loop (session and evaluation)
    finetune_steps: int = 1000
    lr: float = 1e-4
    episodes: int = 100              # evaluation episodes before and after
    torch_threads: int = 1
    control: bool = True             # also fine-tune on the base's demos alone (same steps) and evaluate
    learner: dict = field(default_factory=dict)   # the session's learner overrides (tests: a tiny budget)


def chunk_rows(checkpoint) -> int:
    """Rows per chunk of a LeRobot checkpoint (ACT / SmolVLA ``chunk_size``, Diffusion ``horizon``)."""
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    return int(config.get("chunk_size") or config["horizon"])


def session_config(cfg: PLDLoopConfig):
    from resrl.sim.inprocess import InProcessConfig
    rows = chunk_rows(cfg.base)
    train_seeds = range(cfg.seed * 100_000, (cfg.seed + 1) * 100_000)   # resrl.session.SessionPlan's
    if EVAL_SEED0 in train_seeds or EVAL_SEED0 + cfg.episodes - 1 in train_seeds:
        raise ValueError(f"session seed {cfg.seed}: its train episodes would reuse the evaluation seeds "
                         f"({EVAL_SEED0}..): pick another seed")
    if not 1 <= cfg.execute_steps <= rows:
        raise ValueError(f"execute_steps {cfg.execute_steps} must be in 1..{rows} (the base's chunk rows)")
    return InProcessConfig(
        task=cfg.task, mode=cfg.mode, seed=cfg.seed, pld_alpha=cfg.alpha, torch_threads=cfg.torch_threads,
        run_dir=str(Path(cfg.out) / "session"), learner=dict(cfg.learner),
        # execute_steps rows of each chunk, then the next (the chunk provider's prefetch, as evaluated)
        vla={"backend": "lerobot", "checkpoint_dir": cfg.base, "horizon": rows,
             "prefetch_steps": rows - cfg.execute_steps},
        # No evaluation blocks: the session is data collection; the base is what gets evaluated.
        session={"max_env_steps": cfg.session_steps, "num_demos": cfg.num_demos,
                 "eval_every": NEVER, "eval_trigger_streak": NEVER})


def run_loop(cfg: PLDLoopConfig, log=print) -> dict:
    from resrl.sim.inprocess import InProcessSession
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"config": asdict(cfg), "command": "python -m resrl.base_policy.pld " + " ".join(sys.argv[1:])}
    t0 = time.perf_counter()
    before = result["before"] = _evaluate(cfg, Path(cfg.base))
    log(f"before: base alone {before['success_rate']:.2f} over {cfg.episodes} episodes")

    t1 = time.perf_counter()
    session = InProcessSession(session_config(cfg), log=log)
    summary = session.run()
    train_eps = [e for e in summary["episodes"] if e["kind"] == "train"]
    rollouts = [ep for ep in session.online.episodes() if ep.success]
    result["session"] = {  # train episodes only; every one a hybrid rollout
        "train_episodes": len(train_eps), "train_successes": sum(e["success"] for e in train_eps),
        "last20_success": float(np.mean([e["success"] for e in train_eps[-20:]])) if train_eps else 0.0,
        "env_steps": summary["env_steps"], "updates": summary["updates"], "seconds": time.perf_counter() - t1,
        "successes_distilled": len(rollouts),
        "hybrid": sum(e["gate_activity"].get("t_base", 0) > 0 for e in train_eps if e["success"])}
    log(f"session: {result['session']}")
    if not rollouts:
        result["after"] = None
        result["why"] = "the session had no successful rollout: nothing to distill"
        _write(result, out)
        return result

    result["distill"] = distill(cfg, rollouts, out)
    result["after"] = _evaluate(cfg, Path(result["distill"]["checkpoint"]))
    if cfg.control and cfg.base_demos:
        # The same fine-tuning on the base's demos alone: what more training gives without the rollouts.
        result["control"] = distill(cfg, [], out / "control")
        result["after_control"] = _evaluate(cfg, Path(result["control"]["checkpoint"]))
        log(f"control: fine-tuned on its demos alone {result['after_control']['success_rate']:.2f}")
    result["wall_s"] = time.perf_counter() - t0
    log(f"after: fine-tuned base alone {result['after']['success_rate']:.2f} (before {before['success_rate']:.2f})")
    _write(result, out)
    return result


def distill(cfg: PLDLoopConfig, rollouts: list, out: Path) -> dict:
    """Export ``rollouts`` (+ the base's own demos) as a LeRobotDataset under ``out`` and fine-tune
    the base on it with LeRobot's trainer; returns what was distilled and the new checkpoint."""
    from resrl.export.lerobot import export_lerobot
    t0 = time.perf_counter()
    episodes = list(rollouts)
    if cfg.base_demos:
        demos, _ = record_demos(cfg.task, cfg.base_demos, cfg.noise_std, cfg.yaw_noise_std)
        episodes = list(demos.episodes()) + episodes
    info = export_lerobot(episodes, out / "dataset", TASK_TEXT.get(cfg.task, cfg.task), fps=10)
    checkpoint, train_s, cmd = train(out / "dataset", out / "finetune",
                                     TrainOptions(steps=cfg.finetune_steps, lr=cfg.lr,
                                                  n_action_steps=cfg.execute_steps, torch_threads=cfg.torch_threads),
                                     init_from=Path(cfg.base))
    return {"frames": info["total_frames"], "episodes": info["total_episodes"],
            "rollout_frames": int(sum(len(ep.action) for ep in rollouts)),
            "train_seconds": train_s, "checkpoint": str(checkpoint),
            "lerobot_command": "python " + " ".join(cmd[1:]), "seconds": time.perf_counter() - t0}


def _evaluate(cfg: PLDLoopConfig, checkpoint: Path) -> dict:
    result = evaluate(checkpoint, cfg.task, cfg.episodes, cfg.execute_steps, horizon=chunk_rows(checkpoint),
                      torch_threads=cfg.torch_threads)
    return {k: v for k, v in result.items() if k != "outcomes"}


def _write(result: dict, out: Path) -> None:
    (out / "result.json").write_text(json.dumps(result, indent=1))


def main(argv=None) -> int:
    d = PLDLoopConfig(base="", out="")
    ap = argparse.ArgumentParser(prog="python -m resrl.base_policy.pld", description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the LeRobot base's pretrained_model folder")
    ap.add_argument("--out", required=True)
    for name, value in asdict(d).items():
        if name in ("base", "out", "learner"):
            continue
        if isinstance(value, bool):
            ap.add_argument("--" + name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=value)
        else:
            ap.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    ap.add_argument("--json", default="", help="also write the summary here")
    args = vars(ap.parse_args(argv))
    path = args.pop("json")
    result = run_loop(PLDLoopConfig(**args), log=lambda line: print(line, file=sys.stderr, flush=True))
    _emit(result, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
