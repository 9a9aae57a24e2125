"""Shared pieces of the converted-policy runtime tests: the control MLP, states, and the per-decision check
that the Numba runtime and the torch ``SpikingModel`` emit the same events and carry the same potentials."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def control_mlp(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    gen = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 20), nn.ReLU(), nn.Linear(20, 3), nn.Tanh())
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.to(dtype)


def control_states(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def torch_carry(snn) -> np.ndarray:
    c = snn.carry
    return np.concatenate([c[k].numpy() for k in snn.site_names], axis=1)


def assert_same_events_and_carry(snn, policy, obs: list[torch.Tensor], carry: str | None) -> dict[str, np.ndarray]:
    """Decision after decision (both advance their carry): equal spike counts per layer and, with the CRPI
    carry, equal carried potentials (1e-12) that are really used. Returns the last decision's counts."""
    names = snn.site_names
    counts: dict[str, np.ndarray] = {}
    for o in obs:
        trace = snn.run(o)
        counts = policy.spike_counts(o.numpy())
        assert sorted(counts) == [f"hidden{i}" for i in range(len(names))]
        for i, site in enumerate(names):
            np.testing.assert_array_equal(counts[f"hidden{i}"], trace.spike_counts[site].numpy())
        if carry == "crpi":
            np.testing.assert_allclose(policy._kernel.carry, torch_carry(snn), rtol=0, atol=1e-12)
            assert np.abs(policy._kernel.carry).max() > 0  # the carry is really used
    return counts
