"""Shared fixtures for the export tests: small actors whose every layer fires, and recorded observations."""

from __future__ import annotations

import numpy as np
import torch

import spikerl

OBS_DIM, ACT_DIM, HIDDEN = 5, 3, (48, 32)
#: (neuron, reset) for every neuron type the runtime supports (DN has its own reset)
NEURON_RESETS = [(n, r) for n in ("if", "lif", "clif", "plif", "dn", "multi-threshold")
                 for r in (("hard",) if n == "dn" else ("hard", "soft"))]


def ids(cfg: tuple) -> str:
    return "-".join(str(c) for c in cfg)


def make_actor(neuron: str = "lif", reset: str = "hard", encoder: str = "pop", dtype: torch.dtype = torch.float64,
               *, gaussian: bool = False, seed: int = 0, scale: float = 2.0) -> spikerl.SpikingActor:
    """A small actor with weights scaled up so that every layer fires; PLIF gets a learned decay != 0.75."""
    torch.manual_seed(seed)
    kwargs = {} if neuron == "dn" else {"reset": reset}
    cls = spikerl.SpikingGaussianActor if gaussian else spikerl.SpikingActor
    actor = cls(OBS_DIM, ACT_DIM, hidden=HIDDEN, neuron=neuron, neuron_kwargs=kwargs, encoder=encoder).to(dtype)
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(scale)
            lin.bias.add_(0.1)
        if neuron == "plif":
            for i, n in enumerate(actor.snn.neurons):
                n.decay_logit.fill_(0.3 + 0.2 * i)
    return actor.eval()


def observations(dtype: type = np.float64, n: int = 32, seed: int = 1, dim: int = OBS_DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=1.5, size=(n, dim)).astype(dtype)


def torch_action(actor, obs: np.ndarray) -> np.ndarray:
    """The deterministic action of a torch actor (tanh(mean) for a Gaussian actor)."""
    with torch.no_grad():
        x = torch.from_numpy(obs)
        if isinstance(actor, spikerl.SpikingGaussianActor):
            return actor.deterministic(x).numpy()
        return actor(x).numpy()


def torch_counts(actor, obs: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in actor.spike_counts(torch.from_numpy(obs)).items()}
