"""Kernels: the fused multi-step neuron kernel (torch, CPU/CUDA) and Numba CPU policies.

``compile_policy`` is imported lazily so that ``import spikerl`` does not pay for ``import numba``.
"""

from __future__ import annotations

from typing import Any

from spikerl.kernels.fused import leaky_multistep

__all__ = ["leaky_multistep", "compile_policy"]


def __getattr__(name: str) -> Any:
    if name == "compile_policy":
        from spikerl.kernels.numba_policy import compile_policy

        return compile_policy
    raise AttributeError(f"module 'spikerl.kernels' has no attribute {name!r}")
