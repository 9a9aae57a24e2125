"""Neuron registry: configs and the CLI name neurons by string."""

from __future__ import annotations

import inspect
from typing import Any

from spikerl.neurons.base import SpikingNeuron
from spikerl.neurons.dynamic import DNNeuron
from spikerl.neurons.leaky import CLIFNeuron, IFNeuron, LIFNeuron, PLIFNeuron
from spikerl.neurons.multithreshold import MultiThresholdNeuron

NEURONS: dict[str, type[SpikingNeuron]] = {
    cls.name: cls for cls in (IFNeuron, LIFNeuron, CLIFNeuron, PLIFNeuron, DNNeuron, MultiThresholdNeuron)
}
_ALIASES = {"multithreshold": "multi-threshold", "multi_threshold": "multi-threshold", "mt": "multi-threshold"}
_BASE_PARAMS = ("threshold", "reset", "surrogate", "surrogate_kwargs", "detach_reset", "fused")


def allowed_params(name: str) -> list[str]:
    """Keyword parameters ``make_neuron(name, ...)`` accepts."""
    cls = NEURONS[_canonical(name)]
    own = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    return sorted(set(own) | set(_BASE_PARAMS))


def _canonical(name: str) -> str:
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in NEURONS:
        raise ValueError(f"unknown neuron {name!r}; known neurons: {', '.join(NEURONS)}")
    return key


def make_neuron(name: str, **params: Any) -> SpikingNeuron:
    """Build a neuron by name, e.g. ``make_neuron("lif", threshold=0.5, decay=0.75, reset="hard")``.

    Defaults are the Proxy Target paper's (V_th 0.5, decay 0.75, current decay 0.5, rectangular
    surrogate of width 0.5, hard reset). Unknown names or parameters raise ``ValueError``.
    """
    key = _canonical(name)
    allowed = allowed_params(key)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"neuron {key!r} got unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    return NEURONS[key](**params)
