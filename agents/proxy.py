"""The Proxy Target network and its imitation update (Xu et al., NeurIPS 2025, arXiv:2505.24161).

The proxy is an ANN that replaces the (spiking) target actor. It is never parameter-copied: every
gradient step it takes K Adam steps of regression onto the current actor's output on fresh replay
states (the labels carry no gradient):

    L_proxy = 1/(N |A|) sum_i || pi_proxy(s_i) - stopgrad(pi_SNN(s_i)) ||^2

Architecture (paper / upstream ``Proxy_target``): raw obs -> [Linear -> ReLU] x L -> Linear -> tanh
(TD3: the deterministic action in [-1, 1]). For SAC (spikerl's extension) the output is the pre-tanh
Gaussian mean, so the head has no tanh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from spikerl.agents.adam_step import adam_step
from torch import nn
from torch.nn import functional as F


class ProxyActor(nn.Module):
    """MLP ``obs -> hidden (ReLU) -> act`` with a tanh output when ``squash`` (TD3) and none for SAC means."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (512, 512), squash: bool = True) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"proxy_hidden must be a non-empty list of positive sizes, got {list(hidden)}")
        dims = [int(obs_dim), *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], int(act_dim)))
        if squash:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.hidden, self.squash = hidden, bool(squash)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations (any float dtype; SB3's replay buffer may hand out float64) -> output."""
        return self.net(obs.to(self.net[0].weight.dtype))

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]

    def imitation_grads(self, obs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(L, grads)``: L = mean ||proxy(obs) - labels||^2 and dL/dp for ``parameters()`` (in order),
        by hand instead of autograd; the same values as ``mse_loss(self(obs), labels).backward()`` to
        rounding (fewer, larger ops and no graph: the update is GEMM-bound, not dispatch-bound).

        With h_0 = obs, z_l = h_{l-1} W_l^T + b_l, h_l = relu(z_l), y = tanh(z_out) (or z_out):
            g_out = 2 (y - labels) / numel  [* (1 - y^2)],   dW_l = g_l^T h_{l-1},  db_l = sum_rows g_l,
            g_{l-1} = (g_l W_l) * [h_{l-1} > 0]
        """
        linears = self.linears
        h = obs.to(linears[0].weight.dtype)
        inputs = []
        with torch.no_grad():
            for lin in linears[:-1]:
                inputs.append(h)
                h = torch.addmm(lin.bias, h, lin.weight.t()).clamp_min_(0.0)
            inputs.append(h)
            y = torch.addmm(linears[-1].bias, h, linears[-1].weight.t())
            if self.squash:
                y = y.tanh_()
            diff = y - labels
            loss = diff.square().mean()
            g = diff.mul_(2.0 / diff.numel())
            if self.squash:
                g = g.mul_(1.0 - y.square())
            grads: list[torch.Tensor] = []
            for i in range(len(linears) - 1, -1, -1):
                a = inputs[i]
                # g^T a; for a narrow input (the observation) as (a^T g)^T: the GEMM with a wide output
                # is many times faster than the one with an 11-column output
                grad_w = torch.mm(a.t().contiguous(), g).t().contiguous() if a.shape[1] < 64 else torch.mm(g.t(), a)
                grads += [g.sum(0), grad_w]
                if i > 0:
                    g = torch.ops.aten.threshold_backward(torch.mm(g, linears[i].weight), a, 0.0)  # relu'
            grads.reverse()  # [W_1, b_1, W_2, b_2, ...] = parameters() order
        return loss, grads


def proxy_update(proxy: nn.Module, optimizer: torch.optim.Optimizer, obs: torch.Tensor, labels: torch.Tensor,
                 check_finite: bool = True) -> torch.Tensor:
    """K imitation steps: for k in 0..K-1, one Adam step on MSE(proxy(obs[k]), labels[k]).

    ``obs``: ``[K, B, obs_dim]`` (K fresh minibatches), ``labels``: ``[K, B, act_dim]`` (the actor's
    outputs on them, computed without gradient). Returns the K losses (detached tensor ``[K]``) before
    each step. With ``check_finite`` a non-finite loss raises ``FloatingPointError`` before its step.
    """
    if obs.dim() != 3 or labels.dim() != 3 or obs.shape[:2] != labels.shape[:2]:
        raise ValueError(f"proxy_update expects obs [K, B, obs_dim] and labels [K, B, act_dim], got "
                         f"{tuple(obs.shape)} and {tuple(labels.shape)}")
    labels = labels.detach()
    by_hand = isinstance(proxy, ProxyActor)
    params = list(proxy.parameters())
    losses = []
    for k in range(obs.shape[0]):
        if by_hand:
            loss, grads = proxy.imitation_grads(obs[k], labels[k])
        else:
            loss = F.mse_loss(proxy(obs[k]), labels[k])
        if check_finite and not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"proxy loss {float(loss.detach())} at imitation step {k}")
        if by_hand:
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad
        else:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        adam_step(optimizer)
        losses.append(loss.detach())
    return torch.stack(losses)
