"""Shared by the tests that drive the ``spikerl`` command: tiny training budgets and in-process or subprocess runs.

``TINY`` makes any preset train in a second or two on one core. Overrides are applied in order, so a test that needs
another value for one key appends ``key=value`` after ``tiny()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikerl.cli import main

ENV = "InvertedPendulum-v5"
#: ``--set`` overrides that make any preset train in a second or two on one core
TINY = ["learning_starts=100", "batch_size=16", "buffer_size=2000", "actor.hidden=[32,32]",
        "critic.hidden=[32,32]", "eval.freq=100", "eval.episodes=2", "device=cpu"]
#: the proxy's size; only for presets with ``target: proxy`` (the others refuse proxy.* keys)
TINY_PROXY = ["proxy.hidden=[32,32]"]


def tiny(cfg_has_proxy: bool = True) -> list[str]:
    """The tiny-budget overrides for a preset with (default) or without a proxy network."""
    return TINY + (TINY_PROXY if cfg_has_proxy else [])


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``spikerl ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def spikerl_cmd(*argv: str) -> list[str]:
    """The command line that runs ``spikerl ARGV`` with this interpreter."""
    return [sys.executable, "-m", "spikerl", *argv]


def subprocess_env() -> dict[str, str]:
    """The environment for a ``spikerl`` subprocess: one BLAS/OpenMP thread (the test machine has 2 cores)."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def run_subprocess(*argv: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``spikerl ARGV`` in a subprocess and wait for it (output captured as text)."""
    return subprocess.run(spikerl_cmd(*argv), cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout)


def wait_for_first_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float) -> None:
    """Wait until the ``spikerl train`` subprocess ``proc`` has a checkpoint marker in ``run_dir``; the test fails if
    the process ends first or none comes within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not list((run_dir / "checkpoints").glob("*.json")):
        assert proc.poll() is None, f"training ended before its first checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no checkpoint within {timeout:g} s"
        time.sleep(0.05)
