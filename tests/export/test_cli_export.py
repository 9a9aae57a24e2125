"""``spikerl export`` on tiny trained runs (TD3 and SAC) and ``spikerl evaluate BUNDLE``: same returns as the run."""

from __future__ import annotations

import json

import nir
import numpy as np
import onnxruntime as ort
import pytest
from cli_helpers import run_cli, tiny
from spikerl.agents.deploy import evaluate_bundle
from spikerl.agents.training import evaluate_run, load_run_model

from spikerl.cli import main
from spikerl.runtime import load_policy

ENV = "Hopper-v5"


def _train(root, preset: str, seed: int, proxy: bool = True):
    run_dir = root / preset
    assert main(["train", preset, "--env", ENV, "--steps", "200", "--seed", str(seed), "--run-dir", str(run_dir),
                 "--set", *tiny(proxy), "eval.episodes=1"]) == 0
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"td3": _train(root, "td3-proxy-lif", 1), "sac": _train(root, "sac-proxy-lif", 2)}


def _recorded_obs(n: int = 16) -> np.ndarray:
    from spikerl.envs import make_single_env

    env = make_single_env(ENV, seed=5)
    obs, _ = env.reset(seed=5)
    out = [obs]
    rng = np.random.default_rng(0)
    for _ in range(n - 1):
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        out.append(obs if not (term or trunc) else env.reset()[0])
    env.close()
    return np.stack(out)


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_export_all_formats_match_the_trained_model(runs, capsys, tmp_path, algo):
    run_dir = runs[algo]
    code, out, _ = run_cli(capsys, "export", str(run_dir))
    assert code == 0 and f"exported bundle -> {run_dir / 'bundle'}" in out
    model, cfg, _ = load_run_model(run_dir)
    obs = _recorded_obs()
    sb3_actions, _ = model.predict(obs, deterministic=True)  # scaled onto the env's action space
    policy = load_policy(run_dir / "bundle")
    np.testing.assert_allclose(policy.act(obs), sb3_actions, rtol=0, atol=1e-5)
    manifest = json.loads((run_dir / "bundle" / "manifest.json").read_text())
    assert manifest["env"]["id"] == ENV and manifest["env"]["seed"] == cfg.seed
    assert manifest["action_space"]["shape"] == [3] and manifest["observation_space"]["shape"] == [11]
    assert manifest["policy"]["source"] == ("SpikingGaussianActor" if algo == "sac" else "SpikingActor")

    onnx_path = tmp_path / "p.onnx"
    assert run_cli(capsys, "export", str(run_dir), "--format", "onnx", "--out", str(onnx_path))[0] == 0
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (norm,) = sess.run(None, {"obs": obs.astype(np.float32)})
    np.testing.assert_allclose(norm, policy.act(obs, normalized=True), rtol=0, atol=1e-5)

    assert run_cli(capsys, "export", str(run_dir), "--format", "nir")[0] == 0
    graph = nir.read(str(run_dir / "policy.nir"))
    w = model.actor.network.snn.linears[0].weight.detach().numpy()
    np.testing.assert_array_equal(graph.nodes["affine0"].weight, w)


def test_evaluate_bundle_gives_the_same_returns_as_the_run(runs, capsys):
    run_dir = runs["td3"]
    assert run_cli(capsys, "export", str(run_dir))[0] == 0
    ref = evaluate_run(run_dir, episodes=3)
    got = evaluate_bundle(run_dir / "bundle", episodes=3)
    assert got["seed"] == ref["seed"] and got["env"] == ref["env"] == ENV
    assert got["lengths"] == ref["lengths"]
    np.testing.assert_allclose(got["returns"], ref["returns"], rtol=1e-6)
    assert len(set(ref["returns"])) > 1  # the seeds give different episodes
    code, out, _ = run_cli(capsys, "evaluate", str(run_dir / "bundle"), "--episodes", "3", "--seed", "7")
    code_run, out_run, _ = run_cli(capsys, "evaluate", str(run_dir), "--episodes", "3", "--seed", "7", "--quiet")
    assert code == code_run == 0
    assert out.split("(")[0] == out_run.split("(")[0]  # "Hopper-v5: mean return X ± Y over 3 deterministic episodes"
    assert "seed 7" in out
    # the bundle's evaluation is stored next to it, with the energy from the runtime's spike counts
    stored = json.loads((run_dir / "bundle" / "evaluation.json").read_text())
    assert stored["seed"] == 7 and stored["runtime"] == "spikerl.runtime" and len(stored["returns"]) == 3
    assert "energy per decision" in out and stored["energy"]["decisions"] == sum(stored["lengths"])
    assert got["energy"]["decisions"] == sum(ref["lengths"]) <= 2000  # the run's energy used every observation
    np.testing.assert_allclose(got["energy"]["sops"], ref["energy"]["sops"], rtol=1e-3)
    np.testing.assert_allclose(got["energy"]["macs"], ref["energy"]["macs"], rtol=0)
    np.testing.assert_allclose(got["firing_rate"], ref["firing_rate"], rtol=1e-3)


def test_evaluate_bundle_records_videos(runs, capsys):
    bundle = runs["sac"] / "bundle"
    assert run_cli(capsys, "export", str(runs["sac"]))[0] == 0
    code, out, _ = run_cli(capsys, "evaluate", str(bundle), "--episodes", "2", "--video")
    assert code == 0 and f"videos: 2 files in {bundle / 'videos'}" in out
    videos = sorted((bundle / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["eval-episode-0.mp4", "eval-episode-1.mp4"]
    assert all(v.stat().st_size > 1000 for v in videos)
    assert json.loads((bundle / "evaluation.json").read_text())["videos"] == [
        "videos/eval-episode-0.mp4", "videos/eval-episode-1.mp4"]


def test_cli_errors_are_one_line(runs, capsys, tmp_path):
    code, _, err = run_cli(capsys, "export", str(tmp_path / "missing"))
    assert code == 2 and "run directory" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "export", str(tmp_path / "empty"))
    assert code == 2 and "is not a spikerl run directory" in err
    bundle = runs["td3"] / "bundle"
    assert run_cli(capsys, "export", str(runs["td3"]))[0] == 0
    code, _, err = run_cli(capsys, "evaluate", str(bundle), "--no-deterministic")
    assert code == 2 and "drop --no-deterministic" in err
    (bundle / "weights.npz").write_bytes(b"tampered")
    code, _, err = run_cli(capsys, "evaluate", str(bundle))
    assert code == 2 and "SHA-256 checksum mismatch" in err and len(err.strip().splitlines()) == 1


def test_export_of_an_ann_run_is_refused(tmp_path, capsys):
    run_dir = _train(tmp_path, "td3-ann", 0, proxy=False)
    code, _, err = run_cli(capsys, "export", str(run_dir))
    assert code == 2 and "trained an ANN actor" in err
