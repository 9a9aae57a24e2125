"""Numba CPU inference for spiking actors: one compiled function per decision (encoder to action).

``pack_policy(spec)`` copies a :class:`spikerl.runtime.spec.PolicySpec` (a bundle's arrays, or a trained
actor read by ``spikerl.export.compile_policy``) into contiguous NumPy arrays and returns a
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

Differential coding (``diff-conv`` layers, DCGS ``if-diff`` / ``mth-diff``) runs T + 1 steps t = 0..T. The
first layer's current is I_0 = 0, I_1 = W x + b, I_t = 0 after (the analog input sent once); a hidden layer's
is I_t = b + W o_t with o_0 = 0, accumulated event by event from the previous layer's messages. Per neuron,
with levels l_i = theta_j / 2^i (i = 0..levels-1, cut_i = theta_j for one level, else 0.75 l_i):

    v = v0 theta_j + c_j;  r_in = I_0;  r_out = 0;   for t = 1..T:
    d = I_t - I_0;  m = v + d + r_in - r_out
    o_t = l_i for the largest level with m >= cut_i; else (signed) -l_i for the largest level with
          m <= -cut'_i (cut'_i = 0 for one level, else 0.75 l_i) and t r_out >= l_i; else 0
    v = m - o_t;  r_in += d / t;  r_out += o_t / t;  count += [o_t != 0]

and the readout decodes r = r_out = sum_t o_t / t of the last layer: a = tanh(W_r r + b_r). The CRPI carry
uses N_j = sum_t |o_t| / theta_j (the output emitted in units of theta_j) in place of the spike count.

Event-driven accumulation of rows of the transposed weight (W stored ``(in, out)``) vectorises over the
output neurons without any reassociation, so the kernels use no fastmath: reassociation would buy nothing
here, and plain IEEE arithmetic keeps NaN/Inf semantics and float64 parity.
In float64 the result differs from torch only by the summation order of the currents. Neuron updates
are branch-free selects followed by a branch-free compaction of the spike indices.

Compiled functions are cached on disk (``cache=True``; ``NUMBA_CACHE_DIR`` moves the cache). The
policy object owns preallocated work buffers, so one policy must not be called from two threads at once
(make one policy per thread).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["CompiledPolicy", "pack_policy"]

# neuron kinds
_LEAKY, _CLIF, _DN, _MULTI, _CONV, _DIFF = 0, 1, 2, 3, 4, 5
# meta header (int64)
_H_T, _H_ENC, _H_PRE, _H_OBS, _H_POP, _H_L, _H_ACT, _H_DPOP = 0, 1, 2, 3, 4, 5, 6, 7
_H_MEAN, _H_STD, _H_DECW, _H_DECB, _H_MAXN, _H_ENCCNT, _H_READ, _H_CARRY = 8, 9, 10, 11, 12, 13, 14, 15
# per layer: n_in, n_out, w_off, b_off, kind, levels, p_off, count_off, threshold off (if-conv, diff-conv),
# carry off, level-table off (diff-conv: [3, levels, n_out] = levels l_i, positive cuts, negative cuts)
_HEADER, _LSTRIDE = 16, 11
# float params (dtype): header, then per layer at p_off: thr, decay, current_decay, hard, theta_r,
# theta_s, theta_v, signed theta_u, then the `levels` thresholds j * V_th (multi-threshold);
# if-conv: slot 2 = CRPI alpha, slot 4 = v0 (fraction of theta), slot 5 = 1 for fire 'ge' (0: 'gt');
# diff-conv: slot 2 = CRPI alpha, slot 4 = v0, slot 5 = 1 for signed messages (0: positive only)
_F_ENC_THR, _F_NEG_HALF, _F_ONE, _F_ZERO, _F_T, _F_HALF = 0, 1, 2, 3, 4, 5
_FHEADER, _PSTRIDE = 8, 8


@njit(cache=True)
def _diff_step(cu, x0, v, r_in, r_out, em, count, lvt, levels, signed, t, m, sel, flag, oidx, ovals, one,
               zero):  # pragma: no cover - compiled
    """One step t (1..T, in the policy dtype) of a diff-conv layer: currents ``cu``, per-neuron state v,
    r_in, r_out, emitted output ``em`` and event ``count``; level table ``lvt[3, levels, n]`` (l_i, positive
    cuts, negative cuts); ``m``, ``sel[4, n]`` and ``flag`` are scratch. Writes the events (neuron index,
    message +-l_i) to ``oidx``/``ovals`` and returns their number::

        d = I_t - I_0;  m = v + d + r_in - r_out
        o = l_{levels - n+} if n+ = #{i: m >= cut+_i} > 0, else (signed) -l_{levels - n-} if
            n- = #{i: m <= cut-_i and t r_out >= l_i} > 0, else 0
        v = m - o;  r_in += d / t;  r_out += o / t

    The levels l_i decrease with i (cut+_i too, cut-_i increase), so the crossed levels are a suffix
    i >= levels - n: going from the smallest level up and overwriting on each crossing leaves l_{levels - n},
    the torch reference's choice. Every loop is a branch-free select over the neurons that vectorises: the
    selects ping-pong between two rows of ``sel`` (a select that keeps the value loaded from the array it
    stores to becomes a masked store), and each loop touches few arrays (runtime alias checks).
    """
    n_out = cu.shape[0]
    for j in range(n_out):
        m[j] = v[j] + (cu[j] - x0[j]) + r_in[j] - r_out[j]
    pos, pos_next, neg, neg_next = sel[0, :n_out], sel[1, :n_out], sel[2, :n_out], sel[3, :n_out]
    for j in range(n_out):
        pos[j] = zero
        neg[j] = zero
    for k in range(levels):
        i = levels - 1 - k  # the smallest level first: the largest crossed level is written last
        li = lvt[0, i]
        ci = lvt[1, i]
        for j in range(n_out):
            lj = li[j]
            pj = pos[j]
            pos_next[j] = lj if m[j] >= ci[j] else pj
        pos, pos_next = pos_next, pos
        if signed:
            ni = lvt[2, i]
            for j in range(n_out):
                lj = li[j]
                nj = neg[j]
                neg_next[j] = -lj if (m[j] <= ni[j]) & (t * r_out[j] >= lj) else nj
            neg, neg_next = neg_next, neg
    for j in range(n_out):  # o = pos, else neg; v = m - o; m keeps o from here on
        pj = pos[j]
        nj = neg[j]
        o = pj if pj != zero else nj
        v[j] = m[j] - o
        m[j] = o
    for j in range(n_out):
        r_in[j] = r_in[j] + (cu[j] - x0[j]) / t
        r_out[j] = r_out[j] + m[j] / t
    for j in range(n_out):
        o = m[j]
        fired = o != zero
        em[j] += abs(o)
        count[j] += one if fired else zero
        flag[j] = 1 if fired else 0
    n = 0
    for j in range(n_out):
        oidx[n] = j
        n += flag[j]
    for q in range(n):
        ovals[q] = m[oidx[q]]
    return n


@njit(cache=True)
def _decide(obs, w, fp, meta, work, iwork, counts, out, carry):  # pragma: no cover - compiled
    """One decision for ``obs[obs_dim]``; writes ``out[act_dim]`` and ``counts`` (and ``carry``, the CRPI
    state of the if-conv / diff-conv neurons, when ``meta[_H_CARRY]``).

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
    fhalf = fp[_F_HALF]
    # work: x[D] | enc_a[D*P] | enc_v[D*P] | cur, cur0, u, c, u2, sp, em, x0, m [maxn each] | sel [4, maxn]
    #       | vals [2, T, maxn]
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
    st_em = work[o + 6 * maxn:o + 7 * maxn]
    st_x0 = work[o + 7 * maxn:o + 8 * maxn]
    st_m = work[o + 8 * maxn:o + 9 * maxn]
    st_sel = work[o + 9 * maxn:o + 13 * maxn].reshape((4, maxn))
    vals = work[o + 13 * maxn:o + 13 * maxn + 2 * T * maxn].reshape((2, T, maxn))
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
        em = st_em[:n_out]
        x0 = st_x0[:n_out]
        for j in range(n_out):
            u[j] = zero
            c[j] = zero
            u2[j] = zero
            sp[j] = zero
            em[j] = zero
            lcount[j] = zero
        conv = kind == _CONV
        diff = kind == _DIFF
        use_carry = (conv or diff) and meta[_H_CARRY] == 1
        tharr = w[meta[lb + 8]:meta[lb + 8] + n_out]
        lcarry = carry[meta[lb + 9]:meta[lb + 9] + n_out]
        ge = fp[po + 5] != zero
        signed = fp[po + 5] != zero
        n_lv = levels if diff else 0  # the level table of a diff-conv layer (empty for other kinds)
        lvt = w[meta[lb + 10]:meta[lb + 10] + 3 * n_lv * n_out].reshape((3, n_lv, n_out))
        if conv or diff:  # v_0 = v0 theta + c (CRPI carry); c keeps v_0 for the residual
            v0f = fp[po + 4]
            for j in range(n_out):
                v = v0f * tharr[j]
                if use_carry:
                    v = v + lcarry[j]
                u[j] = v
                c[j] = v
        analog = direct and layer == 0
        if diff:  # I_0: 0 for the analog input (sent at step 1 only), b for a hidden layer (o_0 = 0); r_in = I_0
            for j in range(n_out):
                x0[j] = zero if analog else bias[j]
                u2[j] = x0[j]
        tstep = zero  # the step t = 1..T of a diff-conv layer, in the policy dtype
        if analog:  # dense input: the same current at every step
            for j in range(n_out):
                cu0[j] = bias[j]
            for i in range(n_in):
                xi = x[i]
                row = wt[i]
                for j in range(n_out):
                    cu0[j] += xi * row[j]
        for t in range(T):
            if analog and diff:  # differential coding: W x + b at step 1 only
                for j in range(n_out):
                    cu[j] = cu0[j] if t == 0 else zero
            elif analog:
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
            elif diff:
                tstep += one
                n = _diff_step(cu, x0, u, u2, sp, em, lcount, lvt, levels, signed, tstep, st_m[:n_out], st_sel,
                               flag[:n_out], oidx, ovals, one, zero)
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
                floor_ = -th * (em[j] / th if diff else lcount[j])  # diff: N = sum_t |o_t| / theta
                cv = alpha * (r if r > floor_ else floor_)
                half = th * fhalf
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
        if meta[llb + 4] == _DIFF:  # differential coding: r_j = sum_t o_jt / t, the last layer's r_out
            for j in range(DP):
                st_u[j] = st_sp[j]
        else:
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
    if name == "diff-conv":
        levels = p.get("levels")
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
            raise ValueError(f"layer {index} (diff-conv) needs an integer levels >= 1, got {levels!r}")
        return _DIFF, int(levels), [0.0, 1.0, float(p.get("alpha", 0.0)), 0.0, float(p["v0"]),
                                    1.0 if p["signed"] else 0.0, 0.0, 0.0]
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
    meta = np.zeros(_HEADER + _LSTRIDE * L, dtype=np.int64)
    fp: list[float] = [0.999, -0.5, 1.0, 0.0, float(T), 0.5, 0.0, 0.0]
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
        raise ValueError("compile_policy: the CRPI carry needs a converted policy (if-conv or diff-conv layers, "
                         "readout 'linear')")
    neurons = {layer.neuron for layer in spec.layers}
    if linear and len(neurons) > 1:
        raise ValueError(f"compile_policy: a converted policy uses one coding in every layer (all if-conv or all "
                         f"diff-conv), got {', '.join(sorted(neurons))}")
    carry_off = 0
    for index, layer in enumerate(spec.layers):
        kind, levels, params = _kernel_params(layer.neuron, layer.params, index)
        if (kind in (_CONV, _DIFF)) != linear:
            raise ValueError(f"compile_policy: layer {index} ({layer.neuron}): if-conv / diff-conv layers need "
                             "readout 'linear' and a linear readout needs if-conv or diff-conv layers")
        weight = np.asarray(layer.weight)
        n_out, n_in = weight.shape
        if n_in != sizes[-1]:
            raise ValueError(f"compile_policy: layer {index} takes {n_in} inputs but receives {sizes[-1]}")
        th_off = lv_off = 0
        if kind in (_CONV, _DIFF):
            theta = getattr(layer, "threshold", None)
            if theta is None or np.asarray(theta).shape != (n_out,):
                raise ValueError(f"compile_policy: layer {index} ({layer.neuron}) needs threshold[{n_out}]")
            th_off = put(np.asarray(theta))
        if kind == _DIFF:
            lv_off = put(diff_level_table(np.asarray(layer.threshold), levels, dtype))
        lb = _HEADER + index * _LSTRIDE
        meta[lb:lb + _LSTRIDE] = [n_in, n_out, put(weight.T), put(np.asarray(layer.bias)), kind, levels, len(fp),
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
    meta[_H_READ], meta[_H_CARRY] = (1 if linear else 0), (1 if carried else 0)
    meta[_H_DECW], meta[_H_DECB] = put(dec_w), put(np.asarray(spec.decoder_bias))
    maxn = max(sizes)
    meta[[_H_T, _H_ENC, _H_PRE, _H_OBS, _H_POP, _H_L, _H_ACT, _H_DPOP, _H_MAXN]] = [
        T, enc_kind, 1 if spec.preprocess == "tanh" else 0, D, pop, L, act_dim, dec_pop, maxn,
    ]
    w = np.concatenate(chunks)
    work_size = D + 2 * D * pop + 13 * maxn + 2 * T * maxn
    return CompiledPolicy(
        obs_dim=D, act_dim=int(act_dim), T=T, dtype=dtype, w=w, fp=np.asarray(fp, dtype=dtype), meta=meta,
        work_size=work_size, iwork_size=2 * T * maxn + 2 * T + maxn, count_names=count_names, count_sizes=count_sizes,
        carry_size=carry_off if carried else 0,
    )
