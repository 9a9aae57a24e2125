"""Surrogate gradients for the spike non-linearity, chosen by name.

Forward, every surrogate is the Heaviside step S = [x > 0] with x = v - threshold (strict, as in the
Proxy Target and PopSAN code). Backward, dS/dx is replaced by a smooth or boxed pseudo-derivative:

- ``rectangular(width=0.5)``: dS/dx = 1/(2w) * [|x| < w]  (Proxy Target / PopSAN ``PseudoSpikeRect``;
  with w = 0.5 the window is |v - V_th| < 0.5 and the height 1)
- ``sigmoid(alpha=4)``: dS/dx = alpha * sig(alpha x) * (1 - sig(alpha x))
- ``arctan(alpha=2)``: dS/dx = (alpha/2) / (1 + (pi/2 * alpha * x)^2)   (Fang et al. 2021)
- ``fast-sigmoid(slope=25)``: dS/dx = 1 / (1 + slope*|x|)^2             (SuperSpike, Zenke & Ganguli 2018)

Each surrogate exposes ``derivative(x)`` as a plain tensor function so that fused kernels with a
hand-written backward (``spikerl.kernels.fused``) use exactly the same pseudo-derivative.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["Surrogate", "Rectangular", "Sigmoid", "Arctan", "FastSigmoid", "make_surrogate", "SURROGATES"]


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``surrogate.derivative`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.derivative(x), None


class Surrogate:
    """Base class: ``surrogate(x)`` spikes where x > 0 and back-propagates ``derivative(x)``."""

    name: str = ""

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFunction.apply(x, self)

    def params(self) -> dict[str, float]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _positive(name: str, key: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"surrogate {name!r}: {key} must be a positive finite number, got {value!r}")
    return value


class Rectangular(Surrogate):
    """dS/dx = 1/(2w) inside |x| < w, else 0."""

    name = "rectangular"

    def __init__(self, width: float = 0.5) -> None:
        self.width = _positive(self.name, "width", width)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (x.abs() < self.width).to(x.dtype) * (0.5 / self.width)

    def params(self) -> dict[str, float]:
        return {"width": self.width}


class Sigmoid(Surrogate):
    """dS/dx = alpha * sig(alpha x) (1 - sig(alpha x))."""

    name = "sigmoid"

    def __init__(self, alpha: float = 4.0) -> None:
        self.alpha = _positive(self.name, "alpha", alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        sg = torch.sigmoid(self.alpha * x)
        return self.alpha * sg * (1.0 - sg)

    def params(self) -> dict[str, float]:
        return {"alpha": self.alpha}


class Arctan(Surrogate):
    """dS/dx = (alpha/2) / (1 + (pi/2 alpha x)^2)."""

    name = "arctan"

    def __init__(self, alpha: float = 2.0) -> None:
        self.alpha = _positive(self.name, "alpha", alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * self.alpha) / (1.0 + (0.5 * math.pi * self.alpha * x) ** 2)

    def params(self) -> dict[str, float]:
        return {"alpha": self.alpha}


class FastSigmoid(Surrogate):
    """dS/dx = 1 / (1 + slope |x|)^2."""

    name = "fast-sigmoid"

    def __init__(self, slope: float = 25.0) -> None:
        self.slope = _positive(self.name, "slope", slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + self.slope * x.abs()) ** 2

    def params(self) -> dict[str, float]:
        return {"slope": self.slope}


SURROGATES: dict[str, Callable[..., Surrogate]] = {
    "rectangular": Rectangular,
    "sigmoid": Sigmoid,
    "arctan": Arctan,
    "fast-sigmoid": FastSigmoid,
}
_ALIASES = {"rect": "rectangular", "atan": "arctan", "fast_sigmoid": "fast-sigmoid", "fastsigmoid": "fast-sigmoid"}


def make_surrogate(spec: str | Surrogate | None = "rectangular", **params: float) -> Surrogate:
    """Build a surrogate from a name (``"rectangular"``, ``"sigmoid"``, ``"arctan"``, ``"fast-sigmoid"``)."""
    if isinstance(spec, Surrogate):
        if params:
            raise ValueError("make_surrogate: pass parameters either in the Surrogate object or as keywords")
        return spec
    name = "rectangular" if spec is None else _ALIASES.get(str(spec).lower(), str(spec).lower())
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {spec!r}; known surrogates: {', '.join(SURROGATES)}")
    try:
        return SURROGATES[name](**params)
    except TypeError as err:
        raise ValueError(f"surrogate {name!r} got bad parameters {params}: {err}") from None
