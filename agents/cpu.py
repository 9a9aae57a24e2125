"""CPU-side speed settings for training processes.

``keep_freed_memory()``: glibc's malloc serves allocations above its mmap threshold (128 KiB at first,
adapting upwards) with fresh ``mmap`` pages and returns freed heap tops to the OS. A training step
allocates and frees many tensors of 0.2-4 MB (SNN membrane/spike buffers [T, B, N], activations), so
each step page-faults thousands of fresh pages, and every fault is zero-filled by the kernel: on a
shared or virtualised 2-core machine this costs more than the elementwise work on those tensors.
Raising the mmap and trim thresholds keeps freed memory in the process heap for reuse. The process
keeps its peak memory instead of returning it. Linux/glibc only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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
