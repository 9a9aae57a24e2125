"""Stable-Baselines3 agents with spiking actors and the Proxy Target (Xu et al., NeurIPS 2025).

- ``ProxyTD3`` / ``ProxySAC``: SB3 TD3 / SAC with ``target="proxy" | "soft"``; ``policy="SNNPolicy"``
  (spiking actor) or ``"MlpPolicy"`` (ANN baseline, same training loop).
- ``SNNTD3Policy`` / ``SNNSACPolicy``: the SB3 policies with a ``spikerl`` spiking actor.
- ``NonFiniteLossError``: raised when a loss turns NaN/inf, before the optimizer step.
"""

from spikerl.agents.errors import NonFiniteLossError
from spikerl.agents.policies import SNNActor, SNNGaussianActor, SNNSACPolicy, SNNTD3Policy, snn_or_none
from spikerl.agents.proxy import ProxyActor, proxy_update
from spikerl.agents.sac import ProxySAC
from spikerl.agents.td3 import ProxyTD3

ALGORITHMS = {"td3": ProxyTD3, "sac": ProxySAC}

__all__ = [
    "ALGORITHMS", "ProxyTD3", "ProxySAC", "SNNTD3Policy", "SNNSACPolicy", "SNNActor", "SNNGaussianActor",
    "NonFiniteLossError", "ProxyActor", "proxy_update", "snn_or_none",
]
