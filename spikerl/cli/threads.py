"""Torch CPU threads of the ``spikerl`` subcommands that run torch (train, evaluate, convert)."""

from __future__ import annotations

from spikerl.cli import CLIError


def set_torch_threads(n: int) -> None:
    """``torch.set_num_threads(n)`` for the ``--threads N`` option; CLIError unless n >= 1."""
    if n < 1:
        raise CLIError(f"--threads: expected a positive integer, got {n}")
    import torch

    torch.set_num_threads(n)
