"""SB3 features extractor over the spikerl vision backbones (pixel observations, channels first)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from spikerl.backbones import make_backbone


class BackboneExtractor(BaseFeaturesExtractor):
    """``policy_kwargs=dict(features_extractor_class=BackboneExtractor,
    features_extractor_kwargs=dict(backbone="nature", features_dim=256, activation="qcfs"))``.

    The observation space must be an image Box ``(C, H, W)``; SB3 scales uint8 images to [0, 1] before
    this extractor sees them.
    """

    def __init__(self, observation_space: gym.spaces.Box, backbone: str = "nature", features_dim: int = 256,
                 **backbone_kwargs: Any) -> None:
        shape = getattr(observation_space, "shape", None)
        if not isinstance(observation_space, gym.spaces.Box) or shape is None or len(shape) != 3:
            raise ValueError(f"BackboneExtractor needs an image Box observation space (C, H, W), got "
                             f"{observation_space}")
        super().__init__(observation_space, features_dim)
        self.backbone = make_backbone(backbone, shape, features_dim=features_dim, **backbone_kwargs)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.backbone(observations)
