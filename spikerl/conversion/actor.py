"""Converting RL actors: plain modules and Stable-Baselines3-style actors (duck-typed, no SB3 import)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from spikerl.conversion.convert import ConversionSpec, convert
from spikerl.conversion.model import SpikingModel


def deterministic_actor(actor: nn.Module) -> nn.Module:
    """The deterministic action network of an actor.

    * SB3 TD3/DDPG actor (attributes ``features_extractor`` and ``mu``): ``Sequential(features, mu)``
      (``mu`` already ends with Tanh);
    * SB3 SAC actor (``features_extractor``, ``latent_pi``, ``mu``): ``Sequential(features, latent_pi, mu, Tanh)``
      (the deterministic action tanh(mean));
    * anything else is returned unchanged (its own forward, e.g. ``max_action * tanh(l3(...))``).
    """
    if hasattr(actor, "mu") and hasattr(actor, "features_extractor"):
        parts = [actor.features_extractor]
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
