"""A learned success classifier, as HIL-SERL trains one (ROS-free; CLI below, node in
resrl.nodes.reward_classifier_node).

Data: session bags (resrl.bags), whose episodes already carry success / failure labels (keys,
oracle). Every observation of an episode becomes one frame; the last ``positive_frames``
observations of a successful episode are positives (the episode ended because the task was
done there), every other frame is a negative, failures entirely. Features: proprioception
(EE position, rotation vector, gripper) + tracked object poses and confidences (object mode).
A small MLP with a positive-class weight for the imbalance.

At run time the classifier calls success when P(success) stays above ``threshold`` for
``consecutive`` frames. Evaluation is on held-out *episodes* (never frames of a training
episode): frame precision / recall, and episode precision / recall of "called success at some
frame of the episode" against the episode's label.

    python -m resrl.reward_classifier --bags runs/a/bag runs/b/bag --out runs/classifier.pt
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

FEATURE_KEYS = ("state", "object_poses", "object_conf")


@dataclass
class ClassifierConfig:
    positive_frames: int = 1        # last N observations of a success are positives
    hidden: int = 64
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    threshold: float = 0.5
    consecutive: int = 1            # frames above threshold in a row before success is called
    seed: int = 0


@dataclass
class EpisodeFrames:
    features: np.ndarray            # (T+1, F)
    success: bool
    kind: str = ""


def frame_features(obs: Dict[str, np.ndarray]) -> np.ndarray:
    """One observation (or a batch with a leading axis) -> feature vector(s)."""
    missing = [k for k in FEATURE_KEYS if k not in obs]
    if missing:
        raise ValueError(f"observation lacks {missing}: the classifier uses object mode (poses) observations")
    parts = [np.asarray(obs[k], np.float32) for k in FEATURE_KEYS]
    if parts[0].ndim == 1:
        return np.concatenate(parts)
    return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)


def episodes_from_bags(bags: Sequence[str], num_objects: int = 2, conf_threshold: float = 0.5
                       ) -> Tuple[List[EpisodeFrames], List[str]]:
    """Every labelled episode of the bags (demos included), plus the issues met while reading."""
    from resrl.bags import RebuildConfig, read_bag, rebuild
    from resrl.replay import ReplayBuffer
    spec = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
            "object_poses": ((num_objects * 7,), "float32"), "object_conf": ((num_objects,), "float32")}
    episodes, issues = [], []
    for bag in bags:
        data = read_bag(bag)
        issues += [str(i) for i in data.issues]
        online, offline = ReplayBuffer(spec, 500_000), ReplayBuffer(spec, 500_000)
        rebuild(data, online, offline, RebuildConfig(obs_mode="object", num_objects=num_objects,
                                                     conf_threshold=conf_threshold))
        seen = set()
        for buf in (online, offline):
            for ep in buf.episodes():
                key = (ep.meta.get("episode_id"), ep.meta.get("kind"))
                if ep.success is None or key in seen:   # crashed episode / train+takeover copy
                    continue
                seen.add(key)
                episodes.append(EpisodeFrames(frame_features(ep.obs), bool(ep.success), str(ep.meta.get("kind", ""))))
    return episodes, issues


def labels_for(ep: EpisodeFrames, positive_frames: int) -> np.ndarray:
    y = np.zeros(len(ep.features), np.float32)
    if ep.success:
        y[-positive_frames:] = 1.0
    return y


class SuccessClassifier(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 64):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # logits
        return self.net((x - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def probability(self, features: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(features, np.float32))
        return torch.sigmoid(self(x.reshape(-1, x.shape[-1]))).numpy().reshape(x.shape[:-1])


def train(episodes: Sequence[EpisodeFrames], cfg: ClassifierConfig) -> SuccessClassifier:
    if not episodes:
        raise ValueError("no labelled episodes to train on")
    x = np.concatenate([e.features for e in episodes])
    y = np.concatenate([labels_for(e, cfg.positive_frames) for e in episodes])
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"training episodes need both classes: {int(y.sum())} positive of {len(y)} frames "
                         "(record successes and failures)")
    torch.manual_seed(cfg.seed)
    model = SuccessClassifier(x.shape[1], cfg.hidden)
    model.mean.copy_(torch.as_tensor(x.mean(0)))
    model.std.copy_(torch.as_tensor(x.std(0) + 1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - y.sum()) / y.sum()))
    for _ in range(cfg.epochs):   # full batch: a few thousand frames
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
    return model.eval()


class SuccessDetector:
    """Per episode: call success once P stays above the threshold for ``consecutive`` frames."""

    def __init__(self, threshold: float = 0.5, consecutive: int = 1):
        self.threshold, self.consecutive = threshold, max(1, consecutive)
        self.run = 0

    def reset(self) -> None:
        self.run = 0

    def update(self, p: float) -> bool:
        self.run = self.run + 1 if p >= self.threshold else 0
        return self.run >= self.consecutive


def _precision_recall(tp: int, fp: int, fn: int) -> Dict[str, Optional[float]]:
    return {"precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
            "tp": tp, "fp": fp, "fn": fn}


def evaluate(model: SuccessClassifier, episodes: Sequence[EpisodeFrames], cfg: ClassifierConfig) -> dict:
    ftp = ffp = ffn = etp = efp = efn = 0
    early = []   # frames between the classifier's call and the episode's real end (successes)
    for ep in episodes:
        p = model.probability(ep.features)
        y = labels_for(ep, cfg.positive_frames)
        pred = p >= cfg.threshold
        ftp += int(np.sum(pred & (y > 0)))
        ffp += int(np.sum(pred & (y == 0)))
        ffn += int(np.sum(~pred & (y > 0)))
        det = SuccessDetector(cfg.threshold, cfg.consecutive)
        called = next((t for t, v in enumerate(p) if det.update(float(v))), None)
        if called is not None and ep.success:
            etp += 1
            early.append(len(p) - 1 - called)
        elif called is not None:
            efp += 1
        elif ep.success:
            efn += 1
    return {"frames": _precision_recall(ftp, ffp, ffn), "episodes": _precision_recall(etp, efp, efn),
            "episodes_total": len(episodes), "successes": sum(e.success for e in episodes),
            "median_frames_called_before_end": float(np.median(early)) if early else None}


def split_episodes(episodes: Sequence[EpisodeFrames], heldout_fraction: float, seed: int):
    """Held-out episodes drawn per class, so both splits see successes and failures."""
    rng = np.random.default_rng(seed)
    train_eps, test_eps = [], []
    for label in (True, False):
        group = [e for e in episodes if e.success == label]
        order = rng.permutation(len(group))
        n_test = int(round(len(group) * heldout_fraction))
        test_eps += [group[i] for i in order[:n_test]]
        train_eps += [group[i] for i in order[n_test:]]
    return train_eps, test_eps


def save(model: SuccessClassifier, cfg: ClassifierConfig, path: str | Path, metrics: Optional[dict] = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"config": asdict(cfg), "in_dim": int(model.mean.shape[0]), "features": list(FEATURE_KEYS),
            "metrics": metrics or {}}
    torch.save({"state_dict": model.state_dict(), "meta_json": json.dumps(meta)}, path)


def load(path: str | Path) -> Tuple[SuccessClassifier, ClassifierConfig]:
    import pickle
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta_json"])
        model = SuccessClassifier(meta["in_dim"], meta["config"]["hidden"])
        model.load_state_dict(blob["state_dict"])
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a resrl success classifier ({type(exc).__name__}: {exc})") from exc
    return model.eval(), ClassifierConfig(**meta["config"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bags", nargs="+", required=True, help="session bag folders (labelled episodes)")
    ap.add_argument("--out", required=True, help="model file to write (.pt)")
    ap.add_argument("--heldout-fraction", type=float, default=0.3)
    ap.add_argument("--num-objects", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    for f in ("positive_frames", "hidden", "epochs", "consecutive"):
        ap.add_argument(f"--{f.replace('_', '-')}", type=int, default=getattr(ClassifierConfig, f))
    ap.add_argument("--threshold", type=float, default=ClassifierConfig.threshold)
    args = ap.parse_args(argv)
    cfg = ClassifierConfig(positive_frames=args.positive_frames, hidden=args.hidden, epochs=args.epochs,
                           threshold=args.threshold, consecutive=args.consecutive, seed=args.seed)
    from resrl.bags import BagError
    try:
        episodes, issues = episodes_from_bags(args.bags, args.num_objects)
    except BagError as exc:
        print(f"reward_classifier: {exc}", file=sys.stderr)
        return 2
    train_eps, test_eps = split_episodes(episodes, args.heldout_fraction, args.seed)
    try:
        model = train(train_eps, cfg)
    except ValueError as exc:
        print(f"reward_classifier: {exc}", file=sys.stderr)
        return 2
    result = {"bags": list(args.bags), "episodes": len(episodes), "train_episodes": len(train_eps),
              "heldout_episodes": len(test_eps), "config": asdict(cfg),
              "train": evaluate(model, train_eps, cfg), "heldout": evaluate(model, test_eps, cfg),
              "bag_issues": len(issues)}
    save(model, cfg, args.out, result["heldout"])
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
