"""The policies refuse bad arguments at construction and non-finite observations at predict time, each with one
ValueError naming the argument (or the observation entry), instead of rounding, parsing or building a broken net."""

from __future__ import annotations

import numpy as np
import pytest
from spikerl.agents import ProxySAC, ProxyTD3
from spikerl.envs import make_env

BAD_POLICY_KWARGS = {
    "T-float": ("SNNPolicy", dict(T=2.5), "policy_kwargs T: expected an integer >= 1, got 2.5"),
    "T-string": ("SNNPolicy", dict(T="5"), "policy_kwargs T: expected an integer >= 1, got '5'"),
    "T-bool": ("SNNPolicy", dict(T=True), "policy_kwargs T: expected an integer >= 1, got True"),
    "T-zero": ("SNNPolicy", dict(T=0), "policy_kwargs T: expected an integer >= 1, got 0"),
    "pop_dim-float": ("SNNPolicy", dict(pop_dim=10.0), "policy_kwargs pop_dim: expected an integer >= 1, got 10.0"),
    "net_arch-zero-width": ("SNNPolicy", dict(net_arch=[0]),
                            "policy_kwargs net_arch: expected a list of layer sizes, each an integer >= 1"),
    "net_arch-float": ("SNNPolicy", dict(net_arch=[64.5]), "got [64.5]"),
    "net_arch-dict-qf": ("SNNPolicy", dict(net_arch=dict(pi=[32], qf=[0])), "policy_kwargs net_arch['qf']: expected"),
    "net_arch-dict-keys": ("SNNPolicy", dict(net_arch=dict(pi=[32])),
                           "policy_kwargs net_arch: a dict needs exactly the keys pi (actor) and qf (critic), got "
                           "['pi']"),
    "mlp-net_arch-zero-width": ("MlpPolicy", dict(net_arch=[0]), "policy_kwargs net_arch: expected a list"),
    "mean_range-reversed": ("SNNPolicy", dict(mean_range=(1.0, -1.0)),
                            "policy_kwargs mean_range: expected two finite numbers (low, high) with low < high"),
    "pop_std-nan": ("SNNPolicy", dict(pop_std=float("nan")), "policy_kwargs pop_std: expected a finite number > 0"),
    "neuron_kwargs-list": ("SNNPolicy", dict(neuron_kwargs=[1]), "policy_kwargs neuron_kwargs: expected a dict"),
}


@pytest.fixture(scope="module")
def env():
    return make_env("InvertedPendulum-v5", seed=0)


#: every case with TD3, and with SAC where the policy is spikerl's (SAC's MlpPolicy is Stable-Baselines3's own)
CASES = [pytest.param(algo, case, id=f"{name}-{case}") for name, algo in (("td3", ProxyTD3), ("sac", ProxySAC))
         for case, (policy, _kwargs, _needle) in BAD_POLICY_KWARGS.items() if algo is ProxyTD3 or policy != "MlpPolicy"]


@pytest.mark.parametrize("algo, case", CASES)
def test_bad_policy_kwargs_are_refused_at_construction(algo, case, env) -> None:
    policy, kwargs, needle = BAD_POLICY_KWARGS[case]
    with pytest.raises(ValueError) as info:
        algo(policy, env, policy_kwargs=kwargs, buffer_size=100)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("algo, policy", [(ProxyTD3, "SNNPolicy"), (ProxyTD3, "MlpPolicy"), (ProxySAC, "SNNPolicy")],
                         ids=["td3-snn", "td3-mlp", "sac-snn"])
@pytest.mark.parametrize("obs, needle", [
    ([float("nan")] * 4, "observation entry at index 0 is nan (4 of its 4 entries are NaN or infinite)"),
    (np.array([[0.0, 0.1, np.inf, 0.0]], dtype=np.float32),
     "observation entry at index (0, 2) is inf (1 of its 4 entries are NaN or infinite)"),
    (np.array([0.0, -np.inf, 0.0, np.nan]), "observation entry at index 1 is -inf (2 of its 4 entries"),
], ids=["list-of-nan", "batch-with-inf", "minus-inf-and-nan"])
def test_predict_refuses_non_finite_observations(algo, policy, obs, needle, env) -> None:
    model = algo(policy, env, policy_kwargs=dict(net_arch=[16]), buffer_size=100, seed=0)
    with pytest.raises(ValueError) as info:
        model.predict(obs, deterministic=True)
    assert needle in str(info.value) and str(info.value).endswith("; the policy needs finite observations")
    assert "\n" not in str(info.value)
    action, _ = model.predict(np.zeros(4, dtype=np.float32), deterministic=True)  # a finite one still acts
    assert action.shape == (1,) and np.isfinite(action).all()


def test_valid_integer_types_are_accepted(env) -> None:
    model = ProxyTD3("SNNPolicy", env, policy_kwargs=dict(net_arch=[np.int64(16)], T=np.int32(3)), buffer_size=100)
    assert model.policy.actor.snn["T"] == 3 and isinstance(model.policy.actor.snn["T"], int)
