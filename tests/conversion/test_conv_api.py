"""The public API: any PyTorch actor converts, heads stay in floating point, clear errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikerl.conversion import ConversionSpec, convert, convert_actor, fold_bn


def _td3_actor(obs=11, act=3, hidden=64):
    return nn.Sequential(nn.Linear(obs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, act), nn.Tanh())


class FujimotoActor(nn.Module):
    """A user's own actor class (TD3 reference code style): functional relu and a max-action scale."""

    def __init__(self, obs, act, max_action):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(obs, 64), nn.Linear(64, 64), nn.Linear(64, act)
        self.max_action = max_action

    def forward(self, state):
        a = F.relu(self.l1(state))
        a = F.relu(self.l2(a))
        return self.max_action * torch.tanh(self.l3(a))


def _states(n, obs, seed=0):
    return torch.randn(n, obs, generator=torch.Generator().manual_seed(seed))


def test_td3_sequential_actor_converts_and_approaches_ann():
    actor = _td3_actor().requires_grad_(False)
    states, obs = _states(2000, 11), _states(64, 11, seed=1)
    snn = convert(actor, ConversionSpec(T=32, method="max"), calib_data=states)
    out = snn(obs)
    assert out.shape == actor(obs).shape and out.dtype == torch.float32
    assert bool((out.abs() <= 1).all())
    err32 = (out - actor(obs)).abs().mean()
    err256 = (convert(actor, ConversionSpec(T=256, method="max"), calib_data=states)(obs) - actor(obs)).abs().mean()
    assert err256 < err32 < 0.1
    assert torch.equal(snn(obs), out)  # stateless without a carry: deterministic, no hidden state
    assert torch.equal(snn(obs.numpy()), out)


def test_custom_actor_loaded_from_state_dict_keeps_max_action_scale():
    trained = FujimotoActor(11, 3, max_action=2.5)
    actor = FujimotoActor(11, 3, max_action=2.5)
    actor.load_state_dict(trained.state_dict())
    actor.requires_grad_(False)
    states, obs = _states(2000, 11), _states(64, 11, seed=1)
    snn = convert_actor(actor, states, ConversionSpec(T=128, method="max", carry="crpi", alpha=0.5))
    out = snn(obs)
    assert bool((out.abs() <= 2.5).all()) and float(out.abs().max()) > 1.0
    assert float((out - actor(obs)).abs().mean()) < 0.05
    assert snn.site_names == ["relu", "relu_1"]
    snn.reset()


def test_sb3_td3_and_sac_actors_via_convert_actor():
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from stable_baselines3.sac.policies import Actor as SACActor
    from stable_baselines3.td3.policies import Actor as TD3Actor

    obs_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    states, obs = _states(2000, 11), _states(32, 11, seed=1)
    td3 = TD3Actor(obs_space, act_space, [64, 64], FlattenExtractor(obs_space), 11).requires_grad_(False)
    snn = convert_actor(td3, states, ConversionSpec(T=256, method="max"))
    assert float((snn(obs) - td3(obs)).abs().mean()) < 0.02
    sac = SACActor(obs_space, act_space, [64, 64], FlattenExtractor(obs_space), 11).requires_grad_(False)
    snn = convert_actor(sac, states.numpy(), ConversionSpec(T=256, method="max"))
    assert float((snn(obs) - sac(obs, deterministic=True)).abs().mean()) < 0.02


def test_batchnorm_is_folded_exactly():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3).double(), nn.BatchNorm2d(5).double()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(fold_bn(conv, bn)(x), bn(conv(x)), rtol=0, atol=1e-12)
    net = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2)).double().eval()
    net.requires_grad_(False)
    net[1].running_mean.uniform_(-0.5, 0.5)
    states = torch.randn(500, 6, dtype=torch.float64)
    snn = convert(net, ConversionSpec(T=512, method="max"), calib_data=states)
    assert float((snn(states[:50]) - net(states[:50])).abs().max()) < 0.05
    assert "1" not in snn.site_names and snn.site_names == ["2"]


def test_run_trace_shapes():
    actor = _td3_actor()
    snn = convert(actor, ConversionSpec(T=8, method="max"), calib_data=_states(100, 11))
    trace = snn.run(_states(5, 11))
    assert trace.step_outputs.shape == (8, 5, 3)
    assert set(trace.spike_counts) == {"1", "3"} and trace.spike_counts["1"].shape == (5, 64)
    assert bool((trace.spike_counts["1"] <= 8).all()) and trace.latency == 8
    assert torch.equal(trace.step_outputs[-1], trace.output)


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.l1(x)
        return x


@pytest.mark.parametrize("net,match", [
    (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.ReLU(),
                   nn.Linear(8, 2)), r"unsupported layer '3' \(Sigmoid\).*supported: .*nn.ReLU"),
    (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.LeakyReLU(), nn.Linear(8, 8), nn.ReLU(),
                   nn.Linear(8, 2)), r"LeakyReLU"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                   nn.Linear(2, 1)), r"max-pool is supported only directly after an activation"),
    (nn.Sequential(nn.Linear(4, 2), nn.Tanh()), r"no activation to convert"),
    (_Branchy(), r"could not trace"),
])
def test_unsupported_networks_raise_clear_errors(net, match):
    x = torch.randn(16, 4) if not isinstance(net[0] if isinstance(net, nn.Sequential) else None, nn.Conv2d) \
        else torch.randn(16, 1, 6, 6)
    with pytest.raises(ValueError, match=match):
        convert(net, ConversionSpec(T=4, method="max"), calib_data=x)


def test_bad_specs_and_missing_calibration_raise():
    with pytest.raises(ValueError, match="unknown method"):
        ConversionSpec(method="magic")
    with pytest.raises(ValueError, match="percentile"):
        ConversionSpec(method="percentile:150")
    with pytest.raises(ValueError, match="T must be a positive integer"):
        ConversionSpec(T=0)
    with pytest.raises(ValueError, match="granularity"):
        ConversionSpec(granularity="pixel")
    with pytest.raises(ValueError, match="carry='crpi' needs"):
        ConversionSpec(method="parallel", carry="crpi")
    with pytest.raises(ValueError, match="alpha"):
        ConversionSpec(carry="crpi", alpha=2.0)
    with pytest.raises(ValueError, match="need calib_data"):
        convert(_td3_actor(), ConversionSpec(T=4, method="max"))
    with pytest.raises(ValueError, match="need calib_data"):
        convert(_td3_actor(), ConversionSpec(T=4, method="qcfs"))  # plain ReLU without learned lambda
    with pytest.raises(ValueError, match="states must be"):
        convert_actor(_td3_actor(), torch.zeros(0, 11))


def test_rebuild_from_saved_thresholds_and_state_dict():
    actor = _td3_actor().requires_grad_(False)
    spec = ConversionSpec(T=16, method="max", granularity="neuron")
    snn = convert(actor, spec, calib_data=_states(500, 11))
    saved = {k: v.clone() for k, v in snn.thresholds.items()}
    state = snn.state_dict()
    again = convert(_td3_actor(), spec, thresholds=saved)
    again.load_state_dict(state)
    obs = _states(20, 11, seed=3)
    assert torch.equal(again(obs), snn(obs))
    assert again.spec == spec and again.settings == snn.settings
    with pytest.raises(ValueError, match="lack activation sites"):
        convert(actor, spec, thresholds={"1": saved["1"]})


def test_bad_inputs_raise_clear_errors():
    snn = convert(_td3_actor(), ConversionSpec(T=4, method="max"), calib_data=_states(100, 11))
    with pytest.raises(ValueError, match=r"input of shape \(4, 7\)"):
        snn(torch.zeros(4, 7))
    with pytest.raises(ValueError, match="NaN or inf"):
        snn(torch.full((2, 11), float("nan")))


def test_maxpool_cnn_converts_with_rate_and_differential_coding():
    """MaxPool after a deep activation runs as an ECM unit (exact in expectation); errors shrink with T."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)).double().requires_grad_(False)
    calib = torch.rand(64, 1, 8, 8, dtype=torch.float64)
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    for method in ("max", "dcgs"):
        errs = [float((convert(net, ConversionSpec(T=T, method=method), calib_data=calib)(x) - net(x)).abs().mean())
                for T in (4, 16, 64)]
        assert errs[0] > errs[1] > errs[2], (method, errs)


def test_sb3_actor_on_uint8_images_keeps_the_1_over_255_scaling():
    from spikerl.agents.features import BackboneExtractor
    from stable_baselines3.td3.policies import Actor as TD3Actor

    obs_space = gym.spaces.Box(0, 255, (1, 36, 36), np.uint8)
    act_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    ext = BackboneExtractor(obs_space, backbone="nature", features_dim=16)
    actor = TD3Actor(obs_space, act_space, [16], ext, 16).requires_grad_(False)
    images = torch.randint(0, 256, (64, 1, 36, 36)).float()
    snn = convert_actor(actor, images, ConversionSpec(T=64, method="max", granularity="channel"))
    obs = images[:8]
    assert float((snn(obs) - actor(obs)).abs().max()) < 0.1
