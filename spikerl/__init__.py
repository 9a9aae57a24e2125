"""spikerl: reinforcement learning with spiking neural networks.

Core (this package minus ``cli``) needs only PyTorch and NumPy: neurons, surrogates, coding, spiking
actors, conversion and kernels. RL agents live in ``spikerl.agents`` (Stable-Baselines3) and
environments in ``spikerl.envs`` (Gymnasium MuJoCo).

The top-level names are imported lazily (PEP 562), so that ``spikerl.runtime`` (NumPy + Numba policy
bundles) works where torch is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "SpikingActor": "spikerl.networks", "SpikingGaussianActor": "spikerl.networks", "SpikingMLP": "spikerl.networks",
    "mlp_actor": "spikerl.networks", "NEURONS": "spikerl.neurons", "make_neuron": "spikerl.neurons",
    "make_surrogate": "spikerl.surrogates",
}

__all__ = [
    "__version__", "make_neuron", "make_surrogate", "NEURONS", "SpikingActor", "SpikingGaussianActor",
    "SpikingMLP", "mlp_actor",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spikerl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
