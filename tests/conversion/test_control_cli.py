"""``spikerl convert`` end to end on a tiny td3-ann run: convert, evaluate, export bundle, runtime round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import ENV, run_cli, tiny

from spikerl.cli import main


@pytest.fixture(scope="module")
def ann_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("conv") / "ann"
    assert main(["train", "td3-ann", "--env", ENV, "--steps", "300", "--run-dir", str(run), "--quiet",
                 "--set", *tiny(False)]) == 0
    return run


def test_convert_evaluate_export_and_runtime_round_trip(ann_run, capsys) -> None:
    from spikerl.agents.conversion import collect_states
    from spikerl.agents.training import load_run_model

    from spikerl.conversion.saved import load_converted
    from spikerl.runtime import load_policy

    code, out, err = run_cli(capsys, "convert", str(ann_run), "--T", "8", "--carry", "crpi", "--alpha", "0.5",
                          "--calib-steps", "300", "--set", "fire=gt")
    assert code == 0, err
    conv = ann_run / "converted" / "max-T8-crpi0.5"
    assert str(conv) in out
    meta = json.loads((conv / "converted.json").read_text())
    assert meta["spec"]["carry"] == "crpi" and meta["spec"]["fire"] == "gt" and meta["spec"]["granularity"] == "neuron"
    assert meta["env"]["id"] == ENV and meta["calibration"]["steps"] == 300
    assert [e["type"] for e in meta["layers"]] == ["linear", "relu", "linear", "relu", "linear", "tanh"]

    # the saved SNN reproduces the ANN's thresholds: per-neuron max over the ANN's own rollout states
    model, cfg, _ = load_run_model(ann_run)
    snn, mlp, _ = load_converted(conv)
    states = torch.from_numpy(collect_states(model, ENV, {}, 300, cfg.seed + 200))
    h1 = torch.relu(mlp[0](states))
    theta0 = snn.thresholds[snn.site_names[0]]
    expected = torch.where(h1.amax(0) > 0, h1.amax(0), h1.amax(0).max())
    assert torch.equal(theta0.reshape(-1), expected)
    # the saved plain MLP is exactly the SB3 actor (features, mu with its Tanh head)
    with torch.no_grad():
        a_ann = model.actor(states[:50])
    assert a_ann.shape == (50, 1) and torch.equal(mlp(states[:50]), a_ann)

    code, out, err = run_cli(capsys, "evaluate", str(conv), "--episodes", "2")
    assert code == 0, err
    result = json.loads((conv / "evaluation.json").read_text())
    assert result["episodes"] == 2 and len(result["returns"]) == 2 and "carry=crpi" in result["model"]
    energy = result["energy"]  # from the spike counts of every decision taken
    assert energy["sops"] > 0 and energy["energy_nj"] > 0 and 0 < energy["firing_rate"] < 1
    assert "energy per decision" in out and "SOPs" in out

    code, out, err = run_cli(capsys, "export", str(conv), "--format", "bundle")
    assert code == 0, err
    policy = load_policy(conv / "bundle", dtype=np.float64)
    assert policy.stateful and policy.env_id == ENV
    snn64, _, _ = load_converted(conv, dtype=torch.float64)
    obs = states[::7][:8].double()
    for _ in range(3):  # consecutive decisions with the carry, then a reset
        np.testing.assert_allclose(policy.act(obs.numpy(), normalized=True), snn64(obs).numpy(), atol=1e-5)
    policy.reset()
    snn64.reset()
    np.testing.assert_allclose(policy.act(obs.numpy(), normalized=True), snn64(obs).numpy(), atol=1e-5)
    code, out, err = run_cli(capsys, "evaluate", str(conv / "bundle"), "--episodes", "2")
    assert code == 0, err

    code, out, err = run_cli(capsys, "export", str(conv), "--format", "nir")
    assert code == 2 and "format 'bundle' or 'onnx'" in err and "no CRPI carry" in err
    code, out, err = run_cli(capsys, "export", str(conv), "--format", "onnx")  # this one carries state
    assert code == 2 and "state carried across decisions" in err


def test_convert_dcgs_with_crpi_then_export_runs_in_the_runtime(ann_run, capsys) -> None:
    from spikerl.conversion.saved import load_converted
    from spikerl.runtime import load_policy

    code, out, err = run_cli(capsys, "convert", str(ann_run), "--method", "dcgs", "--T", "8", "--carry", "crpi",
                          "--alpha", "0.5", "--calib-steps", "200")
    assert code == 0, err
    conv = ann_run / "converted" / "dcgs-T8-crpi0.5"
    code, out, err = run_cli(capsys, "export", str(conv), "--format", "bundle")
    assert code == 0, err
    policy = load_policy(conv / "bundle", dtype=np.float64)
    assert policy.stateful and [e["neuron"] for e in policy.manifest["layers"]] == ["diff-conv", "diff-conv"]
    snn64, _, _ = load_converted(conv, dtype=torch.float64)
    obs = np.random.default_rng(1).normal(scale=0.5, size=(6, 4))
    for _ in range(3):  # consecutive decisions with the carry, then a reset
        np.testing.assert_allclose(policy.act(obs, normalized=True), snn64(torch.from_numpy(obs)).numpy(),
                                   rtol=0, atol=1e-9)
    policy.reset()
    snn64.reset()
    np.testing.assert_allclose(policy.act(obs, normalized=True), snn64(torch.from_numpy(obs)).numpy(), atol=1e-9)
    code, out, err = run_cli(capsys, "evaluate", str(conv / "bundle"), "--episodes", "1")
    assert code == 0, err
    code, out, err = run_cli(capsys, "export", str(conv), "--format", "onnx")  # carries state
    assert code == 2 and "state carried across decisions" in err


def test_converted_agent_resets_the_carry_per_env_index(ann_run) -> None:
    from spikerl.agents.conversion import load_agent

    code = main(["convert", str(ann_run), "--T", "4", "--carry", "crpi", "--alpha", "1", "--calib-steps", "100",
                 "--out", str(ann_run / "c4")])
    assert code == 0
    obs = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    both, none = np.array([True, True]), np.array([False, False])

    def agent_after_two_decisions():
        agent, _meta = load_agent(ann_run / "c4")
        agent.predict(obs, episode_start=both)
        agent.predict(obs, episode_start=none)
        assert all(bool((v != 0).any()) for v in agent.snn.carry.values())
        return agent

    action, _ = agent_after_two_decisions().predict(obs, episode_start=np.array([True, False]))
    kept, _ = agent_after_two_decisions().predict(obs, episode_start=none)
    fresh, _ = load_agent(ann_run / "c4")[0].predict(obs, episode_start=both)
    np.testing.assert_array_equal(action[0], fresh[0])  # env 0 started over: a fresh first decision
    np.testing.assert_array_equal(action[1], kept[1])   # env 1 kept its carry


def test_convert_errors(ann_run, tmp_path, capsys) -> None:
    code, _out, err = run_cli(capsys, "convert", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err
    code, _out, err = run_cli(capsys, "convert", str(ann_run), "--method", "srp", "--carry", "crpi")
    assert code == 2 and "carry='crpi' needs the sequential 'if' neuron" in err and "dcgs" in err
    code, _out, err = run_cli(capsys, "convert", str(ann_run), "--set", "alpha=0.3")
    assert code == 2 and "use --alpha" in err
    snn_run = tmp_path / "snn"
    assert main(["train", "td3-lif", "--env", ENV, "--steps", "150", "--run-dir", str(snn_run), "--quiet",
                 "--set", *tiny(False), "actor.T=2"]) == 0
    code, _out, err = run_cli(capsys, "convert", str(snn_run))
    assert code == 2 and "trained a spiking actor" in err
