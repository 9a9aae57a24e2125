"""Runs and models saved while the ``precision`` option existed: a run directory whose ``config.yaml`` says
``precision: float32`` resumes and evaluates, and a model zip that carries ``precision`` and ``bf16_parts``
attributes loads, predicts as saved, trains on and saves without them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from spikerl.agents import ProxySAC, ProxyTD3
from spikerl.agents.common import OBSOLETE_ATTRIBUTES
from spikerl.agents.training import RunError, evaluate_run, load_run_config, resume_run, train_run
from spikerl.envs import make_env
from stable_baselines3.common.save_util import load_from_zip_file

from spikerl.config import load_config

#: what the option's models saved (SB3 stores a tuple as a JSON list)
SAVED_ATTRIBUTES = {"precision": "bf16", "bf16_parts": ["proxy", "labels"]}


def with_saved_attributes(source: Path, path: Path, attributes: dict) -> None:
    """Copy the model zip ``source`` to ``path`` with ``attributes`` added to its saved data, as SB3 writes them."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            if name == "data":
                payload = json.dumps({**json.loads(payload), **attributes}).encode()
            dst.writestr(name, payload)


def saved_data(path: Path) -> dict:
    data, _, _ = load_from_zip_file(path, load_data=True)
    return data


@pytest.mark.parametrize("cls", [ProxyTD3, ProxySAC])
def test_a_model_saved_with_the_precision_attributes_loads(cls, tmp_path):
    env = make_env("InvertedPendulum", seed=0)
    trained = cls("SNNPolicy", env, seed=0, buffer_size=200, learning_starts=50, batch_size=16, proxy_hidden=(16,),
                  policy_kwargs=dict(net_arch=[16, 16]))
    trained.learn(80)
    trained.save(tmp_path / "new.zip")
    with_saved_attributes(tmp_path / "new.zip", tmp_path / "old.zip", SAVED_ATTRIBUTES)
    assert {k: saved_data(tmp_path / "old.zip")[k] for k in OBSOLETE_ATTRIBUTES} == SAVED_ATTRIBUTES

    loaded = cls.load(tmp_path / "old.zip", env=make_env("InvertedPendulum", seed=0))
    assert not any(hasattr(loaded, name) for name in OBSOLETE_ATTRIBUTES)
    for net in ("policy", "proxy"):
        for key, value in getattr(trained, net).state_dict().items():
            assert torch.equal(getattr(loaded, net).state_dict()[key], value), key
    assert {p.dtype for p in loaded.policy.parameters()} == {torch.float32}
    obs = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0],
                                  trained.predict(obs, deterministic=True)[0])
    loaded.learn(20, reset_num_timesteps=False)  # and it trains on
    loaded.save(tmp_path / "again.zip")
    assert not OBSOLETE_ATTRIBUTES & saved_data(tmp_path / "again.zip").keys()


def test_a_run_whose_config_says_precision_float32_evaluates_and_resumes(tmp_path):
    """End to end, as a run saved while the option existed: ``precision: float32`` in its config.yaml (where those
    runs wrote it) and the attributes in its model zip."""
    run = tmp_path / "run"
    overrides = ["env=InvertedPendulum-v5", "total_timesteps=150", "learning_starts=50", "batch_size=16",
                 "buffer_size=500", "actor.hidden=[16,16]", "critic.hidden=[16,16]", "proxy.hidden=[16,16]",
                 "eval.freq=1000", "eval.episodes=1", "checkpoint.every=100", "device=cpu"]
    train_run(load_config("td3-proxy-lif", overrides), run)
    saved = {}
    for key, value in yaml.safe_load((run / "config.yaml").read_text()).items():
        saved[key] = value
        if key == "device":
            saved["precision"] = "float32"
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, default_flow_style=None))
    (run / "model.zip").rename(run / "new.zip")
    with_saved_attributes(run / "new.zip", run / "model.zip", {**SAVED_ATTRIBUTES, "precision": "float32"})

    assert load_run_config(run) == load_config("td3-proxy-lif", overrides)
    evaluation = evaluate_run(run, episodes=1)
    assert evaluation["model"] == "model.zip" and len(evaluation["returns"]) == 1

    saved["total_timesteps"] = 200  # a longer budget: resume from the checkpoint at step 100
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, default_flow_style=None))
    result = resume_run(run)
    assert (result.status, result.resumed_from, result.total_timesteps) == ("completed", 100, 200)
    assert not OBSOLETE_ATTRIBUTES & saved_data(run / "model.zip").keys()

    saved["precision"] = "bf16"  # a run trained with bf16 GEMMs: refused, with what to change
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, default_flow_style=None))
    with pytest.raises(RunError, match=r"config.yaml: precision: training runs in float32 only .*; remove the key "
                                       r"or set float32, got 'bf16'$"):
        load_run_config(run)


@pytest.mark.parametrize("cls", [ProxyTD3, ProxySAC])
def test_the_constructors_treat_precision_as_configs_do(cls):
    """``precision="float32"`` (what earlier code passed) builds the model with a DeprecationWarning and no
    attribute; any other value is refused with the reason and what to pass, not SB3's unexpected-keyword error."""
    env = make_env("InvertedPendulum", seed=0)
    with pytest.warns(DeprecationWarning, match=r"precision='float32' is the only behaviour left .*leave it out"):
        model = cls("SNNPolicy", env, seed=0, buffer_size=100, proxy_hidden=(8,), precision="float32",
                    policy_kwargs=dict(net_arch=[8]))
    assert not hasattr(model, "precision")
    with pytest.raises(ValueError, match=r"precision='bf16': training runs in float32 only .*; leave out precision "
                                         r"\(or pass precision='float32'\)"):
        cls("SNNPolicy", env, seed=0, buffer_size=100, precision="bf16")
