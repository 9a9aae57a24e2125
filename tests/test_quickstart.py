"""The main job: ``scripts/quickstart.sh`` end to end on a tiny budget, and the summary it prints."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from script_loader import load_script

from spikerl.config import load_config

ROOT = Path(__file__).resolve().parents[1]


quickstart_summary = load_script("quickstart_summary")


def _fake_run(run_dir: Path, train: float, bundle: float, stopped_early: bool = True) -> Path:
    (run_dir / "bundle").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"env": "InvertedPendulum-v5", "seed": 2,
                                                         "eval": {"episodes": 10, "stop_at": 1000.0}}))
    (run_dir / "metrics.json").write_text(json.dumps({
        "status": "completed", "total_timesteps": 10000 if stopped_early else 20000, "budget": 20000,
        "final_return": train, "final_return_std": 0.0, "stopped_early": stopped_early, "message": ""}))
    (run_dir / "bundle" / "evaluation.json").write_text(json.dumps({
        "episodes": 10, "seed": 102, "mean_return": bundle, "std_return": 1.5, "energy_nj": 0.391,
        "firing_rate": 0.25}))
    return run_dir


def test_summary_passes_when_both_returns_reach_the_bar(tmp_path: Path, capsys) -> None:
    run_dir = _fake_run(tmp_path / "run", 1000.0, 950.0)
    assert quickstart_summary.main([str(run_dir), "--wall-s", "185"]) == 0
    out = capsys.readouterr().out
    assert ("training   return 1000.00 ± 0.00 over 10 deterministic episodes at step 10000 (stopped at the first "
            "evaluation >= 1000)") in out
    assert "bundle     return 950.00 ± 1.50 over 10 episodes from the same start states (env seed 102)" in out
    assert "energy     0.39 nJ per decision (firing rate 0.250 per neuron and time step)" in out
    assert "wall time  3 min 05 s" in out and f"{run_dir}/bundle/: manifest.json" in out
    assert out.rstrip().endswith("passed: both returns >= 950")


@pytest.mark.parametrize(("train", "bundle", "stopped", "verdict"), [
    (1000.0, 949.9, True, "FAILED: bundle return 949.90 < 950"),
    (380.0, 200.0, False, "FAILED: training return 380.00 < 950 and bundle return 200.00 < 950 (the 20000-step cap "
                          "came first)"),
])
def test_summary_fails_in_one_line_naming_the_low_return(tmp_path: Path, capsys, train: float, bundle: float,
                                                         stopped: bool, verdict: str) -> None:
    run_dir = _fake_run(tmp_path / "run", train, bundle, stopped)
    assert quickstart_summary.main([str(run_dir), "--wall-s", "60"]) == 1
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == verdict


def test_summary_names_a_missing_file(tmp_path: Path, capsys) -> None:
    run_dir = _fake_run(tmp_path / "run", 1000.0, 1000.0)
    (run_dir / "bundle" / "evaluation.json").unlink()
    assert quickstart_summary.main([str(run_dir), "--wall-s", "60"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"quickstart: error: {run_dir}/bundle/evaluation.json is missing: the step that writes it did not "
                   "finish")


def test_the_quickstart_preset_is_td3_proxy_lif_on_inverted_pendulum_stopping_at_the_maximum() -> None:
    cfg = load_config("quickstart")
    assert (cfg.algo, cfg.target, cfg.policy, cfg.actor.neuron, cfg.env) == (
        "td3", "proxy", "SNNPolicy", "lif", "InvertedPendulum-v5")
    assert (cfg.eval.stop_at, cfg.eval.episodes, cfg.eval.deterministic, cfg.total_timesteps) == (1000, 10, True, 20000)


@pytest.mark.slow
def test_quickstart_script_trains_exports_evaluates_and_fails_below_the_bar(tmp_path: Path) -> None:
    """A 300-step run cannot balance the pendulum: every step of the script runs, and it exits 1 saying why."""
    run_dir = tmp_path / "quickstart"
    env = dict(os.environ, QUICKSTART_SETUP="0", QUICKSTART_RUN_DIR=str(run_dir), OMP_NUM_THREADS="1",
               QUICKSTART_SET="total_timesteps=300 learning_starts=100 eval.freq=100 eval.episodes=2 "
                              "batch_size=16 checkpoint.every=200")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "quickstart.sh"), "3"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "quickstart: a spiking actor (Proxy Target TD3, LIF) on InvertedPendulum-v5, seed 3" in lines
    assert lines[-1].startswith("FAILED: training return ") and lines[-1].endswith("(the 300-step cap came first)")
    bundle_eval = json.loads((run_dir / "bundle" / "evaluation.json").read_text())
    assert bundle_eval["episodes"] == 10 and bundle_eval["seed"] == 103
    assert json.loads((run_dir / "metrics.json").read_text())["total_timesteps"] == 300
