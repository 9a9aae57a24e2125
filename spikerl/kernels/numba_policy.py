"""Numba CPU inference for spiking policies: :func:`pack_policy` and the :class:`CompiledPolicy` it returns.

``pack_policy(spec)`` copies a :class:`spikerl.runtime.spec.PolicySpec` (a bundle's arrays, or a trained
actor read by ``spikerl.export.compile_policy``) into contiguous NumPy arrays in the layout that
:mod:`spikerl.kernels.decision` runs: one compiled call per decision, encoder to action, simulating the T
steps from rest exactly as the torch actor does (the equations are in that module).

The policy object owns preallocated work buffers, so one policy must not be called from two threads at once
(make one policy per thread).
"""

from __future__ import annotations

import numpy as np

from spikerl.kernels.decision import (
    CLIF,
    CONV,
    DIFF,
    DN,
    H_ACT,
    H_CARRY,
    H_DECB,
    H_DECW,
    H_DPOP,
    H_ENC,
    H_ENCCNT,
    H_L,
    H_MAXN,
    H_MEAN,
    H_OBS,
    H_POP,
    H_PRE,
    H_READ,
    H_STD,
    H_T,
    HEADER,
    LEAKY,
    LSTRIDE,
    MULTI,
    decide,
    decide_batch,
    work_sizes,
)

__all__ = ["CompiledPolicy", "pack_policy"]


class CompiledPolicy:
    """A spiking policy compiled for CPU inference with Numba (build it with :func:`pack_policy`, or from a torch
    actor with ``spikerl.export.compile_policy``).

    ``policy(obs[obs_dim]) -> action[act_dim]``; ``policy(obs[B, obs_dim]) -> action[B, act_dim]``.
    Not thread-safe: calls share the policy's preallocated work buffers.
    """

    def __init__(self, *, obs_dim: int, act_dim: int, T: int, dtype: np.dtype, w: np.ndarray, fp: np.ndarray,
                 meta: np.ndarray, work_size: int, iwork_size: int, count_names: list[str],
                 count_sizes: list[int], carry_size: int = 0) -> None:
        self.obs_dim, self.act_dim, self.T = obs_dim, act_dim, T
        self.dtype = np.dtype(dtype)
        self._w, self._fp, self._meta = w, fp, meta
        self._work = np.zeros(work_size, dtype=self.dtype)
        self._iwork = np.zeros(iwork_size, dtype=np.int64)
        self.count_names = list(count_names)
        self._count_sizes = list(count_sizes)
        self._counts = np.zeros((1, sum(count_sizes)), dtype=self.dtype)
        self.carry_size = int(carry_size) if meta[H_CARRY] == 1 else 0
        self._dummy = np.zeros((1, 1), dtype=self.dtype)
        self._carry: np.ndarray | None = None
        self(np.zeros(obs_dim, dtype=self.dtype))  # warm-up: compile or load from the on-disk cache
        self(np.zeros((1, obs_dim), dtype=self.dtype))
        self.reset()

    @property
    def stateful(self) -> bool:
        """True for a converted policy with the CRPI carry (state kept between calls until :meth:`reset`)."""
        return self.carry_size > 0

    @property
    def carry(self) -> np.ndarray | None:
        """The carried potentials ``[B, n]`` (all if-conv / diff-conv neurons, layer by layer); None after a
        reset."""
        return None if self._carry is None else self._carry.copy()

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Clear the carry (of the rows where the bool ``mask[B]`` is true; all rows without a mask)."""
        if mask is None or self._carry is None:
            if mask is None:
                self._carry = None
            return
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape[0] != self._carry.shape[0]:
            raise ValueError(f"reset(mask): mask has {mask.shape[0]} entries but the carried state has batch size "
                             f"{self._carry.shape[0]}; pass one bool per environment")
        self._carry[mask] = 0

    def _carry_rows(self, batch: int) -> np.ndarray:
        if not self.stateful:
            return self._dummy
        if self._carry is None:
            self._carry = np.zeros((batch, self.carry_size), dtype=self.dtype)
        elif self._carry.shape[0] != batch:
            raise ValueError(f"the carried state has batch size {self._carry.shape[0]} but this call has {batch} "
                             "observation(s); call reset() when the number of environments changes")
        return self._carry

    def _prepare(self, obs: np.ndarray | object) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"expected an observation of shape [{self.obs_dim}] or a batch [B, {self.obs_dim}], "
                f"got shape {obs.shape}"
            )
        if obs.dtype != np.float32 and obs.dtype != np.float64:
            if obs.dtype.kind not in "fiub":
                raise ValueError(f"observations must be numeric, got dtype {obs.dtype}")
            obs = obs.astype(self.dtype)
        if not obs.flags.c_contiguous:
            obs = np.ascontiguousarray(obs)
        return obs

    def _raise_not_finite(self, obs: np.ndarray) -> None:
        bad = np.argwhere(~np.isfinite(obs))
        shown = ", ".join(str(tuple(int(v) for v in b) if obs.ndim > 1 else int(b[0])) for b in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise ValueError(f"observation entries at index {shown}{more} are not finite (NaN or Inf); "
                         "the policy needs finite observations")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """The action(s) for one observation ``[obs_dim]`` or a batch ``[B, obs_dim]``."""
        obs = self._prepare(obs)
        if obs.ndim == 1:
            out = np.empty(self.act_dim, dtype=self.dtype)
            status = decide(obs, self._w, self._fp, self._meta, self._work, self._iwork, self._counts[0], out,
                             self._carry_rows(1)[0])
        else:
            out = np.empty((obs.shape[0], self.act_dim), dtype=self.dtype)
            status = decide_batch(obs, self._w, self._fp, self._meta, self._work, self._iwork, self._counts,
                                   out, False, self._carry_rows(obs.shape[0]))
        if status >= 0:
            self._raise_not_finite(obs)
        return out

    def spike_counts(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Spikes per neuron summed over the T steps, ``{name: [B, n]}`` as ``SpikingActor.spike_counts``.

        A single observation gives ``[1, n]`` arrays, as in torch. For a carry policy this is a decision
        like ``__call__``: it advances the carried state.
        """
        return self.decide(obs)[1]

    def decide(self, obs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One decision with its spike counts: ``(actions [B, act_dim], {name: [B, n]})`` (B = 1 for one
        observation). The actions equal ``__call__``'s; a carry policy advances its state once."""
        obs = self._prepare(obs)
        if obs.ndim == 1:
            obs = obs[None]
        counts = np.zeros((obs.shape[0], self._counts.shape[1]), dtype=self.dtype)
        out = np.empty((obs.shape[0], self.act_dim), dtype=self.dtype)
        if decide_batch(obs, self._w, self._fp, self._meta, self._work, self._iwork, counts, out, True,
                         self._carry_rows(obs.shape[0])) >= 0:
            self._raise_not_finite(obs)
        result, start = {}, 0
        for name, size in zip(self.count_names, self._count_sizes, strict=True):
            result[name] = counts[:, start:start + size].copy()
            start += size
        return out, result

    def __repr__(self) -> str:
        return (f"CompiledPolicy(obs_dim={self.obs_dim}, act_dim={self.act_dim}, T={self.T}, "
                f"dtype={self.dtype.name}, layers={self.count_names})")


def _kernel_params(name: str, p: dict, index: int) -> tuple[int, int, list[float]]:
    """(kind, levels, float params) of one layer from its neuron name and plain parameters."""
    if name == "diff-conv":
        levels = p.get("levels")
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
            raise ValueError(f"layer {index} (diff-conv) needs an integer levels >= 1, got {levels!r}")
        return DIFF, int(levels), [0.0, 1.0, float(p.get("alpha", 0.0)), 0.0, float(p["v0"]),
                                    1.0 if p["signed"] else 0.0, 0.0, 0.0]
    if name == "if-conv":
        if p.get("reset", "soft") != "soft" or p.get("fire") not in ("ge", "gt"):
            raise ValueError(f"layer {index} (if-conv) needs reset 'soft' and fire 'ge' or 'gt', got "
                             f"reset={p.get('reset')!r}, fire={p.get('fire')!r}")
        return CONV, 0, [0.0, 1.0, float(p.get("alpha", 0.0)), 0.0, float(p["v0"]),
                          1.0 if p["fire"] == "ge" else 0.0, 0.0, 0.0]
    thr = float(p["threshold"])
    hard = 1.0 if p.get("reset", "hard") == "hard" else 0.0
    params = [thr, 1.0, 0.0, hard, 0.0, 0.0, 0.0, 0.0]
    kind, levels = LEAKY, 0
    if name == "clif":
        kind = CLIF
        params[1], params[2] = float(p["decay"]), float(p["current_decay"])
    elif name in ("lif", "plif"):
        params[1] = float(p["decay"])
    elif name == "if":
        pass
    elif name == "dn":
        kind = DN
        tu = float(p["theta_u"]) if p["u_sign"] == "+" else -float(p["theta_u"])
        params[2] = float(p["current_decay"])
        params[4:8] = [float(p["theta_r"]), float(p["theta_s"]), float(p["theta_v"]), tu]
    elif name == "multi-threshold":
        kind, levels = MULTI, int(p["levels"])
        params[1] = float(p["decay"])
        params += [float(j * thr) for j in range(1, levels + 1)]
    else:
        raise ValueError(f"layer {index} has neuron {name!r}, which has no Numba kernel; supported: if, lif, clif, "
                         "plif, dn, multi-threshold, if-conv, diff-conv")
    return kind, levels, params


def diff_level_table(theta: np.ndarray, levels: int, dtype: np.dtype) -> np.ndarray:
    """``[3, levels, n]`` in ``dtype``: the levels l_i = theta / 2^i, the positive cuts (theta for one level,
    else 0.75 l_i) and the negative cuts (0 for one level, else -0.75 l_i) of a diff-conv layer, rounded as
    ``spikerl.conversion.neurons.diff_forward`` rounds them (each product once, in ``dtype``)."""
    theta = np.asarray(theta, dtype=dtype)
    pow2 = np.array([2.0 ** i for i in range(levels)], dtype=dtype)
    lv = theta[None, :] / pow2[:, None]
    if levels == 1:
        return np.stack([lv, lv, np.zeros_like(lv)])
    return np.stack([lv, dtype.type(0.75) * lv, dtype.type(-0.75) * lv])


def pack_policy(spec, dtype: type | np.dtype = np.float32) -> CompiledPolicy:
    """Pack a plain-array policy (a :class:`spikerl.runtime.spec.PolicySpec`) into a :class:`CompiledPolicy`.

    Torch-free: this is what ``spikerl.runtime.load_policy`` runs on a bundle. ``spec`` needs ``obs_dim``,
    ``act_dim``, ``T``, ``encoder`` ("pop" | "direct"), ``preprocess`` ("tanh" | "none"), ``pop_dim``,
    ``encoder_mean`` / ``encoder_std`` ``[obs_dim, pop_dim]`` (pop), ``layers`` (each with ``weight[out, in]``,
    ``bias[out]``, ``neuron`` name and ``params``), ``decoder_weight[act, pop]`` and ``decoder_bias[act]``.
    Arrays are copied in ``dtype`` (float32 or float64).
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"compile_policy: dtype must be float32 or float64, got {dtype}")
    if spec.encoder not in ("pop", "direct"):
        raise ValueError(f"compile_policy: unsupported encoder {spec.encoder!r}; supported: pop, direct")
    if spec.preprocess not in ("tanh", "none"):
        raise ValueError(f"compile_policy: unsupported preprocess {spec.preprocess!r}; supported: tanh, none")
    enc_kind = 0 if spec.encoder == "pop" else 1
    pop = int(spec.pop_dim) if enc_kind == 0 else 1

    chunks: list[np.ndarray] = []
    offset = 0

    def put(a: np.ndarray) -> int:
        nonlocal offset
        start = offset
        flat = np.ascontiguousarray(a, dtype=dtype).ravel()
        chunks.append(flat)
        offset += flat.size
        return start

    D, T, L = int(spec.obs_dim), int(spec.T), len(spec.layers)
    meta = np.zeros(HEADER + LSTRIDE * L, dtype=np.int64)
    # float header: F_ENC_THR, F_NEG_HALF, F_ONE, F_ZERO, F_T, F_HALF, two unused slots
    fp: list[float] = [0.999, -0.5, 1.0, 0.0, float(T), 0.5, 0.0, 0.0]
    count_names: list[str] = []
    count_sizes: list[int] = []
    count_off = 0
    if enc_kind == 0:
        meta[H_MEAN], meta[H_STD] = put(np.asarray(spec.encoder_mean)), put(np.asarray(spec.encoder_std))
        meta[H_ENCCNT] = 0
        count_names.append("encoder")
        count_sizes.append(D * pop)
        count_off = D * pop
    sizes = [D * pop]
    linear = getattr(spec, "readout", "population") == "linear"
    carried = getattr(spec, "carry", None) == "crpi"
    if carried and not linear:
        raise ValueError("compile_policy: the CRPI carry needs a converted policy (if-conv or diff-conv layers, "
                         "readout 'linear')")
    neurons = {layer.neuron for layer in spec.layers}
    if linear and len(neurons) > 1:
        raise ValueError(f"compile_policy: a converted policy uses one coding in every layer (all if-conv or all "
                         f"diff-conv), got {', '.join(sorted(neurons))}")
    carry_off = 0
    for index, layer in enumerate(spec.layers):
        kind, levels, params = _kernel_params(layer.neuron, layer.params, index)
        if (kind in (CONV, DIFF)) != linear:
            raise ValueError(f"compile_policy: layer {index} ({layer.neuron}): if-conv / diff-conv layers need "
                             "readout 'linear' and a linear readout needs if-conv or diff-conv layers")
        weight = np.asarray(layer.weight)
        n_out, n_in = weight.shape
        if n_in != sizes[-1]:
            raise ValueError(f"compile_policy: layer {index} takes {n_in} inputs but receives {sizes[-1]}")
        th_off = lv_off = 0
        if kind in (CONV, DIFF):
            theta = getattr(layer, "threshold", None)
            if theta is None or np.asarray(theta).shape != (n_out,):
                raise ValueError(f"compile_policy: layer {index} ({layer.neuron}) needs threshold[{n_out}]")
            th_off = put(np.asarray(theta))
        if kind == DIFF:
            lv_off = put(diff_level_table(np.asarray(layer.threshold), levels, dtype))
        lb = HEADER + index * LSTRIDE
        meta[lb:lb + LSTRIDE] = [n_in, n_out, put(weight.T), put(np.asarray(layer.bias)), kind, levels, len(fp),
                                  count_off, th_off, carry_off if carried else 0, lv_off]
        fp += params
        count_off += n_out
        carry_off += n_out
        sizes.append(n_out)
    count_names += [f"hidden{i}" for i in range(L)] if linear else \
        [f"hidden{i}" for i in range(L - 1)] + ["output"]
    count_sizes += sizes[1:]
    dec_w = np.asarray(spec.decoder_weight)
    act_dim, dec_pop = dec_w.shape
    if linear and dec_pop != sizes[-1]:
        raise ValueError(f"compile_policy: the linear readout reads {dec_pop} inputs, the last layer has {sizes[-1]}")
    meta[H_READ], meta[H_CARRY] = (1 if linear else 0), (1 if carried else 0)
    meta[H_DECW], meta[H_DECB] = put(dec_w), put(np.asarray(spec.decoder_bias))
    maxn = max(sizes)
    meta[[H_T, H_ENC, H_PRE, H_OBS, H_POP, H_L, H_ACT, H_DPOP, H_MAXN]] = [
        T, enc_kind, 1 if spec.preprocess == "tanh" else 0, D, pop, L, act_dim, dec_pop, maxn,
    ]
    w = np.concatenate(chunks)
    work_size, iwork_size = work_sizes(D, pop, maxn, T)
    return CompiledPolicy(
        obs_dim=D, act_dim=int(act_dim), T=T, dtype=dtype, w=w, fp=np.asarray(fp, dtype=dtype), meta=meta,
        work_size=work_size, iwork_size=iwork_size, count_names=count_names, count_sizes=count_sizes,
        carry_size=carry_off if carried else 0,
    )
