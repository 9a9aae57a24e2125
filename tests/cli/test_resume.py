"""Resume after SIGKILL (a real ``spikerl train`` subprocess), and clear errors for bad run directories."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from cli_helpers import ENV, run_cli, run_subprocess, spikerl_cmd, subprocess_env, tiny, wait_for_first_checkpoint
from spikerl.agents import ProxyTD3

BUDGET = 600
EVERY = 200


def _eval_steps(run_dir) -> list[int]:
    with (run_dir / "evaluations.csv").open() as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_sigkill_then_resume_finishes_the_exact_budget(tmp_path) -> None:
    run_dir = tmp_path / "run"
    args = ["train", "td3-proxy-lif", "--env", ENV, "--steps", str(BUDGET), "--run-dir", str(run_dir),
            "--checkpoint-every", str(EVERY), "--seed", "3", "--set", *tiny(), f"eval.freq={EVERY}"]
    proc = subprocess.Popen(spikerl_cmd(*args), env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_first_checkpoint(proc, run_dir, 120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model.zip").exists()
    killed_at = max(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("*.json"))
    assert killed_at < BUDGET

    done = run_subprocess("train", "--resume", str(run_dir), "--quiet", timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["total_timesteps"] == BUDGET
    assert metrics["resumed_from"] is not None and metrics["resumed_from"] >= killed_at
    # no env step was lost or repeated: one gradient update per step after learning_starts=100
    assert metrics["n_updates"] == BUDGET - 100
    # evaluations continue without gaps or duplicates across the kill
    assert _eval_steps(run_dir) == list(range(0, BUDGET + 1, EVERY))
    assert metrics["evaluations"] == BUDGET // EVERY + 1
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("*.json"))
    # keep: 2 (none at the end: model.zip is the final state)
    assert ckpts == [f"step_{BUDGET - 2 * EVERY:010d}.json", f"step_{BUDGET - EVERY:010d}.json"]

    again = run_subprocess("train", "--resume", str(run_dir))
    assert again.returncode == 2 and "already finished its 600 steps" in again.stderr


def _one_line_error(capsys, *argv) -> str:
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_truncated_checkpoints_are_a_clear_error(unfinished_run, capsys) -> None:
    """Every checkpoint truncated: nothing to fall back to (tests/cli/test_checkpoint_integrity.py has the fallback)."""
    for step in (100, 200):
        path = unfinished_run / "checkpoints" / f"step_{step:010d}.zip"
        path.write_bytes(path.read_bytes()[:1000])
    err = _one_line_error(capsys, "train", "--resume", str(unfinished_run))
    assert "no usable checkpoint" in err
    assert "step_0000000200.zip has 1000 bytes" in err and "step_0000000100.zip has 1000 bytes" in err


def test_garbage_checkpoints_of_right_size_are_a_clear_error(unfinished_run, capsys) -> None:
    for step in (100, 200):
        path = unfinished_run / "checkpoints" / f"step_{step:010d}.zip"
        path.write_bytes(b"x" * path.stat().st_size)
    err = _one_line_error(capsys, "train", "--resume", str(unfinished_run))
    assert "no usable checkpoint" in err
    assert "step_0000000200.zip does not match the SHA-256" in err and "step_0000000100.zip does not match" in err


def test_missing_checkpoint_is_a_clear_error(unfinished_run, capsys) -> None:
    for p in (unfinished_run / "checkpoints").iterdir():
        p.unlink()
    err = _one_line_error(capsys, "train", "--resume", str(unfinished_run))
    assert "no checkpoint in" in err and "start it again: spikerl train <config> --run-dir <dir> --overwrite" in err


def test_uncommitted_checkpoint_is_ignored(unfinished_run, capsys) -> None:
    """A kill during a checkpoint write leaves files without the JSON marker: resume uses the previous one."""
    (unfinished_run / "checkpoints" / "step_0000000200.json").unlink()
    code, _out, err = run_cli(capsys, "train", "--resume", str(unfinished_run), "--quiet")
    assert code == 0, err
    metrics = json.loads((unfinished_run / "metrics.json").read_text())
    assert (metrics["resumed_from"], metrics["total_timesteps"]) == (100, 250)
    assert _eval_steps(unfinished_run) == [0, 100, 200, 250]


def test_evaluate_falls_back_to_newest_checkpoint(unfinished_run, capsys) -> None:
    code, out, err = run_cli(capsys, "evaluate", str(unfinished_run), "--episodes", "1", "--seed", "5")
    assert code == 0, err
    result = json.loads((unfinished_run / "evaluation.json").read_text())
    assert result["model"].startswith("checkpoints/step_0000000200.zip") and result["seed"] == 5


def test_resume_rejects_config_flags_and_bad_dirs(tmp_path, capsys) -> None:
    err = _one_line_error(capsys, "train", "--resume", str(tmp_path), "--steps", "10")
    assert "drop --steps" in err
    err = _one_line_error(capsys, "train", "--resume", str(tmp_path / "nope"))
    assert "does not exist" in err
    err = _one_line_error(capsys, "train", "--resume", str(tmp_path))
    assert "not a spikerl run directory (no config.yaml)" in err
    err = _one_line_error(capsys, "evaluate", str(tmp_path / "nope"))
    assert "does not exist" in err


def test_resuming_the_same_checkpoint_twice_is_reproducible(unfinished_template, tmp_path, capsys) -> None:
    results = []
    for name in ("a", "b"):
        run_dir = Path(shutil.copytree(unfinished_template, tmp_path / name))
        code, _out, err = run_cli(capsys, "train", "--resume", str(run_dir), "--quiet")
        assert code == 0, err
        with (run_dir / "evaluations.csv").open() as fh:
            results.append([(r["step"], r["mean_return"], r["std_return"]) for r in csv.DictReader(fh)])
    assert results[0] == results[1]
    assert [int(r[0]) for r in results[0]] == [0, 100, 200, 250]
    a, b = (ProxyTD3.load(tmp_path / name / "model.zip", device="cpu").policy.state_dict() for name in "ab")
    start = ProxyTD3.load(unfinished_template / "checkpoints" / "step_0000000200.zip", device="cpu")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in start.policy.state_dict().items())  # it did train
