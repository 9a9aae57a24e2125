"""Plain reference functions (float64 friendly, loops, no tricks) that the conversion tests compare against.

Rounding is half-up, floor(u + 1/2), never ``torch.round`` (which rounds half to even): an IF neuron
started at v0 = theta/2 rounds ties up.
"""

from __future__ import annotations

import torch


def round_half_up(u: torch.Tensor) -> torch.Tensor:
    return torch.floor(u + 0.5)


def qcfs_ref(z: torch.Tensor, lam: float, L: int, phi: float = 0.5) -> torch.Tensor:
    """QCFS activation lambda * clip(floor(z L / lambda + phi), 0, L) / L."""
    return lam * torch.clamp(torch.floor(z * L / lam + phi), 0, L) / L


def if_counts(x_seq: torch.Tensor, theta, v0, fire: str = "ge") -> tuple[torch.Tensor, torch.Tensor]:
    """IF neuron with reset by subtraction over ``x_seq[T, ...]`` from potential ``v0`` (absolute units).

    Returns (spike count N, final potential v_T)."""
    theta = torch.as_tensor(theta, dtype=x_seq.dtype)
    v = torch.zeros_like(x_seq[0]) + v0
    n = torch.zeros_like(x_seq[0])
    for x in x_seq:
        v = v + x
        s = (v >= theta) if fire == "ge" else (v > theta)
        v = torch.where(s, v - theta, v)
        n = n + s.to(n.dtype)
    return n, v


def if_const_count(z: torch.Tensor, theta: float, T: int, fire: str = "ge") -> torch.Tensor:
    """Closed form of the IF count for constant input z and v0 = theta/2 (P1)."""
    u = T * z / theta + 0.5
    n = torch.floor(u) if fire == "ge" else torch.ceil(u) - 1
    return torch.clamp(n, 0, T)


def window_count(total: torch.Tensor, theta, T: int, v0_frac: float = 0.5) -> torch.Tensor:
    """clip(floor((sum x + v0) / theta), 0, T): the Parallel neuron's count (P5)."""
    return torch.clamp(torch.floor((total + v0_frac * theta) / theta), 0, T)


def crpi_next_carry(residual: torch.Tensor, count: torch.Tensor, theta, alpha: float) -> torch.Tensor:
    """CRPI carry c' = clip(alpha * max(R, -theta N), -theta/2, theta/2)."""
    theta = torch.as_tensor(theta, dtype=residual.dtype)
    c = alpha * torch.maximum(residual, -theta * count)
    return torch.minimum(torch.maximum(c, -theta / 2), theta / 2)
