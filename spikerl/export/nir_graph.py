"""NIR export (Pedersen et al., Nature Communications 15, 8122, 2024): Affine + LIF / CubaLIF / IF nodes.

spikerl's discrete neuron  h_t = beta u_{t-1} + I_t,  I_t = W s_t + b,  s_t = [h_t > V_th],  hard reset to 0,
is forward Euler (step dt) of NIR's  tau dv/dt = (v_leak - v) + r I  with

    tau = dt / (1 - beta),   r = tau / dt = 1 / (1 - beta),   v_leak = 0,   v_threshold = V_th,   v_reset = 0

and dt = 1e-4 (the snnTorch / SpikingJelly / Lava convention). IF (beta = 1): ``IF(r = 1/dt, V_th, 0)``.
CLIF (c_t = alpha c_{t-1} + I_t; h_t = beta u_{t-1} + c_t): ``CubaLIF(tau_syn = dt/(1-alpha),
tau_mem = dt/(1-beta), r = tau_mem/dt, w_in = tau_syn/dt, v_leak = 0, V_th, v_reset = 0)``. PLIF exports as
LIF with its learned beta.

NIR has no reset mechanism field: nodes reset to ``v_reset`` (hard reset). Soft-reset neurons, the DN
neuron and multi-threshold neurons cannot be expressed and raise ``ValueError``. The population encoder,
the decoder (rate over T, grouped affine) and tanh are not NIR primitives: they run on the host; the
graph's input is the encoder's spike train and its output the last layer's spikes (the graph metadata
states this, with T, dt and the coding; the host arrays are in the metadata too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.runtime.spec import LayerSpec, PolicySpec

NIR_DT = 1e-4


def _unexpressible(i: int, layer: LayerSpec) -> str | None:
    kind = layer.neuron
    if kind in ("dn", "multi-threshold"):
        what = "the DN (dynamic second-order) neuron" if kind == "dn" else "multi-threshold (graded) spikes"
        return (f"layer {i} uses {what}, which NIR cannot express (its neurons are IF/LIF/CubaLIF with one "
                "threshold); use format='bundle' or 'onnx' for this policy, or train with neuron lif/clif/if/plif "
                "and reset='hard'")
    if layer.params.get("reset") != "hard":
        return (f"layer {i} ({kind}) uses reset={layer.params.get('reset')!r}; NIR neurons only reset to v_reset "
                "(hard reset), so a soft (subtractive) reset would run differently in every NIR backend. Train "
                "with neuron_kwargs={'reset': 'hard'} for NIR export, or use format='bundle' or 'onnx'")
    if kind == "clif" and float(layer.params["current_decay"]) >= 1.0:
        return f"layer {i} (clif) has current_decay 1 (a non-leaky current), which CubaLIF cannot express"
    return None


def neuron_node(layer: LayerSpec, dt: float = NIR_DT) -> Any:
    """The NIR neuron node of one layer (parameter arrays shaped ``[n_out]``, float64)."""
    import nir

    n = layer.n_out
    p = layer.params

    def full(v: float) -> np.ndarray:
        return np.full(n, float(v), dtype=np.float64)

    thr, zero = full(p["threshold"]), full(0.0)
    beta = 1.0 if layer.neuron == "if" else float(p["decay"])
    if beta >= 1.0:
        return nir.IF(r=full(1.0 / dt), v_threshold=thr, v_reset=zero)
    tau = dt / (1.0 - beta)
    if layer.neuron == "clif":
        tau_syn = dt / (1.0 - float(p["current_decay"]))
        return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau), r=full(tau / dt), v_leak=zero, v_threshold=thr,
                           v_reset=zero, w_in=full(tau_syn / dt))
    return nir.LIF(tau=full(tau), r=full(tau / dt), v_leak=zero, v_threshold=thr, v_reset=zero)


def to_nir(spec: PolicySpec, dt: float = NIR_DT) -> Any:
    """The ``nir.NIRGraph`` of ``spec`` (ValueError when a layer cannot be expressed)."""
    import nir

    spec.validate()
    if spec.readout != "population":
        raise ValueError("NIR cannot express a converted ANN policy: its IF neurons use a soft (subtractive) reset "
                         "and start from v0 = theta/2 (NIR neurons reset to v_reset and start at 0), and a CRPI "
                         "carry is state across decisions that no NIR graph holds; use format='bundle'")
    if spec.carry is not None:
        raise ValueError(f"NIR export of a policy with carried state (carry={spec.carry!r}) is not supported; "
                         "use format='bundle'")
    for i, layer in enumerate(spec.layers):
        problem = _unexpressible(i, layer)
        if problem:
            raise ValueError(f"cannot export to NIR: {problem}")
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([spec.encoder_out])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, layer in enumerate(spec.layers):
        neuron = neuron_node(layer, dt)
        kind = type(neuron).__name__.lower()
        affine = nir.Affine(weight=np.asarray(layer.weight, dtype=np.float64),
                            bias=np.asarray(layer.bias, dtype=np.float64))
        nodes[f"affine{i}"], nodes[f"{kind}{i}"] = affine, neuron
        edges += [(prev, f"affine{i}"), (f"affine{i}", f"{kind}{i}")]
        prev = f"{kind}{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([spec.layers[-1].n_out])})
    edges.append((prev, "output"))
    metadata: dict[str, Any] = {
        "producer": "spikerl",
        "spikerl_reset": "hard",
        "reset_note": "every neuron resets to v_reset = 0 after a spike (hard reset); spikes are v > v_threshold",
        "dt": dt,
        "T": spec.T,
        "state_reset": "all neuron states start at 0 for every decision (one decision = T steps)",
        "encoder": spec.encoder,
        "preprocess": spec.preprocess,
        "pop_dim": spec.pop_dim,
        "decoder_pop_dim": spec.decoder_pop_dim,
        "host": ("the graph maps the encoder's spike train [T, encoder_out] to the output layer's spikes; the "
                 "encoder (preprocess, population Gaussian receptive fields with regular spikes V += A, "
                 "S = [V > 0.999], V -= 0.999 S; or the analog input for direct coding), the decoder "
                 "(r = spike count / T per output neuron, a_k = sum_j w_kj r_kj + b_k) and tanh run on the host"),
        "host_decoder_weight": np.asarray(spec.decoder_weight, dtype=np.float64),
        "host_decoder_bias": np.asarray(spec.decoder_bias, dtype=np.float64),
    }
    if spec.encoder == "pop":
        metadata["host_encoder_mean"] = np.asarray(spec.encoder_mean, dtype=np.float64)
        metadata["host_encoder_std"] = np.asarray(spec.encoder_std, dtype=np.float64)
        metadata["encoder_threshold"] = 0.999
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def write_nir(spec: PolicySpec, path: str | os.PathLike[str], dt: float = NIR_DT) -> Path:
    """Write ``spec`` as a NIR (HDF5) file at ``path`` (written to a temporary name, then renamed)."""
    import nir

    graph = to_nir(spec, dt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    nir.write(tmp, graph)
    os.replace(tmp, path)
    return path
