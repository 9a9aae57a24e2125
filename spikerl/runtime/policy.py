"""A deployed spiking policy: a bundle run by the Numba kernel (``spikerl.kernels.numba_policy``), no torch.

``policy.act(obs)`` takes one observation ``[obs_dim]`` or a batch ``[B, obs_dim]`` and returns the env
action(s): the network's action a in [-1, 1] scaled onto the bundle's action space
(``a_env = low + (a + 1)/2 (high - low)``, as Stable-Baselines3's ``unscale_action``), or a itself when the
bundle has no action space (``normalized=True`` always gives a). ``policy.reset()`` starts a new episode:
stateless policies (every decision simulates T steps from rest, the spikerl actors) have nothing to
reset; a converted policy with the CRPI carry (``manifest["policy"]["carry"] == "crpi"``) keeps each neuron's
carried potential per batch row between ``act()`` calls and drops it there (``reset(mask)``: only the rows
where ``mask`` is true, e.g. the finished envs of a vector env).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.energy import EnergyReport, count_energy
from spikerl.runtime.bundle import BundleError, read_bundle
from spikerl.runtime.manifest import space_bounds
from spikerl.runtime.spec import PolicySpec


class Policy:
    """A loaded bundle (build it with :func:`load_policy`). Not thread-safe: make one per thread."""

    def __init__(self, spec: PolicySpec, manifest: dict[str, Any], path: Path | None = None,
                 dtype: np.dtype | type | str | None = None) -> None:
        from spikerl.kernels.numba_policy import pack_policy

        if spec.carry is not None and spec.readout != "linear":
            raise BundleError(f"{path}: the policy carries state across decisions (carry={spec.carry!r}), which "
                              "this runtime runs only for converted policies (if-conv or diff-conv layers, linear "
                              "readout)")
        self.spec, self.manifest, self.path = spec, manifest, path
        self.obs_dim, self.act_dim, self.T = spec.obs_dim, spec.act_dim, spec.T
        self.dtype = np.dtype(dtype if dtype is not None else spec.dtype)
        self._kernel = pack_policy(spec, dtype=self.dtype)
        self.env_id: str | None = (manifest.get("env") or {}).get("id")
        self._low = self._span = None
        space = manifest.get("action_space")
        if space is not None and manifest.get("action_scaling", {}).get("kind") == "affine":
            # scaled in the policy dtype, as SB3's unscale_action on a float32 Box
            low, high = space_bounds(space, "action_space", spec.act_dim, finite=True)
            self._low = low.astype(self.dtype)
            self._span = high.astype(self.dtype) - self._low

    @property
    def stateful(self) -> bool:
        return self.spec.carry is not None

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Start a new episode: clear the carried state (all rows, or the rows where the bool ``mask[B]`` is
        true); a no-op for stateless policies."""
        if self.stateful:
            self._kernel.reset(mask)

    def act(self, obs: np.ndarray | Any, *, normalized: bool = False) -> np.ndarray:
        """Env action(s) for ``obs[obs_dim]`` or ``obs[B, obs_dim]`` (``normalized=True``: in [-1, 1])."""
        a = self._kernel(obs)
        if normalized or self._low is None:
            return a
        return self._low + (0.5 * (a + 1.0)) * self._span

    __call__ = act

    def spike_counts(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Spikes per neuron summed over T, ``{"encoder"?, "hidden0", ..., "output": [B, n]}``."""
        return self._kernel.spike_counts(obs)

    def act_and_count(self, obs: np.ndarray | Any, *, normalized: bool = False
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``act`` and ``spike_counts`` of one decision: ``(actions [B, act_dim], {name: [B, n]})``."""
        a, counts = self._kernel.decide(obs)
        if not (normalized or self._low is None):
            a = self._low + (0.5 * (a + 1.0)) * self._span
        return a, counts

    def energy(self, counts: dict[str, np.ndarray], model: str = "paper") -> EnergyReport:
        """Energy per decision (``spikerl.energy``) from spike counts ``{name: [N, n]}`` of N decisions.

        SOPs: each spike of a population feeding layer l costs n_l accumulates; MACs: the readout
        (``decoder_weight`` entries) and, for direct (analog) input, T * n_in * n_1 for the first layer,
        as :func:`spikerl.energy.snn_energy` counts a torch actor (n_in * n_1 once for differential coding,
        ``diff-conv`` layers, which send the input once).
        """
        names = self._kernel.count_names
        missing = [n for n in names if n not in counts]
        if missing:
            raise ValueError(f"energy(): spike counts for {missing} are missing; pass spike_counts()'s dict")
        layers = self.spec.layers if self.spec.encoder == "pop" else self.spec.layers[1:]
        macs = float(self.spec.decoder_weight.size)
        if self.spec.encoder != "pop":
            steps_in = 1 if self.spec.layers[0].neuron == "diff-conv" else self.T
            macs += steps_in * self.spec.layers[0].n_in * self.spec.layers[0].n_out
        return count_energy(counts, names[:-1], [layer.n_out for layer in layers], self.T, macs, model)

    def __repr__(self) -> str:
        layers = "-".join(f"{layer.n_out}{layer.neuron}" for layer in self.spec.layers)
        return (f"Policy({self.path}, obs_dim={self.obs_dim}, act_dim={self.act_dim}, T={self.T}, layers={layers}, "
                f"dtype={self.dtype.name}, env={self.env_id})")


def load_policy(path: str | os.PathLike[str], dtype: np.dtype | type | str | None = None) -> Policy:
    """Load a bundle directory (``spikerl export --format bundle``) for inference with NumPy + Numba.

    ``dtype``: float32 or float64 compute (default: the bundle's weight dtype). Raises
    :class:`~spikerl.runtime.bundle.BundleError` (a ``ValueError``) for a missing, malformed or tampered
    bundle, naming the problem.
    """
    spec, manifest = read_bundle(path)
    if dtype is not None and np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"load_policy: dtype must be float32 or float64, got {np.dtype(dtype)}")
    return Policy(spec, manifest, Path(path), dtype)
