"""Helpers for the CLI tests: tiny training budgets on InvertedPendulum-v5, in-process CLI calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spikerl.cli import main

ENV = "InvertedPendulum-v5"
#: overrides that make any preset train in a second or two on one core
TINY = ["learning_starts=100", "batch_size=16", "buffer_size=2000", "actor.hidden=[32,32]",
        "critic.hidden=[32,32]", "eval.freq=100", "eval.episodes=2", "device=cpu"]
TINY_PROXY = ["proxy.hidden=[32,32]"]


def tiny(cfg_has_proxy: bool = True) -> list[str]:
    return TINY + (TINY_PROXY if cfg_has_proxy else [])


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``spikerl ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def spikerl_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "spikerl", *argv]


def run_subprocess(*argv: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run(spikerl_cmd(*argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
