"""``SpikingModel``: runs a converted network for T time steps (time-batched, layer by layer).

Every value in the network is either *static* (``[B, ...]``: the input and everything computed from it
before the first neuron, constant over time) or a *sequence* stored time-batched as ``[S*B, ...]`` so that a
Linear/Conv runs once on all steps; only the neurons loop over time. Rate coding repeats a static input
every step; differential coding (DCGS) sends it once ([0, x, 0, ..., 0] after the bias-only step 0).

Where a sequence enters the readout (the layers after the last neurons), it is decoded to a static value:
its mean over the T steps (rate coding) or its decoded rate x_0 + sum_t (x_t - x_0)/t (differential
coding), and the readout (last affine layer, tanh head, ...) runs once in floating point. Because affine
maps commute with the mean, this equals averaging the per-step outputs of the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from spikerl.conversion.graph import Prepared, site_input
from spikerl.conversion.neurons import (
    cos_initial_potential,
    diff_forward,
    ecm_diff,
    ecm_rate,
    if_forward,
    parallel_forward,
    running_mean,
    running_rate_diff,
)
from spikerl.conversion.reference import crpi_next_carry

SRP_TOLERANCE = 1e-3


class _Seq:
    """A time-batched sequence: ``data[S*B, ...]`` with ``steps`` = S."""

    __slots__ = ("data", "steps")

    def __init__(self, data: torch.Tensor, steps: int) -> None:
        self.data = data
        self.steps = steps

    def seq(self) -> torch.Tensor:
        return self.data.view(self.steps, self.data.shape[0] // self.steps, *self.data.shape[1:])


@dataclass
class Trace:
    """Result of :meth:`SpikingModel.run`.

    output: what ``forward`` returns (the ANN output's structure and shape).
    step_outputs: ``[T, *output.shape]``: the readout from the first t steps, for t = 1..T (anytime output;
        for a causal neuron it equals running the model with T = t). None for non-tensor outputs.
    spike_counts: site -> spikes per unit over the T readout steps ``[B, ...]`` (non-zero spike events for
        differential coding).
    v_final / v_start: site -> membrane potential after the last / before the first step.
    thresholds: site -> theta.  latency: total simulated steps per input (T plus pre-simulation).
    """

    output: Any
    step_outputs: torch.Tensor | None
    spike_counts: dict[str, torch.Tensor] = field(default_factory=dict)
    v_final: dict[str, torch.Tensor] = field(default_factory=dict)
    v_start: dict[str, torch.Tensor] = field(default_factory=dict)
    thresholds: dict[str, torch.Tensor] = field(default_factory=dict)
    latency: int = 0


class SpikingModel(nn.Module):
    """A converted SNN. ``forward(x)`` returns the readout with ``ann(x)``'s structure and shape.

    Without a carry every call starts each neuron from v0 (stateless). With ``carry="crpi"`` each neuron
    keeps a residual carry per batch index across calls: call :meth:`reset` at episode start (or
    ``reset(mask=done)`` for the finished environments of a vector env).
    """

    def __init__(self, prepared: Prepared, thresholds: dict[str, torch.Tensor], settings: dict[str, Any]) -> None:
        super().__init__()
        self.gm = prepared.gm
        self.settings = dict(settings)
        self.T = int(settings["T"])
        self._sites = dict(prepared.sites)
        self._site_of = {node: name for name, node in self._sites.items()}
        self._readout = set(prepared.readout)
        self._ecm = set(prepared.ecm)
        self._buffer_of: dict[str, str] = {}
        for i, name in enumerate(self._sites):
            self.register_buffer(f"theta_{i}", thresholds[name].detach().clone())
            self._buffer_of[name] = f"theta_{i}"
        self._carry: dict[str, torch.Tensor | None] = dict.fromkeys(self._sites)
        self._batched: set[fx.Node] = set()
        for node in self.gm.graph.nodes:
            if node.op == "placeholder" or any(a in self._batched for a in node.all_input_nodes):
                self._batched.add(node)

    # ------------------------------------------------------------------ public API
    @property
    def site_names(self) -> list[str]:
        return list(self._sites)

    @property
    def thresholds(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, buf) for name, buf in self._buffer_of.items()}

    @property
    def latency(self) -> int:
        s = self.settings
        if s["coding"] == "diff":
            return self.T + 1
        return self.T + (s["presim_steps"] if s["presim"] in ("srp", "cos") else 0)

    @property
    def carry(self) -> dict[str, torch.Tensor | None]:
        """The CRPI residual carry per site (None after a reset)."""
        return dict(self._carry)

    def reset(self, mask: torch.Tensor | np.ndarray | None = None) -> None:
        """Clear the carried state; with ``mask`` (bool ``[B]``) only for those batch indices."""
        if mask is None:
            self._carry = dict.fromkeys(self._sites)
            return
        mask = torch.as_tensor(mask, dtype=torch.bool).reshape(-1)
        for name, c in self._carry.items():
            if c is None:
                continue
            if mask.shape[0] != c.shape[0]:
                raise ValueError(f"reset(mask): mask has {mask.shape[0]} entries but the carried state has batch "
                                 f"size {c.shape[0]}; pass one bool per environment")
            c = c.clone()
            c[mask.to(c.device)] = 0
            self._carry[name] = c

    def forward(self, x: torch.Tensor) -> Any:
        return self.run(x, record=False).output

    @torch.no_grad()
    def run(self, x: torch.Tensor, record: bool = True, anytime: bool = True) -> Trace:
        """Simulate and return a :class:`Trace` (output, anytime step outputs, counts, potentials);
        ``anytime=False`` skips the T extra readout passes of ``step_outputs`` (left None)."""
        x = self._as_input(x)
        try:
            return self._run(x, record, anytime)
        except RuntimeError as exc:
            raise ValueError(f"SpikingModel: the converted network failed on an input of shape {tuple(x.shape)} "
                             f"(does it match what the ANN expects, with a batch dimension?): {exc}") from exc

    def _run(self, x: torch.Tensor, record: bool, anytime: bool = True) -> Trace:
        trace = Trace(output=None, step_outputs=None, latency=self.latency,
                      thresholds=self.thresholds if record else {})
        s = self.settings
        masks: dict[str, torch.Tensor] = {}
        if s["presim"] == "srp":
            self._execute(x, s["presim_steps"], "srp-pre", masks, None)
            env = self._execute(x, self.T, "srp", masks, trace if record else None)
        elif s["presim"] == "cos":
            env = self._execute(x, max(self.T, s["presim_steps"]), "cos", masks, trace if record else None)
        else:
            steps = self.T + 1 if s["coding"] == "diff" else self.T
            env = self._execute(x, steps, "run", masks, trace if record else None)
        trace.output = self._readout_pass(env, self.T)
        if record and anytime and isinstance(trace.output, torch.Tensor):
            trace.step_outputs = torch.stack([self._readout_pass(env, t) for t in range(1, self.T + 1)])
        return trace

    # ------------------------------------------------------------------ internals
    def _as_input(self, x) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"SpikingModel input must be a Tensor or ndarray, got {type(x).__name__}")
        param = next(iter(self.gm.parameters()), None)
        if param is not None and x.is_floating_point() and x.dtype != param.dtype:
            x = x.to(param.dtype)
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"SpikingModel input of shape {tuple(x.shape)} contains NaN or inf")
        return x

    def _to_seq(self, value: torch.Tensor, steps: int) -> torch.Tensor:
        """A static batched tensor as a time-batched sequence [S*B, ...]."""
        if self.settings["coding"] == "diff":
            zeros = torch.zeros_like(value)
            return torch.cat([zeros, value, *([zeros] * (steps - 2))], 0)
        return value.unsqueeze(0).expand(steps, *value.shape).reshape(steps * value.shape[0], *value.shape[1:])

    def _decode(self, value: Any, upto: int) -> Any:
        if not isinstance(value, _Seq):
            return value
        seq = value.seq()
        if self.settings["coding"] == "diff":
            x0 = seq[0]
            w = 1.0 / torch.arange(1, upto + 1, dtype=seq.dtype, device=seq.device)
            return x0 + torch.tensordot(w, seq[1:upto + 1] - x0, dims=1)
        return seq[:upto].mean(0)

    @staticmethod
    def _call(gm: fx.GraphModule, node: fx.Node, args, kwargs):
        if node.op == "call_module":
            return gm.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)

    def _execute(self, x: torch.Tensor, steps: int, phase: str, masks: dict, trace: Trace | None) -> dict:
        env: dict[fx.Node, Any] = {}
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "get_attr":
                env[node] = _fetch(self.gm, node.target)
            elif node.op == "output" or node in self._readout:
                continue
            elif node in self._site_of:
                env[node] = self._site(self._site_of[node], env[site_input(node)], steps, phase, masks, trace)
            elif node in self._ecm:
                env[node] = self._ecm_unit(node, env, steps)
            else:
                vals = [env[a] for a in node.all_input_nodes]
                if any(isinstance(v, _Seq) for v in vals):
                    def lift(n, env=env, steps=steps):
                        v = env[n]
                        if isinstance(v, _Seq):
                            return v.data
                        if isinstance(v, torch.Tensor) and n in self._batched:
                            return self._to_seq(v, steps)
                        return v
                    args, kwargs = fx.node.map_arg((node.args, node.kwargs), lift)
                    out = self._call(self.gm, node, args, kwargs)
                    env[node] = _Seq(out, steps) if isinstance(out, torch.Tensor) else out
                else:
                    args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n, env=env: env[n])
                    env[node] = self._call(self.gm, node, args, kwargs)
        return env

    def _readout_pass(self, env: dict, upto: int) -> Any:
        local = dict(env)
        for node in self.gm.graph.nodes:
            if node.op == "output":
                return fx.node.map_aggregate(
                    fx.node.map_arg(node.args[0], lambda n: self._decode(local[n], upto)), lambda v: v)
            if node in self._readout:
                args, kwargs = fx.node.map_arg((node.args, node.kwargs),
                                               lambda n: self._decode(local[n], upto))
                local[node] = self._call(self.gm, node, args, kwargs)
        raise RuntimeError("graph has no output node")

    def _ecm_unit(self, node: fx.Node, env: dict, steps: int) -> Any:
        """Expectation compensation: the decoded output after t steps equals f(decoded inputs after t steps)."""
        if not any(isinstance(env[a], _Seq) for a in node.all_input_nodes):
            args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: env[n])
            return self._call(self.gm, node, args, kwargs)
        diff = self.settings["coding"] == "diff"
        decode = running_rate_diff if diff else running_mean

        def lift(n):
            v = env[n]
            if isinstance(v, _Seq):
                d = decode(v.seq())
                return d.reshape(steps * d.shape[1], *d.shape[2:])
            if isinstance(v, torch.Tensor) and n in self._batched:
                return v.unsqueeze(0).expand(steps, *v.shape).reshape(steps * v.shape[0], *v.shape[1:])
            return v

        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lift)
        f = self._call(self.gm, node, args, kwargs)
        f = f.view(steps, f.shape[0] // steps, *f.shape[1:])
        out = ecm_diff(f) if diff else ecm_rate(f)
        return _Seq(out.reshape(-1, *out.shape[2:]), steps)

    def _site(self, name: str, value: Any, steps: int, phase: str, masks: dict, trace: Trace | None) -> _Seq:
        s = self.settings
        theta = getattr(self, self._buffer_of[name])
        static = not isinstance(value, _Seq)
        if s["coding"] == "diff":
            x_seq = (self._to_seq(value, steps) if static else value.data)
            x_seq = x_seq.view(steps, -1, *x_seq.shape[1:])
            v_start = self._start_potential(name, theta, x_seq[0])
            out, v_end, events = diff_forward(x_seq, theta, s["v0"], s["levels"], s["signed"], v_start)
            if s["carry"] == "crpi":
                # the output emitted, in units of theta, bounds a negative carry as theta N does for IF
                emitted = out[1:].abs().sum(0) / theta
                self._carry[name] = crpi_next_carry(v_end - v_start, emitted, theta, s["alpha"])
            if trace is not None:
                trace.spike_counts[name] = events
                trace.v_final[name] = v_end
                trace.v_start[name] = v_start
            return _Seq(out.reshape(-1, *out.shape[2:]), steps)
        x_seq = value.unsqueeze(0).expand(steps, *value.shape) if static else value.seq()
        v_start = self._start_potential(name, theta, x_seq[0])
        if s["neuron"] == "parallel":
            total = steps * value if static else None
            spikes, v_end = parallel_forward(x_seq, theta, v_start, steps, s["fire"], total=total)
        else:
            if phase == "cos":
                v_start = cos_initial_potential(x_seq[: s["presim_steps"]], theta, v_start, s["fire"])
            spikes, v_end = if_forward(x_seq, theta, v_start, s["fire"])
            if phase == "srp-pre":
                masks[name] = v_end > SRP_TOLERANCE * theta
            elif phase == "srp":
                spikes = spikes * masks[name].to(spikes.dtype)
        count = spikes[: self.T].sum(0)
        if s["carry"] == "crpi":
            residual = v_end - v_start
            self._carry[name] = crpi_next_carry(residual, spikes.sum(0), theta, s["alpha"])
        if trace is not None:
            trace.spike_counts[name] = count
            trace.v_final[name] = v_end
            trace.v_start[name] = v_start
        out = spikes * theta
        return _Seq(out.reshape(steps * out.shape[1], *out.shape[2:]), steps)

    def _start_potential(self, name: str, theta: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """v0 theta, plus the site's CRPI carry from the previous call when there is one."""
        v_start = self.settings["v0"] * theta + torch.zeros_like(like)
        carry = self._carry[name]
        if self.settings["carry"] == "crpi" and carry is not None:
            if carry.shape != v_start.shape:
                raise ValueError(f"CRPI carry of site {name!r} has shape {tuple(carry.shape)} but this input gives "
                                 f"{tuple(v_start.shape)}; call reset() when the batch size changes")
            v_start = v_start + carry
        return v_start


def _fetch(gm: nn.Module, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
