"""SB3 policies whose actor is a spiking network (the SB3 ``make_actor`` extension point).

- ``SNNTD3Policy`` (TD3Policy): the actor is ``SNNActor`` (an SB3 TD3 ``Actor``) around
  ``spikerl.SpikingActor``: obs -> population encoder -> spiking MLP -> population decoder -> tanh.
- ``SNNSACPolicy`` (SACPolicy): the actor is ``SNNGaussianActor`` (an SB3 SAC ``Actor``) around
  ``spikerl.SpikingGaussianActor``: spiking mean + ANN log-std, SB3's tanh-squashed Gaussian
  (PopSAN SAC, Tang et al. CoRL 2020).
- ``MlpTD3Policy``: SB3's TD3Policy (the ANN baseline). It and ``SNNTD3Policy`` take
  ``build_actor_target=False`` to leave out SB3's Polyak target actor, which Proxy Target replaces.

Critics stay SB3's ANN ``ContinuousCritic``. The actor sees raw observations (SB3's FlattenExtractor
only flattens a Box); the spiking actor squashes them itself (``preprocess="tanh"``). Membrane state
starts from rest at every forward call, so the policy is stateless between decisions.

Every policy here checks its arguments at construction (``net_arch`` and the spiking-actor settings: a
``ValueError`` naming the argument) and refuses a NaN or infinite observation in ``predict``, as the
torch-free runtime does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import Actor as SACActor
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import Actor as TD3Actor
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from spikerl.networks import SpikingActor, SpikingGaussianActor

DEFAULT_NET_ARCH = [256, 256]
SNN_KWARG_NAMES = ("neuron", "T", "neuron_kwargs", "encoder", "pop_dim", "decoder_pop_dim", "preprocess",
                   "mean_range", "pop_std")


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"policy_kwargs {name}: expected an integer >= 1, got {value!r}")
    return int(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"policy_kwargs {name}: expected a name (a non-empty string), got {value!r}")
    return value


def check_net_arch(net_arch: Any) -> None:
    """``net_arch``: None, a list of layer sizes (each an integer >= 1) for actor and critic, or a dict with the
    lists ``pi`` (actor) and ``qf`` (critic). ``ValueError`` naming the entry otherwise."""
    if net_arch is None:
        return
    if isinstance(net_arch, dict):
        if set(net_arch) != {"pi", "qf"}:
            raise ValueError(f"policy_kwargs net_arch: a dict needs exactly the keys pi (actor) and qf (critic), "
                             f"got {sorted(map(str, net_arch))}")
        parts = [(f"net_arch['{key}']", net_arch[key]) for key in ("pi", "qf")]
    else:
        parts = [("net_arch", net_arch)]
    for name, sizes in parts:
        if not isinstance(sizes, list | tuple) or not all(_is_int(v) and v >= 1 for v in sizes):
            raise ValueError(f"policy_kwargs {name}: expected a list of layer sizes, each an integer >= 1, such as "
                             f"[256, 256], got {sizes!r}")


def snn_kwargs(neuron: str = "lif", T: int = 5, neuron_kwargs: dict[str, Any] | None = None,
               encoder: str = "pop", pop_dim: int = 10, decoder_pop_dim: int = 10, preprocess: str = "tanh",
               mean_range: tuple[float, float] | list[float] = (-1.0, 1.0),
               pop_std: float = math.sqrt(0.05)) -> dict[str, Any]:
    """The spiking-actor settings, checked (``ValueError`` naming the first bad one), as plain values (what
    save/load stores). Counts must be integers: ``T=2.5`` or ``T="5"`` is refused, not rounded or parsed."""
    if neuron_kwargs is not None and not isinstance(neuron_kwargs, dict):
        raise ValueError(f"policy_kwargs neuron_kwargs: expected a dict of neuron parameters, got {neuron_kwargs!r}")
    if (not isinstance(mean_range, list | tuple) or len(mean_range) != 2 or not all(map(_is_number, mean_range))
            or not all(map(math.isfinite, mean_range)) or not mean_range[0] < mean_range[1]):
        raise ValueError(f"policy_kwargs mean_range: expected two finite numbers (low, high) with low < high, "
                         f"got {mean_range!r}")
    if not _is_number(pop_std) or not math.isfinite(pop_std) or pop_std <= 0:
        raise ValueError(f"policy_kwargs pop_std: expected a finite number > 0, got {pop_std!r}")
    return {
        "neuron": _text("neuron", neuron), "T": _positive_int("T", T), "neuron_kwargs": dict(neuron_kwargs or {}),
        "encoder": _text("encoder", encoder), "pop_dim": _positive_int("pop_dim", pop_dim),
        "decoder_pop_dim": _positive_int("decoder_pop_dim", decoder_pop_dim),
        "preprocess": _text("preprocess", preprocess), "mean_range": [float(v) for v in mean_range],
        "pop_std": float(pop_std),
    }


def check_finite_observation(observation: Any) -> None:
    """``ValueError`` naming the first NaN or infinite entry of ``observation`` (an array, a list, or a dict of
    them); observations of other kinds are left to Stable-Baselines3's own checks."""
    for key, value in (observation.items() if isinstance(observation, dict) else [(None, observation)]):
        arr = np.asarray(value)
        if arr.dtype.kind not in "fc":
            continue
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            where = (index[0] if len(index) == 1 else index) if index else "()"
            name = "observation" if key is None else f"observation {key!r}"
            raise ValueError(f"{name} entry at index {where} is {arr[index]} ({len(bad)} of its {arr.size} entries "
                             "are NaN or infinite); the policy needs finite observations")


def _network_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Map the policy-level names onto ``SpikingActor``'s constructor."""
    kw = {k: v for k, v in cfg.items() if k not in ("mean_range", "pop_std", "pop_dim")}
    if cfg["encoder"] != "direct":
        kw.update(pop_dim=cfg["pop_dim"], mean_range=tuple(cfg["mean_range"]), std=cfg["pop_std"])
    return kw


def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ValueError(f"SNN policies need a flat Box observation space (vector observations), got "
                         f"{observation_space}; use a features extractor policy such as 'MlpPolicy' otherwise")
    if not isinstance(action_space, spaces.Box):
        raise ValueError(f"SNN policies need a continuous Box action space, got {action_space}")


def network_input(actor: TD3Actor | SACActor, obs: th.Tensor) -> th.Tensor:
    """SB3's feature extraction, in the dtype of the actor's spiking network: SB3 hands Box observations
    out as float32, so without the cast a policy converted with ``.double()`` would mix dtypes."""
    features = actor.extract_features(obs, actor.features_extractor)
    return features.to(next(actor.network.parameters()).dtype)


class SNNActor(TD3Actor):
    """SB3 TD3 actor whose deterministic network is ``spikerl.SpikingActor`` (attribute ``network``)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, net_arch: list[int],
                 features_extractor: nn.Module, features_dim: int, activation_fn: type[nn.Module] = nn.ReLU,
                 normalize_images: bool = True, snn: dict[str, Any] | None = None) -> None:
        BasePolicy.__init__(self, observation_space, action_space, features_extractor=features_extractor,
                            normalize_images=normalize_images, squash_output=True)
        self.net_arch = list(net_arch)
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.snn = snn_kwargs(**(snn or {}))
        self.network = SpikingActor(features_dim, get_action_dim(action_space), hidden=self.net_arch,
                                    **_network_kwargs(self.snn))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(snn=self.snn)
        return data

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.network(network_input(self, obs))


class SNNGaussianActor(SACActor):
    """SB3 SAC actor around ``spikerl.SpikingGaussianActor`` (spiking mean, ANN log-std, squashed Gaussian).

    The log-std network has the same hidden sizes as the spiking mean network. gSDE is not supported.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, net_arch: list[int],
                 features_extractor: nn.Module, features_dim: int, activation_fn: type[nn.Module] = nn.ReLU,
                 use_sde: bool = False, log_std_init: float = -3, full_std: bool = True, use_expln: bool = False,
                 clip_mean: float = 2.0, normalize_images: bool = True, snn: dict[str, Any] | None = None) -> None:
        if use_sde:
            raise ValueError("use_sde=True (gSDE) is not supported with a spiking SAC actor; use use_sde=False")
        BasePolicy.__init__(self, observation_space, action_space, features_extractor=features_extractor,
                            normalize_images=normalize_images, squash_output=True)
        self.use_sde = False
        self.sde_features_extractor = None
        self.net_arch = list(net_arch)
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.log_std_init, self.use_expln, self.full_std, self.clip_mean = log_std_init, use_expln, full_std, clip_mean
        action_dim = get_action_dim(action_space)
        self.action_dist = SquashedDiagGaussianDistribution(action_dim)  # type: ignore[assignment]
        self.snn = snn_kwargs(**(snn or {}))
        self.network = SpikingGaussianActor(features_dim, action_dim, hidden=self.net_arch,
                                            log_std_hidden=self.net_arch, **_network_kwargs(self.snn))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(snn=self.snn)
        return data

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, dict[str, th.Tensor]]:
        mean, log_std = self.network(network_input(self, obs))
        return mean, log_std, {}

    def log_std_of(self, obs: th.Tensor) -> th.Tensor:
        """The ANN log-std head alone (no spiking pass), clamped like SB3's."""
        return self.network.log_std_net(network_input(self, obs)).clamp(-20.0, 2.0)


def fused_adam_supported() -> bool:
    """Fused (single-kernel) Adam runs on CPU and CUDA since torch 2.4; not on MPS."""
    version = tuple(int(v) for v in th.__version__.split("+")[0].split(".")[:2])
    return version >= (2, 4) and not (hasattr(th.backends, "mps") and th.backends.mps.is_available())


class NoTargetActor(nn.Module):
    """Holds SB3's ``actor_target`` slot in a TD3 policy built without one (``build_actor_target=False``).

    It has no parameters, so a saved model holds no target-actor tensors; calling it is an error.
    """

    def forward(self, *args: Any) -> th.Tensor:
        raise RuntimeError("this TD3 policy has no target actor (build_actor_target=False: under target='proxy' "
                           "the proxy replaces it); use target='soft' for a Polyak-averaged target actor")


class _FiniteObservations:
    """``predict`` refuses NaN and infinite observations (:func:`check_finite_observation`) before SB3's own."""

    def predict(self, observation: Any, state: tuple[np.ndarray, ...] | None = None,
                episode_start: np.ndarray | None = None, deterministic: bool = False
                ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        check_finite_observation(observation)
        return super().predict(observation, state, episode_start, deterministic)  # type: ignore[misc]


class _ModeSwitchWhenNeeded:
    """``set_training_mode`` that returns at once when every module is already in the requested mode.

    SB3 calls it on every ``predict`` (mode False) and every ``train`` (mode True), and ``nn.Module.train`` sets
    the flag module by module through ``__setattr__``; reading the flags is several times cheaper (about 90 vs
    600 us for a spiking TD3 policy of 47 modules), and a policy is in the same mode on most calls. The check
    walks every module each time, so a submodule switched by hand is still seen."""

    def set_training_mode(self, mode: bool) -> None:
        if all(module.training is mode for module in self.modules()):  # type: ignore[attr-defined]
            return
        super().set_training_mode(mode)  # type: ignore[misc]


class _OptionalTargetActor:
    """A TD3 policy whose Polyak target actor can be left out: ``build_actor_target=False`` builds the actor,
    the critics and the target critics only (ProxyTD3 passes it under ``target="proxy"``)."""

    share_features_extractor: bool
    optimizer_class: type[th.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]

    def __init__(self, *args: Any, build_actor_target: bool = True, **kwargs: Any) -> None:
        self.build_actor_target = bool(build_actor_target)
        check_net_arch(kwargs.get("net_arch"))
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        if self.build_actor_target:
            super()._build(lr_schedule)  # type: ignore[misc]
            return
        self.actor = self.make_actor(features_extractor=None)  # type: ignore[attr-defined]
        self.actor_target = NoTargetActor().train(False)  # in eval mode, as SB3 keeps its target networks
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1),  # type: ignore
                                                    **self.optimizer_kwargs)
        shared = self.actor.features_extractor if self.share_features_extractor else None
        self.critic = self.make_critic(features_extractor=shared)  # type: ignore[attr-defined]
        self.critic_target = self.make_critic(features_extractor=None)  # type: ignore[attr-defined]
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self.optimizer_class(self.critic.parameters(), lr=lr_schedule(1),  # type: ignore
                                                     **self.optimizer_kwargs)
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(build_actor_target=self.build_actor_target)
        return data


class MlpTD3Policy(_FiniteObservations, _ModeSwitchWhenNeeded, _OptionalTargetActor, TD3Policy):
    """SB3's TD3Policy (ANN actor and critics), with ``build_actor_target`` (default True: SB3's own build), checked
    ``net_arch`` and finite observations in ``predict``."""


class _SNNPolicyMixin:
    """What the TD3 and SAC spiking policies share: the spiking-actor keyword arguments, ``make_actor``
    (an instance of ``_actor_class``) and saving those arguments with the policy."""

    snn: dict[str, Any]
    _actor_class: type[nn.Module]

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule,
                 net_arch: list[int] | dict[str, list[int]] | None = None, neuron: str = "lif", T: int = 5,
                 neuron_kwargs: dict[str, Any] | None = None, encoder: str = "pop", pop_dim: int = 10,
                 decoder_pop_dim: int = 10, preprocess: str = "tanh",
                 mean_range: tuple[float, float] | list[float] = (-1.0, 1.0), pop_std: float = math.sqrt(0.05),
                 **kwargs: Any) -> None:
        net_arch = self._init_snn(observation_space, action_space, net_arch, dict(
            neuron=neuron, T=T, neuron_kwargs=neuron_kwargs, encoder=encoder, pop_dim=pop_dim,
            decoder_pop_dim=decoder_pop_dim, preprocess=preprocess, mean_range=mean_range, pop_std=pop_std), kwargs)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=net_arch, **kwargs)

    def make_actor(self, features_extractor: nn.Module | None = None) -> nn.Module:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return self._actor_class(**actor_kwargs, snn=self.snn).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.snn)
        return data

    def _init_snn(self, observation_space: spaces.Space, action_space: spaces.Space,
                  net_arch: list[int] | dict[str, list[int]] | None, snn: dict[str, Any],
                  kwargs: dict[str, Any]) -> list[int] | dict:
        """Check spaces, store the SNN settings, default ``net_arch`` to [256, 256] and, when the user
        gave no optimizer settings, use the fused Adam (same update, one kernel for all parameters)."""
        _check_spaces(observation_space, action_space)
        check_net_arch(net_arch)
        self.snn = snn_kwargs(**snn)
        if (kwargs.get("optimizer_kwargs") is None and kwargs.get("optimizer_class", th.optim.Adam) is th.optim.Adam
                and fused_adam_supported()):
            kwargs["optimizer_kwargs"] = {"fused": True}
        return list(DEFAULT_NET_ARCH) if net_arch is None else net_arch


class SNNTD3Policy(_FiniteObservations, _ModeSwitchWhenNeeded, _SNNPolicyMixin, _OptionalTargetActor,
                   TD3Policy):
    """TD3 policy with a spiking actor (critics: SB3 ANN twin Q-networks).

    policy_kwargs: ``net_arch`` (list for actor and critic hidden sizes, or ``dict(pi=..., qf=...)``;
    default [256, 256]), ``neuron`` ("lif"), ``T`` (5), ``neuron_kwargs`` ({}), ``encoder`` ("pop" or
    "direct"), ``pop_dim`` (10), ``decoder_pop_dim`` (10), ``preprocess`` ("tanh"), ``mean_range``
    ((-1, 1)), ``pop_std`` (sqrt(0.05)), ``build_actor_target`` (True; ProxyTD3 sets it from its
    ``target``), plus TD3Policy's own (optimizer, n_critics, ...).
    """

    actor: SNNActor
    actor_target: SNNActor | NoTargetActor

    _actor_class = SNNActor


class SNNSACPolicy(_FiniteObservations, _ModeSwitchWhenNeeded, _SNNPolicyMixin, SACPolicy):
    """SAC policy with a spiking-mean actor (PopSAN SAC); same policy_kwargs as ``SNNTD3Policy``."""

    actor: SNNGaussianActor

    _actor_class = SNNGaussianActor


def snn_or_none(actor: nn.Module) -> SpikingActor | SpikingGaussianActor | None:
    """The spikerl network inside an SB3 actor, or None for an ANN (MlpPolicy) actor."""
    net = getattr(actor, "network", None)
    return net if isinstance(net, SpikingActor | SpikingGaussianActor) else None
