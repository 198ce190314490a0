"""Export selected replay episodes as a LeRobotDataset (format v3.0, what ``lerobot`` 0.4 and openpi
fine-tuning read) for distilling the improved behaviour into the base (VLA) policy.

    python -m resrl.export.lerobot --replay runs/x/replay/online runs/x/replay/demos --out datasets/pick \\
        --select success intervention hybrid --task "put the cube on the target" [--fps 10]
    python -m resrl.export.lerobot --bags runs/x/bag --out datasets/pick ...   # rebuild from bags first

Selection (an episode is exported when it matches any selected kind):
  success       the episode ended with success;
  intervention  a human took over at least one step;
  hybrid        a PLD hybrid rollout that succeeded: the base acted alone for a prefix
                (lambda = 0), then the residual took over (lambda > 0) until the end.

Layout (LeRobot v3.0): ``meta/info.json``, ``meta/stats.json``, ``meta/tasks.parquet``,
``meta/episodes/chunk-000/file-000.parquet``, ``data/chunk-000/file-000.parquet``. One frame per
transition t: ``observation.state`` (7: EE position, rotation vector, gripper opening),
``observation.images.rgb`` / ``observation.images.depth`` (image mode; PNG in the parquet, depth
repeated on 3 channels), ``observation.environment_state`` (object mode: tracked poses),
``action`` (7: the executed absolute action a_t), ``next.reward``, ``next.done``,
``intervention``, and LeRobot's ``timestamp`` / ``frame_index`` / ``episode_index`` / ``index`` /
``task_index``. Written with the Hugging Face ``datasets`` + ``pyarrow`` stack LeRobot itself uses.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

CODEBASE_VERSION = "v3.0"
SELECTIONS = ("success", "intervention", "hybrid")
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STATE_NAMES = ["x", "y", "z", "rx", "ry", "rz", "gripper_opening"]
ACTION_NAMES = ["x", "y", "z", "rx", "ry", "rz", "gripper"]


class ExportError(ValueError):
    """Nothing to export, or the output folder is not empty."""


def hybrid_switch(episode) -> Optional[int]:
    """First residual step of a PLD hybrid rollout (base-only prefix, residual to the end), else None."""
    lam = np.asarray(episode.lambda_)
    active = (lam.reshape(len(lam), -1) > 0).any(axis=1)   # per-dimension lambda: any dimension on
    if len(active) < 2 or active[0] or not active.any():
        return None
    t = int(np.argmax(active))
    return t if active[t:].all() else None


def episode_kinds(episode) -> List[str]:
    kinds = []
    if episode.success:
        kinds.append("success")
    if np.asarray(episode.intervention).any():
        kinds.append("intervention")
    if episode.success and hybrid_switch(episode) is not None:
        kinds.append("hybrid")
    return kinds


def select(episodes: Iterable, wanted: Iterable[str]) -> list:
    wanted = set(wanted)
    unknown = wanted - set(SELECTIONS)
    if unknown:
        raise ExportError(f"unknown selection {sorted(unknown)}; choose from {SELECTIONS}")
    return [ep for ep in episodes if wanted & set(episode_kinds(ep))]


def _features(sample) -> Dict[str, dict]:
    feats = {"observation.state": {"dtype": "float32", "shape": [7], "names": STATE_NAMES}}
    if "image" in sample.obs:
        h, w = sample.obs["image"].shape[1:3]
        for key in ("rgb", "depth"):
            feats[f"observation.images.{key}"] = {"dtype": "image", "shape": [int(h), int(w), 3],
                                                  "names": ["height", "width", "channels"]}
    if "object_poses" in sample.obs:
        n = int(sample.obs["object_poses"].shape[1])
        feats["observation.environment_state"] = {
            "dtype": "float32", "shape": [n],
            "names": [f"object{i}_{c}" for i in range(n // 7) for c in ("x", "y", "z", "qx", "qy", "qz", "qw")]}
    feats.update({
        "action": {"dtype": "float32", "shape": [7], "names": ACTION_NAMES},
        "next.reward": {"dtype": "float32", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "intervention": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    })
    return feats


def _hf_features(features: Dict[str, dict]):
    """LeRobot's feature dict -> datasets.Features (as lerobot.datasets.utils.get_hf_features_from_features)."""
    import datasets
    out = {}
    for key, ft in features.items():
        if ft["dtype"] == "image":
            out[key] = datasets.Image()
        elif ft["shape"] == [1]:
            out[key] = datasets.Value(dtype=ft["dtype"])
        else:
            out[key] = datasets.Sequence(length=ft["shape"][0], feature=datasets.Value(dtype=ft["dtype"]))
    return datasets.Features(out)


def _stats(values: np.ndarray, image: bool) -> Dict[str, list]:
    """min/max/mean/std/count/q01..q99 as lerobot.datasets.compute_stats computes them."""
    if image:   # (N, H, W, C) uint8 -> per channel in [0, 1], shape (3, 1, 1)
        arr = values.astype(np.float64) / 255.0
        axes, shape = (0, 1, 2), (3, 1, 1)
    else:
        arr = values.astype(np.float64).reshape(len(values), -1)
        axes, shape = 0, (arr.shape[1],)
    out = {"min": arr.min(axis=axes), "max": arr.max(axis=axes), "mean": arr.mean(axis=axes),
           "std": arr.std(axis=axes), "count": np.array([len(values)])}
    for q in QUANTILES:
        out[f"q{int(round(q * 100)):02d}"] = np.quantile(arr, q, axis=axes)
    return {k: (v if k == "count" else np.reshape(v, shape)).tolist() for k, v in out.items()}


def export_lerobot(episodes: list, out: str | Path, task: str, fps: int = 10,
                   robot_type: str = "franka") -> dict:
    """Write ``episodes`` (replay ``Episode`` objects) as a LeRobotDataset at ``out``; returns info.json."""
    import datasets
    import pandas as pd
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; a dataset is never overwritten")
    if not episodes:
        raise ExportError("no episode matches the selection; nothing exported")
    features = _features(episodes[0])
    columns: Dict[str, list] = {k: [] for k in features}
    episode_rows = []
    index = 0
    for ep_index, ep in enumerate(episodes):
        n = len(ep.action)
        rows = {
            "observation.state": ep.obs["state"][:n].astype(np.float32),
            "action": ep.action.astype(np.float32),
            "next.reward": ep.reward.astype(np.float32),
            "next.done": np.asarray(ep.done, bool),
            "intervention": np.asarray(ep.intervention, bool),
            "timestamp": (np.arange(n) / fps).astype(np.float32),
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, ep_index, np.int64),
            "index": np.arange(index, index + n, dtype=np.int64),
            "task_index": np.zeros(n, np.int64),
        }
        if "observation.images.rgb" in features:
            rows["observation.images.rgb"] = ep.obs["image"][:n]
            rows["observation.images.depth"] = np.repeat(ep.obs["depth"][:n, :, :, None], 3, axis=3)
        if "observation.environment_state" in features:
            rows["observation.environment_state"] = ep.obs["object_poses"][:n].astype(np.float32)
        for key, values in rows.items():
            columns[key].extend(list(values))
        stats = {f"stats/{key}/{stat}": value for key in features if key in rows
                 for stat, value in _stats(np.asarray(rows[key]), features[key]["dtype"] == "image").items()}
        episode_rows.append({"episode_index": ep_index, "tasks": [task], "length": n,
                             "data/chunk_index": 0, "data/file_index": 0,
                             "dataset_from_index": index, "dataset_to_index": index + n,
                             "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
                             "resrl/kinds": episode_kinds(ep), "resrl/success": bool(ep.success),
                             "resrl/source_episode": int(ep.meta.get("episode_id", ep.episode_id)), **stats})
        index += n

    data_path = out / "data" / "chunk-000" / "file-000.parquet"
    data_path.parent.mkdir(parents=True)
    table = datasets.Dataset.from_dict(columns, features=_hf_features(features), split="train")
    pq.write_table(table.with_format("arrow")[:], data_path)
    episodes_path = out / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    episodes_path.parent.mkdir(parents=True)
    pd.DataFrame(episode_rows).to_parquet(episodes_path)
    pd.DataFrame({"task_index": [0]}, index=[task]).to_parquet(out / "meta" / "tasks.parquet")
    stats = {key: _stats(np.asarray(columns[key]), ft["dtype"] == "image") for key, ft in features.items()}
    (out / "meta" / "stats.json").write_text(json.dumps(stats, indent=1))
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes),
            "total_frames": index, "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": int(fps), "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
            "features": features}
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return info


def _episodes_from_replay(dirs: List[str]) -> list:
    """Episodes of replay folders. A train episode with interventions is stored twice (online and
    demos, see resrl.recorder): when an ``online`` folder is given, its demos-folder copy is skipped."""
    from resrl.replay import ReplayBuffer
    has_online = any(Path(d).name == "online" for d in dirs)
    episodes = []
    for d in dirs:
        for ep in ReplayBuffer.load(d, 1_000_000).episodes():
            if has_online and Path(d).name != "online" and ep.meta.get("kind") == "train":
                continue
            episodes.append(ep)
    return episodes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m resrl.export.lerobot", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", nargs="+", help="replay folders (runs/<date>/replay/online, .../demos)")
    src.add_argument("--bags", nargs="+", help="bags: transitions are rebuilt first (resrl.bags)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--select", nargs="+", default=list(SELECTIONS), choices=SELECTIONS)
    ap.add_argument("--task", required=True, help="language instruction stored as the episodes' task")
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--obs-mode", choices=("object", "image"), default="image", help="with --bags")
    ap.add_argument("--image-size", type=int, default=96, help="with --bags, image mode")
    args = ap.parse_args(argv)
    try:
        if args.replay:
            episodes = _episodes_from_replay(args.replay)
        else:
            from resrl.bags import RebuildConfig, read_bag, rebuild
            from resrl.models.config import ModelConfig, obs_spec
            from resrl.replay import ReplayBuffer
            cfg = ModelConfig(obs_mode=args.obs_mode, image_size=args.image_size)
            online = ReplayBuffer(obs_spec(args.obs_mode, cfg), 1_000_000, name="online")
            demos = ReplayBuffer(obs_spec(args.obs_mode, cfg), 1_000_000, name="demos")
            for bag in args.bags:
                data = read_bag(bag)
                rebuild(data, online, demos, RebuildConfig(obs_mode=args.obs_mode, image_size=args.image_size))
                for issue in data.issues:
                    print(f"bag issue: {issue}", file=sys.stderr)
            episodes = list(online.episodes()) + [e for e in demos.episodes() if e.meta.get("kind") != "train"]
        chosen = select(episodes, args.select)
        info = export_lerobot(chosen, args.out, args.task, args.fps)
    except (ExportError, FileNotFoundError) as exc:
        raise SystemExit(f"export: {exc}")
    print(f"exported {info['total_episodes']} of {len(episodes)} episodes ({info['total_frames']} frames) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
