"""Spiking-actor diagnostics for TensorBoard: per-layer firing rate and surrogate-window occupancy.

- rate of layer l: mean spikes per neuron per simulation step over a batch (``snn/rate_<layer>``).
- window occupancy: fraction of (neuron, step) pairs whose membrane potential h_t lies where the
  surrogate gradient is non-negligible (derivative >= 10% of its peak; for the rectangular surrogate
  exactly |h_t - V_th| < width). Near 0 means the actor gets (almost) no STBP gradient: the
  "alive but not learning" collapse the Proxy-Target-with-PLIF fork reports on Hopper/Walker2d.
"""

from __future__ import annotations

import torch

from spikerl.neurons.base import SpikingNeuron


def _plain_dynamics(neuron: SpikingNeuron) -> bool:
    cls = type(neuron)
    return cls.step is SpikingNeuron.step and cls.fire is SpikingNeuron.fire


@torch.no_grad()
def snn_diagnostics(network: torch.nn.Module, obs: torch.Tensor) -> dict[str, float]:
    """``{"rate_<layer>": r, "window_<layer>": w}`` for a spikerl spiking actor on a batch ``obs[B, obs_dim]``.

    Runs the network layer by layer with the neurons' own ``charge/fire/reset`` (window occupancy is
    given for single-threshold neurons with the standard step; DN neurons get the rate only).
    """
    out: dict[str, float] = {}
    x = network.encoder(obs)
    if network.encoder_kind != "direct":
        out["rate_encoder"] = float(x.mean())
    for name, linear, neuron in zip(network.layer_names, network.snn.linears, network.snn.neurons, strict=True):
        current = linear(x)
        if not _plain_dynamics(neuron):
            x = neuron(current)
            out[f"rate_{name}"] = float(x.mean())
            continue
        state = neuron.init_state(current.shape[1:], dtype=current.dtype, device=current.device)
        peak = neuron.surrogate.derivative(torch.zeros((), dtype=current.dtype, device=current.device))
        spikes, inside = [], []
        for x_t in current:
            h, rest = neuron.charge(x_t, state)
            s = neuron.fire(h)
            state = (neuron.reset(h, s), *rest)
            spikes.append(s)
            inside.append(neuron.surrogate.derivative(h - neuron.threshold) >= 0.1 * peak)
        x = torch.stack(spikes)
        out[f"rate_{name}"] = float(x.mean())
        out[f"window_{name}"] = float(torch.stack(inside).float().mean())
    return out
