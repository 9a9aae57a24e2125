"""The Proxy Target network and its imitation update (Xu et al., NeurIPS 2025, arXiv:2505.24161).

The proxy is an ANN that replaces the (spiking) target actor. It is never parameter-copied: every
gradient step it takes K Adam steps of regression onto the current actor's output on fresh replay
states (the labels carry no gradient):

    L_proxy = 1/(B |A|) sum_i || pi_proxy(s_i) - stopgrad(pi_SNN(s_i)) ||^2

Architecture (paper / upstream ``Proxy_target``): raw obs -> [Linear -> ReLU] x L -> Linear -> tanh
(TD3: the deterministic action in [-1, 1]). For SAC (spikerl's extension) the output is the pre-tanh
Gaussian mean, so the head has no tanh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class ProxyActor(nn.Module):
    """MLP ``obs -> hidden (ReLU) -> act`` with a tanh output when ``squash`` (TD3) and none for SAC means.

    ``hidden`` is taken as given; the algorithms check it with the other proxy options
    (``spikerl.agents.common.check_proxy_options``).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (512, 512), squash: bool = True) -> None:
        super().__init__()
        self.hidden, self.squash = tuple(int(h) for h in hidden), bool(squash)
        dims = [int(obs_dim), *self.hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], int(act_dim)))
        if squash:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations (any float dtype; SB3's replay buffer may hand out float64) -> output."""
        return self.net(obs.to(self.net[0].weight.dtype))


def imitate_actor(proxy: nn.Module, optimizer: torch.optim.Optimizer, obs: torch.Tensor,
                  labels: torch.Tensor) -> torch.Tensor:
    """K imitation steps, one Adam step per fresh minibatch k = 1..K on

        L_k = mean_i || proxy(s_{k,i}) - y_{k,i} ||^2      (``F.mse_loss``; y_k carries no gradient)

    ``obs``: ``[K, B, obs_dim]``, ``labels``: ``[K, B, act_dim]`` (the actor's outputs on those states).
    Returns the K losses (detached, ``[K]``), each taken before its step. A non-finite loss raises
    ``FloatingPointError`` before its step, so the proxy keeps the parameters of the steps before it.
    """
    if obs.dim() != 3 or labels.dim() != 3 or obs.shape[:2] != labels.shape[:2]:
        raise ValueError(f"imitate_actor expects obs [K, B, obs_dim] and labels [K, B, act_dim], got "
                         f"{tuple(obs.shape)} and {tuple(labels.shape)}")
    labels = labels.detach()
    losses = []
    for k in range(obs.shape[0]):
        loss = F.mse_loss(proxy(obs[k]), labels[k])
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"proxy loss {float(loss.detach())} at imitation step {k}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses)
