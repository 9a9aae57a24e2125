"""ANN-to-SNN conversion: QCFS / OPI / max / percentile / SRP / COS / Parallel / DCGS, and CRPI for control.

    from spikerl.conversion import ConversionSpec, convert
    snn = convert(actor, ConversionSpec(T=32, method="max"), calib_data=states)
    snn = convert(actor, ConversionSpec(T=32, method="max", carry="crpi", alpha=0.5), calib_data=states)
    action = snn(obs)      # with a carry: snn.reset() at episode start

The equations, when to pick which method, and results: ``docs/conversion.md``.
"""

from spikerl.conversion.activations import QCFS, ClipReLU, replace_relu
from spikerl.conversion.actor import convert_actor, deterministic_actor
from spikerl.conversion.convert import METHODS, NEURONS, ConversionSpec, convert
from spikerl.conversion.graph import fold_bn
from spikerl.conversion.model import SpikingModel, Trace

__all__ = [
    "QCFS", "ClipReLU", "replace_relu", "ConversionSpec", "convert", "convert_actor", "deterministic_actor",
    "SpikingModel", "Trace", "METHODS", "NEURONS", "fold_bn",
]
