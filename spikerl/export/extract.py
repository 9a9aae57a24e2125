"""Read a trained torch spiking actor into a :class:`~spikerl.runtime.spec.PolicySpec` (plain arrays).

Accepted: :class:`spikerl.SpikingActor`, :class:`spikerl.SpikingGaussianActor` (its deterministic action
tanh(mean); the ANN log-std head is not exported), or any module with such a network in its ``network``
attribute (the ``spikerl.agents`` SB3 actors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from spikerl.coding import DirectEncoder, PopulationEncoder
from spikerl.networks import SpikingActor, SpikingGaussianActor, _SpikingActorBase
from spikerl.neurons import CLIFNeuron, DNNeuron, IFNeuron, LIFNeuron, MultiThresholdNeuron, PLIFNeuron
from spikerl.runtime.spec import LayerSpec, PolicySpec


def require_spiking_actor(policy: Any) -> _SpikingActorBase:
    """The spikerl actor inside ``policy`` (itself, or its ``network`` attribute); ValueError otherwise."""
    if isinstance(policy, _SpikingActorBase):
        return policy
    net = getattr(policy, "network", None)
    if isinstance(net, _SpikingActorBase):
        return net
    raise ValueError(
        f"got {type(policy).__name__}; export and compile_policy take a spikerl SpikingActor or SpikingGaussianActor "
        "(or an SB3 actor wrapping one); ANN (MlpPolicy) actors export with torch.onnx directly"
    )


def neuron_spec(neuron: nn.Module, index: int) -> tuple[str, dict[str, Any]]:
    """(kind, inference parameters) of one neuron layer; exact float values (PLIF: the learned decay)."""
    cls = type(neuron)
    params: dict[str, Any] = {"threshold": float(neuron.threshold)}
    if cls is DNNeuron:
        params.update(current_decay=float(neuron.current_decay), theta_v=neuron.theta_v, theta_u=neuron.theta_u,
                      theta_r=neuron.theta_r, theta_s=neuron.theta_s, u_sign=neuron.u_sign)
        return "dn", params
    params["reset"] = neuron.reset_mode
    if cls is IFNeuron:
        return "if", params
    if cls is MultiThresholdNeuron:
        params.update(decay=float(neuron.decay), levels=int(neuron.levels))
        return "multi-threshold", params
    if cls in (LIFNeuron, PLIFNeuron, CLIFNeuron):
        decay = neuron.decay
        params["decay"] = float(decay.detach()) if isinstance(decay, torch.Tensor) else float(decay)
        if cls is PLIFNeuron:
            params["decay_logit"] = float(neuron.decay_logit.detach())
            return "plif", params
        if cls is CLIFNeuron:
            params["current_decay"] = float(neuron.current_decay)
            return "clif", params
        return "lif", params
    raise ValueError(f"layer {index} has neuron {cls.__name__}, which has no inference form (export, Numba); "
                     "supported: if, lif, clif, plif, dn, multi-threshold")


def spec_from_actor(policy: Any) -> PolicySpec:
    """The :class:`PolicySpec` of a trained spiking actor (arrays copied in the actor's dtype)."""
    actor = require_spiking_actor(policy)

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().copy()

    enc = actor.encoder
    mean = std = None
    if isinstance(enc, PopulationEncoder):
        if not enc.deterministic:
            raise ValueError("the stochastic population encoder (encoder='pop-stochastic') has no "
                             "deterministic deployment form; train with encoder='pop' or 'direct'")
        kind, pop = "pop", enc.pop_dim
        # the encoder reads std only as std**2, so training may take an entry below zero; |std| is the same
        # encoder bit for bit, and the positive width every deployment form expects
        mean, std = arr(enc.mean), np.abs(arr(enc.std))
    elif isinstance(enc, DirectEncoder):
        kind, pop = "direct", 1
    else:
        raise ValueError(f"unsupported encoder {type(enc).__name__}; supported: pop, direct")
    layers = []
    for i, (linear, neuron) in enumerate(zip(actor.snn.linears, actor.snn.neurons, strict=True)):
        name, params = neuron_spec(neuron, i)
        layers.append(LayerSpec(arr(linear.weight), arr(linear.bias), name, params))
    source = "SpikingGaussianActor" if isinstance(actor, SpikingGaussianActor) else (
        "SpikingActor" if isinstance(actor, SpikingActor) else type(actor).__name__)
    spec = PolicySpec(
        obs_dim=actor.obs_dim, act_dim=actor.act_dim, T=actor.T, encoder=kind, preprocess=enc.preprocess,
        layers=layers, decoder_weight=arr(actor.decoder.weight), decoder_bias=arr(actor.decoder.bias), pop_dim=pop,
        encoder_mean=mean, encoder_std=std,
        extra={"source": source, "output": "tanh(mean)" if source == "SpikingGaussianActor" else "action",
               "actor_config": actor.config()},
    )
    spec.validate()
    return spec
