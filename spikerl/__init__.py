"""spikerl: reinforcement learning with spiking neural networks.

Core (this package minus ``cli``) needs only PyTorch and NumPy: neurons, surrogates, coding, spiking
actors, conversion and kernels. RL agents live in ``spikerl.agents`` (Stable-Baselines3) and
environments in ``spikerl.envs`` (Gymnasium MuJoCo).
"""

from spikerl.networks import SpikingActor, SpikingGaussianActor, SpikingMLP, mlp_actor
from spikerl.neurons import NEURONS, make_neuron
from spikerl.surrogates import make_surrogate

__version__ = "0.1.0"

__all__ = [
    "__version__", "make_neuron", "make_surrogate", "NEURONS", "SpikingActor", "SpikingGaussianActor",
    "SpikingMLP", "mlp_actor",
]
