"""Tiny LeRobot policies (ACT, Diffusion Policy) trained a few steps and saved as a checkpoint dir
(config.json + model.safetensors + pre/post-processors), as lerobot-train's pretrained_model is.
Shared by test_lerobot_policies.py and the VLA node / graph tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# A plausible sim action: TCP above the table, pointing down, gripper half open.
ACTION_MEAN = np.array([0.5, 0.0, 0.15, 0.0, 0.0, 0.3, 0.5], np.float32)
ACTION_STD = 0.02


def _features(env_dim: int, image_shape):
    from lerobot.configs.types import FeatureType, PolicyFeature
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (7,))}
    if env_dim:
        inputs["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (env_dim,))
    if image_shape:
        inputs["observation.images.rgb"] = PolicyFeature(FeatureType.VISUAL, tuple(image_shape))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (7,))}


def _stats(inputs):
    import torch
    stats = {"observation.state": {"mean": torch.zeros(7), "std": torch.ones(7)},
             "action": {"mean": torch.from_numpy(ACTION_MEAN), "std": torch.full((7,), ACTION_STD)}}
    if "observation.images.rgb" in inputs:
        stats["observation.images.rgb"] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
    if "observation.environment_state" in inputs:
        d = inputs["observation.environment_state"].shape[0]
        stats["observation.environment_state"] = {"mean": torch.zeros(d), "std": torch.ones(d)}
    for entry in stats.values():   # Diffusion Policy normalises state / action with min-max
        entry["min"], entry["max"] = entry["mean"] - 3 * entry["std"], entry["mean"] + 3 * entry["std"]
    return stats


def save_tiny_policy(kind: str, out: Path, env_dim: int = 14, image_shape=None, steps: int = 3,
                     seed: int = 0) -> tuple[Path, list]:
    """Build, train ``steps`` Adam steps toward ACTION_MEAN and save; returns (dir, losses)."""
    import torch

    from resrl.vla.lerobot_compat import prepare
    prepare()
    from lerobot.policies.factory import make_pre_post_processors
    torch.manual_seed(seed)
    inputs, outputs = _features(env_dim, image_shape)
    if kind == "act":
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy
        cfg = ACTConfig(input_features=inputs, output_features=outputs, chunk_size=10, n_action_steps=5,
                        dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
                        n_vae_encoder_layers=1, latent_dim=8, use_vae=False, pretrained_backbone_weights=None,
                        device="cpu")
        policy, obs_steps, action_steps = ACTPolicy(cfg), None, cfg.chunk_size
    elif kind == "diffusion":
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
        cfg = DiffusionConfig(input_features=inputs, output_features=outputs, n_obs_steps=2, horizon=8,
                              n_action_steps=4, down_dims=(16, 32), kernel_size=3, n_groups=4,
                              diffusion_step_embed_dim=16, num_train_timesteps=10, num_inference_steps=3,
                              noise_scheduler_type="DDIM", device="cpu")
        policy, obs_steps, action_steps = DiffusionPolicy(cfg), cfg.n_obs_steps, cfg.horizon
    else:
        raise ValueError(kind)
    pre, post = make_pre_post_processors(cfg, dataset_stats=_stats(inputs))
    batch_size = 4
    lead = (batch_size,) if obs_steps is None else (batch_size, obs_steps)
    raw = {"observation.state": torch.randn(*lead, 7),
           "action": torch.from_numpy(ACTION_MEAN) + ACTION_STD * torch.randn(batch_size, action_steps, 7),
           "action_is_pad": torch.zeros(batch_size, action_steps, dtype=torch.bool)}
    if env_dim:
        raw["observation.environment_state"] = torch.randn(*lead, env_dim)
    if image_shape:
        raw["observation.images.rgb"] = torch.rand(*lead, *image_shape)
    batch = pre(raw)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    policy.train()
    losses = []
    for _ in range(steps):
        loss, _ = policy.forward(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    policy.eval()
    out = Path(out)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out, losses
