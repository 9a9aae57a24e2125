"""One writer per run directory and per sweep folder: real `spikerl train` / `spikerl sweep` processes at once."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import ENV, run_subprocess, spikerl_cmd, subprocess_env, tiny

from spikerl.run_lock import FolderLock, lock_holder
from spikerl.sweep import expand_grid, run_trial

pytestmark = pytest.mark.slow


def _train_args(run_dir: Path, steps: int, freq: int) -> list[str]:
    return ["train", "td3-ann", "--env", ENV, "--steps", str(steps), "--run-dir", str(run_dir), "--checkpoint-every",
            str(freq), "--quiet", "--set", *tiny(False), f"eval.freq={freq}"]


def _start(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(spikerl_cmd(*argv), env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def _eval_steps(run_dir: Path) -> list[int]:
    with (run_dir / "evaluations.csv").open() as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def _refusal(run_dir: Path, proc: subprocess.Popen, what: str = "run directory") -> str:
    return f"{what} {run_dir} is in use by another process (pid {proc.pid}: spikerl "


def test_two_trainers_started_at_once_one_is_refused(tmp_path) -> None:
    run_dir = tmp_path / "run"
    procs = [_start(*_train_args(run_dir, 600, 150)) for _ in range(2)]
    results = [_finish(p) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = procs[[code for code, _, _ in results].index(0)]
    _, _, err = results[[code for code, _, _ in results].index(2)]
    assert err.startswith(f"spikerl train: error: {_refusal(run_dir, winner)}train td3-ann --env {ENV} ")
    assert err.endswith("); wait for it to end or stop it, then try again\n") and err.count("\n") == 1
    assert _eval_steps(run_dir) == [0, 150, 300, 450, 600]  # one writer's rows, once each
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert not (run_dir / ".lock").exists()


def test_resume_overwrite_and_a_second_start_while_training_are_refused(tmp_path) -> None:
    """The first trainer's budget is far beyond what the three attempts take, so it is still training (and holding
    the lock) during each of them on any machine; it is then stopped with SIGTERM and its rows checked."""
    run_dir = tmp_path / "run"
    first = _start(*_train_args(run_dir, 1_000_000, 250))
    try:
        _wait_for(lambda: any((run_dir / "checkpoints").glob("*.json")), first, "first checkpoint")
        attempts = {  # started together: each is refused before it trains
            "resume": ["train", "--resume", str(run_dir), "--quiet"],
            "overwrite": [*_train_args(run_dir, 500, 250), "--overwrite"],
            "second start": _train_args(run_dir, 500, 250),
        }
        assert first.poll() is None, "the first trainer ended before the attempts"
        started = {name: _start(*argv) for name, argv in attempts.items()}
        for name, proc in started.items():
            code, _out, err = _finish(proc, timeout=180)
            assert code == 2, (name, err)
            assert err.startswith(f"spikerl train: error: {_refusal(run_dir, first)}train td3-ann "), name
            assert err.count("\n") == 1, name
        assert (run_dir / "config.yaml").is_file() and any((run_dir / "checkpoints").glob("*.json"))
        assert first.poll() is None, "the first trainer ended during the attempts"
        first.send_signal(signal.SIGTERM)
    finally:
        code, _out, err = _finish(first)
    assert code == 128 + signal.SIGTERM, err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["status"], metrics["resumed_from"]) == ("interrupted", None)
    steps = _eval_steps(run_dir)  # the first trainer's rows only, once each, in order
    assert steps == list(range(0, 250 * len(steps), 250)) and len(steps) >= 2
    assert not (run_dir / ".lock").exists()


def test_two_sweeps_into_the_same_out_folder(tmp_path) -> None:
    out = tmp_path / "sweep"
    argv = ["sweep", "td3-ann", "--envs", ENV, "--seeds", "0", "--steps", "600", "--out", str(out), "--no-live",
            "--max-parallel", "1", "--set", *tiny(False)]
    first = _start(*argv)
    try:
        _wait_for(lambda: lock_holder(out) is not None, first, "lock on the sweep folder")
        second = run_subprocess(*argv, timeout=180)
        assert second.returncode == 2
        assert second.stderr.startswith(f"spikerl sweep: error: {_refusal(out, first, 'sweep folder')}sweep td3-ann ")
        assert second.stderr.count("\n") == 1
    finally:
        code, _out, err = _finish(first)
    assert code == 0, err
    run_dir = out / ENV / "td3-ann" / "s0"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert _eval_steps(run_dir) == [0, 100, 200, 300, 400, 500, 600]
    assert lock_holder(out) is None and not (out / ".lock").exists()


def test_sweep_keeps_a_trial_folder_that_a_running_trainer_holds(tmp_path) -> None:
    """A trial without a checkpoint is started afresh, but not by deleting a folder another trainer still holds."""
    (trial,) = expand_grid("td3-ann", ENV, "0", tmp_path / "sweep", steps=200, overrides=tiny(False))
    with FolderLock(trial.run_dir, "run directory"):
        (trial.run_dir / "config.yaml").write_text("# the other trainer's\n")
        result = run_trial(trial)
        assert (trial.run_dir / "config.yaml").read_text() == "# the other trainer's\n"
    assert result.status == "failed"
    assert f"run directory {trial.run_dir} is in use by another process (pid {os.getpid()}: " in result.error
