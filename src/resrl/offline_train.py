"""Offline training from rosbag2 bags: rebuild transitions, Cal-QL warm-up, then residual + critic
updates, and a checkpoint the live nodes load (``/resrl/load_checkpoint`` or the nodes' params).

    python -m resrl.offline_train --bags runs/a/bag runs/b/bag demos/teleop_01 --out runs/offline \\
        [--params config/sim_vgm.yaml] [--learner-config config/learner.yaml] [--obs-mode object] \\
        [--warmup-steps 500] [--steps 1000] [--tolerance-ms 50] [--remap commanded_pose:=/my/target]

Bags from resrl's recorder and from ``ros2 bag record`` (docs/data.md topic list) give the same
transitions. Problems in a bag (damage, time gaps, unknown types) are printed as one line each
naming file, topic and time; the readable parts are used. A bag that yields nothing is an error
unless ``--keep-going``. Writes ``<out>/replay/{online,demos}`` (the rebuilt transitions, in the
replay format), ``<out>/checkpoints/final.pt`` and ``<out>/offline_train.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from resrl.configs import ConfigError, from_dict, load_yaml, section


def _params(path: str | None, node: str) -> dict:
    """Flat ROS parameters for ``node`` from a ros__parameters YAML (``/**`` first, then the node)."""
    if not path:
        return {}
    data = load_yaml(path)
    out = {}
    for key in ("/**", node):
        out.update(section(data, key, "ros__parameters"))
    return out


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m resrl.offline_train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bags", nargs="+", required=True, help="bag folders (or .mcap / .db3 files)")
    ap.add_argument("--out", required=True, help="output folder (must not hold a replay already)")
    ap.add_argument("--params", default="", help="node parameter YAML (model:, replay.*, learner.* keys), "
                                                 "e.g. config/sim_vgm.yaml")
    ap.add_argument("--learner-config", default="", help="learner YAML (default: the package's config/learner.yaml)")
    ap.add_argument("--obs-mode", choices=("object", "image"), default=None)
    ap.add_argument("--algo", choices=("calql", "rlpd", "td3"), default=None, help="after the Cal-QL warm-up")
    ap.add_argument("--warmup-steps", type=int, default=None, help="Cal-QL updates on the demo/intervention data")
    ap.add_argument("--steps", type=int, default=0, help="train_step calls on online + demo data after warm-up")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--learning-starts", type=int, default=None, help="transitions before train_step learns")
    ap.add_argument("--tolerance-ms", type=float, default=50.0, help="observation alignment tolerance")
    ap.add_argument("--control-rate-hz", type=float, default=None, help="teleop resampling clock")
    ap.add_argument("--remap", nargs="*", default=[], metavar="NAME:=/topic",
                    help="teleop topic names (fields of resrl.bags.schema.TeleopTopics)")
    ap.add_argument("--init", default="", help="checkpoint to start from (e.g. a live session's final.pt)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-going", action="store_true", help="skip bags that yield no transition")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    import torch

    from resrl.algos.learner import Learner, load_configs
    from resrl.bags import BagError, RebuildConfig, TeleopTopics, read_bag, rebuild
    from resrl.launch_runner import package_share
    from resrl.models import build_critic, build_residual
    from resrl.models.checkpoint import load_checkpoint, load_state_dict_checked, save_checkpoint
    from resrl.models.config import ModelConfig, obs_spec
    from resrl.replay import ReplayBuffer

    out = Path(args.out)
    params = _params(args.params, "replay_learner")
    model_cfg = from_dict(ModelConfig, params.get("model", {}), "model")
    model_cfg.obs_mode = args.obs_mode or params.get("obs_mode", "object")
    learner_cfg, algo_cfgs = load_configs(args.learner_config or package_share() / "config" / "learner.yaml")
    overrides = {k.split(".", 1)[1]: v for k, v in params.items()
                 if k.startswith("learner.") and k != "learner.enabled"}
    for name, value in (("algo", args.algo), ("warmup_steps", args.warmup_steps), ("batch_size", args.batch_size),
                        ("learning_starts", args.learning_starts)):
        if value is not None:
            overrides[name] = value
    learner_cfg = dataclasses.replace(learner_cfg, seed=args.seed, **overrides)

    replay_dir = out / "replay"
    if replay_dir.exists() and any(replay_dir.rglob("episode-*")):
        raise SystemExit(f"{replay_dir} already holds a replay; choose a new --out")
    spec = obs_spec(model_cfg.obs_mode, model_cfg)
    gamma, n_step = float(params.get("replay.gamma", 0.99)), int(params.get("replay.n_step", 1))
    capacity = int(params.get("replay.capacity", 200_000))
    online = ReplayBuffer(spec, capacity, replay_dir / "online", gamma, n_step, "online")
    offline = ReplayBuffer(spec, capacity, replay_dir / "demos", gamma, n_step, "demos")

    rebuild_cfg = RebuildConfig(obs_mode=model_cfg.obs_mode, num_objects=model_cfg.num_objects,
                                conf_threshold=model_cfg.conf_threshold, image_size=model_cfg.image_size,
                                tolerance_ms=args.tolerance_ms,
                                control_rate_hz=args.control_rate_hz or float(params.get("control_rate_hz", 10.0)),
                                teleop=TeleopTopics.from_remaps(args.remap))
    reports, issues = [], []
    for bag in args.bags:
        try:
            data = read_bag(bag)
            report = rebuild(data, online, offline, rebuild_cfg)
        except BagError as exc:
            if not args.keep_going:
                raise SystemExit(f"offline_train: {exc}")
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        for issue in data.issues:
            print(f"bag issue: {issue}", file=sys.stderr)
        issues += [str(i) for i in data.issues]
        reports.append(dataclasses.asdict(report))
        print(f"{bag}: {report.source} bag, {report.episodes} episodes, {report.steps} steps, "
              f"{report.successes} successes" + (f", dropped {report.dropped}" if report.dropped else ""))
        if report.steps == 0 and not args.keep_going:
            raise SystemExit(f"offline_train: {bag}: no transition could be rebuilt")
    if len(online) + len(offline) == 0:
        raise SystemExit("offline_train: no transitions in any bag")

    torch.manual_seed(args.seed)
    learner = Learner(build_residual(model_cfg), build_critic(model_cfg), learner_cfg, algo_cfgs)
    if args.init:
        states, _, version, _ = load_checkpoint(args.init)
        load_state_dict_checked(learner.actor, states["residual"], "residual")
        load_state_dict_checked(learner.critic, states["critic"], "critic")
        learner.agent.sync_targets()
        learner.reset_policy_average()
        learner.policy_version = version
    t0 = time.monotonic()
    warm = learner.warmup(offline) if len(offline) else {}
    warmup_s = time.monotonic() - t0
    metrics = {}
    for _ in range(args.steps):
        metrics = learner.train_step(online, offline) or metrics
    if args.steps and learner.num_updates == 0:
        print(f"offline_train: no update after warm-up: {len(online) + len(offline)} transitions < "
              f"learning_starts={learner.config.learning_starts} (set --learning-starts)", file=sys.stderr)
    ckpt = out / "checkpoints" / "final.pt"
    save_checkpoint(ckpt, {"residual": learner.deployed_actor, "critic": learner.critic}, model_cfg,
                    learner.policy_version, {"updates": learner.num_updates,
                                             "warmup_updates": learner.num_warmup_updates})
    summary = {"bags": reports, "issues": issues, "online_transitions": len(online),
               "demo_transitions": len(offline), "warmup_updates": learner.num_warmup_updates,
               "updates": learner.num_updates, "warmup_s": warmup_s, "train_s": time.monotonic() - t0 - warmup_s,
               "policy_version": learner.policy_version, "checkpoint": str(ckpt),
               "last_warmup_metrics": warm, "last_train_metrics": metrics}
    (out / "offline_train.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"checkpoint {ckpt} (policy_version {learner.policy_version}, {learner.num_warmup_updates} warm-up + "
          f"{learner.num_updates} updates on {len(offline)} demo + {len(online)} online transitions)")
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"offline_train: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
