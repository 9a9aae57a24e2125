"""Under target="proxy" ProxyTD3 neither builds nor saves SB3's target actor; models saved with one still load."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from spikerl.agents import MlpTD3Policy, ProxyTD3, SNNTD3Policy
from spikerl.agents.policies import NoTargetActor
from spikerl.envs import make_env
from stable_baselines3.td3.policies import TD3Policy


def model(policy: str, target: str) -> ProxyTD3:
    return ProxyTD3(policy, make_env("InvertedPendulum", seed=0), target=target, seed=0, buffer_size=200,
                    learning_starts=50, batch_size=16, proxy_hidden=(16,), policy_kwargs=dict(net_arch=[16, 16]))


def zipped_policy_state(path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")))


def save_with_target_actor(model: ProxyTD3, path: Path) -> None:
    """Save ``model`` as spikerl did while it still built the unused target actor under target="proxy":
    ``actor_target.*`` tensors (SB3 initialises the target actor as a copy of the actor) in the policy's
    state dict, and no ``build_actor_target`` among the policy kwargs."""
    fresh = path.with_suffix(".new.zip")
    model.save(fresh)
    with zipfile.ZipFile(fresh) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            if name == "policy.pth":
                state = torch.load(io.BytesIO(payload))
                state.update({"actor_target." + k.removeprefix("actor."): v.clone()
                              for k, v in state.items() if k.startswith("actor.")})
                buffer = io.BytesIO()
                torch.save(state, buffer)
                payload = buffer.getvalue()
            elif name == "data":
                data = json.loads(payload)
                del data["policy_kwargs"]["build_actor_target"]
                payload = json.dumps(data).encode()
            dst.writestr(name, payload)


@pytest.mark.parametrize("policy, cls", [("SNNPolicy", SNNTD3Policy), ("MlpPolicy", MlpTD3Policy)])
def test_proxy_target_builds_and_saves_no_target_actor(policy, cls, tmp_path):
    proxy = model(policy, "proxy")
    assert isinstance(proxy.policy, cls) and isinstance(proxy.actor_target, NoTargetActor)
    assert not any(k.startswith("actor_target.") for k in proxy.policy.state_dict())
    with pytest.raises(RuntimeError, match="no target actor"):
        proxy.actor_target(torch.zeros(1, 4))
    proxy.learn(80)  # trains without it
    proxy.save(tmp_path / "proxy.zip")
    saved = zipped_policy_state(tmp_path / "proxy.zip")
    assert saved and not any(k.startswith("actor_target.") for k in saved)

    soft = model(policy, "soft")  # the Polyak target actor is still there when it is used
    targets = [k for k in soft.policy.state_dict() if k.startswith("actor_target.")]
    assert targets and len(targets) == len([k for k in soft.policy.state_dict() if k.startswith("actor.")])


def test_a_model_saved_with_a_target_actor_still_loads(tmp_path):
    trained = model("SNNPolicy", "proxy")
    trained.learn(80)
    save_with_target_actor(trained, tmp_path / "old.zip")
    assert any(k.startswith("actor_target.") for k in zipped_policy_state(tmp_path / "old.zip"))

    loaded = ProxyTD3.load(tmp_path / "old.zip", env=make_env("InvertedPendulum", seed=0))
    assert isinstance(loaded.actor_target, NoTargetActor) and loaded.policy_kwargs["build_actor_target"] is False
    assert loaded.policy.state_dict().keys() == trained.policy.state_dict().keys()
    for key, value in trained.policy.state_dict().items():
        assert torch.equal(loaded.policy.state_dict()[key], value), key
    for key, value in trained.proxy.state_dict().items():
        assert torch.equal(loaded.proxy.state_dict()[key], value), key
    obs = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(loaded.predict(obs)[0], trained.predict(obs)[0])
    loaded.learn(20, reset_num_timesteps=False)  # and it trains on

    # only the target actor's tensors are forgiven: any other stray key is still an error
    stray = {"policy": {**trained.policy.state_dict(), "critic.extra": torch.zeros(1)}}
    with pytest.raises(RuntimeError, match="critic.extra"):
        loaded.set_parameters(stray, exact_match=True)


def test_an_mlp_model_saved_with_sb3s_policy_class_loads_without_its_target_actor(tmp_path):
    trained = model("MlpPolicy", "proxy")
    save_with_target_actor(trained, tmp_path / "old.zip")
    loaded = ProxyTD3.load(tmp_path / "old.zip", custom_objects={"policy_class": TD3Policy})
    assert type(loaded.policy) is MlpTD3Policy and isinstance(loaded.actor_target, NoTargetActor)
    for key, value in trained.policy.state_dict().items():
        assert torch.equal(loaded.policy.state_dict()[key], value), key
