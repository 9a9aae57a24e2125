"""Argument types and defaults shared by several ``spikerl`` subcommands."""

from __future__ import annotations

import argparse
import os


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def default_threads() -> int:
    """``$SPIKERL_NUM_THREADS`` (set by ``spikerl sweep`` for its workers) or 1."""
    try:
        return max(1, int(os.environ.get("SPIKERL_NUM_THREADS", "1")))
    except ValueError:
        return 1
