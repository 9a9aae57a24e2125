"""Kernels: the fused multi-step neuron kernel (torch, CPU/CUDA) and Numba CPU policies.

Both are imported lazily: ``import spikerl`` does not pay for ``import numba``, and the Numba policy
(``spikerl.kernels.numba_policy``, used by the torch-free ``spikerl.runtime``) does not import torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["leaky_multistep", "compile_policy"]


def __getattr__(name: str) -> Any:
    if name == "compile_policy":  # defined with the torch-to-spec reader; the kernel module runs specs only
        from spikerl.export import compile_policy

        return compile_policy
    if name == "leaky_multistep":
        from spikerl.kernels.fused import leaky_multistep

        return leaky_multistep
    raise AttributeError(f"module 'spikerl.kernels' has no attribute {name!r}")
