"""The sim's learned base policy: noisy teleop demos -> LeRobotDataset -> LeRobot ACT -> evaluation.

The sim counterpart of a real VLA (the object-centric paper's "sim VLA"): a LeRobot policy trained
with LeRobot's own trainer (``lerobot.scripts.lerobot_train``, the ``lerobot-train`` command) on a
few dozen imperfect demonstrations. It gets the intent right (reach, grasp, carry) and misses the
last centimetres for its own reasons -- too little data, demonstrator noise, open-loop chunks --
instead of the scripted VLA's designed biases.

    python -m resrl.base_policy.train --demos 20 --out runs/base_policy/act_d20     # demos + train + eval
    python -m resrl.base_policy.train evaluate --checkpoint <dir> --episodes 100     # eval only

Steps:
1. demos: ``ScriptedExpert`` (the scripted VLA plus the oracle correction) with Gaussian noise on
   every translation / yaw target, like a human teleoperator's jitter; failed attempts are
   discarded, as an operator would (the count is reported).
2. export: object-mode episodes (state, tracked poses = cube + target zone, executed action) as a
   LeRobotDataset v3.0 with ``resrl.export.lerobot`` -- the same exporter a real session's
   improved rollouts go through (``observation.environment_state`` = tracked poses).
3. train: ``python -m lerobot.scripts.lerobot_train --policy.type=act ...`` (a small ACT on state +
   environment state, no camera: minutes on 2 CPU cores); the checkpoint is
   ``<out>/train/checkpoints/last/pretrained_model``, which ``vla.backend: lerobot``
   (``vla.checkpoint_dir``) loads.
4. evaluate: the policy alone through ``resrl.vla.lerobot_backend`` in the sim, open-loop chunks
   (``execute_steps`` rows of each chunk before the next inference, as real VLAs run), 100 seeds
   disjoint from the demo seeds; JSON with the success rate and why the others failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resrl.sim.franka_env import FrankaTableEnv, tracked_objects
from resrl.sim.scripted import ScriptedExpert, load_task_config

DEMO_SEED0 = 0            # demo i uses seed DEMO_SEED0 + i (attempts, including discarded ones)
EVAL_SEED0 = 100_000      # evaluation seeds: disjoint from every demo seed
TASK_TEXT = {"pick_place": "put the cube on the green target", "pick_lift": "pick up the cube"}


# ---------------------------------------------------------------------------- 1. demos
def record_demos(task: str, num_demos: int, noise_std: float, yaw_noise_std: float,
                 seed0: int = DEMO_SEED0, max_attempts_factor: int = 3):
    """Successful noisy expert episodes in an in-memory replay buffer (object-mode spec)."""
    from resrl.replay import ReplayBuffer
    tc = load_task_config(task)
    env = FrankaTableEnv(tc.sim)
    num_objects = len(tracked_objects(task, env.reset(seed=seed0)))
    spec = {"state": ((7,), "float32"), "object_poses": ((7 * num_objects,), "float32")}
    buf = ReplayBuffer(spec, 1_000_000, name="demos")
    attempts = kept = 0
    while kept < num_demos:
        if attempts >= max_attempts_factor * num_demos:
            raise RuntimeError(f"only {kept} of {attempts} noisy demos succeeded; lower the noise")
        seed = seed0 + attempts
        attempts += 1
        expert = ScriptedExpert(tc, noise_std=noise_std, seed=seed)
        expert.yaw_noise_std = yaw_noise_std
        obs = env.reset(seed=seed)
        info = env.privileged_info()
        frames, steps, success = [dict(state=obs["state"], object_poses=_poses(task, obs))], [], False
        for _ in range(env.max_episode_steps):
            action = expert.act(obs, info).expert_action
            obs, reward, terminated, truncated, info = env.step(action)
            frames.append(dict(state=obs["state"], object_poses=_poses(task, obs)))
            steps.append((action, reward, terminated or truncated))
            if terminated or truncated:
                success = bool(info["success"])
                break
        if not success:
            continue
        buf.start_episode(frames[0], {"kind": "demo", "episode_id": seed})
        for (action, reward, done), nxt in zip(steps, frames[1:]):
            buf.add_step(action, np.zeros(7), 0.0, reward, nxt, done=done, intervention=True)
        buf.end_episode(True)
        kept += 1
    env.close()
    return buf, attempts


def _poses(task: str, obs) -> np.ndarray:
    return np.concatenate([pose for _, pose in tracked_objects(task, obs)]).astype(np.float32)


# ---------------------------------------------------------------------------- 3. train
@dataclass(frozen=True)
class TrainOptions:
    """The ACT training run (CLI flags of the same names)."""

    steps: int = 3000
    batch_size: int = 64
    chunk_size: int = 16          # rows ACT predicts
    n_action_steps: int = 8       # rows run open-loop per chunk
    seed: int = 1000
    torch_threads: int = 1
    lr: float = 1e-4
    use_vae: bool = True
    num_workers: int = 1


def lerobot_train_command(dataset: Path, out: Path, opts: TrainOptions, init_from: Path | None = None) -> list:
    """LeRobot's own trainer on the exported dataset: a small ACT on state + environment state, or
    (``init_from``: a checkpoint's ``pretrained_model``) that policy fine-tuned, its architecture kept."""
    if init_from is None:
        policy = ["--policy.type=act", f"--policy.chunk_size={opts.chunk_size}",
                  f"--policy.n_action_steps={opts.n_action_steps}",
                  "--policy.dim_model=128", "--policy.n_heads=4", "--policy.dim_feedforward=512",
                  "--policy.n_encoder_layers=2", "--policy.n_decoder_layers=1", "--policy.latent_dim=16",
                  "--policy.n_vae_encoder_layers=2", "--policy.dropout=0.1",
                  f"--policy.use_vae={str(opts.use_vae).lower()}"]
    else:   # LeRobot loads config + weights; the normaliser takes the new dataset's stats
        policy = [f"--policy.path={init_from}"]
    return [sys.executable, "-m", "resrl.vla.lerobot_compat", "lerobot.scripts.lerobot_train",
            f"--dataset.repo_id=local/{dataset.name}", f"--dataset.root={dataset}",
            *policy, "--policy.device=cpu", "--policy.push_to_hub=false",
            # ACT's preset 1e-5 is for ~100k steps on real data; at a few thousand steps it leaves
            # the decoder at the demos' mean trajectory (measured: 0/100, never grasping).
            f"--policy.optimizer_lr={opts.lr}",
            f"--output_dir={out}", "--job_name=resrl_sim_base", f"--steps={opts.steps}",
            f"--batch_size={opts.batch_size}", f"--num_workers={opts.num_workers}", "--eval_freq=0",
            f"--save_freq={opts.steps}", "--log_freq=200", "--wandb.enable=false", f"--seed={opts.seed}"]


def train(dataset: Path, out: Path, opts: TrainOptions, init_from: Path | None = None) -> tuple[Path, float, list]:
    """Run LeRobot's trainer; returns (checkpoint, seconds, the command it ran)."""
    cmd = lerobot_train_command(dataset, out, opts, init_from)
    # One intra-op thread: this model's ops are small, and with a second busy core OpenMP's barriers
    # made a step 10x slower (1.5 s vs 0.13 s measured at load ~5); the data loader worker (a
    # process of its own) uses the other core.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled",
           "OMP_NUM_THREADS": str(opts.torch_threads), "MKL_NUM_THREADS": str(opts.torch_threads)}
    t0 = time.perf_counter()
    log = out.parent / "lerobot_train.log"
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"lerobot training failed (rc {rc}); see {log}:\n" + log.read_text()[-3000:])
    return out / "checkpoints" / "last" / "pretrained_model", seconds, cmd


# ---------------------------------------------------------------------------- 4. evaluate
def evaluate(checkpoint: Path, task: str, episodes: int, execute_steps: int, horizon: int = 16,
             seed0: int = EVAL_SEED0, torch_threads: int = 1) -> dict:
    """The learned base alone, open-loop: ``execute_steps`` rows per chunk, then re-infer."""
    import torch

    from resrl.vla.lerobot_backend import LeRobotBackend
    torch.set_num_threads(max(1, torch_threads))
    tc = load_task_config(task)
    env = FrankaTableEnv(tc.sim)
    backend = LeRobotBackend(str(checkpoint), horizon, task=TASK_TEXT.get(task, task))
    outcomes, t0, infer_s = [], time.perf_counter(), []
    for i in range(episodes):
        seed = seed0 + i
        obs = env.reset(seed=seed)
        backend.reset(seed)
        chunk, k, grasped, info = None, 0, False, env.privileged_info()
        for t in range(env.max_episode_steps):
            if chunk is None or k >= min(execute_steps, len(chunk)):
                t1 = time.perf_counter()
                chunk = backend.infer({"state": obs["state"], "object_poses": _poses(task, obs)})
                infer_s.append(time.perf_counter() - t1)
                k = 0
            obs, _, terminated, truncated, info = env.step(chunk[k])
            k += 1
            grasped |= bool(info["grasped"])
            if terminated or truncated:
                break
        cube, target = np.asarray(info["object_pose"]), np.asarray(info["target_pose"])
        outcomes.append({"seed": seed, "success": bool(info["success"]), "steps": t + 1,
                         "failure": _failure(info, grasped),
                         "final_xy_error_m": float(np.linalg.norm(cube[:2] - target[:2]))})
    env.close()
    failures = [o["failure"] for o in outcomes if not o["success"]]
    return {"episodes": episodes, "execute_steps": execute_steps, "horizon": horizon, "seed0": seed0,
            "success_rate": float(np.mean([o["success"] for o in outcomes])),
            "failures": {kind: failures.count(kind) for kind in sorted(set(failures))},
            "median_final_xy_error_m": float(np.median([o["final_xy_error_m"] for o in outcomes])),
            "inference_ms_median": 1e3 * float(np.median(infer_s)),
            "eval_seconds": time.perf_counter() - t0, "outcomes": outcomes}


def _failure(info, ever_grasped: bool) -> str | None:
    """Why an episode failed, by how far the intent got: the last mile is grasp -> place."""
    if info["success"]:
        return None
    if info["failure"]:
        return str(info["failure"])
    if not ever_grasped:
        return "never_grasped"
    if info["grasped"]:
        return "still_holding"           # carried it, never released in the zone
    return "placed_outside_zone" if info["task"] == "pick_place" else "dropped"


# ---------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["evaluate"]:
        ap = argparse.ArgumentParser(prog="python -m resrl.base_policy.train evaluate")
        ap.add_argument("--checkpoint", required=True)
        ap.add_argument("--task", default="pick_place")
        ap.add_argument("--episodes", type=int, default=100)
        ap.add_argument("--execute-steps", type=int, default=8)
        ap.add_argument("--torch-threads", type=int, default=1)
        ap.add_argument("--json", default="")
        args = ap.parse_args(argv[1:])
        result = evaluate(Path(args.checkpoint), args.task, args.episodes, args.execute_steps,
                          torch_threads=args.torch_threads)
        result["checkpoint"] = args.checkpoint
        _emit(result, args.json)
        return 0
    ap = argparse.ArgumentParser(prog="python -m resrl.base_policy.train", description=__doc__.split("\n\n")[0])
    TRAIN = TrainOptions()
    ap.add_argument("--task", default="pick_place")
    ap.add_argument("--demos", type=int, default=20)
    ap.add_argument("--out", required=True, help="run folder: dataset/, train/, result.json")
    ap.add_argument("--noise-std", type=float, default=0.004, help="m, teleop jitter on each target")
    ap.add_argument("--yaw-noise-std", type=float, default=0.05, help="rad")
    ap.add_argument("--steps", type=int, default=TRAIN.steps, help="LeRobot training steps")
    ap.add_argument("--batch-size", type=int, default=TRAIN.batch_size)
    ap.add_argument("--chunk-size", type=int, default=TRAIN.chunk_size, help="ACT chunk_size (rows predicted)")
    ap.add_argument("--execute-steps", type=int, default=TRAIN.n_action_steps, help="rows run open-loop per chunk")
    ap.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    ap.add_argument("--seed", type=int, default=TRAIN.seed, help="training seed")
    ap.add_argument("--torch-threads", type=int, default=TRAIN.torch_threads, help="intra-op threads (train and evaluation)")
    ap.add_argument("--lr", type=float, default=TRAIN.lr, help="ACT optimizer lr (LeRobot's preset: 1e-5)")
    ap.add_argument("--no-vae", action="store_true", help="ACT without its CVAE (unimodal demos)")
    ap.add_argument("--json", default="", help="also write the result here")
    args = ap.parse_args(argv)
    from resrl.export.lerobot import export_lerobot
    out = Path(args.out)
    t0 = time.perf_counter()
    buf, attempts = record_demos(args.task, args.demos, args.noise_std, args.yaw_noise_std)
    dataset = out / "dataset"
    info = export_lerobot(list(buf.episodes()), dataset, TASK_TEXT.get(args.task, args.task), fps=10)
    demo_s = time.perf_counter() - t0
    opts = TrainOptions(steps=args.steps, batch_size=args.batch_size, chunk_size=args.chunk_size,
                        n_action_steps=args.execute_steps, seed=args.seed, torch_threads=args.torch_threads,
                        lr=args.lr, use_vae=not args.no_vae)
    checkpoint, train_s, cmd = train(dataset, out / "train", opts)
    result = {"task": args.task, "demos": args.demos, "demo_attempts": attempts,
              "demo_frames": info["total_frames"], "noise_std": args.noise_std,
              "yaw_noise_std": args.yaw_noise_std, "train_steps": opts.steps, "batch_size": opts.batch_size,
              "chunk_size": opts.chunk_size, "train_seed": opts.seed, "torch_threads": opts.torch_threads,
              "lr": opts.lr, "use_vae": opts.use_vae, "demo_seconds": demo_s,
              "train_seconds": train_s, "checkpoint": str(checkpoint),
              "command": "python -m resrl.base_policy.train " + " ".join(argv),
              "lerobot_command": "python " + " ".join(cmd[1:])}
    result.update(evaluate(checkpoint, args.task, args.episodes, args.execute_steps, horizon=args.chunk_size,
                           torch_threads=args.torch_threads))
    _emit(result, args.json or str(out / "result.json"))
    return 0


def _emit(result: dict, path: str) -> None:
    summary = {k: v for k, v in result.items() if k != "outcomes"}
    print(json.dumps(summary, indent=1))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
