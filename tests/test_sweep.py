"""``spikerl sweep``: grid expansion, real local and Ray sweeps, kill-and-rerun runs every trial once, no trainer
outlives its sweep, SIGINT/SIGTERM stop a sweep in seconds leaving its trials resumable, a failing trial does not stop
the others, a non-finite trial is reported as such, bad input fails before any trial, results feed compare."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ENV, run_cli, run_subprocess, spikerl_cmd, subprocess_env, tiny

from spikerl.config import dump_config, load_config
from spikerl.sweep import (
    STOP_GRACE_S,
    expand_grid,
    load_sweep_file,
    parse_seeds,
    run_sweep,
    trial_state,
    validate_trials,
)

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
    (trials[0].run_dir / "metrics.json").write_text('{"status": "interrupted"}')
    assert trial_state(trials[0]) == "interrupted"
    (trials[0].run_dir / "metrics.json").write_text('{"status": "non_finite_loss"}')
    assert trial_state(trials[0]) == "non_finite"  # not "done": resuming would repeat it, but it did not finish
    (trials[0].run_dir / "metrics.json").write_text('{"status": "completed"}')
    assert trial_state(trials[0]) == "done"
    with pytest.raises(ValueError, match="trial Hopper-v5/td3-ann/s0: .*batch_size"):
        validate_trials(expand_grid("td3-ann", "Hopper-v5", "0", tmp_path, overrides=["batch_size=big"]))


def _metrics(out, status=None):
    found = {p.parent.relative_to(out).as_posix(): json.loads(p.read_text()) for p in out.rglob("metrics.json")}
    return {k: m for k, m in found.items() if status is None or m.get("status") == status}


def trainer_pids(out: Path) -> set[int]:
    """The live ``spikerl train`` processes working under ``out`` (from /proc; a zombie has an empty cmdline)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if "train" in argv and any(a.startswith(str(out)) for a in argv):
            pids.add(int(entry.name))
    return pids


def wait_until_gone(out: Path, timeout: float = 60) -> set[int]:
    """Poll until no trainer works under ``out``; the survivors after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (alive := trainer_pids(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the trainers' PIDs from /proc")


@pytest.mark.slow
@linux_only
def test_local_sweep_kill_and_rerun_finishes_each_trial_once(tmp_path):
    out = tmp_path / "sweep"
    args = sweep_args(out, seeds="0")  # 4 trials, 2 at a time
    proc = subprocess.Popen(spikerl_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
    running = trainer_pids(out)
    assert running, "no trainer was running when the sweep was killed"
    os.kill(proc.pid, signal.SIGKILL)  # the sweep alone: its trainers run in their own sessions
    proc.wait()
    assert not wait_until_gone(out), "trainers outlived their sweep"
    first = _metrics(out, "completed")
    assert 0 < len(first) < 4
    stamps = {k: (out / k / "metrics.json").stat().st_mtime_ns for k in first}

    res = run_subprocess(*args, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert summary["failed"] == 0 and summary["skipped"] == len(first)
    assert summary["done"] == 4 - len(first) and summary["resumed"] >= 1
    final = _metrics(out)
    assert len(final) == 4
    for key, m in final.items():
        assert m["status"] == "completed" and m["total_timesteps"] == 300, key
    # trials finished before the kill were not run again
    assert all((out / k / "metrics.json").stat().st_mtime_ns == stamps[k] for k in first)
    # every evaluation step appears once per trial
    for csv in out.rglob("evaluations.csv"):
        steps = [line.split(",")[0] for line in csv.read_text().splitlines()[1:]]
        assert len(steps) == len(set(steps)), csv
    table = (out / "comparison.md").read_text()
    assert "| InvertedPendulum-v5 | td3-ann | 1 |" in table and "| InvertedDoublePendulum-v5 | td3-lif | 1 |" in table
    assert (out / "curves.png").stat().st_size > 0
    # a third run has nothing left to do
    res = run_subprocess(*args, timeout=300)
    assert res.returncode == 0 and "0 done" in res.stdout and "4 already finished" in res.stdout


def test_failing_trial_does_not_stop_the_others(tmp_path):
    broken = tmp_path / "broken.yaml"  # a valid config whose env refuses its env_kwargs once the trial starts
    broken.write_text("policy: MlpPolicy\ntarget: soft\nenv_kwargs: {bogus: 1}\n")
    out = tmp_path / "sweep"
    res = run_subprocess(*sweep_args(out, presets=f"td3-ann,{broken}", envs="InvertedPendulum-v5", seeds="0"),
                         timeout=300)
    assert res.returncode == 1
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert summary["done"] == 1 and summary["failed"] == 1
    assert summary["failures"][0]["trial"] == "InvertedPendulum-v5/broken/s0"
    assert "bogus" in summary["failures"][0]["error"]
    assert "failed InvertedPendulum-v5/broken/s0" in res.stdout


@pytest.mark.parametrize("envs, overrides, needle", [
    (ENV, [*SWEEP_TINY, "batch_size=big"], "trial InvertedPendulum-v5/td3-ann/s0: batch_size: expected an integer"),
    (ENV, [*SWEEP_TINY, "total_timesteps=1e100"],
     "total_timesteps: expected an integer in [1, 1000000000], got '1e100'"),
    (f"{ENV},NoSuchEnv-v5", SWEEP_TINY,
     "trial NoSuchEnv-v5/td3-ann/s0: unknown MuJoCo environment 'NoSuchEnv-v5'. Valid ids: Ant-v5"),
], ids=["bad-override", "steps-above-bound", "unknown-env-id"])
def test_bad_input_fails_before_any_trial(envs, overrides, needle, tmp_path, capsys):
    out = tmp_path / "s"
    code, _out, err = run_cli(capsys, "sweep", "td3-ann", "--envs", envs, "--seeds", "0", "--out", str(out),
                              "--no-live", "--set", *overrides)
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not any(out.rglob("config.yaml")) and not any(out.rglob("*.log"))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_device_the_machine_lacks_fails_before_any_trial(tmp_path, capsys):
    code, _out, err = run_cli(capsys, *sweep_args(tmp_path / "s", seeds="0", overrides=[*SWEEP_TINY, "device=cuda"]))
    assert code == 2 and err.count("\n") == 1
    assert "device: 'cuda' is not available on this machine (torch finds no CUDA device); use device=auto" in err
    assert not any((tmp_path / "s").rglob("config.yaml"))


@pytest.mark.parametrize("argv, needle", [
    (["--max-parallel", "0"], "argument --max-parallel: expected a positive integer, got '0'"),
    (["--max-parallel", "-1"], "argument --max-parallel: expected a positive integer, got '-1'"),
    (["--steps", "1e100"], "argument --steps: expected a whole step count from 1 to 1000000000 (1e9), got '1e100'"),
], ids=["max-parallel-0", "max-parallel-minus-1", "steps-1e100"])
def test_bad_numbers_are_refused_by_the_parser(argv, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, "sweep", "td3-ann", "--envs", ENV, "--seeds", "0", "--out", str(tmp_path / "s"), *argv)
    assert info.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_run_sweep_refuses_max_parallel_0(tmp_path):
    trials = expand_grid("td3-ann", ENV, "0", tmp_path, steps=None)
    with pytest.raises(ValueError, match=r"max_parallel: expected an integer >= 1 \(concurrent trials\), got 0"):
        run_sweep(trials, max_parallel=0, live=False)
    assert not trials[0].run_dir.exists()


def test_steps_accept_the_spellings_train_accepts():
    from spikerl.cli import build_parser

    args = build_parser().parse_args(["sweep", "td3-ann", "--steps", "1e5", "--max-parallel", "3"])
    assert args.steps == 100_000 and args.max_parallel == 3


@pytest.mark.parametrize("text, needle", [
    ("presets: [td3-ann\nenvs: x\n", "not valid YAML (line 2)"),
    ("- a\n- b\n", "expected a YAML mapping with keys presets, envs, seeds"),
    ("presets: td3-ann\nenvs: Hopper-v5\nseeds: 0\nmax_parallel: 0\n", "max_parallel: expected an integer >= 1, got 0"),
    ("presets: td3-ann\nenvs: Hopper-v5\nseeds: 0\nsteps: 1e100\n", "steps: expected a whole step count from 1 to"),
    ("presets: td3-ann\nenvs: Hopper-v5\nseeds: 0\nset: 5\n", "set: expected a mapping of keys to values or a list"),
    (b"\x89PNG\r\n\x1a\n\x00", "not a YAML text file (byte 0x89 at offset 0 is not UTF-8)"),
], ids=["yaml-syntax-error", "a-list", "max-parallel-0", "steps-1e100", "set-a-number", "binary-file"])
def test_sweep_file_errors_are_one_line(text, needle, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=r"^[^\n]*$") as info:
        load_sweep_file(path)
    assert str(info.value).startswith(str(path)) or str(info.value).startswith(f"sweep file {path}")
    assert needle in str(info.value)
    code, _out, err = run_cli(capsys, "sweep", "--file", str(path), "--out", str(tmp_path / "s"))
    assert code == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_sweep_file_steps_accept_1e5(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("presets: td3-ann\nenvs: Hopper-v5\nseeds: 0-1\nsteps: 1e5\nmax_parallel: 2\n")
    assert load_sweep_file(path)["steps"] == 100_000


def test_non_finite_trial_is_reported_not_counted_as_done(tmp_path, capsys):
    """A trial whose metrics.json says non_finite_loss is neither run again nor counted as finished."""
    out = tmp_path / "sweep"
    (trial,) = expand_grid("td3-ann", ENV, "0", out, steps=300, overrides=SWEEP_TINY)
    trial.run_dir.mkdir(parents=True)
    cfg = load_config("td3-ann", [*SWEEP_TINY, f"env={ENV}", "total_timesteps=300"])
    dump_config(cfg, trial.run_dir / "config.yaml")
    message = "non-finite critic loss (nan) at gradient update 7; training stopped before the optimizer step"
    (trial.run_dir / "metrics.json").write_text(json.dumps(
        {"status": "non_finite_loss", "total_timesteps": 157, "message": message}))
    code, out_text, _err = run_cli(capsys, *sweep_args(out, presets="td3-ann", envs=ENV, seeds="0"))
    assert code == 1
    assert "sweep: 0 done (0 resumed), 0 already finished, 1 stopped on a non-finite loss, 0 failed" in out_text
    assert f"non-finite loss {trial.name}: stopped at step 157: {message} (not counted as done" in out_text
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert summary["skipped"] == 0 and summary["non_finite"] == 1
    assert summary["non_finite_trials"] == [{"trial": trial.name, "error": f"stopped at step 157: {message}"}]
    assert "metrics.json status non_finite_loss" in (out / "comparison.md").read_text()


def _start_sweep(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(spikerl_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), start_new_session=True)


def _wait_for_checkpoints(out: Path, proc: subprocess.Popen, trials: int, timeout: float = 300) -> None:
    """Until ``trials`` trials under ``out`` have a committed checkpoint (and the sweep still runs)."""
    deadline = time.monotonic() + timeout
    while sum(any(c.glob("*.json")) for c in out.rglob("checkpoints")) < trials:
        assert proc.poll() is None, f"the sweep ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no checkpoint in {trials} trials within {timeout} s"
        time.sleep(0.1)


@pytest.mark.slow
@linux_only
@pytest.mark.parametrize(("sig", "rerun"), [(signal.SIGTERM, True), (signal.SIGINT, False)], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_sweep_in_seconds_and_a_rerun_resumes_its_trials(sig, rerun, tmp_path):
    """Both signals stop the sweep the same way; the rerun that resumes the trials is checked once (SIGTERM)."""
    out = tmp_path / "sweep"
    args = sweep_args(out, presets="td3-ann", envs=ENV, seeds="0-2")  # 3 trials, 2 at a time: one waits
    args[args.index("--steps") + 1] = "800"
    proc = _start_sweep(args)
    _wait_for_checkpoints(out, proc, 2)
    assert len(trainer_pids(out)) == 2
    t0 = time.monotonic()
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 128 + sig
    assert elapsed < STOP_GRACE_S, f"{elapsed:.1f} s: a trainer had to be killed"
    assert not wait_until_gone(out, 5)
    assert stderr.endswith(f"spikerl sweep: stopped by {signal.Signals(sig).name}: 2 running trial(s) interrupted "
                           "with their checkpoints kept, 1 not started; run the same command again to resume them\n")
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert (summary["done"], summary["interrupted"], summary["not_started"]) == (0, 2, 1)
    stopped = [t for t in summary["trials"] if t["status"] == "interrupted"]
    # each trainer ended through its own interrupt path (exit 128 + SIGINT, metrics.json written), none was killed
    assert [t["returncode"] for t in stopped] == [128 + signal.SIGINT] * 2
    assert len(_metrics(out, "interrupted")) == 2
    assert {trial_state(t) for t in expand_grid("td3-ann", ENV, "0-2", out)} == {"interrupted", "new"}
    if not rerun:
        return
    res = run_subprocess(*args, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert (summary["done"], summary["resumed"], summary["failed"]) == (3, 2, 0)
    final = _metrics(out, "completed")
    assert len(final) == 3 and all(m["total_timesteps"] == 800 for m in final.values())


@pytest.mark.slow
@linux_only
def test_ray_sweep_cancels_its_tasks_on_sigterm(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    args = sweep_args(out, presets="td3-ann", envs=ENV, seeds="0", extra=["--backend", "ray"])
    args[args.index("--steps") + 1] = "800"
    proc = _start_sweep(args)
    _wait_for_checkpoints(out, proc, 1)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=180)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert not wait_until_gone(out, 10)
    assert elapsed < STOP_GRACE_S + 15, f"{elapsed:.1f} s"  # the task's cancel, the trainer's stop, Ray's shutdown
    assert "spikerl sweep: stopped by SIGTERM: 1 running trial(s) interrupted" in stderr
    # the cancelled task passed SIGINT to its trainer, which stopped through its interrupt path
    assert len(_metrics(out, "interrupted")) == 1


@pytest.mark.slow
def test_ray_backend_runs_the_same_trials(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    # one env and seed (2 trials, run at once): the local backend's tests cover the grid
    res = run_subprocess(*sweep_args(out, envs="InvertedDoublePendulum-v5", seeds="1", extra=["--backend", "ray"]),
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    final = _metrics(out)
    assert len(final) == 2 and "InvertedDoublePendulum-v5/td3-lif/s1" in final
    assert all(m["total_timesteps"] == 300 and m["status"] == "completed" for m in final.values())
    assert "td3-lif" in (out / "comparison.md").read_text()
