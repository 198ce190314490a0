"""Residual policies, encoder, pose robustness and critic (tiny sizes: 32 px images)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from resrl.configs import ConfigError
from resrl.models import (Critic, ModelConfig, PoseAugmentation, ResNetEncoder, SpatialLearnedEmbeddings,
                          build_critic, build_residual, fuse_for_inference, mask_low_confidence)
from resrl.models.encoders import DEPTH_MEAN, DEPTH_STD, IMAGENET_MEAN, IMAGENET_STD

S = 32  # image side used throughout
B = 4
SMALL = dict(actor_hidden=(32, 32), critic_hidden=(32, 32), encoder_feature_dim=16, object_trunk_dim=16)


def image_cfg(**kw) -> ModelConfig:
    # Two ResNet stages keep CPU tests fast; the pretrained-loading test uses all four.
    return ModelConfig(obs_mode="image", image_size=S, **{**SMALL, "encoder_stages": 2, **kw})


def object_cfg(**kw) -> ModelConfig:
    return ModelConfig(obs_mode="object", num_objects=2, **{**SMALL, **kw})


def image_obs(b: int = B, side: int = S) -> dict:
    return {"state": torch.randn(b, 7), "base_action": torch.randn(b, 7),
            "image": torch.randint(0, 256, (b, side, side, 3), dtype=torch.uint8),
            "depth": torch.randint(0, 256, (b, side, side), dtype=torch.uint8)}


def object_obs(b: int = B, k: int = 2) -> dict:
    return {"state": torch.randn(b, 7), "base_action": torch.randn(b, 7),
            "object_poses": torch.randn(b, k * 7), "object_conf": torch.ones(b, k)}


def torchvision_resnet18_state_dict() -> dict:
    """Random weights under torchvision's resnet18 key names/shapes, built independently of
    resrl so a naming drift in the trunk is caught."""
    g = torch.Generator().manual_seed(0)
    sd = {}

    def bn(prefix, c):
        sd.update({f"{prefix}.weight": torch.rand(c, generator=g) + 0.5,
                   f"{prefix}.bias": torch.randn(c, generator=g),
                   f"{prefix}.running_mean": torch.randn(c, generator=g),
                   f"{prefix}.running_var": torch.rand(c, generator=g) + 0.5,
                   f"{prefix}.num_batches_tracked": torch.tensor(7)})

    sd["conv1.weight"] = torch.randn(64, 3, 7, 7, generator=g)
    bn("bn1", 64)
    inplanes = 64
    for layer, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            cin = inplanes if block == 0 else planes
            sd[f"{p}.conv1.weight"] = torch.randn(planes, cin, 3, 3, generator=g)
            bn(f"{p}.bn1", planes)
            sd[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3, generator=g)
            bn(f"{p}.bn2", planes)
            if block == 0 and layer > 1:
                sd[f"{p}.downsample.0.weight"] = torch.randn(planes, inplanes, 1, 1, generator=g)
                bn(f"{p}.downsample.1", planes)
        inplanes = planes
    sd["fc.weight"] = torch.randn(1000, 512, generator=g)
    sd["fc.bias"] = torch.randn(1000, generator=g)
    return sd


# --------------------------------------------------------------------------------- residual
@pytest.mark.parametrize("mode", ["image", "object"])
def test_fresh_residual_outputs_exactly_zero(mode):
    torch.manual_seed(0)
    policy = build_residual(image_cfg() if mode == "image" else object_cfg())
    obs = image_obs() if mode == "image" else object_obs()
    for train in (True, False):
        policy.train(train)
        out = policy(obs)
        assert out.shape == (B, 7) and out.dtype == torch.float32
        assert torch.equal(out, torch.zeros(B, 7))


@pytest.mark.parametrize("mode,steps", [("image", 4), ("object", 60)])
def test_output_bounded_by_xi_after_training(mode, steps):
    torch.manual_seed(0)
    cfg = image_cfg() if mode == "image" else object_cfg()
    policy = build_residual(cfg).train()
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    obs = image_obs() if mode == "image" else object_obs()
    direction = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    for _ in range(steps):  # push every output as far as it will go
        loss = -(policy(obs) * direction * 100).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    with torch.no_grad():
        out = policy(obs if mode == "image" else object_obs(64))
    xi = torch.tensor(cfg.xi)
    assert torch.equal(policy.xi, xi)
    assert (out.abs() <= xi).all()
    assert (out.abs() > 0.5 * xi).any(), "training did not move the residual; test is vacuous"


# ---------------------------------------------------------------------------------- encoder
def test_conv1_receives_pretrained_rgb_filters(tmp_path):
    sd = torchvision_resnet18_state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(sd, path)
    enc = ResNetEncoder(image_cfg(pretrained_path=str(path), encoder_stages=4))
    w = enc.backbone.conv1.weight.detach()
    assert w.shape == (64, 6, 7, 7)
    assert torch.equal(w[:, :3], sd["conv1.weight"])
    assert torch.allclose(w[:, 3], sd["conv1.weight"].mean(dim=1))
    assert torch.equal(w[:, 4:], torch.zeros(64, 2, 7, 7))
    own = enc.backbone.state_dict()
    for key in ("bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer3.1.bn2.weight", "layer4.1.conv2.weight"):
        assert torch.equal(own[key], sd[key]), key

    fewer = ResNetEncoder(image_cfg(pretrained_path=str(path)))  # 2 stages: extra keys ignored
    assert torch.equal(fewer.backbone.state_dict()["layer2.1.conv2.weight"], sd["layer2.1.conv2.weight"])

    del sd["layer3.0.conv1.weight"]
    torch.save(sd, path)
    with pytest.raises(ValueError, match="lacks"):
        ResNetEncoder(image_cfg(pretrained_path=str(path), encoder_stages=4))


def test_torchvision_resnet18_state_dict_loads_into_the_6_channel_trunk(tmp_path):
    """A state_dict saved from torchvision's own resnet18 (what a user downloads elsewhere and
    points pretrained_path at) loads: every trunk tensor is torchvision's, conv1 gets its RGB
    filters, and the trunk's modules are torchvision's BasicBlocks."""
    import torchvision
    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(net.state_dict(), path)
    enc = ResNetEncoder(image_cfg(pretrained_path=str(path), encoder_stages=4))
    assert isinstance(enc.backbone.layer1[0], torchvision.models.resnet.BasicBlock)
    theirs = net.state_dict()
    for key, value in enc.backbone.state_dict().items():
        if key != "conv1.weight":
            assert torch.equal(value, theirs[key]), key
    assert torch.equal(enc.backbone.conv1.weight[:, :3].detach(), theirs["conv1.weight"])


@pytest.mark.parametrize("stages,side,channels", [(4, 224, 512), (4, 96, 512), (3, 96, 256), (2, 32, 128)])
def test_trunk_output_shape_matches_the_previous_encoder(stages, side, channels):
    """The hand-written ResNet this trunk replaced gave (B, C, ceil(side / 2^(stages+1)))^2 maps
    (7x7x512 at 224 px, the spatial kernel's shape in saved checkpoints); torchvision's must too."""
    from resrl.models.encoders import ResNetTrunk
    trunk = ResNetTrunk(6, stages).eval()
    expected = side
    for _ in range(stages + 1):
        expected = (expected + 1) // 2
    with torch.no_grad():
        out = trunk(torch.randn(1, 6, side, side))
    assert out.shape == (1, channels, expected, expected)
    assert trunk.output_side(side) == expected and trunk.out_channels == channels
    assert trunk.conv1.weight.shape == (64, 6, 7, 7)


def test_preprocess_builds_normalised_rgb_depth_and_coord_grids():
    enc = ResNetEncoder(image_cfg())
    image = torch.full((2, S, S, 3), 255, dtype=torch.uint8)
    depth = torch.zeros(2, S, S, dtype=torch.uint8)
    x = enc.preprocess(image, depth)
    assert x.shape == (2, 6, S, S)
    for c in range(3):
        assert torch.allclose(x[:, c], torch.full((2, S, S), (1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
    assert torch.allclose(x[:, 3], torch.full((2, S, S), -DEPTH_MEAN / DEPTH_STD))
    grid = torch.linspace(-1, 1, S)
    assert torch.allclose(x[:, 4], grid.view(1, 1, S).expand(2, S, S))  # x varies along width
    assert torch.allclose(x[:, 5], grid.view(1, S, 1).expand(2, S, S))  # y varies along height
    # Other resolutions are resized to the configured one (the spatial kernel is fixed-size).
    resized = enc.preprocess(torch.full((2, 48, 40, 3), 255, dtype=torch.uint8),
                             torch.zeros(2, 48, 40, dtype=torch.uint8))
    assert torch.allclose(resized, x, atol=1e-5)
    with pytest.raises(ValueError):
        enc.preprocess(image, depth[:, :, :10])


def test_spatial_learned_embeddings_shape_and_math():
    emb = SpatialLearnedEmbeddings(height=3, width=4, channels=5, num_features=8)
    x = torch.randn(2, 5, 3, 4)
    out = emb(x)
    assert out.shape == (2, 5 * 8) and emb.out_dim == 40
    manual = (x.permute(0, 2, 3, 1)[..., None] * emb.kernel[None]).sum(dim=(1, 2))  # (B, C, F)
    assert torch.allclose(out, manual.flatten(1), atol=1e-5)


@pytest.mark.parametrize("stages,channels", [(3, 256), (2, 128)])
def test_encoder_output_and_spatial_kernel(stages, channels):
    cfg = image_cfg(encoder_stages=stages, num_spatial_features=4)
    enc = ResNetEncoder(cfg)
    side = enc.backbone.output_side(S)
    assert enc.pool.kernel.shape == (side, side, channels, 4)
    assert enc(image_obs()["image"], image_obs()["depth"]).shape == (B, cfg.encoder_feature_dim)


def test_freeze_encoder_keeps_trunk_and_bn_fixed():
    enc = ResNetEncoder(image_cfg(freeze_encoder=True)).train()
    trainable = {n for n, p in enc.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"conv1.weight"}
    assert not enc.backbone.bn1.training and not enc.backbone.layer1[0].bn1.training
    assert enc.pool.kernel.requires_grad and enc.head[1].weight.requires_grad
    before = enc.backbone.bn1.running_mean.clone()
    enc(image_obs()["image"], image_obs()["depth"])
    assert torch.equal(enc.backbone.bn1.running_mean, before)


def test_fuse_for_inference_matches_eval_model():
    torch.manual_seed(0)
    policy = build_residual(image_cfg()).train()
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    obs = image_obs()
    for _ in range(2):  # non-trivial BN statistics and a non-zero head
        opt.zero_grad()
        (-policy(obs).sum()).backward()
        opt.step()
    policy.eval()
    fused = fuse_for_inference(policy)
    with torch.no_grad():
        assert torch.allclose(fused(obs), policy(obs), atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())


# ---------------------------------------------------------------------------- object poses
def test_pose_dropout_zeroes_in_train_not_in_eval():
    policy = build_residual(object_cfg(pose_dropout=1.0, pose_noise_pos=0.0, pose_noise_rot=0.0))
    obs = object_obs()
    assert torch.equal(policy.train().pose_input(obs), torch.zeros(B, 14))
    assert torch.equal(policy.eval().pose_input(obs), obs["object_poses"])

    aug = PoseAugmentation(num_objects=2, pos_noise_max=0.0, rot_noise_max=0.0, dropout_p=0.5,
                           generator=torch.Generator().manual_seed(0))
    out = aug.dropout(torch.ones(1000, 14)).view(1000, 2, 7)
    dropped = (out == 0).all(-1)
    assert ((out == 1).all(-1) | dropped).all()  # whole objects, never partial poses
    assert 0.4 < dropped.float().mean() < 0.6


def test_pose_noise_is_hierarchical_uniform_and_bounded():
    g = torch.Generator().manual_seed(0)
    aug = PoseAugmentation(num_objects=2, pos_noise_max=0.005, rot_noise_max=0.1, dropout_p=0.0, generator=g)
    n = 4000
    quat = torch.nn.functional.normalize(torch.randn(n, 2, 4, generator=g), dim=-1)
    poses = torch.cat([torch.randn(n, 2, 3, generator=g), quat], -1).flatten(1).double()
    noisy = aug.noise(poses).view(n, 2, 7)
    dp = (noisy[..., :3] - poses.view(n, 2, 7)[..., :3]).abs()
    assert dp.max() <= 0.005 and dp.max() > 0.004
    # Per-timestep scale ~ U(0, max): half the rows have all 6 components below max/2
    # (a flat U(-max, max) would give 1/64).
    row_max = dp.flatten(1).max(1).values
    assert 0.4 < (row_max < 0.0025).double().mean() < 0.6
    q0, q1 = poses.view(n, 2, 7)[..., 3:], noisy[..., 3:]
    assert torch.allclose(q1.norm(dim=-1), torch.ones(n, 2, dtype=torch.float64))
    angle = 2 * torch.acos((q0 * q1).sum(-1).abs().clamp(max=1))
    assert angle.max() <= 0.1 + 1e-9 and angle.max() > 0.09
    assert 0.3 < (angle < 0.025).double().mean()  # hierarchical: small angles are common
    # A fixed (per-episode) noise level bounds every step's noise by it.
    fixed = aug.noise(poses, scales=(0.001, 0.0)).view(n, 2, 7)
    assert (fixed[..., :3] - poses.view(n, 2, 7)[..., :3]).abs().max() <= 0.001
    assert torch.allclose(fixed[..., 3:], q0)
    s_p, s_q = aug.sample_scales()
    assert 0 <= s_p <= 0.005 and 0 <= s_q <= 0.1
    # numpy in -> numpy out (sim pose tracker)
    out = aug(np.zeros((3, 14), dtype=np.float32))
    assert isinstance(out, np.ndarray) and out.shape == (3, 14) and out.dtype == np.float32


def test_low_confidence_poses_are_masked_in_train_and_eval():
    torch.manual_seed(0)
    policy = build_residual(object_cfg(pose_dropout=0.0, pose_noise_pos=0.0, pose_noise_rot=0.0,
                                       conf_threshold=0.5))
    torch.nn.init.normal_(policy.head.net[-1].weight)  # make the output depend on the poses
    obs = object_obs()
    obs["object_conf"] = torch.tensor([[0.9, 0.2]]).repeat(B, 1)
    for train in (True, False):
        policy.train(train)
        pose = policy.pose_input(obs).view(B, 2, 7)
        assert torch.equal(pose[:, 0], obs["object_poses"].view(B, 2, 7)[:, 0])
        assert torch.equal(pose[:, 1], torch.zeros(B, 7))
    zeroed = dict(obs, object_poses=obs["object_poses"].clone())
    zeroed["object_poses"][:, 7:] = 0
    assert torch.equal(policy(obs), policy(zeroed))
    # Non-finite poses count as lost, whatever their confidence.
    poses = torch.ones(1, 14)
    poses[0, 9] = float("nan")
    assert torch.equal(mask_low_confidence(poses, torch.ones(1, 2), 0.5),
                       torch.cat([torch.ones(1, 7), torch.zeros(1, 7)], 1))
    with pytest.raises(ValueError, match="object_poses"):
        mask_low_confidence(torch.ones(1, 13), torch.ones(1, 2), 0.5)


# ---------------------------------------------------------------------------------- critic
@pytest.mark.parametrize("mode", ["image", "object"])
def test_critic_shapes_and_members_differ(mode):
    torch.manual_seed(0)
    cfg = (image_cfg if mode == "image" else object_cfg)(ensemble_size=3)
    critic = build_critic(cfg).eval()
    obs = image_obs() if mode == "image" else object_obs()
    action = torch.randn(B, 7)
    q = critic.q(obs, action)
    assert q.shape == (3, B) and critic.v(obs).shape == (B,)
    assert not torch.allclose(q[0], q[1]) and not torch.allclose(q[1], q[2])
    with pytest.raises(ValueError):
        critic.q(obs, torch.randn(B + 1, 7))


def test_q_multi_equals_separate_q_calls():
    torch.manual_seed(0)
    critic = build_critic(image_cfg()).eval()  # eval: encoder dropout off, BN running stats
    obs = image_obs()
    actions = torch.randn(3, B, 7)
    with torch.no_grad():
        multi = critic.q_multi(obs, actions)
        assert multi.shape == (2, 3, B)
        for n in range(3):
            assert torch.allclose(multi[:, n], critic.q(obs, actions[n]), atol=1e-5)
        q, v = critic.q_and_v(obs, actions)
        assert torch.allclose(q, multi, atol=1e-5) and torch.allclose(v, critic.v(obs), atol=1e-5)
        f = critic.features(obs)
        assert torch.allclose(critic.q_from_features(f, actions[0]), critic(obs, actions[0]), atol=1e-5)


def test_critic_has_its_own_encoder():
    cfg = image_cfg()
    policy, critic = build_residual(cfg), build_critic(cfg)
    assert isinstance(critic, Critic)
    assert policy.trunk.encoder.backbone.conv1.weight is not critic.trunk.encoder.backbone.conv1.weight


# ---------------------------------------------------------------------------------- config
def test_model_config_validation_and_json_round_trip():
    cfg = ModelConfig.from_dict({"obs_mode": "object", "xi": [0.01] * 7, "actor_hidden": [64]})
    assert cfg.xi == (0.01,) * 7 and cfg.actor_hidden == (64,)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="unknown keys"):
        ModelConfig.from_dict({"hiden": 3})
    with pytest.raises(ConfigError, match="xi"):
        ModelConfig(xi=(0.1,) * 6)
    with pytest.raises(ConfigError, match="obs_mode"):
        ModelConfig(obs_mode="pointcloud")
    assert math.isclose(ModelConfig().xi[0], 0.03)
