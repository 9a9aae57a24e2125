"""Numba CPU policy (``spikerl.kernels.compile_policy``) against the torch spiking actors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spikerl
from spikerl.kernels import compile_policy
from spikerl.neurons import LIFNeuron

OBS_DIM, ACT_DIM, HIDDEN = 5, 3, (64, 48)
CONFIGS = [
    (neuron, reset, encoder)
    for neuron in ("if", "lif", "clif", "plif", "dn", "multi-threshold")
    for reset in (("hard",) if neuron == "dn" else ("hard", "soft"))
    for encoder in ("pop", "direct")
]


def _ids(cfg: tuple[str, str, str]) -> str:
    return "-".join(cfg)


def make_actor(neuron: str, reset: str, encoder: str, dtype: torch.dtype, *, seed: int = 0,
               scale: float = 2.0) -> spikerl.SpikingActor:
    """A small actor with weights scaled up so that every layer fires (rates checked below)."""
    torch.manual_seed(seed)
    kwargs = {} if neuron == "dn" else {"reset": reset}
    actor = spikerl.SpikingActor(OBS_DIM, ACT_DIM, hidden=HIDDEN, neuron=neuron, neuron_kwargs=kwargs,
                                 encoder=encoder).to(dtype)
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(scale)
            lin.bias.add_(0.1)
        if neuron == "plif":  # a learned decay away from its initial value
            for n in actor.snn.neurons:
                n.decay_logit.fill_(0.3)
    return actor


def observations(dtype: type, n: int = 48, seed: int = 1, dim: int = OBS_DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=1.5, size=(n, dim)).astype(dtype)


@pytest.fixture(scope="module")
def compiled() -> dict:
    """All configurations in float64 and float32, compiled once for the module."""
    out = {}
    for cfg in CONFIGS:
        for np_dt, t_dt in ((np.float64, torch.float64), (np.float32, torch.float32)):
            actor = make_actor(*cfg, t_dt)
            out[cfg, np_dt] = (actor, compile_policy(actor, dtype=np_dt))
    return out


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_float64_identical_spikes_and_actions(compiled, cfg):
    actor, policy = compiled[cfg, np.float64]
    obs = observations(np.float64)
    ref_counts = actor.spike_counts(torch.from_numpy(obs))
    counts = policy.spike_counts(obs)
    assert list(counts) == list(ref_counts)
    for name, ref in ref_counts.items():
        assert counts[name].shape == tuple(ref.shape)
        np.testing.assert_array_equal(counts[name], ref.numpy(), err_msg=f"{cfg} layer {name}")
    rates = {k: float(v.mean()) / actor.T for k, v in ref_counts.items()}
    assert all(r > 0.05 for r in rates.values()), rates  # the comparison is not vacuous
    with torch.no_grad():
        ref_act = actor(torch.from_numpy(obs)).numpy()
    act = policy(obs)
    assert act.dtype == np.float64 and act.shape == (len(obs), ACT_DIM)
    np.testing.assert_allclose(act, ref_act, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_ids)
def test_float32_actions_close(compiled, cfg):
    actor, policy = compiled[cfg, np.float32]
    obs = observations(np.float32)
    with torch.no_grad():
        ref_act = actor(torch.from_numpy(obs)).numpy()
    act = policy(obs)
    assert act.dtype == np.float32
    np.testing.assert_allclose(act, ref_act, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cfg", [CONFIGS[2], CONFIGS[-1], CONFIGS[-3]], ids=_ids)
def test_batch_equals_single(compiled, cfg):
    _, policy = compiled[cfg, np.float64]
    obs = observations(np.float64, n=8)
    batch = policy(obs)
    single = np.stack([policy(o) for o in obs])
    np.testing.assert_array_equal(batch, single)
    one = policy.spike_counts(obs[3])
    full = policy.spike_counts(obs)
    for name in full:
        assert one[name].shape == (1, full[name].shape[1])
        np.testing.assert_array_equal(one[name][0], full[name][3])


def test_trained_ish_actor_firing_rates_and_parity():
    """Proxy-Target-sized actor (17 -> 256 -> 256 -> 6x10), weights scaled so layers fire but do not saturate."""
    torch.manual_seed(3)
    actor = spikerl.SpikingActor(17, 6)
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(3.0)
    obs = observations(np.float32, n=64, seed=5, dim=17)
    rates = actor.firing_rates(torch.from_numpy(obs))
    for name, rate in rates.items():
        assert 0.05 < rate < 0.95, (name, rate)
    policy = compile_policy(actor)
    with torch.no_grad():
        ref = actor(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy(obs), ref, rtol=0, atol=1e-5)
    assert np.abs(ref).max() > 0.1  # actions are not all ~0
    counts = policy.spike_counts(obs)
    got_rates = {k: float(v.mean()) / actor.T for k, v in counts.items()}
    assert got_rates == pytest.approx(rates, abs=1e-3)


def test_gaussian_actor_gives_deterministic_action():
    torch.manual_seed(4)
    actor = spikerl.SpikingGaussianActor(OBS_DIM, ACT_DIM, hidden=HIDDEN).double()
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(2.0)
    policy = compile_policy(actor, dtype=np.float64)
    obs = observations(np.float64, n=16)
    with torch.no_grad():
        ref = actor.deterministic(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy(obs), ref, rtol=0, atol=1e-10)


def test_policy_copies_weights_and_casts_inputs(compiled):
    actor, policy = compiled[("lif", "hard", "pop"), np.float32]
    obs = observations(np.float64, n=4)
    before = policy(obs)  # float64 input to a float32 policy is cast, as torch would need
    assert before.dtype == np.float32
    np.testing.assert_array_equal(policy(obs.tolist()), before)
    np.testing.assert_array_equal(policy(np.asfortranarray(obs)), before)
    saved = actor.decoder.bias.detach().clone()
    with torch.no_grad():
        actor.decoder.bias.add_(1.0)
    try:
        np.testing.assert_array_equal(policy(obs), before)
    finally:
        with torch.no_grad():
            actor.decoder.bias.copy_(saved)


def test_bad_shape_and_non_finite_observations(compiled):
    _, policy = compiled[("lif", "hard", "pop"), np.float32]
    with pytest.raises(ValueError, match=r"shape \[5\] or a batch \[B, 5\], got shape \(4,\)"):
        policy(np.zeros(4))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 5\)"):
        policy(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="got shape"):
        policy.spike_counts(np.zeros((3, 6)))
    obs = np.zeros(5)
    obs[2] = np.nan
    with pytest.raises(ValueError, match=r"index 2 are not finite"):
        policy(obs)
    batch = np.zeros((3, 5))
    batch[1, 4] = np.inf
    batch[2, 0] = -np.inf
    with pytest.raises(ValueError, match=r"index \(1, 4\), \(2, 0\) are not finite"):
        policy(batch)
    with pytest.raises(ValueError, match="not finite"):
        policy.spike_counts(batch)
    with pytest.raises(ValueError, match="numeric"):
        policy(np.array(["a"] * 5))


def test_unsupported_configurations_raise():
    torch.manual_seed(0)
    stochastic = spikerl.SpikingActor(OBS_DIM, ACT_DIM, hidden=HIDDEN, encoder="pop-stochastic")
    with pytest.raises(ValueError, match="pop-stochastic"):
        compile_policy(stochastic)

    class OddNeuron(LIFNeuron):
        name = "odd"

    actor = spikerl.SpikingActor(OBS_DIM, ACT_DIM, hidden=HIDDEN)
    actor.snn.neurons[1] = OddNeuron()
    with pytest.raises(ValueError, match="layer 1 has neuron OddNeuron"):
        compile_policy(actor)
    with pytest.raises(ValueError, match="float32 or float64"):
        compile_policy(spikerl.SpikingActor(OBS_DIM, ACT_DIM, hidden=HIDDEN), dtype=np.float16)
    with pytest.raises(ValueError, match="take a spikerl SpikingActor"):
        compile_policy(spikerl.mlp_actor(OBS_DIM, ACT_DIM))


EDGE_CASES = [
    {"obs_dim": 1, "act_dim": 1, "hidden": (), "T": 1},
    {"obs_dim": 3, "act_dim": 2, "hidden": (16, 8, 4), "T": 8, "pop_dim": 1, "decoder_pop_dim": 3},
    {"obs_dim": 4, "act_dim": 2, "hidden": (32,), "T": 3, "encoder": "direct", "preprocess": "none"},
    {"obs_dim": 4, "act_dim": 2, "hidden": (32,), "T": 4, "preprocess": "none", "neuron": "multi-threshold",
     "neuron_kwargs": {"levels": 2, "reset": "hard"}},
    {"obs_dim": 4, "act_dim": 2, "hidden": (32,), "T": 4, "neuron": "dn", "neuron_kwargs": {"u_sign": "+"}},
    {"obs_dim": 4, "act_dim": 2, "hidden": (32,), "T": 4, "neuron": "clif",
     "neuron_kwargs": {"threshold": 0.7, "decay": 0.6, "current_decay": 0.0, "reset": "soft"}},
]


@pytest.mark.parametrize("kwargs", EDGE_CASES, ids=lambda kw: f"T{kw['T']}-{kw.get('neuron', 'lif')}-{kw['hidden']}")
def test_other_architectures_float64(kwargs):
    kwargs = dict(kwargs)
    obs_dim, act_dim = kwargs.pop("obs_dim"), kwargs.pop("act_dim")
    torch.manual_seed(0)
    actor = spikerl.SpikingActor(obs_dim, act_dim, **kwargs).double()
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(2.5)
    policy = compile_policy(actor, dtype=np.float64)
    obs = np.random.default_rng(0).normal(scale=2.0, size=(40, obs_dim))
    ref_counts = actor.spike_counts(torch.from_numpy(obs))
    counts = policy.spike_counts(obs)
    assert list(counts) == list(ref_counts)
    for name, ref in ref_counts.items():
        np.testing.assert_array_equal(counts[name], ref.numpy(), err_msg=name)
        assert ref.sum() > 0, name
    with torch.no_grad():
        ref_act = actor(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(policy(obs), ref_act, rtol=0, atol=1e-10)
