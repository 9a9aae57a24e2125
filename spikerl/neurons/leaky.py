"""Integrate-and-fire neurons with a leaky membrane (and optional current state).

- IF:   h_t = u_{t-1} + I_t
- LIF:  h_t = lambda u_{t-1} + I_t                      (Proxy Target eq. 4-5; lambda = 0.75, V_th = 0.5)
- CLIF: c_t = alpha c_{t-1} + I_t;  h_t = lambda u_{t-1} + c_t
        (current-based LIF of PopSAN, Tang et al. CoRL 2020; alpha = 0.5, lambda = 0.75)
- PLIF: LIF with a learnable decay lambda = sigmoid(w), one per layer (Fang et al. ICCV 2021; the
        Proxy-Target-with-PLIF fork initialises lambda = 0.75)

with I_t = W s^{l-1}_t + b, spike s_t = [h_t > V_th] and reset u_t = h_t (1 - s_t) (hard, the Proxy
Target default: H_t = lambda H_{t-1} (1 - S_{t-1}) + I_t) or u_t = h_t - V_th s_t (soft).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from spikerl.neurons.base import SpikingNeuron, State, check_unit_interval


class LIFNeuron(SpikingNeuron):
    """Leaky integrate-and-fire: h_t = decay * u_{t-1} + I_t."""

    name = "lif"
    has_fused_kernel = True

    def __init__(self, threshold: float = 0.5, decay: float = 0.75, **kwargs: Any) -> None:
        super().__init__(threshold=threshold, **kwargs)
        self._decay = check_unit_interval(self.name, "decay", decay)

    @property
    def decay(self) -> float | torch.Tensor:
        return self._decay

    @property
    def current_decay(self) -> float | None:
        return None

    def charge(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return state[0] * self.decay + x, ()

    def fused_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        from spikerl.kernels.fused import leaky_multistep

        return leaky_multistep(
            x_seq, self.decay, self.current_decay, self.threshold, self.reset_mode, self.detach_reset,
            self.surrogate,
        )

    def hparams(self) -> dict[str, Any]:
        decay = self.decay
        return {**super().hparams(), "decay": float(decay.detach()) if isinstance(decay, torch.Tensor) else decay}


class IFNeuron(LIFNeuron):
    """Integrate-and-fire (no leak): h_t = u_{t-1} + I_t."""

    name = "if"

    def __init__(self, threshold: float = 0.5, **kwargs: Any) -> None:
        if "decay" in kwargs:
            raise ValueError("neuron 'if' has no decay (it is LIF with decay 1); use make_neuron('lif', decay=...)")
        super().__init__(threshold=threshold, decay=1.0, **kwargs)

    def hparams(self) -> dict[str, Any]:
        params = super().hparams()
        params.pop("decay")
        return params


class CLIFNeuron(LIFNeuron):
    """Current-based LIF: c_t = current_decay * c_{t-1} + I_t; h_t = decay * u_{t-1} + c_t."""

    name = "clif"
    n_state = 2

    def __init__(self, threshold: float = 0.5, decay: float = 0.75, current_decay: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(threshold=threshold, decay=decay, **kwargs)
        self._current_decay = check_unit_interval(self.name, "current_decay", current_decay, allow_zero=True)

    @property
    def current_decay(self) -> float:
        return self._current_decay

    def charge(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        c = state[1] * self.current_decay + x
        return state[0] * self.decay + c, (c,)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "current_decay": self.current_decay}


class PLIFNeuron(LIFNeuron):
    """Parametric LIF: decay = sigmoid(w) is learned (one scalar per layer), w_0 = logit(decay)."""

    name = "plif"

    def __init__(self, threshold: float = 0.5, decay: float = 0.75, **kwargs: Any) -> None:
        super().__init__(threshold=threshold, decay=decay, **kwargs)
        if not 0 < decay < 1:
            raise ValueError(f"neuron 'plif': initial decay must lie in (0, 1), got {decay!r}")
        self.decay_logit = nn.Parameter(torch.tensor(math.log(decay / (1.0 - decay))))

    @property
    def decay(self) -> torch.Tensor:
        return torch.sigmoid(self.decay_logit)
