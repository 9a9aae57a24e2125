"""Policies switch train/eval mode only when some module is in the other mode, with SB3's result either way."""

from __future__ import annotations

import pytest
import torch
from spikerl.agents import ProxySAC, ProxyTD3
from spikerl.envs import make_env

CASES = [(ProxyTD3, "SNNPolicy", "proxy"), (ProxyTD3, "SNNPolicy", "soft"), (ProxyTD3, "MlpPolicy", "soft"),
         (ProxySAC, "SNNPolicy", "proxy")]


def _model(algo, policy: str, target: str):
    env = make_env("InvertedPendulum-v5", seed=0)
    kwargs = dict(net_arch=[16, 16]) if policy == "MlpPolicy" else dict(net_arch=[16, 16], T=2, pop_dim=2,
                                                                          decoder_pop_dim=2)
    return algo(policy, env, target=target, proxy_hidden=(16, 16), learning_starts=10, buffer_size=100,
                policy_kwargs=kwargs, seed=0)


def _modes(policy) -> dict[str, bool]:
    return {name or "policy": module.training for name, module in policy.named_modules()}


def _sb3_modes(policy, mode: bool) -> dict[str, bool]:
    """What SB3's own set_training_mode leaves: the policy's class without spikerl's override."""
    sb3_cls = next(c for c in type(policy).__mro__ if c.__module__.startswith("stable_baselines3"))
    sb3_cls.set_training_mode(policy, mode)
    return _modes(policy)


@pytest.mark.parametrize(("algo", "policy", "target"), CASES, ids=["td3-snn-proxy", "td3-snn-soft", "td3-mlp-soft",
                                                                    "sac-snn-proxy"])
def test_the_same_modes_as_sb3_and_no_work_when_nothing_changes(algo, policy, target, monkeypatch) -> None:
    model = _model(algo, policy, target)
    p = model.policy
    for mode in (True, False, False, True, True, False):
        expected = _sb3_modes(p, mode)
        _sb3_modes(p, not mode)  # start from the other mode
        p.set_training_mode(mode)
        assert _modes(p) == expected

    calls = []
    original = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train", lambda self, mode=True: calls.append(mode) or original(self, mode))
    p.set_training_mode(False)
    p.set_training_mode(False)
    model.predict(model.env.observation_space.sample(), deterministic=True)  # SB3 switches to eval on every predict
    assert calls == []  # everything was in eval mode already: no module was touched


def test_a_submodule_switched_by_hand_is_switched_back() -> None:
    model = _model(ProxyTD3, "SNNPolicy", "proxy")
    p = model.policy
    p.set_training_mode(False)
    p.actor.train()  # by hand, behind the policy's back
    assert p.actor.training
    p.set_training_mode(False)
    assert not any(_modes(p).values())
