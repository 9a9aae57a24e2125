"""Spiking actor networks (population-coded spiking actor networks, PopSAN / Proxy Target).

    obs --encoder--> S^0_{1..T} --[Linear -> neuron]xL--> S^out_{1..T} --decoder--> action

Layer by layer: each Linear runs once on all T steps as one GEMM over ``[T*B, N]``; only the neuron
recurrence loops over T (in the fused kernel). Membrane state starts from rest at every forward call
(every decision simulates T steps from zero, as in Proxy Target).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from spikerl.coding import PopulationDecoder, make_encoder
from spikerl.neurons import SpikingNeuron, make_neuron

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class SpikingMLP(nn.Module):
    """Stack of ``Linear -> spiking neuron`` layers over a spike sequence ``[T, B, in]``."""

    def __init__(self, in_features: int, sizes: Sequence[int], neuron: str = "lif",
                 neuron_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        dims = [int(in_features), *map(int, sizes)]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.neurons = nn.ModuleList(make_neuron(neuron, **(neuron_kwargs or {})) for _ in sizes)

    def forward(self, x_seq: torch.Tensor, record: list[torch.Tensor] | None = None) -> torch.Tensor:
        for linear, neuron in zip(self.linears, self.neurons, strict=True):
            x_seq = neuron(linear(x_seq))
            if record is not None:
                record.append(x_seq.detach())
        return x_seq


class _SpikingActorBase(nn.Module):
    """Encoder + spiking MLP + population output layer; shared by the TD3 and SAC actors."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        neuron: str = "lif",
        T: int = 5,
        neuron_kwargs: dict[str, Any] | None = None,
        encoder: str = "pop",
        pop_dim: int = 10,
        decoder_pop_dim: int = 10,
        mean_range: tuple[float, float] = (-1.0, 1.0),
        std: float = math.sqrt(0.05),
        preprocess: str = "tanh",
        squash: bool = True,
    ) -> None:
        super().__init__()
        if int(T) < 1:
            raise ValueError(f"T (simulation steps) must be >= 1, got {T}")
        if obs_dim < 1 or act_dim < 1:
            raise ValueError(f"obs_dim and act_dim must be >= 1, got {obs_dim} and {act_dim}")
        self.obs_dim, self.act_dim, self.T = int(obs_dim), int(act_dim), int(T)
        self.hidden = tuple(int(h) for h in hidden)
        self.neuron_name = neuron
        self.neuron_kwargs = dict(neuron_kwargs or {})
        enc_kwargs: dict[str, Any] = {"preprocess": preprocess}
        if encoder != "direct":
            enc_kwargs.update(pop_dim=pop_dim, mean_range=tuple(mean_range), std=std)
        self.encoder_kind = encoder
        self.encoder = make_encoder(encoder, self.obs_dim, self.T, **enc_kwargs)
        self.snn = SpikingMLP(self.encoder.out_features, (*self.hidden, act_dim * decoder_pop_dim), neuron,
                              self.neuron_kwargs)
        self.decoder = PopulationDecoder(act_dim, decoder_pop_dim, squash=squash)
        self.layer_names = [*(f"hidden{i}" for i in range(len(self.hidden))), "output"]

    @property
    def neurons(self) -> list[SpikingNeuron]:
        return list(self.snn.neurons)

    def _check_obs(self, obs: torch.Tensor) -> tuple[torch.Tensor, bool]:
        single = obs.dim() == 1
        if single:
            obs = obs.unsqueeze(0)
        if obs.dim() != 2 or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"expected observations of shape [B, {self.obs_dim}] or [{self.obs_dim}], got {tuple(obs.shape)}"
            )
        return obs, single

    def decode(self, obs: torch.Tensor, record: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Decoder output (before any squashing by the caller) for a batch ``obs[B, obs_dim]``."""
        spikes_in = self.encoder(obs)
        if record is not None:
            record.append(spikes_in.detach())
        return self.decoder(self.snn(spikes_in, record))

    @torch.no_grad()
    def spike_counts(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Spikes per neuron summed over the T steps, per layer: ``{name: Tensor[B, n_neurons]}``.

        Keys: ``"encoder"`` (population encoder only; absent for direct encoding), ``"hidden0"``, ...,
        ``"output"`` (the output populations).
        """
        obs, _ = self._check_obs(obs)
        record: list[torch.Tensor] = []
        self.decode(obs, record)
        names = (["encoder"] if self.encoder_kind != "direct" else []) + self.layer_names
        if self.encoder_kind == "direct":
            record = record[1:]
        return {name: s.sum(0) for name, s in zip(names, record, strict=True)}

    @torch.no_grad()
    def firing_rates(self, obs: torch.Tensor) -> dict[str, float]:
        """Mean spikes per neuron per step of each layer for a batch of observations."""
        return {k: float(v.mean()) / self.T for k, v in self.spike_counts(obs).items()}

    def config(self) -> dict[str, Any]:
        """Constructor arguments (plain values) that rebuild this network."""
        enc = self.encoder
        cfg: dict[str, Any] = {
            "obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": list(self.hidden),
            "neuron": self.neuron_name, "T": self.T, "neuron_kwargs": self.neuron_kwargs,
            "encoder": self.encoder_kind, "decoder_pop_dim": self.decoder.pop_dim, "preprocess": enc.preprocess,
        }
        if self.encoder_kind != "direct":
            cfg["pop_dim"] = enc.pop_dim
        return cfg


class SpikingActor(_SpikingActorBase):
    """Deterministic spiking actor (TD3/DDPG): ``forward(obs[B, obs_dim]) -> action[B, act_dim]`` in [-1, 1].

    Defaults are the Proxy Target paper's: T = 5, population coding with 10 neurons per observation and
    per action dimension, tanh(obs) preprocessing, centres on [-1, 1], sigma = sqrt(0.05), hidden
    (256, 256), LIF neurons (V_th 0.5, decay 0.75, hard reset, rectangular surrogate).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), neuron: str = "lif",
                 T: int = 5, **coding: Any) -> None:
        super().__init__(obs_dim, act_dim, hidden, neuron, T, squash=True, **coding)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs, single = self._check_obs(obs)
        action = self.decode(obs)
        return action[0] if single else action


class SpikingGaussianActor(_SpikingActorBase):
    """SAC actor: spiking mean (PopSAN SAC) plus an ANN log-std head clamped to [-20, 2].

    ``forward(obs) -> (mean, log_std)`` of the pre-tanh Gaussian; ``deterministic(obs) = tanh(mean)``.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), neuron: str = "lif",
                 T: int = 5, log_std_hidden: Sequence[int] = (256, 256), **coding: Any) -> None:
        super().__init__(obs_dim, act_dim, hidden, neuron, T, squash=False, **coding)
        dims = [self.obs_dim, *map(int, log_std_hidden)]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], act_dim))
        self.log_std_net = nn.Sequential(*layers)
        self.log_std_hidden = tuple(int(h) for h in log_std_hidden)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs, single = self._check_obs(obs)
        mean = self.decode(obs)
        log_std = self.log_std_net(obs).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return (mean[0], log_std[0]) if single else (mean, log_std)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(mean) in [-1, 1]."""
        obs, single = self._check_obs(obs)
        action = torch.tanh(self.decode(obs))
        return action[0] if single else action

    def config(self) -> dict[str, Any]:
        return {**super().config(), "log_std_hidden": list(self.log_std_hidden)}


def mlp_actor(obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> nn.Sequential:
    """The ANN baseline actor: obs -> 256 -> ReLU -> 256 -> ReLU -> act -> tanh."""
    dims = [obs_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers += [nn.Linear(dims[-1], act_dim), nn.Tanh()]
    return nn.Sequential(*layers)
