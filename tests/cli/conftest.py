"""Fixtures shared by the command-line tests: a run that stopped between checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_helpers import ENV, tiny
from spikerl.agents.training import train_run

from spikerl.config import load_config


@pytest.fixture(scope="session")
def unfinished_template(tmp_path_factory) -> Path:
    """A td3-ann run with checkpoints at steps 100 and 200 whose process 'died' after step 250 (read-only: tests
    that change it take :func:`unfinished_run`)."""
    run_dir = tmp_path_factory.mktemp("unfinished") / "run"
    cfg = load_config("td3-ann", tiny(False) + [f"env={ENV}", "total_timesteps=250", "checkpoint.every=100"])
    train_run(cfg, run_dir)
    (run_dir / "model.zip").unlink()
    (run_dir / "metrics.json").unlink()
    return run_dir


@pytest.fixture
def unfinished_run(unfinished_template, tmp_path) -> Path:
    """A fresh copy of :func:`unfinished_template` per test."""
    return Path(shutil.copytree(unfinished_template, tmp_path / "run"))
