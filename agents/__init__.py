"""Stable-Baselines3 agents with spiking actors and the Proxy Target (Xu et al., NeurIPS 2025).

- ``ProxyTD3`` / ``ProxySAC``: SB3 TD3 / SAC with ``target="proxy" | "soft"``; ``policy="SNNPolicy"``
  (spiking actor) or ``"MlpPolicy"`` (ANN baseline, same training loop).
- ``SNNTD3Policy`` / ``SNNSACPolicy``: the SB3 policies with a ``spikerl`` spiking actor; ``MlpTD3Policy``:
  SB3's TD3Policy that, like ``SNNTD3Policy``, can leave out the target actor (``build_actor_target``).
- ``NonFiniteLossError``: raised when a loss turns NaN/inf, before the optimizer step.
"""

from spikerl.agents.errors import NonFiniteLossError
from spikerl.agents.policies import (
    MlpTD3Policy,
    SNNActor,
    SNNGaussianActor,
    SNNSACPolicy,
    SNNTD3Policy,
    snn_or_none,
)
from spikerl.agents.proxy import ProxyActor, imitate_actor
from spikerl.agents.sac import ProxySAC
from spikerl.agents.td3 import ProxyTD3

ALGORITHMS = {"td3": ProxyTD3, "sac": ProxySAC}

__all__ = [
    "ALGORITHMS", "ProxyTD3", "ProxySAC", "MlpTD3Policy", "SNNTD3Policy", "SNNSACPolicy", "SNNActor",
    "SNNGaussianActor", "NonFiniteLossError", "ProxyActor", "imitate_actor", "snn_or_none",
]
