"""What ProxyTD3 and ProxySAC share: target options, the proxy and its optimizer, the PLIF learning-rate
group, the proxy's minibatches and labels, one guarded optimizer step, save/load of the proxy, and the spiking
diagnostics. The update itself is written out in ``td3.py`` and ``sac.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch as th
from spikerl.agents.diagnostics import snn_diagnostics
from spikerl.agents.errors import NonFiniteLossError
from spikerl.agents.policies import fused_adam_supported, snn_or_none
from spikerl.agents.proxy import ProxyActor, imitate_actor
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import update_learning_rate

from spikerl.config.schema import REMOVED_KEYS

TARGETS = ("proxy", "soft")
PLIF_PARAM_SUFFIX = "decay_logit"
#: attributes that models saved by earlier spikerl versions hold and that nothing reads (the bfloat16 training
#: option's): SB3's load restores every saved attribute, and ``_drop_obsolete_attributes`` forgets these again
OBSOLETE_ATTRIBUTES = ("precision", "bf16_parts")


def drop_removed_options(kwargs: dict[str, Any]) -> None:
    """Take the constructor options spikerl no longer has (``REMOVED_KEYS``, as configs treat them) out of
    ``kwargs``: the one value still accepted means the default and is dropped with a ``DeprecationWarning``; any
    other value is refused naming the option, why, and what to pass instead."""
    for name, (accepted, why) in REMOVED_KEYS.items():
        if name not in kwargs:
            continue
        value = kwargs.pop(name)
        if value != accepted:
            raise ValueError(f"{name}={value!r}: {why}; leave out {name} (or pass {name}={accepted!r})")
        warnings.warn(f"{name}={accepted!r} is the only behaviour left and the option will go; leave it out",
                      DeprecationWarning, stacklevel=3)


def check_proxy_options(target: str, proxy_hidden: Sequence[int], proxy_lr: float, proxy_iters: int,
                        plif_lr: float | None, diagnostics_every: int) -> None:
    """The one check of the target/proxy options; each error names the option and what it accepts."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS} ('proxy': Proxy Target ANN, 'soft': Polyak target), "
                         f"got {target!r}")
    if isinstance(proxy_hidden, str | int) or not proxy_hidden or any(int(h) < 1 for h in proxy_hidden):
        raise ValueError(f"proxy_hidden must be a non-empty list of positive layer sizes such as [512, 512], "
                         f"got {proxy_hidden!r}")
    if not (isinstance(proxy_lr, int | float) and proxy_lr > 0):
        raise ValueError(f"proxy_lr must be a positive number (paper: 1e-3 LIF, 3e-3 CLIF/DN), got {proxy_lr!r}")
    if not (isinstance(proxy_iters, int) and not isinstance(proxy_iters, bool) and proxy_iters >= 1):
        raise ValueError(f"proxy_iters (K) must be an integer >= 1 (paper: 3), got {proxy_iters!r}")
    if plif_lr is not None and not (isinstance(plif_lr, int | float) and plif_lr > 0):
        raise ValueError(f"plif_lr must be None (default) or a positive number, got {plif_lr!r}")
    if not (isinstance(diagnostics_every, int) and diagnostics_every >= 0):
        raise ValueError(f"diagnostics_every must be an integer >= 0 (0 = off), got {diagnostics_every!r}")


def min_q(critic: Any, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """min_j Q_j(s, a) over the twin critics, shape ``[B, 1]`` (clipped double Q, Fujimoto et al. 2018)."""
    return th.min(th.cat(critic(obs, actions), dim=1), dim=1, keepdim=True)[0]


class ProxyTargetMixin:
    """Mixed into SB3's TD3/SAC subclasses; expects SB3's attributes (policy, actor, replay_buffer, ...)."""

    target: str
    proxy_hidden: tuple[int, ...]
    proxy_lr: float
    proxy_iters: int
    plif_lr: float | None
    diagnostics_every: int
    proxy: ProxyActor | None
    replay_buffer: ReplayBuffer

    # -- construction -------------------------------------------------------------------------------
    def _init_proxy_options(self, target: str, proxy_hidden: Sequence[int], proxy_lr: float, proxy_iters: int,
                            plif_lr: float | None, diagnostics_every: int) -> None:
        check_proxy_options(target, proxy_hidden, proxy_lr, proxy_iters, plif_lr, diagnostics_every)
        self.target = target
        self.proxy_hidden = tuple(int(h) for h in proxy_hidden)
        self.proxy_lr, self.proxy_iters = float(proxy_lr), int(proxy_iters)
        self.plif_lr = None if plif_lr is None else float(plif_lr)
        self.diagnostics_every = int(diagnostics_every)
        self.proxy = None

    @property
    def effective_plif_lr(self) -> float:
        """PLIF decay learning rate: ``plif_lr``, else proxy_lr * 0.1 under proxy and 1e-4 otherwise."""
        if self.plif_lr is not None:
            return self.plif_lr
        return self.proxy_lr * 0.1 if self.target == "proxy" else 1e-4

    def _setup_proxy(self, squash: bool) -> None:
        """Build the proxy (target="proxy") and the actor optimizer's PLIF group; after SB3's _setup_model."""
        actor = self.policy.actor
        plif = [p for n, p in actor.named_parameters() if n.endswith(PLIF_PARAM_SUFFIX)]
        if plif:
            ids = {id(p) for p in plif}
            rest = [p for p in actor.parameters() if id(p) not in ids]
            actor.optimizer = self.policy.optimizer_class(
                [{"params": rest}, {"params": plif, "lr": self.effective_plif_lr, "name": "plif"}],
                lr=self.lr_schedule(1), **self.policy.optimizer_kwargs)
        if self.target != "proxy":
            self.proxy = None
            return
        obs_dim = int(self.observation_space.shape[0])
        act_dim = int(self.action_space.shape[0])
        self.proxy = ProxyActor(obs_dim, act_dim, self.proxy_hidden, squash=squash).to(self.device)
        fused = {"fused": True} if fused_adam_supported() else {}
        self.proxy.optimizer = th.optim.Adam(self.proxy.parameters(), lr=self.proxy_lr, **fused)

    def _update_learning_rates(self, optimizers: list[th.optim.Optimizer]) -> None:
        """SB3's schedule for actor/critic (and alpha); constant lrs for the PLIF group and the proxy."""
        self._update_learning_rate(optimizers)
        for group in self.actor.optimizer.param_groups:
            if group.get("name") == "plif":
                group["lr"] = self.effective_plif_lr
        if self.proxy is not None:
            update_learning_rate(self.proxy.optimizer, self.proxy_lr)

    # -- one training step's pieces -----------------------------------------------------------------
    @contextmanager
    def _critic_frozen(self) -> Iterator[None]:
        """Build the actor loss's graph without the critic's weights: the actor update needs dQ/da only.

        SB3 back-propagates the actor loss into the critic's weight gradients too and discards them (the
        critic's next zero_grad clears them); with the weights frozen while the graph is built, autograd
        skips those GEMMs. The actor's gradients are the same values. Parameters the actor shares are
        left alone."""
        actor_ids = {id(p) for p in self.actor.parameters()}
        frozen = [p for p in self.critic.parameters() if p.requires_grad and id(p) not in actor_ids]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _check_finite(self, name: str, loss: th.Tensor) -> None:
        if not bool(th.isfinite(loss)):
            raise NonFiniteLossError(name, self._n_updates, float(loss.detach()))

    def _optimize(self, name: str, loss: th.Tensor, optimizer: th.optim.Optimizer) -> None:
        """One gradient step on ``loss``; a non-finite loss raises ``NonFiniteLossError`` before the step."""
        self._check_finite(name, loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def _sample_for_proxy(self, batch_size: int) -> tuple[th.Tensor, ReplayBufferSamples]:
        """One replay draw of K*B transitions: the K proxy minibatches' observations ``[K, B, obs_dim]``
        and the last minibatch in full (the critic and actor update reuse it, as the upstream code does)."""
        k = self.proxy_iters
        data = self.replay_buffer.sample(k * batch_size, env=self._vec_normalize_env)
        obs = data.observations.reshape(k, batch_size, -1)
        last = slice((k - 1) * batch_size, k * batch_size)
        return obs, ReplayBufferSamples(*(None if t is None else t[last] for t in data))

    @staticmethod
    def _proxy_labels(obs_k: th.Tensor, label_fn: Any, last: th.Tensor | None = None) -> th.Tensor:
        """Imitation labels ``[K, B, act]``: ``label_fn`` on the K minibatches in ONE batched no-grad call.

        ``last``: the actor's output on minibatch K already computed (with graph) for this step's actor
        update; it is reused, detached, as the K-th labels, and only minibatches 1..K-1 are run here.
        """
        k, batch = obs_k.shape[0] - (last is not None), obs_k.shape[1]
        parts = []
        if k > 0:
            with th.no_grad():
                parts.append(label_fn(obs_k[:k].reshape(k * batch, -1)).reshape(k, batch, -1))
        if last is not None:
            parts.append(last.detach().unsqueeze(0))
        return parts[0] if len(parts) == 1 else th.cat(parts)

    def _imitate_actor(self, obs_k: th.Tensor, labels: th.Tensor) -> th.Tensor:
        """K Adam steps of the proxy towards ``labels`` (``imitate_actor``); returns the K losses."""
        try:
            return imitate_actor(self.proxy, self.proxy.optimizer, obs_k, labels)
        except FloatingPointError as exc:
            raise NonFiniteLossError("proxy", self._n_updates, float("nan")) from exc

    def _log_diagnostics(self, obs: th.Tensor) -> None:
        """Firing rates and surrogate-window occupancy of the spiking actor, every ``diagnostics_every``."""
        if self.diagnostics_every <= 0 or self._n_updates % self.diagnostics_every != 0:
            return
        network = snn_or_none(self.actor)
        if network is None:
            return
        features = self.actor.extract_features(obs, self.actor.features_extractor)
        for key, value in snn_diagnostics(network, features).items():
            self.logger.record(f"snn/{key}", value)

    # -- save / load ---------------------------------------------------------------------------------
    def _drop_obsolete_attributes(self) -> None:
        """Forget the ``OBSOLETE_ATTRIBUTES`` a loaded zip restored, so the model neither shows nor saves them; in
        ``_setup_model``, which SB3's load calls after restoring the saved attributes."""
        for name in OBSOLETE_ATTRIBUTES:
            self.__dict__.pop(name, None)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "proxy"]  # type: ignore[misc]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()  # type: ignore[misc]
        return [*state_dicts, *(["proxy", "proxy.optimizer"] if self.target == "proxy" else [])], variables

