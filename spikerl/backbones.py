"""Small vision backbones (conversion subjects and SB3 feature extractors), with ReLU, QCFS or clip activations.

* :class:`NatureCNN`: the DQN encoder (Mnih et al. 2015): Conv 8x8/4 -> Conv 4x4/2 -> Conv 3x3/1 -> Linear,
  each followed by the activation (input at least 36x36).
* :class:`SmallResNet`: a stem conv and ``blocks`` basic residual blocks (conv-BN-act-conv-BN + skip -> act)
  per stage, 2x2 average pooling between stages, global average pooling and a linear projection.

Both return non-negative features ``[B, features_dim]`` (the last layer is activated) and contain only
layers :func:`spikerl.conversion.convert` supports (BatchNorm is folded, pooling is average pooling).
Image scaling (e.g. /255) is left to the caller (SB3 does it in ``preprocess_obs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spikerl.conversion.activations import QCFS, ClipReLU

ACTIVATIONS = ("relu", "qcfs", "clip")


def make_activation(name: str = "relu", L: int = 8, lam_init: float = 4.0) -> nn.Module:
    """``relu`` -> nn.ReLU; ``qcfs`` -> QCFS(L, lam_init); ``clip`` -> ClipReLU(lam_init)."""
    if name == "relu":
        return nn.ReLU()
    if name == "qcfs":
        return QCFS(L=L, lam_init=lam_init)
    if name == "clip":
        return ClipReLU(lam_init=lam_init)
    raise ValueError(f"unknown activation {name!r}; choose one of {ACTIVATIONS}")


def _out_size(module: nn.Module, in_shape: Sequence[int]) -> int:
    with torch.no_grad():
        return int(module(torch.zeros(1, *in_shape)).shape[1])


class NatureCNN(nn.Module):
    """DQN "Nature" encoder: obs ``[B, C, H, W]`` -> features ``[B, features_dim]``."""

    def __init__(self, in_shape: Sequence[int], features_dim: int = 512, activation: str = "relu", L: int = 8,
                 lam_init: float = 4.0) -> None:
        super().__init__()
        c, h, w = (int(v) for v in in_shape)
        if h < 36 or w < 36:
            raise ValueError(f"NatureCNN needs images of at least 36x36 pixels, got {h}x{w}; upsample them or use "
                             "SmallResNet")

        def act() -> nn.Module:
            return make_activation(activation, L, lam_init)

        self.cnn = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), act(), nn.Conv2d(32, 64, 4, stride=2), act(),
            nn.Conv2d(64, 64, 3, stride=1), act(), nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(_out_size(self.cnn, (c, h, w)), features_dim), act())
        self.features_dim = int(features_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(x))


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, plus the identity, then act."""

    def __init__(self, channels: int, activation: str = "relu", L: int = 8, lam_init: float = 4.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = make_activation(activation, L, lam_init)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = make_activation(activation, L, lam_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + x)


class SmallResNet(nn.Module):
    """Stem conv, ``stages`` x ``blocks`` basic blocks (avg-pool 2x2 between stages), global avg-pool, linear."""

    def __init__(self, in_shape: Sequence[int], features_dim: int = 256, width: int = 32, stages: int = 2,
                 blocks: int = 1, activation: str = "relu", L: int = 8, lam_init: float = 4.0) -> None:
        super().__init__()
        c = int(in_shape[0])

        def act() -> nn.Module:
            return make_activation(activation, L, lam_init)

        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), act()]
        for s in range(stages):
            if s > 0:
                layers.append(nn.AvgPool2d(2))
            layers += [BasicBlock(width, activation, L, lam_init) for _ in range(blocks)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, features_dim), act()]
        self.net = nn.Sequential(*layers)
        self.features_dim = int(features_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BACKBONES = {"nature": NatureCNN, "resnet": SmallResNet}


def make_backbone(name: str, in_shape: Sequence[int], **kwargs) -> nn.Module:
    """``make_backbone("nature" | "resnet", (C, H, W), features_dim=..., activation=...)``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](in_shape, **kwargs)
