"""SIGTERM of `spikerl train` ends it as SIGINT does: exit code 128 + signal, one line, metrics.json written, a
checkpoint of the step where it stopped, and the run resumes from that step to its exact budget."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import pytest
from cli_helpers import ENV, run_subprocess, spikerl_cmd, subprocess_env, tiny, wait_for_first_checkpoint
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
    assert err == (f"spikerl train: stopped by {sig.name} at step {step}; metrics.json says interrupted and the newest "
                   f"checkpoint is at step {step}: continue with spikerl train --resume {run_dir}\n")
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    assert newest == step and verify_checkpoint(run_dir / "checkpoints", newest)["step"] == step
    assert not (run_dir / ".lock").exists() and not list(run_dir.rglob("*.tmp"))


def _eval_steps(run_dir) -> list[int]:
    with (run_dir / "evaluations.csv").open() as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_sigint_then_resume_continues_from_the_step_where_it_stopped(tmp_path) -> None:
    """No periodic checkpoint before the budget: the one the interrupt writes is what the resume starts from, at a
    step that is no multiple of anything; no env step, update or evaluation is lost or repeated."""
    budget, every = 600, 200
    run_dir = tmp_path / "run"
    argv = ["train", "td3-proxy-lif", "--env", ENV, "--steps", str(budget), "--run-dir", str(run_dir),
            "--checkpoint-every", "100000", "--seed", "3", "--quiet", "--set", *tiny(), f"eval.freq={every}"]
    proc = subprocess.Popen(spikerl_cmd(*argv), env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        csv_file = run_dir / "evaluations.csv"
        while not (csv_file.is_file() and csv_file.read_text().count("\n") >= 3):  # header + rows 0, 200: past 200
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no evaluation at step 200 within 180 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, err
    stopped_at = json.loads((run_dir / "metrics.json").read_text())["total_timesteps"]
    assert every <= stopped_at < budget
    assert list_checkpoints(run_dir / "checkpoints") == [stopped_at]

    done = run_subprocess("train", "--resume", str(run_dir), "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["status"], metrics["total_timesteps"], metrics["resumed_from"]) == ("completed", budget, stopped_at)
    assert metrics["n_updates"] == budget - 100  # one update per step after learning_starts=100
    assert _eval_steps(run_dir) == list(range(0, budget + 1, every))


def test_a_signal_during_an_evaluation_abandons_it_and_the_resume_evaluates_first(tmp_path, monkeypatch) -> None:
    """In-process: SIGINT arrives as the evaluation at step 200 starts. That evaluation stops after one env step,
    unrecorded; the checkpoint of step 200 follows at once; the resume evaluates at 200 before training on."""
    from spikerl.agents import callbacks
    from spikerl.agents.training import TrainingInterrupted, resume_run, train_run

    from spikerl.config import load_config

    real = callbacks.evaluate_policy
    calls: list[int] = []

    def signalling(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the evaluation at step 200 (the first is at step 0)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(callbacks, "evaluate_policy", signalling)
    cfg = load_config("td3-ann", tiny(False) + [f"env={ENV}", "total_timesteps=600", "eval.freq=200",
                                                "eval.episodes=200", "checkpoint.every=100000"])
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as stop:
        train_run(cfg, run_dir)
    assert stop.value.result.total_timesteps == 200
    assert list_checkpoints(run_dir / "checkpoints") == [200]
    assert _eval_steps(run_dir) == [0]  # the evaluation at 200 was abandoned

    monkeypatch.setattr(callbacks, "evaluate_policy", real)
    result = resume_run(run_dir)
    assert (result.status, result.total_timesteps, result.resumed_from) == ("completed", 600, 200)
    assert result.n_updates == 600 - 100 and _eval_steps(run_dir) == [0, 200, 400, 600]
