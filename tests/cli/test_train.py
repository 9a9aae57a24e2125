"""``spikerl train`` / ``spikerl evaluate`` on tiny budgets: every preset, determinism, progress, NaN stop."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
import torch
from cli_helpers import ENV, run_cli, tiny
from rich.console import Console
from spikerl.agents import ALGORITHMS, NonFiniteLossError, ProxyTD3
from spikerl.agents.training import evaluate_run, train_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spikerl.config import list_presets, load_config

STEPS = 300


def _evaluations(run_dir) -> list[tuple[int, float, float]]:
    with (run_dir / "evaluations.csv").open() as fh:
        return [(int(r["step"]), float(r["mean_return"]), float(r["std_return"])) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_trains_saves_loads_evaluates(preset: str, tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    has_proxy = load_config(preset).proxy is not None
    code, out, err = run_cli(capsys, "train", preset, "--env", ENV, "--steps", str(STEPS), "--run-dir",
                             str(run_dir), "--checkpoint-every", "200", "--set", *tiny(has_proxy))
    assert code == 0, err
    assert f"done: {STEPS} steps" in out
    for name in ("config.yaml", "model.zip", "evaluations.csv", "metrics.json", "progress.json"):
        assert (run_dir / name).is_file(), name
    progress = json.loads((run_dir / "progress.json").read_text())
    assert (progress["steps"], progress["total_timesteps"], progress["last_eval_step"]) == (STEPS, STEPS, STEPS)
    assert progress["steps_per_s"] > 0
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step_0000000200.json", "step_0000000200.replay.pkl", "step_0000000200.zip"]
    tb = EventAccumulator(str(run_dir / "tb"))
    tb.Reload()
    logged = tb.Scalars("eval/mean_return")
    assert [e.step for e in logged] == [row[0] for row in _evaluations(run_dir)]
    assert [e.value for e in logged] == pytest.approx([row[1] for row in _evaluations(run_dir)], rel=1e-6)
    assert "train/critic_loss" in tb.Tags()["scalars"]

    cfg = load_config(run_dir / "config.yaml")
    assert cfg == load_config(preset, [f"env={ENV}", f"total_timesteps={STEPS}", "checkpoint.every=200",
                                       *tiny(has_proxy)])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["total_timesteps"] == STEPS
    assert metrics["n_updates"] == STEPS - 100  # one gradient step per env step after learning_starts
    evals = _evaluations(run_dir)
    assert [e[0] for e in evals] == [0, 100, 200, 300]
    assert metrics["final_return"] == evals[-1][1] and metrics["best_return"] == max(e[1] for e in evals)

    # the saved model is the preset's algorithm, actor type and target strategy
    model = ALGORITHMS[cfg.algo].load(run_dir / "model.zip", device="cpu")
    assert model.num_timesteps == STEPS and model.target == cfg.target
    is_snn = type(model.policy.actor).__name__.startswith("SNN")
    assert is_snn == (cfg.policy == "SNNPolicy")
    if is_snn:
        assert model.policy.actor.network.T == 5
        assert type(model.policy.actor.network.snn.neurons[0]).__name__.lower().startswith(cfg.actor.neuron)

    code, out, err = run_cli(capsys, "evaluate", str(run_dir), "--episodes", "2")
    assert code == 0, err
    result = json.loads((run_dir / "evaluation.json").read_text())
    assert len(result["returns"]) == 2 and result["deterministic"] is True and result["model"] == "model.zip"
    assert f"mean return {result['mean_return']:.2f} ± {result['std_return']:.2f} over 2" in out
    # the first two episodes of the periodic evaluation used the same seed (seed + 100) and model
    assert result["seed"] == cfg.seed + 100
    assert result["mean_return"] == pytest.approx(evals[-1][1])


def _policy_state(run_dir) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(run_dir / "model.zip") as zf, zf.open("policy.pth") as fh:
        return torch.load(io.BytesIO(fh.read()), map_location="cpu")


def test_same_seed_same_evaluations_and_weights(tmp_path) -> None:
    overrides = tiny() + ["total_timesteps=300", f"env={ENV}", "eval.episodes=3"]
    runs = []
    for i, seed in enumerate((7, 7, 8)):
        cfg = load_config("td3-proxy-lif", overrides + [f"seed={seed}"])
        train_run(cfg, tmp_path / f"r{i}")
        runs.append(tmp_path / f"r{i}")
    assert _evaluations(runs[0]) == _evaluations(runs[1])
    a, b, c = (_policy_state(r) for r in runs)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # another seed really trains another model


def test_progress_bar_shows_steps_speed_and_eval(tmp_path) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    cfg = load_config("td3-ann", tiny(False) + ["total_timesteps=200", f"env={ENV}"])
    result = train_run(cfg, tmp_path / "run", progress=True, console=console)
    text = buf.getvalue()
    assert result.total_timesteps == 200
    assert "200/200" in text and "steps/s" in text and "eval " in text and "@ 200" in text


def test_non_finite_loss_stops_with_message_and_keeps_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    original = ProxyTD3.train

    def exploding(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self._n_updates >= 150:
            raise NonFiniteLossError("critic", self._n_updates + 1, float("nan"))
        original(self, gradient_steps, batch_size)

    monkeypatch.setattr(ProxyTD3, "train", exploding)
    run_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "td3-proxy-lif", "--env", ENV, "--steps", "400", "--run-dir",
                             str(run_dir), "--checkpoint-every", "100", "--quiet", "--set", *tiny())
    assert code == 1
    assert err.count("\n") == 1
    assert "training stopped at step 251: non-finite critic loss (nan) at gradient update 151" in err
    assert "last good checkpoint" in err
    assert not (run_dir / "model.zip").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "non_finite_loss" and metrics["total_timesteps"] == 251
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.json")) == [
        "step_0000000100.json", "step_0000000200.json"]
    # the kept checkpoint loads and evaluates
    result = evaluate_run(run_dir, episodes=1)
    assert result["model"].startswith("checkpoints/step_0000000200.zip")


def test_evaluate_records_one_video_per_episode(tmp_path, capsys) -> None:
    pytest.importorskip("moviepy")
    run_dir = tmp_path / "run"
    train_run(load_config("td3-ann", tiny(False) + [f"env={ENV}", "total_timesteps=100"]), run_dir)
    for episodes in (2, 1):  # the second evaluation replaces the first one's videos
        code, out, err = run_cli(capsys, "evaluate", str(run_dir), "--episodes", str(episodes), "--video", "--quiet")
        assert code == 0, err
        assert err == ""
    videos = sorted(p.name for p in (run_dir / "videos").iterdir())
    assert videos == ["eval-episode-0.mp4"]
    assert (run_dir / "videos" / videos[0]).stat().st_size > 1000
    assert json.loads((run_dir / "evaluation.json").read_text())["videos"] == ["videos/eval-episode-0.mp4"]
