"""ONNX export of a spiking policy with the T steps unrolled (opset 17, plain comparisons, no autograd.Function).

:class:`InferenceActor` rebuilds the policy from a :class:`~spikerl.runtime.spec.PolicySpec` as a small
inference-only torch module whose spike function is ``(h > V_th).to(dtype)``, so the exported graph holds
only Gemm/MatMul, Add, Mul, Greater, Cast, Exp, Tanh, ...; the membrane state lives inside ``forward``
(every decision simulates T steps from rest). Input ``obs[B, obs_dim]`` (dynamic batch), output
``action[B, act_dim]`` in [-1, 1]; with ``spike_counts=True`` also one ``count_<layer>[B, n]`` per layer.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from spikerl.runtime.spec import ENCODER_THRESHOLD, LayerSpec, PolicySpec

ONNX_OPSET = 17


class _Layer(nn.Module):
    """``Linear`` + the neuron's T-step recurrence from rest, as plain tensor ops."""

    def __init__(self, layer: LayerSpec, dtype: torch.dtype) -> None:
        super().__init__()
        self.linear = nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(np.asarray(layer.weight)))
            self.linear.bias.copy_(torch.from_numpy(np.asarray(layer.bias)))
        p = layer.params
        self.kind = layer.neuron
        self.thr = float(p["threshold"]) if "threshold" in p else 0.0  # if-conv: per-neuron ``theta`` below
        self.hard = p.get("reset", "hard") == "hard"
        self.decay = 1.0 if self.kind == "if" else float(p.get("decay", 1.0))
        self.current_decay = float(p.get("current_decay", 0.0))
        self.levels = int(p.get("levels", 1))
        if self.kind == "if-conv":  # converted ANN: per-neuron thresholds, v_0 = v0 theta, graded spikes theta
            self.register_buffer("theta", torch.from_numpy(np.asarray(layer.threshold)).to(dtype))
            self.v0 = float(p.get("v0", 0.5))
            self.fire_ge = p.get("fire", "ge") == "ge"
        if self.kind == "dn":
            self.theta = (float(p["theta_v"]), float(p["theta_u"]), float(p["theta_r"]), float(p["theta_s"]))
            self.u_plus = p["u_sign"] == "+"

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        current = self.linear(x_seq)  # [T, B, n]: one GEMM for all steps
        if self.kind == "dn":
            return self._dn(current)
        if self.kind == "if-conv":
            return self._if_conv(current)
        u = torch.zeros_like(current[0])
        c = torch.zeros_like(current[0])
        spikes = []
        for t in range(current.shape[0]):
            x = current[t]
            if self.kind == "clif":
                c = c * self.current_decay + x
                x = c
            h = u * self.decay + x if self.decay != 1.0 else u + x
            if self.kind == "multi-threshold":
                s = (h - self.thr > 0).to(h.dtype)
                for j in range(2, self.levels + 1):
                    s = s + (h - j * self.thr > 0).to(h.dtype)
                u = h - self.thr * s if not self.hard else h * (1.0 - s.clamp(max=1.0))
            else:
                s = (h - self.thr > 0).to(h.dtype)
                u = h * (1.0 - s) if self.hard else h - self.thr * s
            spikes.append(s)
        return torch.stack(spikes)

    def _if_conv(self, current: torch.Tensor) -> torch.Tensor:
        """IF with soft reset from v_0 = v0 theta; emits theta at a spike (the next layer's input value)."""
        u = torch.zeros_like(current[0]) + self.v0 * self.theta
        spikes = []
        for t in range(current.shape[0]):
            h = u + current[t]
            s = (h >= self.theta if self.fire_ge else h > self.theta).to(h.dtype)
            u = h - self.theta * s
            spikes.append(s * self.theta)
        return torch.stack(spikes)

    def _dn(self, current: torch.Tensor) -> torch.Tensor:
        theta_v, theta_u, theta_r, theta_s = self.theta
        v = torch.zeros_like(current[0])
        uu, c, s = torch.zeros_like(v), torch.zeros_like(v), torch.zeros_like(v)
        spikes = []
        for t in range(current.shape[0]):
            c = c * self.current_decay + current[t]
            v = v * (1.0 - s) + theta_r * s
            uu = uu + theta_s * s
            dv = v * v - v - uu + c
            du = theta_v * v + (theta_u * uu if self.u_plus else -theta_u * uu)
            v = v + dv
            uu = uu + du
            s = (v - self.thr > 0).to(v.dtype)
            spikes.append(s)
        return torch.stack(spikes)


class InferenceActor(nn.Module):
    """Inference-only torch mirror of a :class:`PolicySpec`: ``forward(obs[B, D]) -> action[B, A]``."""

    def __init__(self, spec: PolicySpec, dtype: torch.dtype | None = None, spike_counts: bool = False) -> None:
        super().__init__()
        spec.validate()
        if spec.carry is not None:
            raise ValueError(f"ONNX export of a policy with state carried across decisions (carry={spec.carry!r}) "
                             "is not supported (the graph simulates each decision from rest); use the bundle "
                             "format, whose runtime keeps the carry")
        diff = [i for i, layer in enumerate(spec.layers) if layer.neuron == "diff-conv"]
        if diff:
            raise ValueError(f"ONNX export of differential-coding (DCGS, diff-conv) layers is not supported (layer "
                             f"{diff[0]}); ONNX exports rate-coded policies (spikerl actors, if-conv conversions); "
                             "use the bundle format, whose runtime runs diff-conv layers")
        self.readout = spec.readout
        dtype = dtype or (torch.float64 if spec.dtype == np.float64 else torch.float32)
        self.T, self.encoder, self.preprocess = spec.T, spec.encoder, spec.preprocess
        self.act_dim, self.pop = spec.act_dim, spec.decoder_pop_dim
        self.spike_counts = spike_counts

        def buf(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(a)).to(dtype)

        if spec.encoder == "pop":
            self.register_buffer("enc_mean", buf(spec.encoder_mean))
            self.register_buffer("enc_std", buf(spec.encoder_std))
        self.layers = nn.ModuleList(_Layer(layer, dtype) for layer in spec.layers)
        self.register_buffer("dec_weight", buf(spec.decoder_weight))
        self.register_buffer("dec_bias", buf(spec.decoder_bias))

    def forward(self, obs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        s = torch.tanh(obs) if self.preprocess == "tanh" else obs
        counts = []
        if self.encoder == "pop":
            a = torch.exp(-0.5 * (s.unsqueeze(-1) - self.enc_mean) ** 2 / self.enc_std**2)
            a = a.reshape(obs.shape[0], -1)
            v = torch.zeros_like(a)
            seq = []
            for _ in range(self.T):
                v = v + a
                spike = (v > ENCODER_THRESHOLD).to(a.dtype)
                v = v - ENCODER_THRESHOLD * spike
                seq.append(spike)
            x = torch.stack(seq)
            counts.append(x.sum(0))
        else:
            x = s.unsqueeze(0).expand(self.T, *s.shape)
        for layer in self.layers:
            x = layer(x)
            counts.append((x > 0).to(x.dtype).sum(0) if layer.kind == "if-conv" else x.sum(0))
        if self.readout == "linear":  # converted ANN: a = tanh(W (theta count / T) + b)
            action = torch.tanh(x.mean(0) @ self.dec_weight.T + self.dec_bias)
        else:
            rate = x.mean(0).reshape(obs.shape[0], self.act_dim, self.pop)
            action = torch.tanh((rate * self.dec_weight).sum(-1) + self.dec_bias)
        return (action, *counts) if self.spike_counts else action


def count_names(spec: PolicySpec) -> list[str]:
    """Names of the spike-count outputs (``count_encoder``?, ``count_hidden0``, ..., ``count_output``)."""
    names = ["encoder"] if spec.encoder == "pop" else []
    names += [f"hidden{i}" for i in range(len(spec.layers) - 1)] + ["output"]
    return [f"count_{n}" for n in names]


def write_onnx(spec: PolicySpec, path: str | os.PathLike[str], *, opset: int = ONNX_OPSET,
               spike_counts: bool = False, dtype: torch.dtype | None = None) -> Path:
    """Export ``spec`` to an ONNX file (T unrolled; input ``obs``, output ``action`` [+ spike counts])."""
    if opset < ONNX_OPSET:
        raise ValueError(f"ONNX opset must be >= {ONNX_OPSET}, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = InferenceActor(spec, dtype=dtype, spike_counts=spike_counts).eval()
    example = torch.zeros(1, spec.obs_dim, dtype=module.dec_bias.dtype)
    outputs = ["action", *(count_names(spec) if spike_counts else [])]
    tmp = path.with_name(f".{path.name}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy (TorchScript) exporter is deliberate
        torch.onnx.export(module, (example,), str(tmp), input_names=["obs"], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in ["obs", *outputs]}, opset_version=opset,
                          dynamo=False)
    os.replace(tmp, path)
    return path
