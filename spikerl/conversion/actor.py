"""Converting RL actors: plain modules and Stable-Baselines3-style actors (duck-typed, no SB3 import)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from spikerl.conversion.convert import ConversionSpec, convert
from spikerl.conversion.model import SpikingModel


class _Scale(nn.Module):
    """x * factor (SB3's image normalisation, /255, applied before the features extractor)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self.factor


def _sb3_scales_images(actor: nn.Module) -> bool:
    space = getattr(actor, "observation_space", None)
    shape = getattr(space, "shape", None) or ()
    return bool(getattr(actor, "normalize_images", False)) and len(shape) == 3 and \
        np.dtype(getattr(space, "dtype", np.float32)) == np.uint8


def deterministic_actor(actor: nn.Module) -> nn.Module:
    """The deterministic action network of an actor.

    * SB3 TD3/DDPG actor (attributes ``features_extractor`` and ``mu``): ``Sequential(features, mu)``
      (``mu`` already ends with Tanh);
    * SB3 SAC actor (``features_extractor``, ``latent_pi``, ``mu``): ``Sequential(features, latent_pi, mu, Tanh)``
      (the deterministic action tanh(mean)); uint8 image observations are scaled by 1/255 first, as SB3's
      ``preprocess_obs`` does;
    * anything else is returned unchanged (its own forward, e.g. ``max_action * tanh(l3(...))``).
    """
    if hasattr(actor, "mu") and hasattr(actor, "features_extractor"):
        parts = [_Scale(1 / 255.0)] if _sb3_scales_images(actor) else []
        parts.append(actor.features_extractor)
        if hasattr(actor, "latent_pi"):
            parts += [actor.latent_pi, actor.mu, nn.Tanh()]
        else:
            parts.append(actor.mu)
        return nn.Sequential(*parts)
    return actor


def convert_actor(actor: nn.Module, states: Any, spec: ConversionSpec | None = None) -> SpikingModel:
    """Convert an actor with calibration ``states`` (``[N, obs_dim]`` from rollouts or a replay buffer).

    The actor's head (tanh, max-action scaling) stays in floating point on the time-averaged input of the
    last layer, so the SNN returns actions in the same range. With ``spec.carry == "crpi"`` call
    ``snn.reset()`` at episode start (``snn.reset(mask=dones)`` for vector envs).
    """
    net = deterministic_actor(actor)
    if isinstance(states, np.ndarray):
        states = torch.from_numpy(states)
    if not isinstance(states, torch.Tensor) or states.dim() < 2 or states.shape[0] == 0:
        shape = tuple(states.shape) if hasattr(states, "shape") else type(states).__name__
        raise ValueError(f"convert_actor: states must be a non-empty array [N, obs_dim], got {shape}")
    return convert(net, spec or ConversionSpec(T=32, method="max"), calib_data=states)
