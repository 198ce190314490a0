"""LeRobot policies (ACT, diffusion, pi0, SmolVLA, ...) from a local checkpoint directory.

The checkpoint is what ``policy.save_pretrained(dir)`` writes (config.json + model.safetensors),
plus the pre/post-processor pipelines (``policy_preprocessor.json`` / ``policy_postprocessor.json``)
that lerobot >= 0.4 saves beside a trained policy; without them the processors are built from the
config (no dataset normalisation). The pipeline is LeRobot's own async policy server's: raw
observation -> preprocessor -> ``predict_action_chunk`` -> postprocessor per row.

Inputs: ``observation.state`` = resrl's EE state (7,) and every image feature of the config fed
from the exterior camera (float CHW in [0, 1] at the feature's resolution). Outputs: the policy
must be trained in resrl's action space (absolute EE targets, 7 dims) -- or, for DROID-style
joint-velocity policies, ``vla.action_space: joint_velocity`` as for openpi.

lerobot itself is imported lazily: it is not in requirements.txt because every released lerobot
imports torchvision when any policy is loaded (lerobot.configs.policies -> lerobot.optim ->
lerobot.datasets.utils), and PyPI's torchvision builds for this torch are CUDA builds whose
operators do not load against the CPU torch wheel. Where lerobot and a matching torchvision are
installed, this backend loads the checkpoint; elsewhere it raises VLAError saying so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from resrl.vla.action_mapping import ActionMapper
from resrl.vla.base import VLAError, check_chunk


def _import_lerobot():
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except Exception as exc:   # ImportError, or torchvision's operator registration failing
        raise VLAError(f"lerobot backend: cannot import lerobot ({type(exc).__name__}: {exc}); install "
                       "lerobot with a torchvision built for the installed torch") from exc
    return PreTrainedConfig, get_policy_class, make_pre_post_processors


class LeRobotBackend:
    name = "lerobot"

    def __init__(self, checkpoint_dir: str, horizon: int, task: str = "", device: str = "cpu",
                 action_space: str = "eef_absolute", kinematics: str = "franka"):
        path = Path(checkpoint_dir)
        if not (path / "config.json").is_file():
            raise VLAError(f"lerobot backend: checkpoint dir '{path}' has no config.json")
        PreTrainedConfig, get_policy_class, make_pre_post_processors = _import_lerobot()
        import torch
        self.torch = torch
        cfg = PreTrainedConfig.from_pretrained(path, local_files_only=True)
        cfg.device = device
        self.policy = get_policy_class(cfg.type).from_pretrained(path, config=cfg, local_files_only=True)
        self.policy.to(device).eval()
        overrides = {"device_processor": {"device": device}}
        saved = (path / "policy_preprocessor.json").is_file()
        self.pre, self.post = make_pre_post_processors(
            cfg, pretrained_path=str(path) if saved else None,
            **({"preprocessor_overrides": overrides, "postprocessor_overrides": overrides} if saved else {}))
        self.cfg, self.horizon, self.task, self.device = cfg, int(horizon), task, device
        self.mapper = ActionMapper(action_space, kinematics)

    def reset(self, seed: int) -> None:
        self.policy.reset()

    def _batch(self, obs) -> dict:
        torch = self.torch
        if "state" not in obs:
            raise VLAError("lerobot: observation has no 'state'")
        batch = {"observation.state": torch.as_tensor(np.asarray(obs["state"], np.float32))[None]}
        for key, feature in self.cfg.image_features.items():
            if "image" not in obs:
                raise VLAError(f"lerobot: policy needs image feature '{key}' and no camera image has arrived")
            c, h, w = feature.shape
            img = np.asarray(obs["image"])
            if img.ndim != 3 or img.shape[2] != 3:
                raise VLAError(f"lerobot: image must be (H, W, 3), got {img.shape}")
            img = img[np.arange(h) * img.shape[0] // h][:, np.arange(w) * img.shape[1] // w]   # nearest
            batch[key] = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None] / 255.0
        batch["task"] = [self.task]
        return batch

    def infer(self, obs):
        torch = self.torch
        with torch.inference_mode():
            chunk = self.policy.predict_action_chunk(self.pre(self._batch(obs)))
            if chunk.ndim == 2:
                chunk = chunk[None]
            rows = [self.post(chunk[:, i, :]) for i in range(min(chunk.shape[1], self.horizon))]
        actions = torch.stack([r.reshape(-1) for r in rows]).cpu().numpy()
        try:
            mapped = self.mapper(actions, obs)
        except ValueError as exc:
            raise VLAError(f"lerobot: {exc}") from exc
        return check_chunk(mapped, self.horizon, 7, "lerobot")
