"""CPU-side speed settings for training processes.

``keep_freed_memory()``: glibc's malloc serves allocations above its mmap threshold (128 KiB at first,
adapting upwards) with fresh ``mmap`` pages and returns freed heap tops to the OS. A training step
allocates and frees many tensors of 0.2-4 MB (SNN membrane/spike buffers [T, B, N], activations), so
each step page-faults thousands of fresh pages, and every fault is zero-filled by the kernel: on a
shared or virtualised 2-core machine this costs more than the elementwise work on those tensors.
Raising the mmap and trim thresholds keeps freed memory in the process heap for reuse. The process
keeps its peak memory instead of returning it. Linux/glibc only; elsewhere it does nothing.

``flush_denormals()``: Adam's moment estimates of a weight whose gradient is zero (a dead ReLU unit of the
proxy network, for instance) decay geometrically, m <- 0.9 m, through the float32 subnormal range
(|m| < 1.18e-38) on their way to zero. x86 CPUs handle subnormal operands in microcode, many times slower
than normal ones: on a trained PT-LIF agent about 16-30% of the proxy's Adam state is subnormal and its
fused Adam step takes 2.1-2.6 ms instead of 0.45 ms. Flushing subnormals to zero (FTZ/DAZ) changes values
below 1.18e-38 only. It is a per-thread CPU setting that new threads inherit, so it must be set before
torch starts its worker threads (before the first parallel op) to reach them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` / ``M_TRIM_THRESHOLD`` (bytes); True if both calls succeeded."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                     int(trim_threshold)))


def flush_denormals() -> bool:
    """Treat float32/float64 subnormal numbers as zero on this thread and the threads it starts later
    (``torch.set_flush_denormal``); False on a CPU without FTZ/DAZ (then nothing changes)."""
    return bool(torch.set_flush_denormal(True))
