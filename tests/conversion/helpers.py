"""Dyadic random networks for exact (bitwise) conversion tests in float64.

Weights, biases and inputs are small multiples of 2^-6, thresholds powers of two and T a power of two, so
every partial sum is exactly representable and SNN == ANN can be asserted with torch.equal.
"""

from __future__ import annotations

import torch
from torch import nn


def dyadic(*shape: int, scale: int = 16, gen: torch.Generator | None = None) -> torch.Tensor:
    return torch.randint(-scale, scale + 1, shape, generator=gen).double() / 64.0


def dyadicize(net: nn.Module, scale: int = 16, nonneg: bool = False) -> nn.Module:
    """Overwrite every Linear/Conv weight and bias with dyadic values (in place), float64."""
    net.double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                w = dyadic(*m.weight.shape, scale=scale)
                m.weight.copy_(w.abs() if nonneg else w)
                if m.bias is not None:
                    b = dyadic(*m.bias.shape, scale=scale)
                    m.bias.copy_(b.abs() if nonneg else b)
    return net
