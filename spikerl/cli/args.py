"""Argument types and defaults shared by several ``spikerl`` subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: the largest seed NumPy's legacy seeding (used by Stable-Baselines3) accepts
MAX_SEED = 2**32 - 1


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def seed(text: str) -> int:
    """argparse type: a random seed, an integer in [0, 2**32 - 1]."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed, an integer from 0 to {MAX_SEED}, got {text!r}")
    return value


def step_count(text: str) -> int:
    """argparse type: a step count such as 20000, 2e4, 20_000, 20k or 1.5M, at most 1e9."""
    from spikerl.config.values import step_count as parse  # imports torch: only once arguments are parsed

    try:
        return parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def existing_dir(path: str | Path, what: str = "run directory") -> Path:
    """``path`` as a Path if it is a directory; otherwise a one-line error saying whether it is missing or a file.

    Raises ``spikerl.cli.CLIError``."""
    from spikerl.cli import CLIError

    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise CLIError(f"{path} is a file, not a {what} (a folder{_folder_hint(path)})")
    raise CLIError(f"{what} {path} does not exist")


def _folder_hint(path: Path) -> str:
    """``such as PARENT`` when the file lies in a folder that is a run, bundle or export (it holds a marker file)."""
    markers = ("config.yaml", "manifest.json", "converted.json", "spikerl_policy.json")
    return f" such as {path.parent}" if any((path.parent / m).is_file() for m in markers) else ""


def os_error_line(err: OSError, doing: str | None = "write") -> str:
    """An OSError as one line naming the path and the cause: ``cannot write /ro/x.json: Permission denied``
    (``doing=None``: ``/ro/x.json: Permission denied``; an error without a path: its own first line)."""
    if err.filename is None:
        text = str(err).strip()
        return text.splitlines()[0] if text else type(err).__name__
    cause = err.strerror or type(err).__name__
    return f"cannot {doing} {err.filename}: {cause}" if doing else f"{err.filename}: {cause}"


def default_threads() -> int:
    """``$SPIKERL_NUM_THREADS`` (set by ``spikerl sweep`` for its workers) or 1."""
    try:
        return max(1, int(os.environ.get("SPIKERL_NUM_THREADS", "1")))
    except ValueError:
        return 1
