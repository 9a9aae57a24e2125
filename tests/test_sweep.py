"""``spikerl sweep``: grid expansion, real local and Ray sweeps, kill-and-rerun runs every trial once,
a failing trial does not stop the others, results feed compare."""

import json
import os
import signal
import subprocess
import time

import pytest
from cli_helpers import run_subprocess, spikerl_cmd, subprocess_env, tiny

from spikerl.sweep import expand_grid, parse_seeds, trial_state, validate_trials

STEPS = "300"
#: the presets swept here have no proxy; a checkpoint every 100 steps gives the kill test something to resume from
SWEEP_TINY = [*tiny(cfg_has_proxy=False), "eval.episodes=1", "checkpoint.every=100"]


def sweep_args(out, presets="td3-ann,td3-lif", envs="InvertedPendulum-v5,InvertedDoublePendulum-v5", seeds="0-1",
               extra=(), overrides=tuple(SWEEP_TINY)) -> list[str]:
    return ["sweep", presets, "--envs", envs, "--seeds", seeds, "--steps", STEPS, "--out", str(out), "--no-live",
            "--max-parallel", "2", *extra, "--set", *overrides]


def test_parse_seeds_and_grid(tmp_path):
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1,1") == [1, 3]
    assert parse_seeds([2, 5]) == [2, 5]
    with pytest.raises(ValueError, match="range like 0-4"):
        parse_seeds("4-1")
    trials = expand_grid("td3-ann,td3-lif", ["Hopper-v5"], "0-2", tmp_path, steps=10)
    assert [t.name for t in trials][:2] == ["Hopper-v5/td3-ann/s0", "Hopper-v5/td3-ann/s1"]
    assert len(trials) == 6 and trials[-1].run_dir == tmp_path / "Hopper-v5" / "td3-lif" / "s2"
    assert {trial_state(t) for t in trials} == {"new"}
    # a trial killed while writing its first checkpoint (only a *.tmp file) starts again; one with a
    # committed checkpoint (its JSON marker) resumes; a completed one is skipped
    ckpt = trials[0].run_dir / "checkpoints"
    ckpt.mkdir(parents=True)
    (trials[0].run_dir / "config.yaml").write_text("algo: td3\n")
    (ckpt / "step_0000000100.zip.tmp").write_bytes(b"")
    assert trial_state(trials[0]) == "new"
    (ckpt / "step_0000000100.json").write_text("{}")
    assert trial_state(trials[0]) == "interrupted"
    (trials[0].run_dir / "metrics.json").write_text('{"status": "completed"}')
    assert trial_state(trials[0]) == "done"
    with pytest.raises(ValueError, match="trial Hopper-v5/td3-ann/s0: .*batch_size"):
        validate_trials(expand_grid("td3-ann", "Hopper-v5", "0", tmp_path, overrides=["batch_size=big"]))


def _metrics(out):
    return {p.parent.relative_to(out).as_posix(): json.loads(p.read_text()) for p in out.rglob("metrics.json")}


@pytest.mark.slow
def test_local_sweep_kill_and_rerun_finishes_each_trial_once(tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(spikerl_cmd(*sweep_args(out)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=subprocess_env(), start_new_session=True)
    deadline = time.time() + 240
    # kill once some trial finished and another one has a checkpoint but is still running
    while time.time() < deadline:
        done = _metrics(out) if out.exists() else {}
        partial = [c for c in out.rglob("checkpoints") if any(c.iterdir())] if out.exists() else []
        unfinished = [c for c in partial if not (c.parent / "metrics.json").exists()]
        if done and unfinished:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _metrics(out)
    assert 0 < len(first) < 8
    stamps = {k: (out / k / "metrics.json").stat().st_mtime_ns for k in first}

    res = run_subprocess(*sweep_args(out), timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert summary["failed"] == 0 and summary["skipped"] == len(first)
    assert summary["done"] == 8 - len(first) and summary["resumed"] >= 1
    final = _metrics(out)
    assert len(final) == 8
    for key, m in final.items():
        assert m["status"] == "completed" and m["total_timesteps"] == 300, key
    # trials finished before the kill were not run again
    assert all((out / k / "metrics.json").stat().st_mtime_ns == stamps[k] for k in first)
    # every evaluation step appears once per trial
    for csv in out.rglob("evaluations.csv"):
        steps = [line.split(",")[0] for line in csv.read_text().splitlines()[1:]]
        assert len(steps) == len(set(steps)), csv
    table = (out / "comparison.md").read_text()
    assert "| InvertedPendulum-v5 | td3-ann | 2 |" in table and "| InvertedDoublePendulum-v5 | td3-lif | 2 |" in table
    assert (out / "curves.png").stat().st_size > 0
    # a third run has nothing left to do
    res = run_subprocess(*sweep_args(out), timeout=300)
    assert res.returncode == 0 and "0 done" in res.stdout and "8 already finished" in res.stdout


def test_failing_trial_does_not_stop_the_others(tmp_path):
    out = tmp_path / "sweep"
    res = run_subprocess(*sweep_args(out, presets="td3-ann", envs="InvertedPendulum-v5,NoSuchEnv-v5", seeds="0"),
                         timeout=300)
    assert res.returncode == 1
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert summary["done"] == 1 and summary["failed"] == 1
    assert summary["failures"][0]["trial"] == "NoSuchEnv-v5/td3-ann/s0"
    assert "NoSuchEnv" in summary["failures"][0]["error"]
    assert "failed NoSuchEnv-v5/td3-ann/s0" in res.stdout


def test_bad_override_fails_before_any_trial(tmp_path):
    res = run_subprocess(*sweep_args(tmp_path / "s", overrides=[*SWEEP_TINY, "batch_size=big"]), timeout=300)
    assert res.returncode == 2 and "batch_size" in res.stderr and not (tmp_path / "s").exists()


@pytest.mark.slow
def test_ray_backend_runs_the_same_trials(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    # one seed (4 trials): Ray's start-up plus 8 trials could pass 400 s on a loaded 2-core machine
    res = run_subprocess(*sweep_args(out, seeds="1", extra=["--backend", "ray"]), timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    final = _metrics(out)
    assert len(final) == 4 and "InvertedDoublePendulum-v5/td3-lif/s1" in final
    assert all(m["total_timesteps"] == 300 and m["status"] == "completed" for m in final.values())
    assert "td3-lif" in (out / "comparison.md").read_text()
