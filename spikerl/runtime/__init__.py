"""Torch-free deployment runtime: load a policy bundle and act with NumPy + Numba.

    from spikerl.runtime import load_policy
    policy = load_policy("runs/hopper/bundle")
    action = policy.act(obs)        # one observation [obs_dim] or a batch [B, obs_dim]
    policy.reset()                  # at episode start

Importing this package (and running a policy) never imports torch; ``tests/export`` checks it in a
subprocess where ``import torch`` fails.
"""

from spikerl.runtime.bundle import BundleError, BundleWarning, read_bundle, write_bundle
from spikerl.runtime.policy import Policy, load_policy
from spikerl.runtime.spec import LayerSpec, PolicySpec

__all__ = ["load_policy", "Policy", "BundleError", "BundleWarning", "read_bundle", "write_bundle", "PolicySpec",
           "LayerSpec"]
