"""The neuron base class: charge, fire, reset, with explicit state.

Every neuron in spikerl follows one pattern (after SpikingJelly's decomposition):

    h_t = charge(x_t, state_{t-1})      membrane potential after integrating input x_t
    s_t = fire(h_t)                     spike, via a surrogate gradient
    state_t = reset(h_t, s_t, ...)      hard: u_t = h_t (1 - s_t)   soft: u_t = h_t - V_th s_t

``step(x, state) -> (spike, state)`` runs one simulation step; ``forward(x_seq)`` runs all T steps of a
``[T, B, ...]`` input from a fresh (zero) state and returns spikes of the same shape. Neurons with a
fused kernel (``spikerl.kernels.fused``) run the T-step recurrence as one autograd node with a
hand-written backward; ``reference_forward`` is the plain loop over ``step`` that the kernel is tested
against.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from spikerl.surrogates import Surrogate, make_surrogate

State = tuple[torch.Tensor, ...]
RESETS = ("hard", "soft")


def check_positive(neuron: str, key: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"neuron {neuron!r}: {key} must be a positive finite number, got {value!r}")
    return value


def check_unit_interval(neuron: str, key: str, value: float, *, allow_zero: bool = False) -> float:
    value = float(value)
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"neuron {neuron!r}: {key} must lie in {interval}, got {value!r}")
    return value


class SpikingNeuron(nn.Module):
    """Base class of all spiking neurons.

    Args:
        threshold: firing threshold V_th (spike when h > V_th).
        reset: ``"hard"`` (to 0) or ``"soft"`` (subtract V_th).
        surrogate: surrogate name or object (``spikerl.surrogates``); keyword parameters for it in
            ``surrogate_kwargs``.
        detach_reset: if True the reset path carries no gradient (SpikingJelly's option). The Proxy
            Target code does not detach, so the default is False.
        fused: use the fused multi-step kernel when the neuron has one.
    """

    name: str = ""
    has_fused_kernel: bool = False
    #: number of state tensors returned by ``init_state``
    n_state: int = 1

    def __init__(
        self,
        threshold: float = 0.5,
        reset: str = "hard",
        surrogate: str | Surrogate = "rectangular",
        surrogate_kwargs: dict[str, float] | None = None,
        detach_reset: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.threshold = check_positive(self.name, "threshold", threshold)
        if reset not in RESETS:
            raise ValueError(f"neuron {self.name!r}: reset must be one of {RESETS}, got {reset!r}")
        self.reset_mode = reset
        self.surrogate = make_surrogate(surrogate, **(surrogate_kwargs or {}))
        self.detach_reset = bool(detach_reset)
        self.fused = bool(fused)

    # -- the three parts ----------------------------------------------------------------------
    def charge(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Integrate input x into the membrane; return h_t and the non-membrane state."""
        raise NotImplementedError

    def fire(self, h: torch.Tensor) -> torch.Tensor:
        return self.surrogate(h - self.threshold)

    def reset(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if self.detach_reset:
            s = s.detach()
        if self.reset_mode == "hard":
            return h * (1.0 - s)
        return h - self.threshold * s

    # -- state and stepping ---------------------------------------------------------------------
    def init_state(
        self, shape: tuple[int, ...] | torch.Size, *, dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> State:
        """A fresh (resting, all-zero) state for inputs of ``shape``."""
        return tuple(torch.zeros(shape, dtype=dtype, device=device) for _ in range(self.n_state))

    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One simulation step: ``(spike, new_state)``."""
        if state is None:
            state = self.init_state(x.shape, dtype=x.dtype, device=x.device)
        h, rest = self.charge(x, state)
        s = self.fire(h)
        return s, (self.reset(h, s), *rest)

    def reference_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """The plain Python loop over ``step`` (autograd through every op)."""
        state = self.init_state(x_seq.shape[1:], dtype=x_seq.dtype, device=x_seq.device)
        spikes = []
        for x in x_seq:
            s, state = self.step(x, state)
            spikes.append(s)
        return torch.stack(spikes)

    def fused_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"neuron {self.name!r} has no fused kernel")

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Multi-step forward over ``x_seq[T, B, ...]`` from a fresh state; returns spikes ``[T, B, ...]``."""
        if x_seq.dim() < 2:
            raise ValueError(
                f"neuron {self.name!r}: forward expects a sequence [T, B, ...], got shape {tuple(x_seq.shape)}"
            )
        if self.fused and self.has_fused_kernel:
            return self.fused_forward(x_seq)
        return self.reference_forward(x_seq)

    # -- description ----------------------------------------------------------------------------
    def hparams(self) -> dict[str, Any]:
        """Constructor parameters (plain values) that rebuild this neuron via ``make_neuron``."""
        return {
            "threshold": self.threshold,
            "reset": self.reset_mode,
            "surrogate": self.surrogate.name,
            "surrogate_kwargs": self.surrogate.params(),
            "detach_reset": self.detach_reset,
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams().items() if k != "surrogate_kwargs")
