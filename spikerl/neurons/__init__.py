"""Spiking neuron models (IF, LIF, CLIF, PLIF, DN, multi-threshold) and the name registry."""

from spikerl.neurons.base import SpikingNeuron, State
from spikerl.neurons.dynamic import DNNeuron
from spikerl.neurons.leaky import CLIFNeuron, IFNeuron, LIFNeuron, PLIFNeuron
from spikerl.neurons.multithreshold import MultiThresholdNeuron
from spikerl.neurons.registry import NEURONS, allowed_params, make_neuron

__all__ = [
    "SpikingNeuron", "State", "IFNeuron", "LIFNeuron", "CLIFNeuron", "PLIFNeuron", "DNNeuron",
    "MultiThresholdNeuron", "NEURONS", "make_neuron", "allowed_params",
]
