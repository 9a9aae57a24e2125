"""int8 fixed point for a spiking policy: quantize a :class:`PolicySpec`, and a NumPy model of the integer code.

Each layer's weights become int8 with one scale per output neuron j, s_j = max_i |W_ji v_i| / 127 (v_i: the
value an event of input i carries: 1 for a spike, theta_i for an ``if-conv`` neuron, whose value is folded
into the weights; a multi-threshold neuron's graded count k is multiplied in at run time). Neuron j's whole
state lives in units m_j = s_j / 2^F (F fractional bits per layer), so its bias, threshold, start potential
and carry are int32 numbers in the same scale as its input:

    q_ji = round(W_ji v_i / s_j)  (int8);   b_j = round(bias_j / m_j);   theta_j = round(V_th / m_j)  (int32)
    I_t = b + 2^F sum_{events i} k_i q_ji                    (int32; direct input: see below)
    h_t = (u_{t-1} d + 2^14) >> 15 + I_t                     (d = round(decay 2^15); IF: h_t = u_{t-1} + I_t)
    s_t = [h_t > theta_j] (if-conv 'ge': >=); reset to 0 (hard) or by subtracting theta_j (soft)

CLIF keeps its current the same way (c_t = (c_{t-1} d_c + 2^14) >> 15 + I_t). F is the largest value (at most
16) for which no int32 can overflow whatever the input: |I| <= |b| + 2^F n_in 127 k_max, and a membrane sums at
most T currents (T^2 for CLIF) plus two thresholds, kept below 2^30.

Direct (analog) input x (after the tanh preprocessing) is quantized once per decision to x_q =
clamp(floor(x 2^E + 1/2), -32767, 32767), with E the largest exponent (at most 15) that keeps the calibration
observations' max |x| in range; then I_0 = b + round(2^(F-E) sum_i q_ji x_q,i) (int64 sum).

The population encoder and the observation preprocessing stay in float32 (they are the float runtime's,
once per decision); the readout sums counts times int8 weights with a per-action scale and ends in float32:
a_k = tanh(sum_j count_kj q_kj r_k + b_k), r_k = s_k / T (linear readout of if-conv layers: theta_j folded
into the weights). The CRPI carry is c = clip((alpha_q max(u_T - u_0, -theta N) + 2^14) >> 15, -theta/2,
theta/2), alpha_q = round(alpha 2^15), theta/2 rounded towards zero.

Calibration (observations recorded from the policy's own env): the direct input exponent E, and a bias
correction per neuron: the mean current error the weight rounding causes over the calibration inputs,
sum_i (W_ji v_i - s_j q_ji) E[k_i] (E[k_i]: input i's mean events per step under the float runtime),
is added to the bias before it is rounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikerl.runtime.spec import ENCODER_THRESHOLD, LinearShape, PolicySpec

FIXED_KINDS = ("if", "lif", "plif", "clif", "multi-threshold", "if-conv")
Q_DECAY = 15
MAX_FRAC_BITS = 16
MAX_INPUT_EXP = 15
INPUT_MAX = 32767


@dataclass
class FixedLayer(LinearShape):
    """One quantized layer (see the module docstring for the arithmetic)."""

    neuron: str
    weight: np.ndarray  # int8 [n_out, n_in]
    bias: np.ndarray  # int32 [n_out], units m_j
    threshold: np.ndarray  # int32 [n_out], units m_j
    frac_bits: int
    scale: np.ndarray  # float64 [n_out]: s_j (the float value of one weight step)
    decay: int | None = None  # Q15, None: no leak
    current_decay: int | None = None  # Q15 (clif)
    hard: bool = True
    levels: int = 1  # multi-threshold
    fire_ge: bool = True  # if-conv
    v0: np.ndarray | None = None  # int32 [n_out] start potential (if-conv)
    alpha: int = 0  # Q15 CRPI alpha (if-conv)


@dataclass
class FixedPolicy:
    """A quantized policy: the float spec (encoder, sizes), the int layers and the int8 readout."""

    spec: PolicySpec
    layers: list[FixedLayer]
    decoder_weight: np.ndarray  # int8 [act, dec_pop]
    decoder_rate_scale: np.ndarray  # float32 [act]: r_k = s_k / T
    decoder_bias: np.ndarray  # float32 [act]
    input_exp: int = 0  # E (direct input)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def carry(self) -> bool:
        return self.spec.carry is not None


def check_fixed(spec: PolicySpec) -> None:
    """ValueError naming the first part of ``spec`` the int8 export does not cover."""
    spec.validate()
    for i, layer in enumerate(spec.layers):
        if layer.neuron == "dn":
            raise ValueError(f"int8 C export: layer {i} is a dn neuron, whose v^2 term has no fixed-point form here; "
                             "export it with --precision float32")
        if layer.neuron not in FIXED_KINDS:
            raise ValueError(f"int8 C export: layer {i} is {layer.neuron!r}, which has no fixed-point code (covered: "
                             f"{', '.join(FIXED_KINDS)}); export it with --precision float32")


def _q15(x: float) -> int:
    return int(round(float(x) * (1 << Q_DECAY)))


def _event_values(spec: PolicySpec, index: int) -> tuple[np.ndarray, int]:
    """(value folded into the weights per input, max run-time multiplier) of layer ``index``'s inputs."""
    n_in = spec.layers[index].n_in
    if index > 0:
        prev = spec.layers[index - 1]
        if prev.neuron == "if-conv":
            return np.asarray(prev.threshold, dtype=np.float64), 1
        if prev.neuron == "multi-threshold":
            return np.ones(n_in), int(prev.params["levels"])
    return np.ones(n_in), 1


def _row_scale(w: np.ndarray) -> np.ndarray:
    peak = np.abs(w).max(axis=1)
    return np.where(peak > 0, peak / 127.0, 1.0)


def _frac_bits(bias_s: np.ndarray, thr_s: np.ndarray, input_bound: float, T: int, clif: bool) -> int:
    """The largest F <= 16 with every int32 below 2^30 (bias, threshold: in units of s_j)."""
    cur = float(np.max(np.abs(bias_s))) + input_bound
    bound = (T * T if clif else T) * cur + 2.0 * float(np.max(np.abs(thr_s)))
    f = int(math.floor(math.log2((1 << 30) / max(bound, 1e-30))))
    if f < 0:
        raise ValueError(f"int8 C export: a membrane can reach {bound:.3g} weight steps, beyond int32; the weights "
                         "span too wide a range for fixed point, export with --precision float32")
    return min(f, MAX_FRAC_BITS)


def _input_exponent(spec: PolicySpec, calib: np.ndarray) -> int:
    x = np.tanh(calib) if spec.preprocess == "tanh" else calib
    peak = float(np.max(np.abs(x))) if x.size else 1.0
    if peak <= 0:
        return MAX_INPUT_EXP
    return int(min(MAX_INPUT_EXP, math.floor(math.log2(INPUT_MAX / peak))))


def _mean_inputs(spec: PolicySpec, calib: np.ndarray) -> list[np.ndarray]:
    """Mean events per step of each layer's inputs under the float runtime (direct input: mean x)."""
    from spikerl.runtime.policy import Policy

    policy = Policy(spec, {}, None, np.float32)
    counts = policy.spike_counts(np.asarray(calib, dtype=np.float32))
    names = list(counts)
    means: list[np.ndarray] = []
    if spec.encoder == "pop":
        means.append(counts["encoder"].mean(0) / spec.T)
        names = names[1:]
    else:
        x = np.tanh(calib) if spec.preprocess == "tanh" else calib
        means.append(np.asarray(x, dtype=np.float64).mean(0))
    for name in names[:-1]:
        means.append(counts[name].mean(0) / spec.T)
    return means


def quantize(spec: PolicySpec, calib: np.ndarray, *, bias_correction: bool = True) -> FixedPolicy:
    """The int8 fixed-point form of ``spec``, calibrated on observations ``calib[N, obs_dim]``."""
    check_fixed(spec)
    calib = np.asarray(calib, dtype=np.float64)
    if calib.ndim != 2 or calib.shape[1] != spec.obs_dim or len(calib) == 0:
        raise ValueError(f"int8 C export: calibration observations must have shape [N, {spec.obs_dim}] with N >= 1, "
                         f"got {calib.shape}")
    if not np.isfinite(calib).all():
        raise ValueError("int8 C export: the calibration observations hold NaN or Inf")
    T = spec.T
    analog = spec.encoder == "direct"
    input_exp = _input_exponent(spec, calib) if analog else 0
    means = _mean_inputs(spec, calib) if bias_correction else None
    layers: list[FixedLayer] = []
    for i, layer in enumerate(spec.layers):
        p = layer.params
        values, kmax = _event_values(spec, i)
        w = np.asarray(layer.weight, dtype=np.float64) * values[None, :]
        s = _row_scale(w)
        q = np.clip(np.rint(w / s[:, None]), -127, 127)
        bias = np.asarray(layer.bias, dtype=np.float64)
        if means is not None:  # the rounding's mean current error over the calibration inputs
            bias = bias + (w - q * s[:, None]) @ means[i]
        conv = layer.neuron == "if-conv"
        thr = np.asarray(layer.threshold, dtype=np.float64) if conv else np.full(layer.n_out, float(p["threshold"]))
        if analog and i == 0:
            input_bound = layer.n_in * 127.0 * INPUT_MAX * 2.0 ** -input_exp
        else:
            input_bound = layer.n_in * 127.0 * kmax
        levels = int(p.get("levels", 1)) if layer.neuron == "multi-threshold" else 1
        thr_top = thr * (levels + (1 if conv else 0))
        f = _frac_bits(bias / s, thr_top / s, input_bound, T, layer.neuron == "clif")
        unit = s / float(1 << f)
        decay = None
        if layer.neuron in ("lif", "plif", "clif", "multi-threshold") and float(p["decay"]) != 1.0:
            decay = _q15(p["decay"])
        layers.append(FixedLayer(
            neuron=layer.neuron, weight=q.astype(np.int8), bias=np.rint(bias / unit).astype(np.int32),
            threshold=np.rint(thr / unit).astype(np.int32), frac_bits=f, scale=s, decay=decay,
            current_decay=_q15(p["current_decay"]) if layer.neuron == "clif" else None,
            hard=p.get("reset", "hard") == "hard" and not conv, levels=levels,
            fire_ge=p.get("fire") == "ge", v0=np.rint(float(p["v0"]) * thr / unit).astype(np.int32) if conv else None,
            alpha=_q15(p.get("alpha", 0.0)) if conv else 0))
    dec = np.asarray(spec.decoder_weight, dtype=np.float64)
    if spec.readout == "linear" and spec.layers[-1].neuron == "if-conv":
        dec = dec * np.asarray(spec.layers[-1].threshold, dtype=np.float64)[None, :]
    ds = _row_scale(dec)
    dq = np.clip(np.rint(dec / ds[:, None]), -127, 127).astype(np.int8)
    return FixedPolicy(spec=spec, layers=layers, decoder_weight=dq, decoder_rate_scale=(ds / T).astype(np.float32),
                       decoder_bias=np.asarray(spec.decoder_bias, dtype=np.float32), input_exp=input_exp)


def _shift_round(x: np.ndarray, k: int) -> np.ndarray:
    """round(x / 2^k) half up (x int64; k > 0: arithmetic shift; k <= 0: exact left shift)."""
    if k <= 0:
        return x * (1 << -k)
    return (x + (1 << (k - 1))) >> k


def _leak(u: np.ndarray, d: int | None) -> np.ndarray:
    if d is None:
        return u
    return ((u.astype(np.int64) * d + (1 << (Q_DECAY - 1))) >> Q_DECAY)


def _encoder_steps(spec: PolicySpec, x: np.ndarray) -> list[np.ndarray]:
    """The population encoder's spikes [B, D*P] per step, in the float runtime's float32 arithmetic."""
    mean = np.asarray(spec.encoder_mean, dtype=np.float32).reshape(-1)
    std = np.asarray(spec.encoder_std, dtype=np.float32).reshape(-1)
    xs = np.repeat(x, spec.pop_dim, axis=1)
    d = xs - mean
    arg = (np.float32(-0.5) * (d * d)) / (std * std)
    a = np.exp(arg.astype(np.float64)).astype(np.float32)  # correctly rounded, as the C library's expf
    v = np.zeros_like(a)
    thr = np.float32(ENCODER_THRESHOLD)
    steps = []
    for _ in range(spec.T):
        v = v + a
        fired = v > thr
        v = np.where(fired, v - thr, v)
        steps.append(fired.astype(np.int64))
    return steps


def simulate(fp: FixedPolicy, obs: np.ndarray, carry: list[np.ndarray] | None = None
             ) -> tuple[np.ndarray, dict[str, np.ndarray], list[np.ndarray] | None]:
    """The network actions a in [-1, 1] [B, act], spike counts and the next carry of the fixed-point code.

    ``carry``: the CRPI carry per layer [B, n] (None: zeros). The integer parts equal the C code's exactly."""
    spec = fp.spec
    obs = np.asarray(obs, dtype=np.float32).reshape(-1, spec.obs_dim)
    B, T = obs.shape[0], spec.T
    x = np.tanh(obs.astype(np.float64)).astype(np.float32) if spec.preprocess == "tanh" else obs
    counts: dict[str, np.ndarray] = {}
    if spec.encoder == "pop":
        inputs = _encoder_steps(spec, x)
        counts["encoder"] = np.sum(inputs, axis=0)
    else:
        xq = np.floor(x * np.float32(2.0 ** fp.input_exp) + np.float32(0.5))
        xq = np.clip(xq, -INPUT_MAX, INPUT_MAX).astype(np.int64)
        inputs = None
    new_carry: list[np.ndarray] = []
    for li, layer in enumerate(fp.layers):
        n, f = layer.n_out, layer.frac_bits
        w = layer.weight.astype(np.int64)
        u = np.zeros((B, n), dtype=np.int64)
        c = np.zeros((B, n), dtype=np.int64)
        if layer.neuron == "if-conv":
            u = np.broadcast_to(layer.v0.astype(np.int64), (B, n)).copy()  # type: ignore[union-attr]
            if fp.carry and carry is not None:
                u = u + carry[li]
            u0 = u.copy()
        count = np.zeros((B, n), dtype=np.int64)
        outs = []
        cur0 = None
        if inputs is None:
            cur0 = layer.bias.astype(np.int64) + _shift_round(xq @ w.T, fp.input_exp - f)
        for t in range(T):
            cur = cur0 if cur0 is not None else layer.bias.astype(np.int64) + (inputs[t] @ w.T) * (1 << f)
            if layer.neuron == "clif":
                c = _leak(c, layer.current_decay) + cur
                cur = c
            if layer.neuron == "if-conv":
                h = u + cur
                fired = h >= layer.threshold if layer.fire_ge else h > layer.threshold
                u = np.where(fired, h - layer.threshold, h)
                out = fired.astype(np.int64)
            elif layer.neuron == "multi-threshold":
                h = _leak(u, layer.decay) + cur
                k = np.zeros_like(h)
                for lv in range(1, layer.levels + 1):
                    k += (h > lv * layer.threshold.astype(np.int64)) & (k == lv - 1)
                u = np.where(k > 0, 0 if layer.hard else h - k * layer.threshold, h)
                out = k
            else:
                h = _leak(u, layer.decay) + cur
                fired = h > layer.threshold
                u = np.where(fired, 0 if layer.hard else h - layer.threshold, h)
                out = fired.astype(np.int64)
            count += out
            outs.append(out)
        if layer.neuron == "if-conv" and fp.carry:
            th = layer.threshold.astype(np.int64)
            r = np.maximum(u - u0, -th * count)
            cv = (r * layer.alpha + (1 << (Q_DECAY - 1))) >> Q_DECAY
            half = th // 2
            new_carry.append(np.clip(cv, -half, half))
        name = f"hidden{li}" if (li < len(fp.layers) - 1 or spec.readout == "linear") else "output"
        counts[name] = count
        inputs = outs
    last = counts[list(counts)[-1]]
    dw = fp.decoder_weight.astype(np.int64)
    if spec.readout == "population":  # action k reads its own group of output neurons
        acc = (last.reshape(B, spec.act_dim, -1) * dw[None]).sum(axis=2)
    else:
        acc = last @ dw.T
    a = np.tanh((acc.astype(np.float32) * fp.decoder_rate_scale + fp.decoder_bias).astype(np.float64))
    return a.astype(np.float32), counts, (new_carry if fp.carry else None)
