"""Observation encoders and action decoders for spiking actors (PopSAN, Tang et al. CoRL 2020).

Population encoder (Proxy Target A.2.1 eq. 10-11): each observation dimension i has a population of
``pop_dim`` Gaussian receptive fields with learnable centres mu and widths sigma,

    A_{i,j} = exp(-(s_i - mu_{i,j})^2 / (2 sigma_{i,j}^2)),    s = tanh(obs)   (preprocess="tanh")

turned into spikes either deterministically (regular firing: V_t = V_{t-1} + A; S_t = [V_t > 0.999];
V_t -= 0.999 S_t) or stochastically (S_t ~ Bernoulli(A)). Gradients pass straight through:
dS_t/dA = 1. Direct encoding instead feeds s as an analog current at every step.

Population decoder: r = mean_t(S^out_t) per output neuron; a_k = sum_j w_{k,j} r_{k,j} + b_k (one
group of ``pop_dim`` neurons per action dimension, as PopSAN's grouped Conv1d); then tanh.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spikerl.kernels.fused import leaky_spikes

ENCODER_THRESHOLD = 0.999
PREPROCESS = ("tanh", "none")


def preprocess_obs(obs: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "tanh":
        return torch.tanh(obs)
    return obs


class PopulationEncoder(nn.Module):
    """Gaussian receptive-field population encoder; ``forward(obs[B, D]) -> spikes[T, B, D*pop_dim]``.

    The gradient is the paper's straight-through dS_t/dA = 1 (Proxy Target eq. 15-16). The authors'
    reference code also back-propagates through the regular encoder's soft reset (V_t -= 0.999 S_t), so
    its gradients for the centres and widths come out up to 0.1% larger than these; the spikes are the same.
    """

    def __init__(
        self,
        obs_dim: int,
        T: int,
        pop_dim: int = 10,
        mean_range: tuple[float, float] = (-1.0, 1.0),
        std: float = math.sqrt(0.05),
        deterministic: bool = True,
        preprocess: str = "tanh",
    ) -> None:
        super().__init__()
        if pop_dim < 1:
            raise ValueError(f"encoder pop_dim must be >= 1, got {pop_dim}")
        if not std > 0:
            raise ValueError(f"encoder std must be > 0, got {std}")
        if preprocess not in PREPROCESS:
            raise ValueError(f"encoder preprocess must be one of {PREPROCESS}, got {preprocess!r}")
        self.obs_dim, self.T, self.pop_dim = int(obs_dim), int(T), int(pop_dim)
        self.deterministic = bool(deterministic)
        self.preprocess = preprocess
        lo, hi = mean_range
        centres = torch.linspace(lo, hi, pop_dim) if pop_dim > 1 else torch.tensor([(lo + hi) / 2])
        self.mean = nn.Parameter(centres.repeat(obs_dim, 1))  # [D, pop]
        self.std = nn.Parameter(torch.full((obs_dim, pop_dim), float(std)))

    @property
    def out_features(self) -> int:
        return self.obs_dim * self.pop_dim

    def activation(self, obs: torch.Tensor) -> torch.Tensor:
        """Receptive-field activations A in [0, 1], shape [B, D*pop]."""
        s = preprocess_obs(obs, self.preprocess).unsqueeze(-1)
        a = torch.exp(-0.5 * (s - self.mean) ** 2 / self.std**2)
        return a.reshape(obs.shape[0], self.out_features)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.activation(obs)
        with torch.no_grad():
            if self.deterministic:
                # regular firing = a soft-reset IF neuron (decay 1, threshold 0.999) driven by the constant A
                spikes = leaky_spikes(a.detach().expand(self.T, *a.shape), 1.0, None, ENCODER_THRESHOLD, False)
            else:
                spikes = torch.bernoulli(a.detach().expand(self.T, *a.shape))
        if not (torch.is_grad_enabled() and a.requires_grad):
            return spikes  # equals the straight-through value below bit for bit (a + (s - a) = s for a in [0, 1])
        # straight-through: value = spikes, gradient d(spike_t)/dA = 1 for every t
        return a + (spikes - a).detach()


class DirectEncoder(nn.Module):
    """Direct (current) encoding: the preprocessed observation is the input current at every step."""

    def __init__(self, obs_dim: int, T: int, preprocess: str = "tanh") -> None:
        super().__init__()
        if preprocess not in PREPROCESS:
            raise ValueError(f"encoder preprocess must be one of {PREPROCESS}, got {preprocess!r}")
        self.obs_dim, self.T, self.preprocess = int(obs_dim), int(T), preprocess

    @property
    def out_features(self) -> int:
        return self.obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return preprocess_obs(obs, self.preprocess).unsqueeze(0).expand(self.T, *obs.shape)


class PopulationDecoder(nn.Module):
    """Rates of each action's output population -> grouped linear -> tanh (or identity)."""

    def __init__(self, act_dim: int, pop_dim: int = 10, squash: bool = True) -> None:
        super().__init__()
        self.act_dim, self.pop_dim, self.squash = int(act_dim), int(pop_dim), bool(squash)
        bound = 1.0 / math.sqrt(pop_dim)  # as nn.Conv1d(act, act, pop, groups=act) initialises
        self.weight = nn.Parameter(torch.empty(act_dim, pop_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(act_dim).uniform_(-bound, bound))

    @property
    def in_features(self) -> int:
        return self.act_dim * self.pop_dim

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        rate = spikes.mean(0).reshape(spikes.shape[1], self.act_dim, self.pop_dim)
        out = (rate * self.weight).sum(-1) + self.bias
        return torch.tanh(out) if self.squash else out


def make_encoder(kind: str, obs_dim: int, T: int, **kwargs) -> nn.Module:
    """``"pop"`` (population, deterministic), ``"pop-stochastic"`` or ``"direct"``."""
    if kind in ("pop", "population"):
        return PopulationEncoder(obs_dim, T, **kwargs)
    if kind in ("pop-stochastic", "population-stochastic"):
        return PopulationEncoder(obs_dim, T, deterministic=False, **kwargs)
    if kind == "direct":
        allowed = {"preprocess"}
        bad = sorted(set(kwargs) - allowed)
        if bad:
            raise ValueError(f"direct encoding takes only {sorted(allowed)}; got {bad}")
        return DirectEncoder(obs_dim, T, **kwargs)
    raise ValueError(f"unknown encoder {kind!r}; known encoders: pop, pop-stochastic, direct")
