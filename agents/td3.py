"""ProxyTD3: TD3 (Fujimoto et al. 2018) with a spiking or ANN actor and a choice of target actor.

``target="proxy"`` is Proxy Target TD3 (Xu et al., NeurIPS 2025, Algorithm 3): an ANN proxy, trained by
imitation of the current actor, replaces the Polyak-averaged target actor, which is then not built.
``target="soft"`` is TD3 itself (with ``policy="MlpPolicy"`` it is SB3's TD3 step for step: same random
draws, same parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch as th
from spikerl.agents.common import ProxyTargetMixin, drop_removed_options, min_q
from spikerl.agents.policies import MlpTD3Policy, NoTargetActor, SNNTD3Policy
from stable_baselines3 import TD3
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.td3.policies import TD3Policy
from torch.nn import functional as F


class ProxyTD3(ProxyTargetMixin, TD3):
    """SB3 TD3 with ``target="proxy" | "soft"``; ``policy`` is "SNNPolicy" (spiking actor) or "MlpPolicy".

    "SNNPolicy" defaults to ``net_arch=[256, 256]`` (the paper's); "MlpPolicy" is SB3's own policy with
    SB3's default [400, 300], so pass ``policy_kwargs=dict(net_arch=[256, 256])`` for the paper's ANN
    baseline. SB3's constructor defaults (lr 1e-3, learning_starts 100) also stay; the paper uses lr
    3e-4 and 25k start steps (the presets in ``spikerl.configs`` set them).

    Extra arguments (keyword-only; everything else is SB3 TD3's):
        target: "proxy" (Proxy Target, default) or "soft" (Polyak-averaged target actor: vanilla TD3).
        proxy_hidden: proxy MLP hidden sizes (paper: 512-512 for LIF/DN, 800-600 for CLIF).
        proxy_lr: the proxy's Adam learning rate (paper: 1e-3 LIF, 3e-3 CLIF/DN).
        proxy_iters: K, proxy imitation steps per gradient step, each on a fresh replay minibatch (3).
        plif_lr: Adam lr of PLIF decay parameters (own param group); None = proxy_lr * 0.1 under
            "proxy", 1e-4 under "soft" (the Proxy-Target-with-PLIF fork's defaults).
        diagnostics_every: log ``snn/rate_<layer>`` and ``snn/window_<layer>`` every this many
            gradient updates (0 = never).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **TD3.policy_aliases, "MlpPolicy": MlpTD3Policy, "SNNPolicy": SNNTD3Policy}

    def __init__(self, policy: str | type[BasePolicy], env: Any, *args: Any, target: str = "proxy",
                 proxy_hidden: Sequence[int] = (512, 512), proxy_lr: float = 1e-3, proxy_iters: int = 3,
                 plif_lr: float | None = None, diagnostics_every: int = 100, **kwargs: Any) -> None:
        drop_removed_options(kwargs)
        self._init_proxy_options(target, proxy_hidden, proxy_lr, proxy_iters, plif_lr, diagnostics_every)
        super().__init__(policy, env, *args, **kwargs)

    def _setup_model(self) -> None:
        if self.policy_class is TD3Policy:  # a model saved before "MlpPolicy" meant MlpTD3Policy
            self.policy_class = MlpTD3Policy
        if issubclass(self.policy_class, MlpTD3Policy | SNNTD3Policy):
            # the proxy replaces the target actor; a copy, as SB3 keeps the caller's dict
            self.policy_kwargs = {**self.policy_kwargs, "build_actor_target": self.target == "soft"}
        super()._setup_model()
        self._setup_proxy(squash=True)
        self._drop_obsolete_attributes()

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """``gradient_steps`` TD3 updates. Per update (B = batch_size, d = policy_delay, pi = the actor):

        1. proxy imitation (target="proxy"): draw K fresh minibatches s_1..s_K; labels y_k = pi(s_k) from
           the actor before its update (no gradient); K Adam steps on L_proxy = mean ||pi_proxy(s_k) - y_k||^2.
           The critic and actor steps below reuse minibatch K (as the authors' code does).
        2. critic: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma^2), with mu' = pi_proxy
           (proxy) or the Polyak target actor (soft);  y = r + gamma (1 - terminated) min_j Q'_j(s', a');
           L_Q = sum_j mean (Q_j(s, a) - y)^2.
        3. actor, every d-th update: L_pi = -mean Q_1(s, pi(s)) (BPTT through the SNN, surrogate gradients).
        4. Polyak, with the actor step: theta'_Q <- tau theta_Q + (1 - tau) theta'_Q, and for "soft" also
           phi' <- tau phi + (1 - tau) phi'.

        Timeouts are not terminal: SB3's replay buffer zeroes ``dones`` of truncated transitions
        (``handle_timeout_termination``), so ``dones`` is ``terminated``. A non-finite loss raises
        ``NonFiniteLossError`` before its optimizer step.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rates([self.actor.optimizer, self.critic.optimizer])
        actor_losses, critic_losses, proxy_losses = [], [], []

        for _ in range(gradient_steps):
            self._n_updates += 1
            actor_step = self._n_updates % self.policy_delay == 0
            actions_pi = None  # pi(s_K) with its graph, computed once on actor steps

            # 1. Proxy imitation on K fresh minibatches; labels pi(s_k) from the actor before its update, in
            #    one batched no-grad pass (on actor steps y_K is the actor loss's own pi(s_K), detached)
            if self.target == "proxy":
                obs_k, data = self._sample_for_proxy(batch_size)
                if actor_step:
                    actions_pi = self.actor(data.observations)
                labels = self._proxy_labels(obs_k, self.actor, actions_pi)
                proxy_losses.append(self._imitate_actor(obs_k, labels))
            else:
                data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)

            # 2. Critic: clipped double-Q target y = r + gamma (1 - terminated) min_j Q'_j(s', a')
            with th.no_grad():
                next_actions = self._smoothed_target_action(data)
                discounts = data.discounts if data.discounts is not None else self.gamma
                target_q = data.rewards + (1 - data.dones) * discounts * min_q(
                    self.critic_target, data.next_observations, next_actions)
            critic_loss = sum(F.mse_loss(q, target_q) for q in self.critic(data.observations, data.actions))
            self._optimize("critic", critic_loss, self.critic.optimizer)
            critic_losses.append(critic_loss.detach())

            if actor_step:
                # 3. Delayed actor step: L_pi = -mean Q_1(s, pi(s)); only dQ/da is needed of the critic
                if actions_pi is None:
                    actions_pi = self.actor(data.observations)
                with self._critic_frozen():
                    actor_loss = -self.critic.q1_forward(data.observations, actions_pi).mean()
                self._optimize("actor", actor_loss, self.actor.optimizer)
                actor_losses.append(actor_loss.detach())

                # 4. Polyak averaging of the target critics (and of the target actor under "soft")
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                if self.target == "soft":
                    polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                    polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

            self._log_diagnostics(data.observations)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", float(th.stack(actor_losses).mean()))
        if critic_losses:
            self.logger.record("train/critic_loss", float(th.stack(critic_losses).mean()))
        if proxy_losses:
            self.logger.record("train/proxy_loss", float(th.cat(proxy_losses).mean()))

    def _smoothed_target_action(self, data: ReplayBufferSamples) -> th.Tensor:
        """Target policy smoothing: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma^2).

        mu' is the proxy (target="proxy") or the Polyak target actor (target="soft"); eps is drawn before
        mu' runs, as SB3 draws it, so the random stream is SB3's.
        """
        noise = data.actions.clone().normal_(0, self.target_policy_noise)
        noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
        target_actor = self.proxy if self.target == "proxy" else self.actor_target
        return (target_actor(data.next_observations) + noise).clamp(-1, 1)

    # -- save / load ---------------------------------------------------------------------------------
    def set_parameters(self, load_path_or_dict: str | dict[str, Any], exact_match: bool = True,
                       device: th.device | str = "auto") -> None:
        """SB3's ``set_parameters``; a model saved while the unused target actor was still built (target
        "proxy") holds ``actor_target.*`` tensors, which this policy has no place for: they are dropped."""
        params = load_path_or_dict
        if not isinstance(params, dict):
            _, params, _ = load_from_zip_file(load_path_or_dict, device=device, load_data=False)
        if isinstance(self.policy.actor_target, NoTargetActor) and "policy" in params:
            params = {**params, "policy": {k: v for k, v in params["policy"].items()
                                           if not k.startswith("actor_target.")}}
        super().set_parameters(params, exact_match=exact_match, device=device)
