"""Numba CPU inference for spiking actors: one compiled function per decision (encoder to action).

``compile_policy(actor)`` copies a trained :class:`spikerl.SpikingActor` (or the deterministic action
``tanh(mean)`` of a :class:`spikerl.SpikingGaussianActor`) into contiguous NumPy arrays and returns a
:class:`CompiledPolicy`. One call simulates the T steps from rest, exactly as the torch actor does:

    s = tanh(obs) (or obs);   A = exp(-0.5 (s - mu)^2 / sigma^2);   V += A, S = [V > 0.999], V -= 0.999 S
    layer by layer, step by step:  I_t = b + sum_{i: S_t,i != 0} S_t,i W^T[i, :]     (event-driven)
                                   (direct encoding: I = b + W s, dense, the same for every t)
                                   neuron update (IF/LIF/CLIF/PLIF/DN/multi-threshold), strict h > V_th
    rate = count_T / T;  a_k = tanh(sum_j w_kj rate_kj + b_k)

Converted ANN policies (``if-conv`` layers, ``spikerl.conversion``): IF neurons with per-neuron thresholds
theta_j, start potential v0 theta_j + c_j, soft reset, ``>=`` or ``>`` firing, graded spikes of value
theta_j, and the linear readout a = tanh(W_r (theta * count / T) + b_r); with the CRPI carry the policy
keeps c_j = clip(alpha max(v_T - v_0, -theta_j N_j), -theta_j/2, theta_j/2) per batch row until ``reset``.

Event-driven accumulation of rows of the transposed weight (W stored ``(in, out)``) vectorises over the
output neurons without any reassociation, so the kernels use no fastmath: with
``fastmath={"reassoc", "contract", "nsz"}`` the batch-1 latency was the same here (42 vs 42 us), and
plain IEEE arithmetic keeps NaN/Inf semantics and float64 parity (see ``reference/ecosystem.md`` 5).
In float64 the result differs from torch only by the summation order of the currents. Neuron updates
are branch-free selects followed by a branch-free compaction of the spike indices.

Compiled functions are cached on disk (``cache=True``; ``NUMBA_CACHE_DIR`` moves the cache). The
policy object owns preallocated work buffers, so one policy must not be called from two threads at once
(make one policy per thread).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["CompiledPolicy", "compile_policy", "pack_policy"]

# neuron kinds
_LEAKY, _CLIF, _DN, _MULTI, _CONV = 0, 1, 2, 3, 4
# meta header (int64)
_H_T, _H_ENC, _H_PRE, _H_OBS, _H_POP, _H_L, _H_ACT, _H_DPOP = 0, 1, 2, 3, 4, 5, 6, 7
_H_MEAN, _H_STD, _H_DECW, _H_DECB, _H_MAXN, _H_ENCCNT, _H_READ, _H_CARRY = 8, 9, 10, 11, 12, 13, 14, 15
# per layer: n_in, n_out, w_off, b_off, kind, levels, p_off, count_off, threshold off (if-conv), carry off
_HEADER, _LSTRIDE = 16, 10
# float params (dtype): header, then per layer at p_off: thr, decay, current_decay, hard, theta_r,
# theta_s, theta_v, signed theta_u, then the `levels` thresholds j * V_th (multi-threshold);
# if-conv: slot 2 = CRPI alpha, slot 4 = v0 (fraction of theta), slot 5 = 1 for fire 'ge' (0: 'gt')
_F_ENC_THR, _F_NEG_HALF, _F_ONE, _F_ZERO, _F_T = 0, 1, 2, 3, 4
_FHEADER, _PSTRIDE = 8, 8


@njit(cache=True)
def _decide(obs, w, fp, meta, work, iwork, counts, out, carry):  # pragma: no cover - compiled
    """One decision for ``obs[obs_dim]``; writes ``out[act_dim]`` and ``counts`` (and ``carry``, the CRPI
    state of the if-conv neurons, when ``meta[_H_CARRY]``).

    Returns -1, or the index of the first non-finite observation entry (then nothing is computed).
    Hot loops index array *views* with range variables only, so LLVM drops the negative-index
    wraparound checks and vectorises the row accumulations.
    """
    T = meta[_H_T]
    D = meta[_H_OBS]
    P = meta[_H_POP]
    L = meta[_H_L]
    maxn = meta[_H_MAXN]
    one = fp[_F_ONE]
    zero = fp[_F_ZERO]
    # work: x[D] | enc_a[D*P] | enc_v[D*P] | cur, cur0, u, c, u2, sp [maxn each] | vals [2, T, maxn]
    x = work[0:D]
    enc_a = work[D:D + D * P]
    enc_v = work[D + D * P:D + 2 * D * P]
    o = D + 2 * D * P
    cur = work[o:o + maxn]
    cur0 = work[o + maxn:o + 2 * maxn]
    st_u = work[o + 2 * maxn:o + 3 * maxn]
    st_c = work[o + 3 * maxn:o + 4 * maxn]
    st_u2 = work[o + 4 * maxn:o + 5 * maxn]
    st_sp = work[o + 5 * maxn:o + 6 * maxn]
    vals = work[o + 6 * maxn:o + 6 * maxn + 2 * T * maxn].reshape((2, T, maxn))
    # iwork: idx [2, T, maxn] | cnt [2, T] | flag [maxn]
    idx = iwork[0:2 * T * maxn].reshape((2, T, maxn))
    cnt = iwork[2 * T * maxn:2 * T * maxn + 2 * T].reshape((2, T))
    flag = iwork[2 * T * maxn + 2 * T:2 * T * maxn + 2 * T + maxn]

    for i in range(D):
        xi = obs[i]
        if not np.isfinite(xi):
            return i
        x[i] = xi
    if meta[_H_PRE] == 1:
        for i in range(D):
            x[i] = np.tanh(x[i])

    src = 0  # ping-pong slot holding the current layer's input spikes
    direct = meta[_H_ENC] == 1
    if not direct:
        thr_e = fp[_F_ENC_THR]
        neg_half = fp[_F_NEG_HALF]
        mean = w[meta[_H_MEAN]:meta[_H_MEAN] + D * P]
        std = w[meta[_H_STD]:meta[_H_STD] + D * P]
        ecount = counts[meta[_H_ENCCNT]:meta[_H_ENCCNT] + D * P]
        for i in range(D):
            s = x[i]
            for j in range(P):
                k = i * P + j
                d = s - mean[k]
                sd = std[k]
                enc_a[k] = np.exp(neg_half * (d * d) / (sd * sd))
                enc_v[k] = zero
                ecount[k] = zero
        for t in range(T):
            for k in range(D * P):
                v = enc_v[k] + enc_a[k]
                fired = v > thr_e
                enc_v[k] = v - thr_e if fired else v
                ecount[k] += one if fired else zero
                flag[k] = 1 if fired else 0
            n = 0
            eidx = idx[0, t]
            for k in range(D * P):
                eidx[n] = k
                n += flag[k]
            for q in range(n):
                vals[0, t, q] = one
            cnt[0, t] = n

    for layer in range(L):
        lb = _HEADER + layer * _LSTRIDE
        n_in = meta[lb]
        n_out = meta[lb + 1]
        wt = w[meta[lb + 2]:meta[lb + 2] + n_in * n_out].reshape((n_in, n_out))
        bias = w[meta[lb + 3]:meta[lb + 3] + n_out]
        kind = meta[lb + 4]
        levels = meta[lb + 5]
        po = meta[lb + 6]
        lcount = counts[meta[lb + 7]:meta[lb + 7] + n_out]
        thr = fp[po]
        lam = fp[po + 1]
        alpha = fp[po + 2]
        hard = fp[po + 3] != zero
        theta_r = fp[po + 4]
        theta_s = fp[po + 5]
        theta_v = fp[po + 6]
        theta_u = fp[po + 7]
        mthr = fp[po + _PSTRIDE:po + _PSTRIDE + levels]
        dst = 1 - src
        u = st_u[:n_out]
        c = st_c[:n_out]
        u2 = st_u2[:n_out]
        sp = st_sp[:n_out]
        cu = cur[:n_out]
        cu0 = cur0[:n_out]
        for j in range(n_out):
            u[j] = zero
            c[j] = zero
            u2[j] = zero
            sp[j] = zero
            lcount[j] = zero
        conv = kind == _CONV
        use_carry = conv and meta[_H_CARRY] == 1
        tharr = w[meta[lb + 8]:meta[lb + 8] + n_out]
        lcarry = carry[meta[lb + 9]:meta[lb + 9] + n_out]
        ge = fp[po + 5] != zero
        if conv:  # v_0 = v0 theta + c (CRPI carry); c keeps v_0 for the residual
            v0f = fp[po + 4]
            for j in range(n_out):
                v = v0f * tharr[j]
                if use_carry:
                    v = v + lcarry[j]
                u[j] = v
                c[j] = v
        analog = direct and layer == 0
        if analog:  # dense input: the same current at every step
            for j in range(n_out):
                cu0[j] = bias[j]
            for i in range(n_in):
                xi = x[i]
                row = wt[i]
                for j in range(n_out):
                    cu0[j] += xi * row[j]
        for t in range(T):
            if analog:
                for j in range(n_out):
                    cu[j] = cu0[j]
            else:
                for j in range(n_out):
                    cu[j] = bias[j]
                for q in range(cnt[src, t]):
                    row = wt[idx[src, t, q]]
                    val = vals[src, t, q]
                    if val == one:
                        for j in range(n_out):
                            cu[j] += row[j]
                    else:
                        for j in range(n_out):
                            cu[j] += val * row[j]
            oidx = idx[dst, t]
            ovals = vals[dst, t]
            n = 0
            if kind == _LEAKY or kind == _CLIF:
                if kind == _CLIF:
                    for j in range(n_out):
                        cj = c[j] * alpha + cu[j]
                        c[j] = cj
                        cu[j] = cj
                # branch-free update (vectorises), then a branch-free compaction of the spike indices
                for j in range(n_out):
                    h = u[j] * lam + cu[j]
                    fired = h > thr
                    u[j] = (zero if hard else h - thr) if fired else h
                    lcount[j] += one if fired else zero
                    flag[j] = 1 if fired else 0
                for j in range(n_out):
                    oidx[n] = j
                    n += flag[j]
                for q in range(n):
                    ovals[q] = one
            elif conv:
                for j in range(n_out):
                    h = u[j] + cu[j]
                    th = tharr[j]
                    fired = (h >= th) if ge else (h > th)
                    u[j] = h - th if fired else h
                    lcount[j] += one if fired else zero
                    flag[j] = 1 if fired else 0
                for j in range(n_out):
                    oidx[n] = j
                    n += flag[j]
                for q in range(n):
                    ovals[q] = tharr[oidx[q]]
            elif kind == _MULTI:
                for j in range(n_out):
                    h = u[j] * lam + cu[j]
                    k = 0
                    kf = zero  # k in the policy dtype
                    while k < levels and h > mthr[k]:
                        k += 1
                        kf += one
                    if k > 0:
                        oidx[n] = j
                        ovals[n] = kf
                        n += 1
                        lcount[j] += kf
                        u[j] = zero if hard else h - thr * kf
                    else:
                        u[j] = h
            else:  # DN (MDC-SAN): state v (u), u (u2), c, s_prev (sp)
                for j in range(n_out):
                    cj = c[j] * alpha + cu[j]
                    s = sp[j]
                    v = u[j] * (one - s) + theta_r * s
                    uu = u2[j] + theta_s * s
                    dv = v * v - v - uu + cj
                    du = theta_v * v + theta_u * uu
                    v = v + dv
                    uu = uu + du
                    c[j] = cj
                    u[j] = v
                    u2[j] = uu
                    if v > thr:
                        oidx[n] = j
                        ovals[n] = one
                        n += 1
                        lcount[j] += one
                        sp[j] = one
                    else:
                        sp[j] = zero
            cnt[dst, t] = n
        if use_carry:  # CRPI: c = clip(alpha max(v_T - v_0, -theta N), -theta/2, theta/2)
            for j in range(n_out):
                th = tharr[j]
                r = u[j] - c[j]
                floor_ = -th * lcount[j]
                cv = alpha * (r if r > floor_ else floor_)
                half = th / 2
                if cv > half:
                    cv = half
                elif cv < -half:
                    cv = -half
                lcarry[j] = cv
        src = dst

    # decoder: rate = count / T;  a_k = tanh(sum_j w_kj rate_kj + b_k)
    A = meta[_H_ACT]
    DP = meta[_H_DPOP]
    llb = _HEADER + (L - 1) * _LSTRIDE
    ocount = counts[meta[llb + 7]:]
    dw = w[meta[_H_DECW]:meta[_H_DECW] + A * DP]
    db = w[meta[_H_DECB]:meta[_H_DECB] + A]
    tf = fp[_F_T]
    if meta[_H_READ] == 1:  # linear readout of a converted policy: r_j = theta_j count_j / T over all j
        lth = w[meta[llb + 8]:meta[llb + 8] + DP]
        for j in range(DP):
            st_u[j] = lth[j] * ocount[j] / tf
        for k in range(A):
            acc = zero
            for j in range(DP):
                acc += st_u[j] * dw[k * DP + j]
            out[k] = np.tanh(acc + db[k])
        return -1
    for k in range(A):
        acc = zero
        for j in range(DP):
            acc += ocount[k * DP + j] / tf * dw[k * DP + j]
        out[k] = np.tanh(acc + db[k])
    return -1


@njit(cache=True)
def _decide_batch(obs, w, fp, meta, work, iwork, counts, out, keep_counts, carry):  # pragma: no cover
    """``_decide`` for each row of ``obs[B, obs_dim]`` (``carry[B, n]``, or one dummy row when not carried);
    returns -1 or the flat index of a non-finite entry."""
    D = obs.shape[1]
    per_row = carry.shape[0] == obs.shape[0]
    for b in range(obs.shape[0]):
        r = _decide(obs[b], w, fp, meta, work, iwork, counts[b if keep_counts else 0], out[b],
                    carry[b if per_row else 0])
        if r >= 0:
            return b * D + r
    return -1


class CompiledPolicy:
    """A spiking actor compiled for CPU inference with Numba (build it with :func:`compile_policy`).

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
        self.carry_size = int(carry_size) if meta[_H_CARRY] == 1 else 0
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
        """The carried potentials ``[B, n]`` (all if-conv neurons, layer by layer); None after a reset."""
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
            status = _decide(obs, self._w, self._fp, self._meta, self._work, self._iwork, self._counts[0], out,
                             self._carry_rows(1)[0])
        else:
            out = np.empty((obs.shape[0], self.act_dim), dtype=self.dtype)
            status = _decide_batch(obs, self._w, self._fp, self._meta, self._work, self._iwork, self._counts,
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
        if _decide_batch(obs, self._w, self._fp, self._meta, self._work, self._iwork, counts, out, True,
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
    if name == "if-conv":
        if p.get("reset", "soft") != "soft" or p.get("fire") not in ("ge", "gt"):
            raise ValueError(f"layer {index} (if-conv) needs reset 'soft' and fire 'ge' or 'gt', got "
                             f"reset={p.get('reset')!r}, fire={p.get('fire')!r}")
        return _CONV, 0, [0.0, 1.0, float(p.get("alpha", 0.0)), 0.0, float(p["v0"]),
                          1.0 if p["fire"] == "ge" else 0.0, 0.0, 0.0]
    thr = float(p["threshold"])
    hard = 1.0 if p.get("reset", "hard") == "hard" else 0.0
    params = [thr, 1.0, 0.0, hard, 0.0, 0.0, 0.0, 0.0]
    kind, levels = _LEAKY, 0
    if name == "clif":
        kind = _CLIF
        params[1], params[2] = float(p["decay"]), float(p["current_decay"])
    elif name in ("lif", "plif"):
        params[1] = float(p["decay"])
    elif name == "if":
        pass
    elif name == "dn":
        kind = _DN
        tu = float(p["theta_u"]) if p["u_sign"] == "+" else -float(p["theta_u"])
        params[2] = float(p["current_decay"])
        params[4:8] = [float(p["theta_r"]), float(p["theta_s"]), float(p["theta_v"]), tu]
    elif name == "multi-threshold":
        kind, levels = _MULTI, int(p["levels"])
        params[1] = float(p["decay"])
        params += [float(j * thr) for j in range(1, levels + 1)]
    else:
        raise ValueError(f"layer {index} has neuron {name!r}, which has no Numba kernel; supported: if, lif, clif, "
                         "plif, dn, multi-threshold, if-conv")
    return kind, levels, params


def _neuron_params(neuron, index: int) -> tuple[str, dict]:
    """(name, plain parameters) of one torch neuron layer; ValueError for unsupported neurons."""
    from spikerl.neurons import CLIFNeuron, DNNeuron, IFNeuron, LIFNeuron, MultiThresholdNeuron, PLIFNeuron

    p: dict = {"threshold": float(neuron.threshold), "reset": getattr(neuron, "reset_mode", "hard")}
    cls = type(neuron)
    if cls is CLIFNeuron:
        p.update(decay=float(neuron.decay), current_decay=float(neuron.current_decay))
        return "clif", p
    if cls in (LIFNeuron, IFNeuron, PLIFNeuron):
        decay = neuron.decay
        p["decay"] = float(decay.detach()) if hasattr(decay, "detach") else float(decay)
        return "lif", p
    if cls is DNNeuron:
        p.update(current_decay=float(neuron.current_decay), theta_r=neuron.theta_r, theta_s=neuron.theta_s,
                 theta_v=neuron.theta_v, theta_u=neuron.theta_u, u_sign=neuron.u_sign)
        return "dn", p
    if cls is MultiThresholdNeuron:
        p.update(decay=float(neuron.decay), levels=int(neuron.levels))
        return "multi-threshold", p
    raise ValueError(
        f"compile_policy: layer {index} has neuron {cls.__name__} ({getattr(neuron, 'name', '?')!r}), "
        "which has no Numba kernel; supported: if, lif, clif, plif, dn, multi-threshold"
    )


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
    meta = np.zeros(_HEADER + _LSTRIDE * L, dtype=np.int64)
    fp: list[float] = [0.999, -0.5, 1.0, 0.0, float(T), 0.0, 0.0, 0.0]
    count_names: list[str] = []
    count_sizes: list[int] = []
    count_off = 0
    if enc_kind == 0:
        meta[_H_MEAN], meta[_H_STD] = put(np.asarray(spec.encoder_mean)), put(np.asarray(spec.encoder_std))
        meta[_H_ENCCNT] = 0
        count_names.append("encoder")
        count_sizes.append(D * pop)
        count_off = D * pop
    sizes = [D * pop]
    linear = getattr(spec, "readout", "population") == "linear"
    carried = getattr(spec, "carry", None) == "crpi"
    if carried and not linear:
        raise ValueError("compile_policy: the CRPI carry needs a converted policy (if-conv layers, readout 'linear')")
    carry_off = 0
    for index, layer in enumerate(spec.layers):
        kind, levels, params = _kernel_params(layer.neuron, layer.params, index)
        if (kind == _CONV) != linear:
            raise ValueError(f"compile_policy: layer {index} ({layer.neuron}): if-conv layers need readout "
                             "'linear' and a linear readout needs if-conv layers")
        weight = np.asarray(layer.weight)
        n_out, n_in = weight.shape
        if n_in != sizes[-1]:
            raise ValueError(f"compile_policy: layer {index} takes {n_in} inputs but receives {sizes[-1]}")
        th_off = 0
        if kind == _CONV:
            theta = getattr(layer, "threshold", None)
            if theta is None or np.asarray(theta).shape != (n_out,):
                raise ValueError(f"compile_policy: layer {index} (if-conv) needs threshold[{n_out}]")
            th_off = put(np.asarray(theta))
        lb = _HEADER + index * _LSTRIDE
        meta[lb:lb + _LSTRIDE] = [n_in, n_out, put(weight.T), put(np.asarray(layer.bias)), kind, levels, len(fp),
                                  count_off, th_off, carry_off if carried else 0]
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
    meta[_H_READ], meta[_H_CARRY] = (1 if linear else 0), (1 if carried else 0)
    meta[_H_DECW], meta[_H_DECB] = put(dec_w), put(np.asarray(spec.decoder_bias))
    maxn = max(sizes)
    meta[[_H_T, _H_ENC, _H_PRE, _H_OBS, _H_POP, _H_L, _H_ACT, _H_DPOP, _H_MAXN]] = [
        T, enc_kind, 1 if spec.preprocess == "tanh" else 0, D, pop, L, act_dim, dec_pop, maxn,
    ]
    w = np.concatenate(chunks)
    work_size = D + 2 * D * pop + 6 * maxn + 2 * T * maxn
    return CompiledPolicy(
        obs_dim=D, act_dim=int(act_dim), T=T, dtype=dtype, w=w, fp=np.asarray(fp, dtype=dtype), meta=meta,
        work_size=work_size, iwork_size=2 * T * maxn + 2 * T + maxn, count_names=count_names, count_sizes=count_sizes,
        carry_size=carry_off if carried else 0,
    )


def compile_policy(actor, dtype: type | np.dtype = np.float32) -> CompiledPolicy:
    """Compile a ``SpikingActor`` / ``SpikingGaussianActor`` into a Numba :class:`CompiledPolicy`.

    The weights are copied (later changes to the actor are not seen). ``dtype`` is float32 (default)
    or float64. For a Gaussian (SAC) actor the policy returns the deterministic action tanh(mean).
    Unsupported parts (stochastic encoder, unknown neuron classes) raise ``ValueError``. The torch
    parameters are read into a :class:`spikerl.runtime.spec.PolicySpec` and packed by :func:`pack_policy`.
    """
    from spikerl.coding import DirectEncoder, PopulationEncoder
    from spikerl.networks import _SpikingActorBase
    from spikerl.runtime.spec import LayerSpec, PolicySpec

    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"compile_policy: dtype must be float32 or float64, got {dtype}")
    if not isinstance(actor, _SpikingActorBase):
        raise ValueError(
            f"compile_policy expects a spikerl SpikingActor or SpikingGaussianActor, got {type(actor).__name__}"
        )
    enc = actor.encoder
    if isinstance(enc, PopulationEncoder):
        if not enc.deterministic:
            raise ValueError(
                "compile_policy: the stochastic population encoder (encoder='pop-stochastic') is not supported; "
                "use encoder='pop' (deterministic) or 'direct'"
            )
        encoder, pop = "pop", enc.pop_dim
    elif isinstance(enc, DirectEncoder):
        encoder, pop = "direct", 1
    else:
        raise ValueError(f"compile_policy: unsupported encoder {type(enc).__name__}; supported: pop, direct")

    def arr(t) -> np.ndarray:
        return t.detach().cpu().numpy().astype(dtype, copy=True)

    layers = []
    for index, (linear, neuron) in enumerate(zip(actor.snn.linears, actor.snn.neurons, strict=True)):
        name, params = _neuron_params(neuron, index)
        layers.append(LayerSpec(arr(linear.weight), arr(linear.bias), name, params))
    spec = PolicySpec(
        obs_dim=actor.obs_dim, act_dim=actor.act_dim, T=actor.T, encoder=encoder, preprocess=enc.preprocess,
        layers=layers, decoder_weight=arr(actor.decoder.weight), decoder_bias=arr(actor.decoder.bias), pop_dim=pop,
        encoder_mean=arr(enc.mean) if encoder == "pop" else None,
        encoder_std=arr(enc.std) if encoder == "pop" else None,
    )
    return pack_policy(spec, dtype)
