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


def _stats(inputs, action_mean):
    import torch
    stats = {"observation.state": {"mean": torch.zeros(7), "std": torch.ones(7)},
             "action": {"mean": torch.from_numpy(action_mean), "std": torch.full((7,), ACTION_STD)}}
    if "observation.images.rgb" in inputs:
        stats["observation.images.rgb"] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
    if "observation.environment_state" in inputs:
        d = inputs["observation.environment_state"].shape[0]
        stats["observation.environment_state"] = {"mean": torch.zeros(d), "std": torch.ones(d)}
    for entry in stats.values():   # Diffusion Policy normalises state / action with min-max
        entry["min"], entry["max"] = entry["mean"] - 3 * entry["std"], entry["mean"] + 3 * entry["std"]
    return stats


def save_tiny_policy(kind: str, out: Path, env_dim: int = 14, image_shape=None, steps: int = 3,
                     seed: int = 0, action_mean=ACTION_MEAN) -> tuple[Path, list]:
    """Build, train ``steps`` Adam steps toward ``action_mean`` and save; returns (dir, losses)."""
    action_mean = np.asarray(action_mean, np.float32)
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
    elif kind == "smolvla":
        from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
        from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
        if not image_shape:
            raise ValueError("SmolVLA reads at least one camera: give image_shape")
        cfg = SmolVLAConfig(input_features=inputs, output_features=outputs, chunk_size=10, n_action_steps=5,
                            vlm_model_name=str(save_tiny_vlm(Path(out).parent / f"{Path(out).name}_vlm",
                                                             image_size=image_shape[1])),
                            num_vlm_layers=2, resize_imgs_with_padding=tuple(image_shape[1:]), num_steps=2,
                            max_state_dim=8, max_action_dim=8, tokenizer_max_length=16, device="cpu")
        policy, obs_steps, action_steps = SmolVLAPolicy(cfg), None, cfg.chunk_size
    else:
        raise ValueError(kind)
    pre, post = make_pre_post_processors(cfg, dataset_stats=_stats(inputs, action_mean))
    batch_size = 4
    lead = (batch_size,) if obs_steps is None else (batch_size, obs_steps)
    raw = {"observation.state": torch.randn(*lead, 7),
           "action": torch.from_numpy(action_mean) + ACTION_STD * torch.randn(batch_size, action_steps, 7),
           "action_is_pad": torch.zeros(batch_size, action_steps, dtype=torch.bool)}
    if env_dim:
        raw["observation.environment_state"] = torch.randn(*lead, env_dim)
    if image_shape:
        raw["observation.images.rgb"] = torch.rand(*lead, *image_shape)
    if kind == "smolvla":
        raw["task"] = ["put the cube on the target"] * batch_size
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


def save_tiny_vlm(out: Path, image_size: int = 32) -> Path:
    """A SmolVLM-architecture VLM small enough for a test -- config.json, a word-level tokenizer with
    SmolVLM's image tokens, and its processor -- saved where SmolVLA's ``vlm_model_name`` can point,
    as a user's local copy of ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct`` would be (random
    weights: SmolVLA builds its VLM from the config when ``load_vlm_weights`` is false)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMImageProcessor,
                              SmolVLMProcessor, SmolVLMVideoProcessor)
    out = Path(out)
    special = {"pad": "<|endoftext|>", "unk": "<unk>", "fake_image_token": "<fake_token_around_image>",
               "image_token": "<image>", "global_image_token": "<global-img>",
               "end_of_utterance_token": "<end_of_utterance>"}
    words = "put pick the a cube on onto green target zone up lift place and to in".split()
    vocab = {w: i for i, w in enumerate([*special.values(), *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=special["unk"]))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=special["unk"], pad_token=special["pad"],
        eos_token=special["end_of_utterance_token"],
        extra_special_tokens={k: v for k, v in special.items() if k not in ("pad", "unk")})
    SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         max_position_embeddings=256, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=image_size // 4),
        scale_factor=2, image_token_id=vocab["<image>"]).save_pretrained(out)
    images = SmolVLMImageProcessor(do_resize=False, do_image_splitting=False,
                                   max_image_size={"longest_edge": image_size}, size={"longest_edge": image_size})
    SmolVLMProcessor(image_processor=images, tokenizer=tokenizer, video_processor=SmolVLMVideoProcessor(),
                     image_seq_len=4).save_pretrained(out)
    return out
