"""Observation encoders: the VGM image encoder (torchvision's ResNet-18 with a 6-channel first conv,
spatial learned embeddings) and the small MLP builder shared by the policy and critic heads.

Image encoder input is the raw observation (uint8 RGB, uint8 relative depth); normalisation
and the CoordConv grids are built here so every caller feeds the same thing.
"""
from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from resrl.actions import ACTION_DIM, STATE_DIM
from resrl.models.config import ModelConfig

import torchvision

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Depth is normalised with the mean of the ImageNet stats so the mean-of-RGB filters it is
# initialised with see a grey-image-like input.
DEPTH_MEAN = sum(IMAGENET_MEAN) / 3
DEPTH_STD = sum(IMAGENET_STD) / 3
IN_CHANNELS = 6  # RGB, depth, x grid, y grid
STAGE_CHANNELS = (64, 128, 256, 512)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, layer_norm: bool) -> nn.Sequential:
    """Linear -> [LayerNorm] -> ReLU per hidden width, then a plain Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ResNetTrunk(nn.Module):
    """torchvision's ResNet-18 without avgpool/fc: ``num_stages`` residual stages, and a first conv
    with ``in_channels`` inputs (RGB, depth, CoordConv x/y). Module names are torchvision's
    (conv1, bn1, layerN.M...), so its ImageNet state_dict maps key for key."""

    def __init__(self, in_channels: int = IN_CHANNELS, num_stages: int = 4) -> None:
        super().__init__()
        net = torchvision.models.resnet18(weights=None)   # never downloads: weights come from a local file
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")   # torchvision's init
        self.bn1, self.relu, self.maxpool = net.bn1, net.relu, net.maxpool
        for i in range(num_stages):
            self.add_module(f"layer{i + 1}", getattr(net, f"layer{i + 1}"))
        self.num_stages = num_stages
        self.out_channels = STAGE_CHANNELS[num_stages - 1]

    def output_side(self, input_side: int) -> int:
        """Feature-map side for a square input: conv1, maxpool and stages 2.. each halve it."""
        for _ in range(self.num_stages + 1):
            input_side = (input_side - 1) // 2 + 1
        return input_side

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def load_pretrained_rgb(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load a torchvision ResNet-18 state_dict (3-channel conv1, fc ignored).

        RGB filters go to channels 0-2; depth gets their mean (a luminance-like detector, so
        pretrained features respond to depth edges from the start); the coord channels start
        at zero so the pretrained response is unchanged until training moves them.
        """
        own = self.state_dict()
        wanted = {k: v for k, v in state_dict.items() if k in own}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise ValueError(f"pretrained checkpoint lacks {len(missing)} ResNet-18 keys, e.g. {missing[:5]}")
        rgb = wanted["conv1.weight"]
        if rgb.shape != (64, 3, 7, 7):
            raise ValueError(f"pretrained conv1.weight must be (64, 3, 7, 7), got {tuple(rgb.shape)}")
        conv1 = torch.zeros_like(own["conv1.weight"])
        conv1[:, :3] = rgb
        conv1[:, 3] = rgb.mean(dim=1)
        wanted["conv1.weight"] = conv1
        bad = [k for k, v in wanted.items() if v.shape != own[k].shape]
        if bad:
            raise ValueError(f"pretrained checkpoint shape mismatch for {bad[:5]}")
        self.load_state_dict(wanted)


class SpatialLearnedEmbeddings(nn.Module):
    """SERL's pooling: per channel c and feature f, sum_{h,w} x[c,h,w] * kernel[h,w,c,f].

    Unlike global average pooling it keeps *where* a feature fired, which precise
    manipulation needs.
    """

    def __init__(self, height: int, width: int, channels: int, num_features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(height, width, channels, num_features)
                                   / math.sqrt(height * width * channels))
        self.out_dim = channels * num_features

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, C * F)
        return torch.einsum("bchw,hwcf->bcf", x, self.kernel).flatten(1)


class ResNetEncoder(nn.Module):
    """(uint8 RGB (B,H,W,3), uint8 depth (B,H,W)) -> features (B, encoder_feature_dim)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.image_size = cfg.image_size
        self.backbone = ResNetTrunk(IN_CHANNELS, cfg.encoder_stages)
        if cfg.pretrained_path:
            self.backbone.load_pretrained_rgb(torch.load(cfg.pretrained_path, map_location="cpu",
                                                         weights_only=True))
        side = self.backbone.output_side(cfg.image_size)
        self.pool = SpatialLearnedEmbeddings(side, side, self.backbone.out_channels, cfg.num_spatial_features)
        self.head = nn.Sequential(nn.Dropout(cfg.encoder_dropout),
                                  nn.Linear(self.pool.out_dim, cfg.encoder_feature_dim),
                                  nn.LayerNorm(cfg.encoder_feature_dim), nn.Tanh())
        self.out_dim = cfg.encoder_feature_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN + (DEPTH_MEAN,)).view(1, 4, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD + (DEPTH_STD,)).view(1, 4, 1, 1), persistent=False)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, cfg.image_size), torch.linspace(-1, 1, cfg.image_size),
                                indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)  # (1, 2, S, S)
        self.frozen = cfg.freeze_encoder
        if self.frozen:
            for name, p in self.backbone.named_parameters():
                p.requires_grad_(name.startswith("conv1."))  # conv1's depth/coord filters are new
            self.backbone.eval()

    def train(self, mode: bool = True) -> "ResNetEncoder":
        super().train(mode)
        if self.frozen:  # frozen BN keeps its (pretrained) running statistics
            self.backbone.eval()
        return self

    def preprocess(self, image: Tensor, depth: Tensor) -> Tensor:
        """uint8 NHWC RGB + NHW depth -> normalised (B, 6, S, S): RGB, depth, x grid, y grid."""
        if image.dim() != 4 or image.shape[-1] != 3 or depth.shape != image.shape[:3]:
            raise ValueError(f"expected image (B,H,W,3) and depth (B,H,W), got {tuple(image.shape)} "
                             f"and {tuple(depth.shape)}")
        x = torch.cat([image.permute(0, 3, 1, 2), depth[:, None]], dim=1).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        return torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)

    def forward(self, image: Tensor, depth: Tensor) -> Tensor:
        x = self.preprocess(image, depth)
        if self.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.pool(self.backbone(x)))


class ImageObsTrunk(nn.Module):
    """Image observation -> [visual features, state, VLA intent = base_action - state]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(cfg)
        self.out_dim = self.encoder.out_dim + STATE_DIM + ACTION_DIM

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        state, base = obs["state"], obs["base_action"]
        return torch.cat([self.encoder(obs["image"], obs["depth"]), state, base - state], dim=-1)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Frozen eval-mode copy of ``model`` for the control loop: every ResNet conv+BN pair is
    folded into one conv and convs run channels_last (about 10-20 % faster at batch 1 on CPU).

    The copy has a different module structure, so load weights into the original and re-fuse.
    """
    fused = copy.deepcopy(model).eval().requires_grad_(False)
    for trunk in [m for m in fused.modules() if isinstance(m, ResNetTrunk)]:
        trunk.conv1, trunk.bn1 = fuse_conv_bn_eval(trunk.conv1, trunk.bn1), nn.Identity()
        for block in list(trunk.modules()):
            if isinstance(block, torchvision.models.resnet.BasicBlock):
                block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), nn.Identity()
                block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), nn.Identity()
                if block.downsample is not None:
                    block.downsample = nn.Sequential(fuse_conv_bn_eval(block.downsample[0], block.downsample[1]))
        trunk.to(memory_format=torch.channels_last)
    return fused
