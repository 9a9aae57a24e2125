"""ProxyTD3 / ProxySAC ``train()`` against the Proxy Target update written out here from its equations.

Everything runs in float64 on a fixed replay buffer whose minibatch indices are recorded, so the
reference uses the transitions the algorithm drew; the Gaussian noises are reproduced by seeding
torch's global generator and drawing in the algorithm's order (TD3: the target-smoothing noise; SAC:
the actor's sample on s, then the target's on s'). The reference takes the networks as functions only
(forward passes of copies made before the update) and writes out the rest: the K proxy imitation
steps, the critic targets, the losses, Adam and Polyak.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from spikerl.agents import ProxySAC, ProxyTD3
from spikerl.envs import make_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples

K, BATCH, TRANSITIONS = 3, 64, 500
OBS_DIM, ACT_DIM = 11, 3  # Hopper

# The algorithm and the reference compute the same float64 quantities in different operation orders
# (one batched label pass against K separate ones, torch's fused Adam against the formula below, SB3's
# distribution against the written-out log-density). The unit roundoff is u = 2^-53 ~ 1.1e-16, and a
# sum of n terms carries at most n u relative error (Higham's gamma_n); the widest sum here has
# n = K * BATCH = 192 terms and at most ~20 such operations depend on each other within one update,
# so the results agree to 20 * 192 * u ~ 4e-13 relative. The tolerances keep a 100x margin on that;
# atol covers Adam's step m / (sqrt(v) + eps) for gradients near zero (absolute error lr * 4e-13 / eps).
TOL = dict(rtol=5e-11, atol=5e-11)


class RecordingReplay:
    """A replay buffer of fixed float64 transitions that records the indices of every ``sample``."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        # observations exact in float32: SB3's feature extraction casts them to float32 before the networks
        self.observations = rng.normal(size=(TRANSITIONS, OBS_DIM)).astype(np.float32).astype(np.float64)
        self.actions = rng.uniform(-1.0, 1.0, size=(TRANSITIONS, ACT_DIM))
        self.next_observations = rng.normal(size=(TRANSITIONS, OBS_DIM)).astype(np.float32).astype(np.float64)
        self.rewards = rng.normal(size=(TRANSITIONS, 1))
        self.dones = (rng.uniform(size=(TRANSITIONS, 1)) < 0.2).astype(np.float64)  # terminated
        self.rng = np.random.default_rng(seed + 1)
        self.drawn: list[np.ndarray] = []

    def sample(self, batch_size: int, env: object = None) -> ReplayBufferSamples:
        idx = self.rng.integers(0, TRANSITIONS, size=batch_size)
        self.drawn.append(idx)
        return self.batch(idx)

    def batch(self, idx: np.ndarray) -> ReplayBufferSamples:
        arrays = (self.observations, self.actions, self.next_observations, self.dones, self.rewards)
        return ReplayBufferSamples(*(torch.as_tensor(a[idx]) for a in arrays))

    def minibatches(self, n_updates: int) -> np.ndarray:
        """The indices drawn, as ``[update, k, BATCH]``: K fresh minibatches per update, in draw order."""
        idx = np.concatenate(self.drawn)
        assert idx.size == n_updates * K * BATCH, "each update draws K minibatches of BATCH transitions"
        return idx.reshape(n_updates, K, BATCH)


def float64_model(cls: type) -> tuple:
    model = cls("SNNPolicy", make_env("Hopper", seed=0), target="proxy", seed=0, learning_rate=3e-4,
                proxy_lr=1e-3, proxy_iters=K, proxy_hidden=(32, 32), batch_size=BATCH, buffer_size=1000,
                gamma=0.99, tau=0.005, policy_kwargs=dict(net_arch=[32, 32], neuron="lif", T=5))
    model.policy.double()
    model.proxy.double()
    if cls is ProxySAC:
        model.log_ent_coef.data = model.log_ent_coef.data.double()
    replay = RecordingReplay()
    model.replay_buffer = replay
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model, replay


class Adam:
    """Adam (Kingma & Ba 2015) as written: m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        group = optimizer.param_groups[0]
        assert len(optimizer.param_groups) == 1 and group["weight_decay"] == 0 and not group["amsgrad"]
        self.params, self.lr, (self.b1, self.b2), self.eps = params, group["lr"], group["betas"], group["eps"]
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self, loss: torch.Tensor) -> None:
        grads = torch.autograd.grad(loss, self.params)
        self.t += 1
        with torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
                m.mul_(self.b1).add_((1 - self.b1) * g)
                v.mul_(self.b2).add_((1 - self.b2) * g * g)
                p.sub_(self.lr * (m / (1 - self.b1**self.t)) / ((v / (1 - self.b2**self.t)).sqrt() + self.eps))


class Reference:
    """Copies of the model's networks, taken before ``train``, and Adam for each optimizer."""

    def __init__(self, model: ProxyTD3 | ProxySAC) -> None:
        self.actor = copy.deepcopy(model.actor)
        self.critic = copy.deepcopy(model.critic)
        self.critic_target = copy.deepcopy(model.critic_target)
        self.proxy = copy.deepcopy(model.proxy)
        for net in (self.actor, self.critic, self.critic_target, self.proxy):
            net.requires_grad_(False)
        self.actor_params = [p.requires_grad_(True) for p in self.actor.parameters()]
        self.critic_params = [p.requires_grad_(True) for p in self.critic.parameters()]
        self.proxy_params = [p.requires_grad_(True) for p in self.proxy.parameters()]
        self.actor_adam = Adam(self.actor_params, model.actor.optimizer)
        self.critic_adam = Adam(self.critic_params, model.critic.optimizer)
        self.proxy_adam = Adam(self.proxy_params, model.proxy.optimizer)
        self.gamma, self.tau = model.gamma, model.tau

    def imitate(self, obs_k: list[torch.Tensor], label_fn) -> None:
        """K Adam steps on L_k = mean ||proxy(s_k) - y_k||^2, labels y_k = label_fn(s_k) all taken first."""
        with torch.no_grad():
            labels = [label_fn(s) for s in obs_k]
        for s, y in zip(obs_k, labels, strict=True):
            self.proxy_adam.step(((self.proxy(s) - y) ** 2).mean())

    def polyak(self) -> None:
        """theta'_Q <- tau theta_Q + (1 - tau) theta'_Q."""
        with torch.no_grad():
            for p_targ, p in zip(self.critic_target.parameters(), self.critic.parameters(), strict=True):
                p_targ.copy_(self.tau * p + (1 - self.tau) * p_targ)


def td3_reference_update(ref: Reference, replay: RecordingReplay, idx: np.ndarray, actor_step: bool,
                         sigma: float = 0.2, c: float = 0.5) -> None:
    """Proxy Target TD3 (paper Algorithm 3): proxy imitation, critic target from the proxy, delayed actor."""
    ref.imitate([replay.batch(i).observations for i in idx], ref.actor)
    last = replay.batch(idx[-1])  # the critic and actor steps use minibatch K
    s, a, s2, d, r = last.observations, last.actions, last.next_observations, last.dones, last.rewards
    with torch.no_grad():
        eps = torch.empty_like(a).normal_(0.0, sigma).clamp(-c, c)
        a2 = (ref.proxy(s2) + eps).clamp(-1.0, 1.0)
        q1_targ, q2_targ = ref.critic_target(s2, a2)
        y = r + ref.gamma * (1 - d) * torch.minimum(q1_targ, q2_targ)
    q1, q2 = ref.critic(s, a)
    ref.critic_adam.step(((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean())
    if actor_step:
        ref.actor_adam.step(-ref.critic.q1_forward(s, ref.actor(s)).mean())
        ref.polyak()


def squashed_gaussian(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a = tanh(u), u = mean + sigma eps, eps ~ N(0, I);  log pi(a) = sum_i log N(u_i; mean_i, sigma_i^2)
    - log(1 - a_i^2 + 1e-6)  (the tanh change of variables, with SB3's 1e-6 guard)."""
    u = mean + log_std.exp() * torch.empty_like(mean).normal_()
    a = torch.tanh(u)
    log_normal = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return a, (log_normal - torch.log(1 - a**2 + 1e-6)).sum(dim=1, keepdim=True)


def sac_reference_update(ref: Reference, replay: RecordingReplay, idx: np.ndarray, log_alpha: torch.Tensor,
                         alpha_adam: Adam) -> None:
    """spikerl's Proxy Target SAC: the proxy imitates the actor's pre-tanh mean; a' ~ tanh(N(proxy(s'),
    sigma(s')^2)) with sigma from the online actor's log-std head; automatic temperature."""
    ref.imitate([replay.batch(i).observations for i in idx], lambda obs: ref.actor.network(obs)[0])
    last = replay.batch(idx[-1])
    s, a, s2, d, r = last.observations, last.actions, last.next_observations, last.dones, last.rewards
    mean, log_std = ref.actor.network(s)
    a_pi, log_pi = squashed_gaussian(mean, log_std)
    alpha = log_alpha.detach().exp()  # the temperature before its step weighs this update's targets
    alpha_adam.step(-(log_alpha * (log_pi + (-ACT_DIM)).detach()).mean())
    with torch.no_grad():
        a2, log_pi2 = squashed_gaussian(ref.proxy(s2), ref.actor.network.log_std_net(s2).clamp(-20.0, 2.0))
        q1_targ, q2_targ = ref.critic_target(s2, a2)
        y = r + ref.gamma * (1 - d) * (torch.minimum(q1_targ, q2_targ) - alpha * log_pi2)
    q1, q2 = ref.critic(s, a)
    ref.critic_adam.step(0.5 * (((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()))
    q1_pi, q2_pi = ref.critic(s, a_pi)
    ref.actor_adam.step((alpha * log_pi - torch.minimum(q1_pi, q2_pi)).mean())
    ref.polyak()


def assert_same_parameters(model_net: torch.nn.Module, ref_net: torch.nn.Module) -> None:
    for (name, p), q in zip(model_net.named_parameters(), ref_net.parameters(), strict=True):
        assert p.dtype == torch.float64
        torch.testing.assert_close(p.detach(), q.detach(), **TOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("n_updates", [1, 2])
def test_proxy_td3_train_is_the_written_out_update(n_updates):
    model, replay = float64_model(ProxyTD3)
    assert model.policy_delay == 2 and model.target_policy_noise == 0.2 and model.target_noise_clip == 0.5
    ref = Reference(model)
    actor_before = [p.detach().clone() for p in model.actor.parameters()]
    torch.manual_seed(11)
    model.train(gradient_steps=n_updates, batch_size=BATCH)

    torch.manual_seed(11)
    for n, idx in enumerate(replay.minibatches(n_updates), start=1):
        assert len(np.unique(idx[0])) > BATCH // 2 and not np.array_equal(idx[0], idx[1])  # fresh minibatches
        td3_reference_update(ref, replay, idx, actor_step=n % model.policy_delay == 0)
    for model_net, ref_net in ((model.proxy, ref.proxy), (model.critic, ref.critic),
                               (model.critic_target, ref.critic_target), (model.actor, ref.actor)):
        assert_same_parameters(model_net, ref_net)
    actor_changed = [not torch.equal(p, q) for p, q in zip(model.actor.parameters(), actor_before, strict=True)]
    if n_updates == 1:
        assert not any(actor_changed)  # no actor step yet: the SNN is exactly as it was
        assert all(torch.equal(p, q) for p, q in zip(model.critic_target.parameters(),
                                                     ref.critic_target.parameters(), strict=True))
    else:
        assert all(actor_changed)  # the delayed actor step moved every actor parameter


@pytest.mark.parametrize("n_updates", [1, 2])
def test_proxy_sac_train_is_the_written_out_update(n_updates):
    model, replay = float64_model(ProxySAC)
    assert model.target_entropy == -ACT_DIM and model.target_update_interval == 1
    ref = Reference(model)
    log_alpha = model.log_ent_coef.detach().clone().requires_grad_(True)
    alpha_adam = Adam([log_alpha], model.ent_coef_optimizer)
    torch.manual_seed(12)
    model.train(gradient_steps=n_updates, batch_size=BATCH)

    torch.manual_seed(12)
    for idx in replay.minibatches(n_updates):
        sac_reference_update(ref, replay, idx, log_alpha, alpha_adam)
    for model_net, ref_net in ((model.proxy, ref.proxy), (model.critic, ref.critic),
                               (model.critic_target, ref.critic_target), (model.actor, ref.actor)):
        assert_same_parameters(model_net, ref_net)
    torch.testing.assert_close(model.log_ent_coef.detach(), log_alpha.detach(), **TOL)
    assert float(log_alpha.detach()) != 0.0  # the temperature moved from its initial log(1)
