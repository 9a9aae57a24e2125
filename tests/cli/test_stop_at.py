"""``eval.stop_at``: training ends at the first periodic evaluation whose mean return reaches it, with that policy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import ENV, run_cli, tiny
from spikerl.agents import ALGORITHMS
from spikerl.agents.training import RunError, evaluate_run, resume_run, train_run

from spikerl.config import load_config
from spikerl.sweep import Trial, trial_state

#: a learning rate large enough that the tiny actor's evaluations move within a few hundred steps
SETTINGS = [f"env={ENV}", "seed=0", "checkpoint.every=100", *tiny(True), "learning_rate=3e-3", "eval.freq=50"]


def _evaluations(run_dir: Path) -> list[tuple[int, float]]:
    with (run_dir / "evaluations.csv").open() as fh:
        return [(int(r["step"]), float(r["mean_return"])) for r in csv.DictReader(fh)]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _check_stopped_at(run_dir: Path, step: int, mean: float, stop_at: float) -> None:
    """The run ended at ``step`` because of the evaluation (``step``, ``mean``), and its model.zip is that policy."""
    metrics = _metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["stopped_early"] is True
    assert metrics["total_timesteps"] == step and metrics["final_return"] == mean
    assert metrics["message"] == f"evaluation return {mean:.2f} at step {step} >= eval.stop_at {stop_at:g}"
    assert _evaluations(run_dir)[-1] == (step, mean)
    model = ALGORITHMS["td3"].load(run_dir / "model.zip", device="cpu")
    assert model.num_timesteps == step
    # the saved model replays the stopping evaluation: same episodes (seed + 100), same deterministic policy
    assert evaluate_run(run_dir, episodes=2)["mean_return"] == mean


def test_training_stops_at_the_first_evaluation_that_reaches_stop_at(tmp_path: Path) -> None:
    full = tmp_path / "full"
    train_run(load_config("td3-proxy-lif", [*SETTINGS, "total_timesteps=300"]), full)
    curve = _evaluations(full)
    best = max(mean for _, mean in curve)
    step = next(s for s, mean in curve if mean == best)  # every evaluation before it is below best

    stopped = tmp_path / "stopped"
    result = train_run(load_config("td3-proxy-lif", [*SETTINGS, "total_timesteps=1000", f"eval.stop_at={best!r}"]),
                       stopped)
    assert result.stopped_early and result.total_timesteps == step
    assert _evaluations(stopped) == [(s, m) for s, m in curve if s <= step]
    _check_stopped_at(stopped, step, best, best)
    assert json.loads((stopped / "progress.json").read_text())["steps"] == step

    # a stopped run stays stopped: resume refuses it, and a sweep counts it as done
    with pytest.raises(RunError, match=rf"already stopped at step {step} \(evaluation return"):
        resume_run(stopped)
    assert trial_state(Trial(ENV, "td3-proxy-lif", 0, stopped)) == "done"


def test_stop_at_below_the_first_return_stops_right_after_it(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "td3-proxy-lif", "--run-dir", str(run_dir), "--steps", "500",
                             "--set", *SETTINGS, "eval.stop_at=-1")
    assert code == 0, err
    (step, mean), = _evaluations(run_dir)
    assert step == 0 and mean > -1
    assert f"done: 0 steps (stopped early: evaluation return {mean:.2f} at step 0 >= eval.stop_at -1)" in out
    _check_stopped_at(run_dir, 0, mean, -1.0)
    code, out, err = run_cli(capsys, "train", "--resume", str(run_dir))
    assert code != 0 and "already stopped at step 0" in err


def test_a_stop_at_never_reached_trains_the_whole_budget(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train_run(load_config("td3-proxy-lif", [*SETTINGS, "total_timesteps=120", "eval.stop_at=1e9"]),
                       run_dir)
    assert not result.stopped_early and result.total_timesteps == 120
    assert [s for s, _ in _evaluations(run_dir)] == [0, 50, 100, 120] and _metrics(run_dir)["stopped_early"] is False
