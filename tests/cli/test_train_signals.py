"""SIGTERM of `spikerl train` ends it as SIGINT does: exit code 128 + signal, one line, metrics.json written, the
last checkpoint kept and the run resumable."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from cli_helpers import ENV, spikerl_cmd, subprocess_env, tiny, wait_for_first_checkpoint
from spikerl.agents.callbacks import list_checkpoints, verify_checkpoint

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_training_with_one_line_and_metrics(tmp_path, sig) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "td3-ann", "--env", ENV, "--steps", "100000", "--run-dir", str(run_dir), "--checkpoint-every",
            "100", "--quiet", "--set", *tiny(False)]
    proc = subprocess.Popen(spikerl_cmd(*argv), env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_first_checkpoint(proc, run_dir, 180)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["message"] == f"stopped by {sig.name}"
    step = metrics["total_timesteps"]
    assert 100 <= step < 100000
    assert err == (f"spikerl train: stopped by {sig.name} at step {step}; metrics.json says interrupted and the last "
                   f"checkpoint is kept: continue with spikerl train --resume {run_dir}\n")
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    assert newest <= step and verify_checkpoint(run_dir / "checkpoints", newest)["step"] == newest
    assert not (run_dir / ".lock").exists() and not list(run_dir.rglob("*.tmp"))
