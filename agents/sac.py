"""ProxySAC: SAC (Haarnoja et al. 2018) with a spiking or ANN actor and a choice of next-state policy.

SAC has no target actor (next-state actions come from the online actor), so Proxy Target does not
transfer verbatim. spikerl's extension (experimental, not in the paper; reference §1.7 route 2):

- ``target="soft"``: standard SAC. Polyak-averaged critics; a' ~ pi(.|s') from the online actor. With
  ``policy="MlpPolicy"`` it is SB3's SAC step for step.
- ``target="proxy"``: an ANN proxy mean head m_proxy(s) is trained by K imitation steps per update to
  the actor's pre-tanh Gaussian mean m(s) on fresh replay states (labels under no_grad). The critic's
  next-state distribution is the squashed Gaussian N(m_proxy(s'), exp(log_std(s'))^2) with the log-std
  of the ONLINE actor's ANN log-std head (choice documented: that head is already a smooth ANN, so
  a copy would only add lag and another regression; the spiking part, the mean, is the one proxied).
  a' and log pi(a'|s') for the soft Bellman target are drawn from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch as th
from spikerl.agents.adam_step import adam_step
from spikerl.agents.common import ProxyTargetMixin
from spikerl.agents.policies import SNNGaussianActor, SNNSACPolicy
from stable_baselines3 import SAC
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F


class ProxySAC(ProxyTargetMixin, SAC):
    """SB3 SAC with ``target="proxy" | "soft"``; ``policy`` is "SNNPolicy" (spiking mean) or "MlpPolicy".

    Extra arguments as ``ProxyTD3`` (target, proxy_hidden, proxy_lr, proxy_iters, plif_lr,
    diagnostics_every); the proxy here outputs the pre-tanh mean (no tanh head).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {**SAC.policy_aliases, "SNNPolicy": SNNSACPolicy}

    def __init__(self, policy: str | type[BasePolicy], env: Any, *args: Any, target: str = "proxy",
                 proxy_hidden: Sequence[int] = (512, 512), proxy_lr: float = 1e-3, proxy_iters: int = 3,
                 plif_lr: float | None = None, diagnostics_every: int = 100, **kwargs: Any) -> None:
        self._init_proxy_options(target, proxy_hidden, proxy_lr, proxy_iters, plif_lr, diagnostics_every)
        super().__init__(policy, env, *args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.target == "proxy" and self.use_sde:
            raise ValueError("target='proxy' does not support use_sde=True (gSDE); use use_sde=False or "
                             "target='soft'")
        self._setup_proxy(squash=False)

    def _actor_mean(self, obs: th.Tensor) -> th.Tensor:
        """Pre-tanh Gaussian mean of the online actor (the spiking mean for an SNN actor)."""
        if isinstance(self.actor, SNNGaussianActor):
            return self.actor.network.decode(self.actor.extract_features(obs, self.actor.features_extractor))
        return self.actor.get_action_dist_params(obs)[0]

    def _actor_log_std(self, obs: th.Tensor) -> th.Tensor:
        if isinstance(self.actor, SNNGaussianActor):
            return self.actor.log_std_of(obs)
        return self.actor.get_action_dist_params(obs)[1]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` SAC updates; per update (alpha = entropy coefficient):

        proxy (target="proxy"): K fresh minibatches, labels m(s_k) under no_grad in ONE batched actor
            call (m(s_K) is the detached mean of the actor pass below, computed once), K Adam steps on
            mean ||m_proxy(s_k) - m(s_k)||^2; the update below reuses minibatch K.
        alpha (auto): L_alpha = -log(alpha) (log pi(a|s) + H_target),  a ~ pi(.|s).
        target: a' ~ pi'(.|s'), pi' = tanh(N(m_proxy(s'), sigma(s'))) (proxy) or pi(.|s') (soft);
            y = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi'(a'|s')).
        critic: L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2.
        actor: L_pi = mean(alpha log pi(a|s) - min_j Q_j(s, a)), a ~ pi(.|s) (reparameterised, STBP).
        Polyak: theta'_Q <- tau theta_Q + (1 - tau) theta'_Q every ``target_update_interval`` steps.
        A non-finite loss raises ``NonFiniteLossError`` before its optimizer step.
        """
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rates(optimizers)
        use_proxy = self.target == "proxy"
        ent_coef_losses, ent_coefs, actor_losses, critic_losses, proxy_losses = [], [], [], [], []

        for gradient_step in range(gradient_steps):
            self._n_updates += 1

            # 1. Proxy imitation of the actor's mean on K fresh minibatches (labels of minibatches
            #    1..K-1 in one batched no-grad call; minibatch K's come from the actor pass below)
            if use_proxy:
                obs_k, data = self._sample_for_proxy(batch_size)
            else:
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = data.discounts if data.discounts is not None else self.gamma
            if self.use_sde:
                self.actor.reset_noise()
            mean_pi, log_std_pi, dist_kwargs = self.actor.get_action_dist_params(data.observations)
            if use_proxy:
                proxy_losses.append(self._train_proxy(obs_k, self._proxy_labels(obs_k, self._actor_mean, mean_pi)))

            # 2. Entropy coefficient
            actions_pi, log_prob = self.actor.action_dist.log_prob_from_params(mean_pi, log_std_pi, **dist_kwargs)
            log_prob = log_prob.reshape(-1, 1)
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                self._check_finite("ent_coef", ent_coef_loss)
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                adam_step(self.ent_coef_optimizer)
                ent_coef_losses.append(ent_coef_loss.detach())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.detach().reshape(()))

            # 3. Critic: soft Bellman target from the proxy's or the actor's next-state distribution
            with th.no_grad():
                if use_proxy:
                    next_mean = self.proxy(data.next_observations)
                    next_log_std = self._actor_log_std(data.next_observations)
                    next_actions, next_log_prob = self.actor.action_dist.log_prob_from_params(next_mean, next_log_std)
                else:
                    next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
                next_q = th.cat(self.critic_target(data.next_observations, next_actions), dim=1)
                next_q, _ = th.min(next_q, dim=1, keepdim=True)
                next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
                target_q = data.rewards + (1 - data.dones) * discounts * next_q
            current_q = self.critic(data.observations, data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            self._check_finite("critic", critic_loss)
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            adam_step(self.critic.optimizer)
            critic_losses.append(critic_loss.detach())

            # 4. Actor
            with self._critic_frozen():
                q_pi = th.cat(self.critic(data.observations, actions_pi), dim=1)
            min_q_pi, _ = th.min(q_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_q_pi).mean()
            self._check_finite("actor", actor_loss)
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            adam_step(self.actor.optimizer)
            actor_losses.append(actor_loss.detach())

            # 5. Polyak averaging of the critics
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

            self._log_diagnostics(data.observations)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(th.stack(ent_coefs).mean()))
        self.logger.record("train/actor_loss", float(th.stack(actor_losses).mean()))
        self.logger.record("train/critic_loss", float(th.stack(critic_losses).mean()))
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", float(th.stack(ent_coef_losses).mean()))
        if proxy_losses:
            self.logger.record("train/proxy_loss", float(th.cat(proxy_losses).mean()))
