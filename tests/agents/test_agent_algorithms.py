"""ProxyTD3 / ProxySAC: every algo x target x actor trains, saves, loads, predicts and evaluates; soft+MLP
equals SB3; determinism; option validation; PLIF learning-rate group; timeouts are not terminal."""

import csv

import numpy as np
import pytest
import torch
from spikerl.agents import (
    ALGORITHMS,
    ProxySAC,
    ProxyTD3,
    SNNActor,
    SNNGaussianActor,
    SNNSACPolicy,
    SNNTD3Policy,
)
from spikerl.envs import make_env
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from spikerl import SpikingActor, SpikingGaussianActor

TINY_PROXY = dict(proxy_hidden=(32, 32), diagnostics_every=20)


def tiny() -> dict:
    """Tiny budget; a fresh dict each time (SB3's SAC writes ``use_sde`` into ``policy_kwargs``)."""
    return dict(learning_starts=50, batch_size=32, buffer_size=1000, policy_kwargs=dict(net_arch=[32, 32]))


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("algo", ["td3", "sac"])
@pytest.mark.parametrize("target", ["proxy", "soft"])
@pytest.mark.parametrize("policy", ["SNNPolicy", "MlpPolicy"])
def test_train_save_load_predict_evaluate(algo, target, policy, tmp_path):
    cls = ALGORITHMS[algo]
    env = make_env("InvertedPendulum-v5", seed=0)
    model = cls(policy, env, target=target, seed=0, **tiny(), **TINY_PROXY)
    model.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    before = _params(model.policy)
    model.learn(200, log_interval=1)
    assert model._n_updates == 150
    assert any(not torch.equal(before[k], v) for k, v in _params(model.policy).items())  # it learned
    with open(tmp_path / "log" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    logged = {k: [float(r[k]) for r in rows if r.get(k)] for k in rows[-1]}
    assert np.isfinite(logged["train/critic_loss"]).all() and len(logged["train/critic_loss"]) > 0
    assert bool(logged.get("train/proxy_loss")) == (target == "proxy")
    snn = policy == "SNNPolicy"
    assert bool(logged.get("snn/rate_hidden0")) == snn
    if snn:
        for key in ("snn/rate_encoder", "snn/rate_hidden1", "snn/rate_output", "snn/window_hidden0"):
            assert logged[key] and all(0.0 <= v <= 1.0 for v in logged[key]), key
        net_cls = SpikingActor if algo == "td3" else SpikingGaussianActor
        assert isinstance(model.actor.network, net_cls)
    assert (model.proxy is not None) == (target == "proxy")

    model.save(tmp_path / "model.zip")
    loaded = cls.load(tmp_path / "model.zip", env=env)
    assert type(loaded.actor) is type(model.actor) and loaded.target == target
    for key, value in _params(model.policy).items():
        assert torch.equal(loaded.policy.state_dict()[key], value), key
    if target == "proxy":
        for key, value in _params(model.proxy).items():
            assert torch.equal(loaded.proxy.state_dict()[key], value), key
        assert loaded.proxy.optimizer.state_dict()["state"]  # Adam moments restored for resume
    obs = np.stack([env.observation_space.sample() for _ in range(8)])
    for deterministic in (True, False):
        if not deterministic and algo == "td3":
            continue
        torch.manual_seed(1)
        a, _ = model.predict(obs, deterministic=deterministic)
        torch.manual_seed(1)
        b, _ = loaded.predict(obs, deterministic=deterministic)
        np.testing.assert_array_equal(a, b)
    # the loaded model drives the same episodes as the trained one (deterministic actions, same env seed)
    episodes = [evaluate_policy(m, make_env("InvertedPendulum-v5", seed=1, max_episode_steps=50), n_eval_episodes=2,
                                return_episode_rewards=True) for m in (model, loaded)]
    assert episodes[0] == episodes[1]
    returns, lengths = episodes[1]
    assert len(returns) == 2 and all(1 <= n <= 50 for n in lengths)
    # InvertedPendulum-v5 pays +1 per step and 0 on the step it falls: the returns are the episodes' own
    assert all(n - 1 <= r <= n for r, n in zip(returns, lengths, strict=True))


def test_snn_policy_kwargs_are_used_and_restored(tmp_path):
    env = make_env("Hopper-v5", seed=0)
    kwargs = dict(net_arch=dict(pi=[24, 16], qf=[32, 32]), neuron="clif", T=3, pop_dim=4, decoder_pop_dim=6,
                  neuron_kwargs={"threshold": 0.4})
    model = ProxyTD3("SNNPolicy", env, target="soft", seed=0, buffer_size=100, policy_kwargs=kwargs)
    net = model.actor.network
    assert isinstance(model.actor, SNNActor) and isinstance(model.policy, SNNTD3Policy)
    assert (net.T, net.hidden, net.neuron_name, net.encoder.pop_dim, net.decoder.pop_dim) == (3, (24, 16), "clif", 4, 6)
    assert net.neurons[0].threshold == 0.4
    assert [m.out_features for m in model.critic.qf0 if isinstance(m, torch.nn.Linear)] == [32, 32, 1]
    model.save(tmp_path / "m.zip")
    loaded = ProxyTD3.load(tmp_path / "m.zip")
    assert loaded.actor.network.config() == net.config()
    assert loaded.actor_target.network.config() == net.config()
    # the policy alone also round-trips (BaseModel.save / load use _get_constructor_parameters)
    model.policy.save(tmp_path / "policy.pth")
    policy = SNNTD3Policy.load(tmp_path / "policy.pth")
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(4)]), dtype=torch.float32)
    torch.testing.assert_close(policy.actor(obs), model.actor(obs), rtol=0, atol=0)

    sac = ProxySAC("SNNPolicy", env, seed=0, buffer_size=100, policy_kwargs=dict(net_arch=[16], T=2))
    assert isinstance(sac.actor, SNNGaussianActor) and isinstance(sac.policy, SNNSACPolicy)
    assert sac.actor.network.T == 2 and sac.actor.network.log_std_hidden == (16,)


@pytest.mark.parametrize("ours, sb3", [(ProxyTD3, TD3), (ProxySAC, SAC)])
def test_soft_target_with_mlp_policy_is_sb3(ours, sb3):
    # build-then-learn one after the other: the constructor seeds the global RNGs that learn() draws from
    a = ours("MlpPolicy", make_env("InvertedPendulum", seed=3), target="soft", seed=3, **tiny())
    a.learn(150)
    b = sb3("MlpPolicy", make_env("InvertedPendulum", seed=3), seed=3, **tiny())
    b.learn(150)
    assert a._n_updates == b._n_updates == 100
    pa, pb = a.policy.state_dict(), b.policy.state_dict()
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key


def test_same_seed_same_actions_on_cpu():
    def run(seed: int) -> np.ndarray:
        model = ProxyTD3("SNNPolicy", make_env("Hopper", seed=seed), seed=seed, **tiny(), **TINY_PROXY)
        model.learn(120)
        obs = np.linspace(-1, 1, 5 * 11, dtype=np.float32).reshape(5, 11)
        return model.predict(obs, deterministic=True)[0]

    first, second, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_invalid_options_are_rejected():
    env = make_env("InvertedPendulum", seed=0)
    with pytest.raises(ValueError, match="target must be one of"):
        ProxyTD3("SNNPolicy", env, target="polyak")
    with pytest.raises(ValueError, match="proxy_iters"):
        ProxyTD3("SNNPolicy", env, proxy_iters=0)
    with pytest.raises(ValueError, match="proxy_lr"):
        ProxySAC("SNNPolicy", env, proxy_lr=-1.0)
    with pytest.raises(ValueError, match="proxy_hidden"):
        ProxyTD3("SNNPolicy", env, proxy_hidden=[])
    with pytest.raises(ValueError, match="gSDE"):
        ProxySAC("MlpPolicy", env, target="proxy", use_sde=True)


@pytest.mark.parametrize("target, plif_lr, expected", [("proxy", None, 5e-5), ("soft", None, 1e-4),
                                                       ("proxy", 3e-5, 3e-5)])
def test_plif_decays_get_their_own_learning_rate(target, plif_lr, expected):
    kwargs = {**tiny(), "policy_kwargs": dict(net_arch=[32, 32], neuron="plif")}
    model = ProxyTD3("SNNPolicy", make_env("InvertedPendulum", seed=0), target=target, proxy_lr=5e-4,
                     plif_lr=plif_lr, learning_rate=3e-4, seed=0, proxy_hidden=(32, 32), **kwargs)
    groups = model.actor.optimizer.param_groups
    assert [g.get("name") for g in groups] == [None, "plif"]
    assert len(groups[1]["params"]) == 3  # one decay per spiking layer (2 hidden + output population)
    before = [float(n.decay_logit.detach()) for n in model.actor.network.snn.neurons]
    model.learn(80)
    assert groups[0]["lr"] == pytest.approx(3e-4) and groups[1]["lr"] == pytest.approx(expected)
    after = [float(n.decay_logit.detach()) for n in model.actor.network.snn.neurons]
    assert before != after  # the decays are trained


def test_timeouts_are_not_terminal_in_the_replay_buffer():
    model = ProxyTD3("MlpPolicy", make_env("InvertedPendulum", seed=0, max_episode_steps=4), target="soft",
                     seed=0, learning_starts=1000, buffer_size=100)
    model.learn(40)
    buf = model.replay_buffer
    n = buf.pos
    timeouts = buf.timeouts[:n, 0].astype(bool)
    assert timeouts.any() and buf.dones[:n, 0][timeouts].all()  # the env said done at the time limit ...
    samples = buf._get_samples(np.arange(n))
    assert (samples.dones.numpy()[timeouts] == 0).all()  # ... but the critic target bootstraps there


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_actor_loss_skips_critic_weight_gradients_with_the_same_actor_gradients(algo):
    model = ALGORITHMS[algo]("SNNPolicy", make_env("Hopper", seed=0), seed=0, **tiny(), **TINY_PROXY)
    obs = torch.randn(8, 11)

    def actor_grads(frozen: bool) -> tuple[list[torch.Tensor], list]:
        model.actor.optimizer.zero_grad(set_to_none=True)
        model.critic.optimizer.zero_grad(set_to_none=True)
        actions = model.actor(obs) if algo == "td3" else model.actor.action_log_prob(obs)[0]
        if frozen:
            with model._critic_frozen():
                assert not any(p.requires_grad for p in model.critic.parameters())
                q = model.critic.q1_forward(obs, actions)
        else:
            q = model.critic.q1_forward(obs, actions)
        (-q.mean()).backward()
        return [p.grad.clone() for p in model.actor.parameters() if p.grad is not None], [
            p.grad for p in model.critic.parameters()]

    torch.manual_seed(1)
    ref, critic_ref = actor_grads(False)
    torch.manual_seed(1)
    got, critic_got = actor_grads(True)
    assert all(p.requires_grad for p in model.critic.parameters())  # restored
    assert len(got) == len(ref) > 0
    for a, b in zip(got, ref, strict=True):
        assert torch.equal(a, b)
    assert any(g is not None for g in critic_ref) and all(g is None for g in critic_got)
