"""Export a trained spiking policy: a self-contained bundle, a NIR graph, or an ONNX model.

    export_policy(actor, "policy_bundle", format="bundle", observation_space=env.observation_space,
                  action_space=env.action_space)            # weights.npz + manifest.json (spikerl.runtime)
    export_policy(actor, "policy.nir", format="nir")        # Affine + LIF/CubaLIF/IF, hard reset
    export_policy(actor, "policy.onnx", format="onnx")      # T unrolled, onnxruntime
    compile_policy(actor)                                   # in-process Numba policy (float32)

``actor``: a :class:`spikerl.SpikingActor`, a :class:`spikerl.SpikingGaussianActor` (its deterministic
action tanh(mean)), an SB3 actor of ``spikerl.agents`` wrapping one, or a
:class:`~spikerl.runtime.spec.PolicySpec`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spikerl.runtime.spec import PolicySpec

if TYPE_CHECKING:
    from spikerl.kernels.numba_policy import CompiledPolicy

FORMATS = ("bundle", "nir", "onnx")
SUFFIXES = {"bundle": "", "nir": ".nir", "onnx": ".onnx"}

__all__ = ["FORMATS", "compile_policy", "export_policy", "policy_spec"]


def policy_spec(policy: Any) -> PolicySpec:
    """The plain-array :class:`PolicySpec` of ``policy`` (a spec is returned unchanged)."""
    if isinstance(policy, PolicySpec):
        return policy
    from spikerl.export.extract import spec_from_actor

    return spec_from_actor(policy)


def compile_policy(policy: Any, dtype: type | np.dtype = np.float32) -> CompiledPolicy:
    """``policy`` (as :func:`policy_spec` takes it) as a Numba :class:`~spikerl.kernels.numba_policy.CompiledPolicy`.

    The weights are copied (later changes to the actor are not seen); ``dtype`` is float32 (default) or
    float64. For a Gaussian (SAC) actor the policy returns the deterministic action tanh(mean).
    """
    from spikerl.kernels.numba_policy import pack_policy

    return pack_policy(policy_spec(policy), dtype)


def export_policy(policy: Any, path: str | os.PathLike[str], format: str = "bundle", *,
                  observation_space: Any = None, action_space: Any = None, env: dict[str, Any] | None = None,
                  spike_counts: bool = False, opset: int | None = None) -> Path:
    """Export ``policy`` to ``path`` in ``format`` (``"bundle"``, ``"nir"`` or ``"onnx"``); returns the path.

    bundle: ``observation_space`` / ``action_space`` (Box-like, or ``{"shape", "low", "high"}``) go into the
    manifest, and the runtime scales actions onto the action space; ``env`` (``{"id": ..., "kwargs": ...}``)
    lets ``spikerl evaluate BUNDLE`` build the env. onnx: ``spike_counts`` adds per-layer spike-count
    outputs; ``opset`` >= 17. nir: raises ``ValueError`` for neurons NIR cannot express (soft reset, DN,
    multi-threshold).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    spec = policy_spec(policy)
    if format == "bundle":
        import torch

        from spikerl.runtime.bundle import write_bundle

        return write_bundle(spec, path, observation_space=observation_space, action_space=action_space, env=env,
                            versions={"torch": torch.__version__.split("+")[0]})
    if format == "nir":
        from spikerl.export.nir_graph import write_nir

        return write_nir(spec, path)
    from spikerl.export.onnx_graph import ONNX_OPSET, write_onnx

    return write_onnx(spec, path, opset=opset or ONNX_OPSET, spike_counts=spike_counts)
