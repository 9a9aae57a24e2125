"""The proxy: imitation of a fixed spiking actor, detached labels, K-batch sampling, NaN guard."""

import numpy as np
import pytest
import torch
from spikerl.agents import NonFiniteLossError, ProxyActor, ProxySAC, ProxyTD3, imitate_actor
from spikerl.agents.diagnostics import snn_diagnostics
from spikerl.envs import make_env

from spikerl import SpikingActor


def tiny() -> dict:
    return dict(learning_starts=50, batch_size=32, buffer_size=1000, policy_kwargs=dict(net_arch=[32, 32]),
                proxy_hidden=(32, 32))


def test_proxy_tracks_a_fixed_snn_actor():
    torch.manual_seed(0)
    actor = SpikingActor(11, 3, hidden=(64, 64), T=5)
    pool = torch.randn(4096, 11) * 2.0
    proxy = ProxyActor(11, 3, hidden=(128, 128))
    optimizer = torch.optim.Adam(proxy.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    held_out = torch.randn(512, 11) * 2.0
    with torch.no_grad():
        held_labels = actor(held_out)
        initial = torch.nn.functional.mse_loss(proxy(held_out), held_labels).item()
    for _ in range(100):  # 100 calls x K=3 = 300 Adam steps, each on a fresh minibatch of 64
        obs = pool[torch.randint(0, len(pool), (3, 64), generator=gen)]
        with torch.no_grad():
            labels = actor(obs.reshape(-1, 11)).reshape(3, 64, 3)
        losses = imitate_actor(proxy, optimizer, obs, labels)
        assert losses.shape == (3,) and not losses.requires_grad
    with torch.no_grad():
        final = torch.nn.functional.mse_loss(proxy(held_out), held_labels).item()
    assert final < 0.1 * initial, (initial, final)  # measured: 0.093 -> 0.0019
    assert all(p.grad is None for p in actor.parameters())  # labels carry no gradient into the actor


def test_imitate_actor_checks_shapes_and_finiteness():
    proxy = ProxyActor(4, 2, hidden=(8,))
    optimizer = torch.optim.Adam(proxy.parameters())
    with pytest.raises(ValueError, match=r"\[K, B, obs_dim\]"):
        imitate_actor(proxy, optimizer, torch.zeros(5, 4), torch.zeros(5, 2))
    before = [p.detach().clone() for p in proxy.parameters()]
    labels = torch.zeros(2, 5, 2)
    labels[1, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError):
        imitate_actor(proxy, optimizer, torch.ones(2, 5, 4), labels)
    after = list(proxy.parameters())
    assert not torch.equal(before[0], after[0])  # step k=0 was finite and taken ...
    assert all(torch.isfinite(p).all() for p in after)  # ... step k=1 (NaN) was not
    assert ProxyActor(4, 2, squash=False)(torch.full((1, 4), 100.0)).abs().max() > 0  # SAC head: no tanh
    assert ProxyActor(4, 2)(torch.full((3, 4), 1e4, dtype=torch.float64)).abs().max() <= 1.0  # float64 ok


def test_k_minibatches_are_fresh_and_the_last_is_reused():
    model = ProxyTD3("SNNPolicy", make_env("InvertedPendulum", seed=0), seed=0, proxy_iters=3, **tiny())
    model.learn(60)
    obs_k, data = model._sample_for_proxy(32)
    assert obs_k.shape == (3, 32, 4)
    torch.testing.assert_close(data.observations, obs_k[-1], rtol=0, atol=0)
    assert data.actions.shape == (32, 1) and data.rewards.shape == (32, 1) and data.next_observations.shape == (32, 4)
    assert not torch.equal(obs_k[0], obs_k[1])


@pytest.mark.parametrize("cls", [ProxyTD3, ProxySAC])
def test_nan_reward_raises_before_the_critic_step(cls):
    model = cls("SNNPolicy", make_env("InvertedPendulum", seed=0), seed=0, **tiny())
    model.learn(60)
    critic_before = {k: v.clone() for k, v in model.critic.state_dict().items()}
    model.replay_buffer.rewards[:] = np.nan
    with pytest.raises(NonFiniteLossError, match=r"non-finite critic loss .* gradient update 11") as err:
        model.train(gradient_steps=1, batch_size=32)
    assert err.value.loss_name == "critic" and err.value.update == 11
    for key, value in model.critic.state_dict().items():
        assert torch.equal(value, critic_before[key]), key
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_nan_actor_weight_raises_on_the_proxy_loss():
    model = ProxyTD3("SNNPolicy", make_env("InvertedPendulum", seed=0), seed=0, **tiny())
    model.learn(60)
    proxy_before = {k: v.clone() for k, v in model.proxy.state_dict().items()}
    with torch.no_grad():
        model.actor.network.decoder.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="proxy") as err:
        model.train(gradient_steps=1, batch_size=32)
    assert err.value.loss_name == "proxy"
    for key, value in model.proxy.state_dict().items():
        assert torch.equal(value, proxy_before[key]), key


def test_diagnostics_rates_match_the_network_and_windows_are_fractions():
    torch.manual_seed(0)
    actor = SpikingActor(6, 2, hidden=(16, 16), T=4)
    obs = torch.randn(50, 6)
    diag = snn_diagnostics(actor, obs)
    rates = actor.firing_rates(obs)
    for layer in ("encoder", "hidden0", "hidden1", "output"):
        assert diag[f"rate_{layer}"] == pytest.approx(rates[layer], abs=1e-6)
    for layer in ("hidden0", "hidden1", "output"):
        assert 0.0 <= diag[f"window_{layer}"] <= 1.0
    # rectangular surrogate (width 0.5, V_th 0.5): the window is 0 < h < 1; a huge negative bias empties it
    with torch.no_grad():
        actor.snn.linears[0].bias.fill_(-100.0)
    diag = snn_diagnostics(actor, obs)
    assert diag["window_hidden0"] == 0.0 and diag["rate_hidden0"] == 0.0


@pytest.mark.parametrize("cls", [ProxyTD3, ProxySAC])
def test_labels_are_one_batched_call_and_reuse_the_actor_pass(cls):
    model = cls("SNNPolicy", make_env("Hopper", seed=0), seed=0, **tiny())
    model.learn(60)
    obs_k, data = model._sample_for_proxy(32)
    label_fn = model.actor if cls is ProxyTD3 else model._actor_mean
    batched = model._proxy_labels(obs_k, label_fn)
    with torch.no_grad():
        separate = torch.stack([label_fn(obs_k[k]) for k in range(3)])
    torch.testing.assert_close(batched, separate, rtol=0, atol=1e-5)
    last = label_fn(data.observations)  # what the actor update computes, with its graph
    assert last.requires_grad
    reused = model._proxy_labels(obs_k, label_fn, last)
    assert not reused.requires_grad
    torch.testing.assert_close(reused, batched, rtol=0, atol=1e-5)


def test_keep_freed_memory_sets_malloc_thresholds_on_linux():
    import sys

    from spikerl.agents.cpu import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")


def test_imitate_actor_takes_step_k_on_minibatch_k_and_reports_the_loss_before_it():
    """imitate_actor = for k: L_k = mse(proxy(s_k), y_k), then one Adam step (float64, torch's Adam)."""
    torch.manual_seed(5)
    a = ProxyActor(11, 3, hidden=(32, 32)).double()
    b = ProxyActor(11, 3, hidden=(32, 32)).double()
    b.load_state_dict(a.state_dict())
    obs, labels = torch.randn(3, 64, 11, dtype=torch.float64), torch.rand(3, 64, 3, dtype=torch.float64) * 2 - 1
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3)
    losses_a = imitate_actor(a, opt_a, obs, labels)
    losses_b = []
    for k in range(3):  # the loop written out
        loss = torch.nn.functional.mse_loss(b(obs[k]), labels[k])
        opt_b.zero_grad()
        loss.backward()
        opt_b.step()
        losses_b.append(loss.detach())
    assert torch.equal(losses_a, torch.stack(losses_b))  # the same operations in the same order
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
