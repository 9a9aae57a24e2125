"""Population coding and spiking actors: exact encoder/decoder equations, shapes, gradients, counts."""

import math

import pytest
import torch
import torch.nn.functional as F

from spikerl import SpikingActor, SpikingGaussianActor, mlp_actor
from spikerl.coding import DirectEncoder, PopulationDecoder, PopulationEncoder, make_encoder

D = torch.float64


def test_population_encoder_regular_spikes_match_hand_computation():
    enc = PopulationEncoder(obs_dim=1, T=5, pop_dim=3, mean_range=(-1, 1), std=math.sqrt(0.05)).double()
    obs = torch.tensor([[math.atanh(0.1)]], dtype=D)  # tanh(obs) = 0.1
    a = torch.exp(-0.5 * (0.1 - torch.tensor([-1.0, 0.0, 1.0], dtype=D)) ** 2 / 0.05)
    assert torch.allclose(enc.activation(obs)[0], a)
    v = torch.zeros(3, dtype=D)
    expected = []
    for _ in range(5):
        v = v + a
        s = (v > 0.999).to(D)
        v = v - 0.999 * s
        expected.append(s)
    spikes = enc(obs)
    assert spikes.shape == (5, 1, 3)
    assert torch.equal(spikes[:, 0], torch.stack(expected))
    assert spikes[:, 0, 1].sum() == 4  # the centre neuron (A = 0.905) fires 4 of 5 steps


def test_population_encoder_straight_through_gradient():
    enc = PopulationEncoder(obs_dim=2, T=4, pop_dim=5).double()
    obs = torch.randn(3, 2, dtype=D)
    w = torch.randn(4, 3, 10, dtype=D)
    (enc(obs) * w).sum().backward()
    # dS_t/dA = 1, so the gradient equals that of sum_t w_t * A
    enc2 = PopulationEncoder(obs_dim=2, T=4, pop_dim=5).double()
    (enc2.activation(obs) * w.sum(0)).sum().backward()
    assert torch.allclose(enc.mean.grad, enc2.mean.grad)
    assert torch.allclose(enc.std.grad, enc2.std.grad)
    assert enc.mean.grad.abs().sum() > 0


def test_stochastic_encoder_rates_follow_activation():
    torch.manual_seed(3)
    enc = make_encoder("pop-stochastic", 1, T=4000, pop_dim=3)
    obs = torch.zeros(1, 1)
    rate = enc(obs).mean(0)[0]
    assert torch.allclose(rate, enc.activation(obs)[0], atol=0.03)


def test_direct_encoder_repeats_preprocessed_obs():
    enc = DirectEncoder(3, T=4)
    obs = torch.randn(2, 3)
    out = enc(obs)
    assert out.shape == (4, 2, 3) and torch.equal(out[2], torch.tanh(obs))
    with pytest.raises(ValueError, match="direct encoding takes only"):
        make_encoder("direct", 3, 4, pop_dim=10)
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("rate", 3, 4)


def test_decoder_equals_grouped_conv1d_of_rates():
    dec = PopulationDecoder(act_dim=3, pop_dim=10).double()
    spikes = (torch.rand(5, 4, 30, dtype=D) > 0.6).to(D)
    rate = spikes.mean(0).reshape(4, 3, 10)
    conv = F.conv1d(rate, dec.weight.unsqueeze(1), dec.bias, groups=3).squeeze(-1)
    assert torch.allclose(dec(spikes), torch.tanh(conv), atol=1e-14)


def test_actor_shapes_bounds_and_single_observation():
    actor = SpikingActor(11, 3)
    obs = torch.randn(7, 11) * 3
    a = actor(obs)
    assert a.shape == (7, 3) and a.abs().max() <= 1
    assert torch.allclose(actor(obs[2]), a[2])
    with pytest.raises(ValueError, match=r"shape \[B, 11\]"):
        actor(torch.randn(7, 12))


def test_actor_runs_each_layer_as_one_gemm_over_all_steps():
    actor = SpikingActor(11, 3, T=5)
    shapes = []
    for lin in actor.snn.linears:
        lin.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    actor(torch.randn(4, 11))
    assert shapes == [(5, 4, 110), (5, 4, 256), (5, 4, 256)]


def test_actor_state_is_reset_on_every_call():
    actor = SpikingActor(5, 2, hidden=(16,))
    obs = torch.randn(3, 5)
    assert torch.equal(actor(obs), actor(obs))


@pytest.mark.parametrize("neuron", ["if", "lif", "clif", "plif", "dn", "multi-threshold"])
def test_every_neuron_trains_end_to_end(neuron):
    actor = SpikingActor(6, 2, hidden=(32, 32), neuron=neuron)
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(3.0)  # make the small net fire
    obs = torch.randn(16, 6)
    actor(obs).pow(2).sum().backward()
    grads = [p.grad for p in actor.parameters()]
    assert all(g is not None for g in grads)
    assert actor.snn.linears[0].weight.grad.abs().sum() > 0


def test_spike_counts_are_consistent_with_forward():
    actor = SpikingActor(4, 2, hidden=(8, 8), T=5).double()
    obs = torch.randn(3, 4, dtype=D)
    counts = actor.spike_counts(obs)
    assert list(counts) == ["encoder", "hidden0", "hidden1", "output"]
    assert [c.shape[1] for c in counts.values()] == [40, 8, 8, 20]
    assert all(((c >= 0) & (c <= 5) & (c == c.round())).all() for c in counts.values())
    # the decoder output is a function of the output counts: mean rate = count / T
    rate = counts["output"].reshape(3, 2, 10) / 5
    expected = torch.tanh((rate * actor.decoder.weight).sum(-1) + actor.decoder.bias)
    assert torch.allclose(actor(obs), expected)
    rates = actor.firing_rates(obs)
    assert rates["hidden0"] == pytest.approx(float(counts["hidden0"].mean()) / 5)


def test_direct_encoding_actor():
    actor = SpikingActor(4, 2, hidden=(8,), encoder="direct")
    counts = actor.spike_counts(torch.randn(2, 4))
    assert list(counts) == ["hidden0", "output"]
    assert actor.config()["encoder"] == "direct"


def test_config_rebuilds_the_same_architecture():
    actor = SpikingActor(5, 2, hidden=(16, 8), neuron="clif", T=3, neuron_kwargs={"threshold": 0.4})
    twin = SpikingActor(**actor.config())
    twin.load_state_dict(actor.state_dict())
    obs = torch.randn(4, 5)
    assert torch.equal(actor(obs), twin(obs))


def test_gaussian_actor():
    actor = SpikingGaussianActor(6, 2, hidden=(16, 16), log_std_hidden=(16,))
    obs = torch.randn(5, 6)
    mean, log_std = actor(obs)
    assert mean.shape == log_std.shape == (5, 2)
    assert log_std.min() >= -20 and log_std.max() <= 2
    assert torch.allclose(actor.deterministic(obs), torch.tanh(mean))
    assert list(actor.spike_counts(obs)) == ["encoder", "hidden0", "hidden1", "output"]
    (mean.sum() + log_std.sum()).backward()
    assert actor.log_std_net[0].weight.grad.abs().sum() > 0
    # the log-std head is clamped to [-20, 2]: push its two outputs far beyond each bound
    with torch.no_grad():
        actor.log_std_net[-1].bias.copy_(torch.tensor([100.0, -100.0]))
    _, log_std = actor(obs)
    assert torch.equal(log_std, torch.tensor([[2.0, -20.0]]).expand(5, 2))


def test_mlp_actor_baseline():
    net = mlp_actor(17, 6)
    assert net(torch.randn(2, 17)).shape == (2, 6)


def test_bad_actor_arguments():
    with pytest.raises(ValueError, match="T \\(simulation steps\\) must be >= 1"):
        SpikingActor(3, 1, T=0)
    with pytest.raises(ValueError, match="unknown neuron"):
        SpikingActor(3, 1, neuron="hh")


def test_population_encoder_without_autograd_returns_the_same_spikes():
    """Under no_grad the encoder skips the straight-through sum; a + (s - a) equals s, so nothing changes."""
    for dtype in (torch.float32, torch.float64):
        enc = PopulationEncoder(obs_dim=6, T=7, pop_dim=10).to(dtype)
        obs = torch.randn(64, 6, dtype=dtype) * 2
        with_graph = enc(obs)
        assert with_graph.requires_grad
        with torch.no_grad():
            plain = enc(obs)
        assert not plain.requires_grad
        assert torch.equal(plain, with_graph.detach())
        assert set(plain.unique().tolist()) == {0.0, 1.0}


def test_actor_inference_equals_training_forward():
    torch.manual_seed(3)
    for neuron in ("lif", "clif", "plif", "if", "dn"):
        actor = SpikingActor(11, 3, neuron=neuron)
        obs = torch.randn(40, 11)
        with torch.no_grad():
            inferred = actor(obs)
        assert torch.equal(inferred, actor(obs).detach()), neuron
