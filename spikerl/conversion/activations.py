"""ANN-side activations that make a network convertible with low latency.

QCFS (Bu et al., ICLR 2022), quantization-clip-floor-shift with L levels and learnable scale lambda:

    h(z) = lambda * clip(floor(z L / lambda + phi), 0, L) / L,      phi = 1/2

The floor has a straight-through gradient (identity backward), lambda is learned by autograd.
Converted with an IF neuron of threshold theta = lambda and v0 = theta/2, the spike count for a
constant input is exactly clip(floor(T z / theta + 1/2), 0, T), i.e. h(z) when T = L.

ClipReLU (the "TCL"/OPI activation, Bu et al., AAAI 2022): clip(z, 0, lambda) with learnable lambda.
"""

from __future__ import annotations

import torch
from torch import nn


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """floor(x) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.floor(x) - x).detach()


def _check_scale(name: str, lam_init: float) -> float:
    lam_init = float(lam_init)
    if not lam_init > 0:
        raise ValueError(f"{name}: lam_init must be a positive number, got {lam_init!r}")
    return lam_init


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation with ``L`` levels and a learnable scale ``lam``."""

    def __init__(self, L: int = 8, lam_init: float = 8.0, phi: float = 0.5, learn_lam: bool = True) -> None:
        super().__init__()
        if int(L) != L or L < 1:
            raise ValueError(f"QCFS: L (quantization levels) must be a positive integer, got {L!r}")
        self.L = int(L)
        self.phi = float(phi)
        self.lam = nn.Parameter(torch.tensor(_check_scale("QCFS", lam_init)), requires_grad=learn_lam)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lam = self.lam.to(z.dtype)
        x = torch.clamp(z / lam, 0.0, 1.0)
        return floor_ste(x * self.L + self.phi) / self.L * lam

    def extra_repr(self) -> str:
        return f"L={self.L}, phi={self.phi}, lam={float(self.lam):.4g}"


class ClipReLU(nn.Module):
    """ReLU clipped at a learnable upper bound ``lam``: min(max(z, 0), lam) (OPI / TCL)."""

    def __init__(self, lam_init: float = 4.0, learn_lam: bool = True) -> None:
        super().__init__()
        self.lam = nn.Parameter(torch.tensor(_check_scale("ClipReLU", lam_init)), requires_grad=learn_lam)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.relu(z), self.lam.to(z.dtype))

    def extra_repr(self) -> str:
        return f"lam={float(self.lam):.4g}"


def replace_relu(module: nn.Module, factory) -> nn.Module:
    """Replace every ``nn.ReLU`` child of ``module`` (recursively, in place) by ``factory()``.

    Example: ``replace_relu(net, lambda: QCFS(L=8))`` makes a ReLU network QCFS-trainable.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, factory())
        else:
            replace_relu(child, factory)
    return module
