"""``spikerl evaluate`` reports energy per decision from the evaluation's real spike counts."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import ENV, run_cli, tiny
from spikerl.agents.energy import MAX_OBSERVATIONS, actor_energy
from spikerl.agents.training import load_run_model

from spikerl.energy import snn_energy


@pytest.mark.parametrize(("preset", "kind"), [("td3-lif", "snn"), ("td3-ann", "ann"), ("sac-ann", "ann")])
def test_evaluate_writes_energy(tmp_path, capsys, preset, kind):
    run = tmp_path / preset
    code, _, err = run_cli(capsys, "train", preset, "--env", ENV, "--steps", "200", "--run-dir", str(run),
                           "--quiet", "--set", *tiny(False))
    assert code == 0, err
    code, out, err = run_cli(capsys, "evaluate", str(run), "--episodes", "2")
    assert code == 0, err
    assert "energy per decision (paper figures)" in out
    result = json.loads((run / "evaluation.json").read_text())
    energy = result["energy"]
    assert energy["kind"] == kind and result["energy_nj"] == energy["energy_nj"] > 0
    # every decision of the evaluation (up to the cap) went into the energy estimate
    assert energy["observations"] == min(sum(result["lengths"]), MAX_OBSERVATIONS)
    model, _, _ = load_run_model(run)
    if kind == "ann":
        # actor hidden [32, 32] on InvertedPendulum (4 obs, 1 action): 4*32 + 32*32 + 32*1 MACs
        assert energy["macs"] == 4 * 32 + 32 * 32 + 32
        assert result["firing_rate"] is None
    else:
        assert 0 < result["firing_rate"] < 1
        obs = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
        direct = snn_energy(model.actor.network, torch.as_tensor(obs))
        assert actor_energy(model, obs)["sops"] == pytest.approx(direct.sops)
