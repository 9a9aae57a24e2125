"""Energy per decision of an SB3 model's deployed (deterministic) actor, from evaluation observations.

SNN actors: synaptic operations from the real spike counts on the observations (``spikerl.energy``).
ANN actors: MACs of the layers the deterministic action uses (TD3 ``mu``; SAC ``latent_pi`` + ``mu``,
not the log-std head).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from spikerl.agents.policies import snn_or_none

from spikerl.energy import ENERGY_MODELS, energy_of, snn_energy

#: at most this many evaluation observations are replayed through the actor for the spike counts
MAX_OBSERVATIONS = 2000


def actor_energy(model: Any, observations: np.ndarray, energy_model: str = "paper") -> dict[str, Any]:
    """Per-decision ``sops``, ``macs``, ``energy_nj``, ``firing_rate`` (None for ANNs) and the model name."""
    actor = model.actor
    net = snn_or_none(actor)
    if net is not None:
        obs = np.asarray(observations, dtype=np.float32)[:MAX_OBSERVATIONS]
        with torch.no_grad():
            rep = snn_energy(net, torch.as_tensor(obs, device=next(net.parameters()).device), energy_model)
        return {"kind": "snn", "sops": rep.sops, "macs": rep.macs, "energy_nj": rep.energy_nj,
                "firing_rate": rep.firing_rate, "energy_model": energy_model,
                "observations": int(len(obs))}
    parts = [getattr(actor, name) for name in ("latent_pi", "mu") if hasattr(actor, name)]
    macs = float(sum(m.in_features * m.out_features for part in parts for m in part.modules()
                     if isinstance(m, torch.nn.Linear)))
    return {"kind": "ann", "sops": 0.0, "macs": macs, "energy_nj": energy_of(macs, 0.0, energy_model) * 1e9,
            "firing_rate": None, "energy_model": energy_model, "observations": int(len(observations))}


__all__ = ["actor_energy", "ENERGY_MODELS", "MAX_OBSERVATIONS"]
