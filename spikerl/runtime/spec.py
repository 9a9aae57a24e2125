"""A spiking policy as plain NumPy arrays and numbers (no torch): what export writes and the runtime runs.

    obs -> preprocess (tanh | none) -> encoder (population: A = exp(-0.5 (s - mu)^2 / sigma^2), regular
    spikes V += A, S = [V > 0.999], V -= 0.999 S;  direct: the analog s at every step)
    -> [I_t = W S_t + b -> neuron]  per layer, T steps from rest
    -> rate r = count / T per output neuron -> a_k = tanh(sum_j w_kj r_kj + b_k)  (the deterministic action)

Converted ANN policies (``spikerl.conversion``, ``readout="linear"``) use the direct (analog) input and one
of two layer kinds, the same in every layer, with per-neuron thresholds theta_j in ``layer<i>.threshold``:

* ``if-conv`` (rate coding): IF with v_0 = v0 theta + carry, soft reset, graded spikes of value theta_j over
  T steps; linear readout a = tanh(W_r (theta * count / T) + b_r) of the last layer.
* ``diff-conv`` (differential coding, DCGS ``if-diff`` / ``mth-diff``): T + 1 steps; the observation's
  current W x + b is sent once (step 1), a hidden layer's current is b + W out_t; each neuron emits signed
  graded messages +-theta_j / 2^i (``levels`` of them) and the readout decodes the last layer's rate
  r = sum_{t=1..T} out_t / t: a = tanh(W_r r + b_r).

With ``carry="crpi"`` each neuron keeps c = clip(alpha max(v_T - v_0, -theta N), -theta/2, theta/2) for the
next decision until ``reset()`` (N: spikes, or for ``diff-conv`` the output emitted sum_t |out_t| / theta).

:class:`PolicySpec` is the common currency of ``spikerl.export`` (bundle, NIR, ONNX) and
``spikerl.runtime`` (the Numba policy); :data:`NEURON_PARAMS` lists the inference parameters of each
neuron kind and :data:`EQUATIONS` their update rules as text (written into bundle manifests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerl.runtime.params import CONVERTED_NEURONS, NEURON_PARAMS, check_layer_params, is_integer, show

ENCODERS = ("pop", "direct")
PREPROCESS = ("tanh", "none")
ENCODER_THRESHOLD = 0.999

READOUTS = ("population", "linear")
#: upper bound on T: the runtime keeps [2, T, width] work buffers per decision, and conversion methods use
#: T of at most a few thousand; a larger T in a file is a corrupt or hostile value, not a policy
MAX_T = 10_000

_RESET = {
    "hard": "u_t = h_t (1 - s_t)",
    "soft": "u_t = h_t - V_th s_t",
}

#: one-step update of each neuron kind (I_t = W s^{l-1}_t + b; state starts at 0 every decision)
EQUATIONS: dict[str, list[str]] = {
    "if": ["h_t = u_{t-1} + I_t", "s_t = [h_t > V_th]"],
    "lif": ["h_t = decay u_{t-1} + I_t", "s_t = [h_t > V_th]"],
    "plif": ["h_t = decay u_{t-1} + I_t  (decay = sigmoid(w), learned)", "s_t = [h_t > V_th]"],
    "clif": ["c_t = current_decay c_{t-1} + I_t", "h_t = decay u_{t-1} + c_t", "s_t = [h_t > V_th]"],
    "dn": ["C_t = current_decay C_{t-1} + I_t", "V = V (1 - S_{t-1}) + theta_r S_{t-1}",
           "U = U + theta_s S_{t-1}", "dV = V^2 - V - U + C_t", "dU = theta_v V -/+ theta_u U  (u_sign)",
           "V = V + dV; U = U + dU", "S_t = [V > V_th]"],
    "multi-threshold": ["h_t = decay u_{t-1} + I_t", "k_t = sum_{j=1..levels} [h_t > j V_th]  (graded spike)",
                        "soft: u_t = h_t - V_th k_t;  hard: u_t = h_t [k_t = 0]"],
    "if-conv": ["u_0 = v0 theta_j + c_j  (c_j: CRPI carry, 0 without carry or after reset)",
                "h_t = u_{t-1} + I_t,  I_t = W x_t + b  (x_t: analog input or the previous layer's theta s_t)",
                "s_t = [h_t >= theta_j]  (fire='ge') or [h_t > theta_j]  (fire='gt');  output theta_j s_t"],
    "diff-conv": ["steps t = 0..T; I_t = W o_t + b (o_t: the previous layer's messages, o_0 = 0); first layer: "
                  "I_0 = 0, I_1 = W x + b, I_t = 0 for t >= 2",
                  "v = v0 theta_j + c_j  (c_j: CRPI carry);  r_in = I_0;  r_out = 0",
                  "d_t = I_t - I_0;  m_t = v + d_t + r_in - r_out",
                  "levels l_i = theta_j / 2^i, i = 0..levels-1; cut_i = theta_j (levels = 1) or 0.75 l_i",
                  "o_t = l_i for the largest level with m_t >= cut_i; else, if signed, -l_i for the largest level "
                  "with m_t <= -cut'_i (cut'_i = 0 for levels = 1, else 0.75 l_i) and t r_out >= l_i; else 0",
                  "v = m_t - o_t;  r_in += d_t / t;  r_out += o_t / t  (spike count: o_t != 0)"],
}


def neuron_equations(neuron: str, params: dict[str, Any]) -> list[str]:
    """The update rules of one layer's neuron as text (with its reset)."""
    lines = list(EQUATIONS[neuron])
    if neuron in ("if", "lif", "plif", "clif", "if-conv"):
        lines.append(_RESET[params["reset"]].replace("V_th", "theta_j") if neuron == "if-conv"
                     else _RESET[params["reset"]])
    if neuron == "if-conv" and "alpha" in params:
        lines.append("carry: c_j = clip(alpha max(u_T - u_0, -theta_j N_j), -theta_j/2, theta_j/2)")
    if neuron == "diff-conv" and "alpha" in params:
        lines.append("carry: c_j = clip(alpha max(v_T - v_0, -theta_j N_j), -theta_j/2, theta_j/2), "
                     "N_j = sum_t |o_t| / theta_j")
    return lines


class LinearShape:
    """The sizes of a layer whose ``weight`` is ``[out, in]``."""

    weight: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class LayerSpec(LinearShape):
    """One ``Linear -> neuron`` layer: ``weight[out, in]``, ``bias[out]``, neuron kind and parameters.

    ``threshold[out]``: per-neuron thresholds (``if-conv`` / ``diff-conv`` layers only)."""

    weight: np.ndarray
    bias: np.ndarray
    neuron: str
    params: dict[str, Any]
    threshold: np.ndarray | None = None


@dataclass
class PolicySpec:
    """A deterministic spiking policy obs -> action in [-1, 1], as arrays (see the module docstring).

    ``carry``: None (every decision starts from rest: stateless) or the name of a state carried across
    decisions (``"crpi"``, converted policies), which needs ``reset()`` at episode start.
    ``readout``: ``"population"`` (a_k = tanh(sum_j w_kj r_kj + b_k) over action k's group of output neurons,
    ``decoder_weight[act, pop]``) or ``"linear"`` (converted policies: a = tanh(W r + b) of the last layer's
    rate r, ``decoder_weight[act, n_last]``; r = theta * count / T for ``if-conv``, r = sum_t o_t / t for
    ``diff-conv``).
    """

    obs_dim: int
    act_dim: int
    T: int
    encoder: str
    preprocess: str
    layers: list[LayerSpec]
    decoder_weight: np.ndarray  # [act_dim, decoder_pop_dim]
    decoder_bias: np.ndarray  # [act_dim]
    pop_dim: int = 1
    encoder_mean: np.ndarray | None = None  # [obs_dim, pop_dim] (population encoder)
    encoder_std: np.ndarray | None = None
    carry: str | None = None
    readout: str = "population"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def decoder_pop_dim(self) -> int:
        return int(self.decoder_weight.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].weight.dtype

    @property
    def encoder_out(self) -> int:
        return self.obs_dim * self.pop_dim if self.encoder == "pop" else self.obs_dim

    def arrays(self) -> dict[str, np.ndarray]:
        """All weight arrays by name (the ``weights.npz`` keys of a bundle)."""
        out: dict[str, np.ndarray] = {}
        if self.encoder == "pop":
            out["encoder.mean"] = self.encoder_mean  # type: ignore[assignment]
            out["encoder.std"] = self.encoder_std  # type: ignore[assignment]
        for i, layer in enumerate(self.layers):
            out[f"layer{i}.weight"] = layer.weight
            out[f"layer{i}.bias"] = layer.bias
            if layer.neuron in CONVERTED_NEURONS:
                out[f"layer{i}.threshold"] = layer.threshold  # type: ignore[assignment]
        out["decoder.weight"] = self.decoder_weight
        out["decoder.bias"] = self.decoder_bias
        return out

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape every array must have, derived from the sizes alone."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.encoder == "pop":
            shapes["encoder.mean"] = shapes["encoder.std"] = (self.obs_dim, self.pop_dim)
        n_in = self.encoder_out
        for i, layer in enumerate(self.layers):
            shapes[f"layer{i}.weight"] = (layer.n_out, n_in)
            shapes[f"layer{i}.bias"] = (layer.n_out,)
            if layer.neuron in CONVERTED_NEURONS:
                shapes[f"layer{i}.threshold"] = (layer.n_out,)
            n_in = layer.n_out
        shapes["decoder.weight"] = (self.act_dim, self.decoder_pop_dim)
        shapes["decoder.bias"] = (self.act_dim,)
        return shapes

    def validate(self) -> None:
        """``ValueError`` naming the first inconsistency (kinds, sizes, shapes, finiteness, parameters)."""
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; supported: {', '.join(ENCODERS)}")
        if self.preprocess not in PREPROCESS:
            raise ValueError(f"unknown preprocess {self.preprocess!r}; supported: {', '.join(PREPROCESS)}")
        if not is_integer(self.T) or not 1 <= self.T <= MAX_T:
            raise ValueError(f"T must be an integer in [1, {MAX_T}], got {show(self.T)}")
        if self.obs_dim < 1 or self.act_dim < 1 or not self.layers:
            raise ValueError(f"obs_dim, act_dim and the layer count must be >= 1, got obs_dim={self.obs_dim}, "
                             f"act_dim={self.act_dim}, {len(self.layers)} layers")
        if self.readout not in READOUTS:
            raise ValueError(f"unknown readout {self.readout!r}; supported: {', '.join(READOUTS)}")
        if self.readout == "population" and self.layers[-1].n_out != self.act_dim * self.decoder_pop_dim:
            raise ValueError(f"the last layer has {self.layers[-1].n_out} neurons but the decoder reads "
                             f"{self.act_dim} x {self.decoder_pop_dim}")
        arrays = self.arrays()
        for name, shape in self.expected_shapes().items():
            arr = arrays[name]
            if arr is None or tuple(arr.shape) != shape:
                got = None if arr is None else tuple(arr.shape)
                raise ValueError(f"array {name!r} has shape {got}, expected {shape}")
            bad = first_non_finite(arr)
            if bad is not None:
                raise ValueError(f"array {name!r} holds {bad}; a policy's weights must be finite")
        for name in ("encoder.std",) + tuple(f"layer{i}.threshold" for i in range(len(self.layers))):
            if name in arrays and not (np.asarray(arrays[name]) > 0).all():
                raise ValueError(f"array {name!r} must be positive everywhere, got minimum "
                                 f"{float(np.asarray(arrays[name]).min())!r}")
        if self.readout == "linear" and self.decoder_pop_dim != self.layers[-1].n_out:
            raise ValueError(f"the linear readout reads {self.decoder_pop_dim} inputs but the last layer has "
                             f"{self.layers[-1].n_out} neurons")
        if self.carry not in (None, "crpi"):
            raise ValueError(f"unknown carry {self.carry!r}; supported: None, 'crpi'")
        kinds = {layer.neuron for layer in self.layers}
        if self.readout == "linear" and len(kinds) > 1:
            raise ValueError(f"a converted policy uses one coding in every layer; this spec mixes "
                             f"{', '.join(sorted(kinds))}")
        for i, layer in enumerate(self.layers):
            if layer.neuron not in NEURON_PARAMS:
                raise ValueError(f"layers[{i}].neuron: unknown neuron {layer.neuron!r}; known: "
                                 f"{', '.join(NEURON_PARAMS)}")
            if (layer.neuron in CONVERTED_NEURONS) != (self.readout == "linear"):
                raise ValueError(f"layer {i} ({layer.neuron}): {'/'.join(CONVERTED_NEURONS)} layers go with "
                                 f"readout='linear' (converted policies) and only there; this spec has "
                                 f"readout={self.readout!r}")
            check_layer_params(i, layer.neuron, layer.params, self.carry)


def first_non_finite(arr: np.ndarray) -> str | None:
    """``"nan at index (i, j)"`` for the first NaN or infinite entry of ``arr``, None when all are finite."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fc":
        return None
    finite = np.isfinite(arr)
    if finite.all():
        return None
    index = tuple(int(i) for i in np.argwhere(~finite)[0])
    return f"{arr[index]} at index {index if len(index) != 1 else index[0]}"
