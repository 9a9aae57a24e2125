"""Multi-threshold (multi-level) neuron: several spikes per step (ECMT / DCGS style, Huang et al. 2024-25).

    h_t = decay u_{t-1} + I_t
    k_t = clip(floor(h_t / V_th), 0, levels)      number of thresholds crossed, emitted as a graded spike
    u_t = h_t - V_th k_t (soft)   or   h_t [k_t = 0] (hard)

Forward, k_t = sum_{j=1..levels} [h_t > j V_th] (strict crossings, matching the single-threshold
neurons); backward, dk/dh = sum_j surrogate'(h_t - j V_th).
"""

from __future__ import annotations

from typing import Any

import torch

from spikerl.neurons.base import SpikingNeuron, State, check_unit_interval


class MultiThresholdNeuron(SpikingNeuron):
    """Multi-level spiking neuron emitting k in {0..levels} per step."""

    name = "multi-threshold"

    def __init__(self, threshold: float = 0.5, decay: float = 1.0, levels: int = 4, reset: str = "soft",
                 **kwargs: Any) -> None:
        super().__init__(threshold=threshold, reset=reset, **kwargs)
        self.decay = check_unit_interval(self.name, "decay", decay)
        if int(levels) != levels or levels < 1:
            raise ValueError(f"neuron 'multi-threshold': levels must be a positive integer, got {levels!r}")
        self.levels = int(levels)

    def charge(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return state[0] * self.decay + x, ()

    def fire(self, h: torch.Tensor) -> torch.Tensor:
        return sum(self.surrogate(h - j * self.threshold) for j in range(1, self.levels + 1))

    def reset(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.detach_reset:
            s = s.detach()
        if self.reset_mode == "soft":
            return h - self.threshold * s
        return h * (1.0 - s.clamp(max=1.0))

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "decay": self.decay, "levels": self.levels}
