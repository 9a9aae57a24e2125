"""ProxySAC: SAC (Haarnoja et al. 2018) with a spiking or ANN actor and a choice of next-state policy.

SAC has no target actor (next-state actions come from the online actor), so Proxy Target does not
transfer verbatim. spikerl's extension (experimental, not in the paper):

- ``target="soft"``: standard SAC. Polyak-averaged critics; a' ~ pi(.|s') from the online actor. With
  ``policy="MlpPolicy"`` it is SB3's SAC step for step.
- ``target="proxy"``: an ANN proxy mean head m_proxy(s) is trained by K imitation steps per update to
  the actor's pre-tanh Gaussian mean m(s) on fresh replay states (labels under no_grad). The critic's
  next-state distribution is the squashed Gaussian tanh(N(m_proxy(s'), sigma(s')^2)) with sigma from the
  ONLINE actor's ANN log-std head (why: ``ProxySAC._next_action_and_log_prob``); a' and log pi'(a'|s')
  for the soft Bellman target are drawn from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch as th
from spikerl.agents.common import ProxyTargetMixin, drop_removed_options, min_q
from spikerl.agents.policies import SNNGaussianActor, SNNSACPolicy, network_input
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
        drop_removed_options(kwargs)
        self._init_proxy_options(target, proxy_hidden, proxy_lr, proxy_iters, plif_lr, diagnostics_every)
        super().__init__(policy, env, *args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.target == "proxy" and self.use_sde:
            raise ValueError("target='proxy' does not support use_sde=True (gSDE); use use_sde=False or "
                             "target='soft'")
        self._setup_proxy(squash=False)
        self._drop_obsolete_attributes()

    def _actor_mean(self, obs: th.Tensor) -> th.Tensor:
        """Pre-tanh Gaussian mean of the online actor (the spiking mean for an SNN actor)."""
        if isinstance(self.actor, SNNGaussianActor):
            return self.actor.network.decode(network_input(self.actor, obs))
        return self.actor.get_action_dist_params(obs)[0]

    def _actor_log_std(self, obs: th.Tensor) -> th.Tensor:
        """log sigma(s) of the online actor (for an SNN actor: its ANN log-std head alone, no spiking pass)."""
        if isinstance(self.actor, SNNGaussianActor):
            return self.actor.log_std_of(obs)
        return self.actor.get_action_dist_params(obs)[1]

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` SAC updates. Per update (m = the actor's pre-tanh Gaussian mean, alpha = the
        entropy coefficient, a ~ pi(.|s) reparameterised on the critic minibatch s):

        1. proxy imitation (target="proxy"): draw K fresh minibatches s_1..s_K; labels y_k = m(s_k) from
           the actor before its update (no gradient); K Adam steps on L_proxy = mean ||m_proxy(s_k) - y_k||^2.
           The steps below reuse minibatch K.
        2. temperature (ent_coef="auto"): L_alpha = -mean log(alpha) (log pi(a|s) + H_target).
        3. critic: a' ~ pi'(.|s') with pi' = tanh(N(m_proxy(s'), sigma(s')^2)), sigma from the ONLINE
           actor's log-std head (proxy), or pi' = pi (soft);
           y = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi'(a'|s'));
           L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2.
        4. actor: L_pi = mean (alpha log pi(a|s) - min_j Q_j(s, a)) (BPTT through the SNN mean).
        5. Polyak every ``target_update_interval`` steps: theta'_Q <- tau theta_Q + (1 - tau) theta'_Q.

        Random draws in SB3's order (a, then a'). A non-finite loss raises ``NonFiniteLossError``
        before its optimizer step.
        """
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rates(optimizers)
        ent_coef_losses, ent_coefs, actor_losses, critic_losses, proxy_losses = [], [], [], [], []

        for gradient_step in range(gradient_steps):
            self._n_updates += 1
            if self.target == "proxy":
                obs_k, data = self._sample_for_proxy(batch_size)
            else:
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            if self.use_sde:
                self.actor.reset_noise()
            # the actor's Gaussian on s, with its graph: labels y_K, the temperature and the actor loss use it
            mean_pi, log_std_pi, dist_kwargs = self.actor.get_action_dist_params(data.observations)

            # 1. Proxy imitation of the mean on K fresh minibatches; labels m(s_k) from the actor before its
            #    update, in one batched no-grad pass (y_K is mean_pi, detached)
            if self.target == "proxy":
                labels = self._proxy_labels(obs_k, self._actor_mean, mean_pi)
                proxy_losses.append(self._imitate_actor(obs_k, labels))

            # 2. Temperature: a ~ pi(.|s);  L_alpha = -mean log(alpha) (log pi(a|s) + H_target)
            actions_pi, log_prob = self.actor.action_dist.log_prob_from_params(mean_pi, log_std_pi, **dist_kwargs)
            log_prob = log_prob.reshape(-1, 1)
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = th.exp(self.log_ent_coef.detach())
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                self._optimize("ent_coef", ent_coef_loss, self.ent_coef_optimizer)
                ent_coef_losses.append(ent_coef_loss.detach())
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.detach().reshape(()))

            # 3. Critic: soft Bellman target y = r + gamma (1 - terminated) (min_j Q'_j(s', a') - alpha log pi'(a'|s'))
            with th.no_grad():
                next_actions, next_log_prob = self._next_action_and_log_prob(data.next_observations)
                next_q = min_q(self.critic_target, data.next_observations, next_actions)
                next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
                discounts = data.discounts if data.discounts is not None else self.gamma
                target_q = data.rewards + (1 - data.dones) * discounts * next_q
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in self.critic(data.observations, data.actions))
            self._optimize("critic", critic_loss, self.critic.optimizer)
            critic_losses.append(critic_loss.detach())

            # 4. Actor: L_pi = mean (alpha log pi(a|s) - min_j Q_j(s, a)); only dQ/da is needed of the critic
            with self._critic_frozen():
                min_q_pi = min_q(self.critic, data.observations, actions_pi)
            actor_loss = (ent_coef * log_prob - min_q_pi).mean()
            self._optimize("actor", actor_loss, self.actor.optimizer)
            actor_losses.append(actor_loss.detach())

            # 5. Polyak averaging of the target critics
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

    def _next_action_and_log_prob(self, next_obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """a' ~ pi'(.|s') and log pi'(a'|s') for the critic target.

        target="proxy": pi' = tanh(N(m_proxy(s'), sigma(s')^2)), the proxy's mean with sigma from the online
        actor's ANN log-std head (already a smooth ANN: a copy would only add lag; the spiking part, the
        mean, is the one proxied). target="soft": the online actor's own pi(.|s'), as in SAC.
        """
        if self.target == "proxy":
            return self.actor.action_dist.log_prob_from_params(self.proxy(next_obs), self._actor_log_std(next_obs))
        return self.actor.action_log_prob(next_obs)
