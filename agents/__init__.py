"""Stable-Baselines3 agents with spiking actors and the Proxy Target (Xu et al., NeurIPS 2025).

- ``ProxyTD3`` / ``ProxySAC``: SB3 TD3 / SAC with ``target="proxy" | "soft"``; ``policy="SNNPolicy"``
  (spiking actor) or ``"MlpPolicy"`` (ANN baseline, same training loop).
- ``SNNTD3Policy`` / ``SNNSACPolicy``: the SB3 policies with a ``spikerl`` spiking actor; ``MlpTD3Policy``:
  SB3's TD3Policy that, like ``SNNTD3Policy``, can leave out the target actor (``build_actor_target``).
- ``NonFiniteLossError``: raised when a loss turns NaN/inf, before the optimizer step.

The names are imported on first use (PEP 562), so that the torch-free submodules (evaluating a bundle or a
C export: ``spikerl.agents.deploy``, ``spikerl.agents.episodes``) import neither torch nor SB3.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it
_LAZY = {
    "NonFiniteLossError": "errors", "MlpTD3Policy": "policies", "SNNActor": "policies",
    "SNNGaussianActor": "policies", "SNNSACPolicy": "policies", "SNNTD3Policy": "policies", "snn_or_none": "policies",
    "ProxyActor": "proxy", "imitate_actor": "proxy", "ProxySAC": "sac", "ProxyTD3": "td3",
}

__all__ = [
    "ALGORITHMS", "ProxyTD3", "ProxySAC", "MlpTD3Policy", "SNNTD3Policy", "SNNSACPolicy", "SNNActor",
    "SNNGaussianActor", "NonFiniteLossError", "ProxyActor", "imitate_actor", "snn_or_none",
]


def __getattr__(name: str) -> Any:
    if name == "ALGORITHMS":
        value: Any = {"td3": __getattr__("ProxyTD3"), "sac": __getattr__("ProxySAC")}
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"spikerl.agents.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module 'spikerl.agents' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
