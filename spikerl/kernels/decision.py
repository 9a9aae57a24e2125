"""One decision of a packed spiking policy as Numba functions: encoder, one function per layer kind, readout.

:func:`decide` runs a policy packed by ``spikerl.kernels.numba_policy.pack_policy`` (the layout constants
below are the contract between the two) for one observation, simulating the T steps from rest:

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

Layers pass events: per step t the indices of the neurons that fired and their values (1, a graded level
count, theta_j or a signed message), so a layer's current adds one row of the transposed weight (stored
``(in, out)``) per event. That accumulation vectorises over the output neurons without any reassociation,
so the kernels use no fastmath: reassociation would buy nothing here, and plain IEEE arithmetic keeps
NaN/Inf semantics and float64 parity. In float64 the result differs from torch only by the summation order
of the currents. Neuron updates are branch-free selects followed by a branch-free compaction of the spike
indices (:func:`compact_events`). Hot loops index array *views* with range variables only, so LLVM drops
the negative-index wraparound checks and vectorises them. Each layer computes its input currents for all T
steps first (:func:`layer_currents`), then runs its neuron kind over the T steps.

The parts are separate functions for reading and testing, but ``inline="always"`` has Numba inline them into
:func:`decide`, which compiles to one function as if written in one piece: a call between compiled functions
costs an atomic reference-count update per array argument, which at batch 1 is a measurable share of a
small policy's decision. :func:`decide` and :func:`decide_batch` are compiled with ``cache=True``
(``NUMBA_CACHE_DIR`` moves the cache).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["decide", "decide_batch"]

# --- packed layout (written by numba_policy.pack_policy) ---
#: layer kinds
LEAKY, CLIF, DN, MULTI, CONV, DIFF = 0, 1, 2, 3, 4, 5
#: meta header (int64)
H_T, H_ENC, H_PRE, H_OBS, H_POP, H_L, H_ACT, H_DPOP = 0, 1, 2, 3, 4, 5, 6, 7
H_MEAN, H_STD, H_DECW, H_DECB, H_MAXN, H_ENCCNT, H_READ, H_CARRY = 8, 9, 10, 11, 12, 13, 14, 15
#: per layer at HEADER + i LSTRIDE: n_in, n_out, w_off, b_off, kind, levels, p_off, count_off, threshold off
#: (if-conv, diff-conv), carry off, level-table off (diff-conv: [3, levels, n_out] = levels l_i, positive cuts,
#: negative cuts)
HEADER, LSTRIDE = 16, 11
#: float params (dtype): header, then per layer at p_off: thr, decay, current_decay, hard, theta_r, theta_s,
#: theta_v, signed theta_u, then the ``levels`` thresholds j * V_th (multi-threshold);
#: if-conv: slot 2 = CRPI alpha, slot 4 = v0 (fraction of theta), slot 5 = 1 for fire 'ge' (0: 'gt');
#: diff-conv: slot 2 = CRPI alpha, slot 4 = v0, slot 5 = 1 for signed messages (0: positive only)
F_ENC_THR, F_NEG_HALF, F_ONE, F_ZERO, F_T, F_HALF = 0, 1, 2, 3, 4, 5
FHEADER, PSTRIDE = 8, 8
#: float work buffer per decision: x[D] | enc_a[D*P] | enc_v[D*P] | 7 state rows [maxn] | sel [4, maxn]
#: | currents [T, maxn] | vals [2, T, maxn];  int work: idx [2, T, maxn] | cnt [2, T] | flag [maxn]
STATE_ROWS = 7


def work_sizes(obs_dim: int, pop: int, maxn: int, T: int) -> tuple[int, int]:
    """(float, int) work-buffer lengths of a policy (see the layout above)."""
    return obs_dim + 2 * obs_dim * pop + (STATE_ROWS + 4) * maxn + 3 * T * maxn, 2 * T * maxn + 2 * T + maxn


@njit(cache=True, inline="always")
def compact_events(flag, oidx, n):  # pragma: no cover - compiled
    """The indices j < n with ``flag[j] == 1``, in order, into ``oidx[:count]``; returns the count.

    Branch-free: every j is written at the running count, which advances only past the flagged ones."""
    count = 0
    for j in range(n):
        oidx[count] = j
        count += flag[j]
    return count


@njit(cache=True, inline="always")
def emit_unit_events(flag, oidx, ovals, n, one):  # pragma: no cover - compiled
    """The neurons j < n with ``flag[j] == 1`` as events of value 1: indices into ``oidx``, ``one`` into ``ovals``;
    returns their count."""
    count = compact_events(flag, oidx, n)
    for q in range(count):
        ovals[q] = one
    return count


@njit(cache=True, inline="always")
def emit_valued_events(flag, oidx, ovals, n, value):  # pragma: no cover - compiled
    """The neurons j < n with ``flag[j] == 1`` as events of value ``value[j]``: indices into ``oidx``, values into
    ``ovals``; returns their count."""
    count = compact_events(flag, oidx, n)
    for q in range(count):
        ovals[q] = value[oidx[q]]
    return count


@njit(cache=True, inline="always")
def read_observation(obs, x, squash):  # pragma: no cover - compiled
    """x = tanh(obs) (``squash``) or obs; returns -1, or the index of the first non-finite entry (x is then
    only partly written)."""
    for i in range(x.shape[0]):
        xi = obs[i]
        if not np.isfinite(xi):
            return i
        x[i] = xi
    if squash:
        for i in range(x.shape[0]):
            x[i] = np.tanh(x[i])
    return -1


@njit(cache=True, inline="always")
def encode_population(x, mean, std, thr, neg_half, a, v, count, flag, idx, vals, cnt, one,
                      zero):  # pragma: no cover - compiled
    """Deterministic population encoder (PopSAN, Tang et al. CoRL 2020), P = ``mean.size / x.size`` receptive
    fields per observation entry, k = i P + j, over the T = ``cnt.size`` steps::

        A_k = exp(neg_half (s_i - mu_k)^2 / sigma_k^2);   per step t:  V_k += A_k,  S_k = [V_k > thr],  V_k -= thr S_k

    Writes the spikes of step t as events (``idx[t, :cnt[t]]``, value 1 in ``vals[t]``) and the spike
    ``count`` per field; ``a``, ``v`` and ``flag`` are scratch.
    """
    n_enc = mean.shape[0]
    pop = n_enc // x.shape[0]
    for i in range(x.shape[0]):
        s = x[i]
        for j in range(pop):
            k = i * pop + j
            d = s - mean[k]
            sd = std[k]
            a[k] = np.exp(neg_half * (d * d) / (sd * sd))
            v[k] = zero
            count[k] = zero
    for t in range(cnt.shape[0]):
        for k in range(n_enc):
            vk = v[k] + a[k]
            fired = vk > thr
            v[k] = vk - thr if fired else vk
            count[k] += one if fired else zero
            flag[k] = 1 if fired else 0
        cnt[t] = emit_unit_events(flag, idx[t], vals[t], n_enc, one)


@njit(cache=True, inline="always")
def layer_currents(cur, bias, wt, x, analog, once, eidx, evals, ecnt, one, zero):  # pragma: no cover - compiled
    """The input currents ``cur[t]`` of a layer for t < T (``wt`` is W transposed, ``(in, out)``)::

        analog input x:   I_t = b + W x  at every step, or (``once``, differential coding) at the first step and
                          0 after;
        input events:     I_t = b + sum_q evals[t, q] W^T[eidx[t, q], :]  over the ``ecnt[t]`` events of step t
                          (a value-1 event adds its row as is).
    """
    T, n_out = cur.shape
    if analog:
        c0 = cur[0]
        for j in range(n_out):
            c0[j] = bias[j]
        for i in range(x.shape[0]):
            xi = x[i]
            row = wt[i]
            for j in range(n_out):
                c0[j] += xi * row[j]
        for t in range(1, T):
            ct = cur[t]
            for j in range(n_out):
                ct[j] = zero if once else c0[j]
        return
    for t in range(T):
        ct = cur[t]
        for j in range(n_out):
            ct[j] = bias[j]
        ti = eidx[t]
        tv = evals[t]
        for q in range(ecnt[t]):
            row = wt[ti[q]]
            val = tv[q]
            if val == one:
                for j in range(n_out):
                    ct[j] += row[j]
            else:
                for j in range(n_out):
                    ct[j] += val * row[j]


@njit(cache=True, inline="always")
def clif_currents(cur, c, current_decay):  # pragma: no cover - compiled
    """CLIF synaptic current over the T steps: c = current_decay c + I_t, written back to ``cur[t]`` (the
    neuron then integrates c as a LIF neuron integrates I)."""
    T, n_out = cur.shape
    for t in range(T):
        ct = cur[t]
        for j in range(n_out):
            cj = c[j] * current_decay + ct[j]
            c[j] = cj
            ct[j] = cj


@njit(cache=True, inline="always")
def leaky_layer(cur, u, decay, thr, hard, count, flag, idx, vals, cnt, one, zero):  # pragma: no cover - compiled
    """IF/LIF/PLIF (and CLIF after :func:`clif_currents`) over the T steps::

        h = decay u + I_t,  s = [h > thr],  u = h (1 - s) (hard reset) or h - thr s (soft)

    Events of value 1 per step into ``idx[t]``, ``vals[t]``, ``cnt[t]``; spikes per neuron into ``count``."""
    T, n_out = cur.shape
    for t in range(T):
        ct = cur[t]
        for j in range(n_out):
            h = u[j] * decay + ct[j]
            fired = h > thr
            u[j] = (zero if hard else h - thr) if fired else h
            count[j] += one if fired else zero
            flag[j] = 1 if fired else 0
        cnt[t] = emit_unit_events(flag, idx[t], vals[t], n_out, one)


@njit(cache=True, inline="always")
def conv_layer(cur, u, theta, ge, count, flag, idx, vals, cnt, one, zero):  # pragma: no cover - compiled
    """if-conv (converted ANN, rate coding) over the T steps::

        h = u + I_t,  s = [h >= theta_j] (``ge``) or [h > theta_j],  u = h - theta_j s  (soft reset)

    Events carry theta_j."""
    T, n_out = cur.shape
    for t in range(T):
        ct = cur[t]
        for j in range(n_out):
            h = u[j] + ct[j]
            th = theta[j]
            fired = (h >= th) if ge else (h > th)
            u[j] = h - th if fired else h
            count[j] += one if fired else zero
            flag[j] = 1 if fired else 0
        cnt[t] = emit_valued_events(flag, idx[t], vals[t], n_out, theta)


@njit(cache=True, inline="always")
def multi_threshold_layer(cur, u, decay, thr, level_thr, hard, count, idx, vals, cnt, one,
                          zero):  # pragma: no cover - compiled
    """Multi-threshold neuron over the T steps::

        h = decay u + I_t,  k = #{j: h > level_thr[j]}  (level_thr[j] = (j + 1) thr),
        u = h [k = 0] (hard reset) or h - thr k (soft)

    Graded events of value k."""
    T, n_out = cur.shape
    levels = level_thr.shape[0]
    for t in range(T):
        ct = cur[t]
        oidx = idx[t]
        ovals = vals[t]
        n = 0
        for j in range(n_out):
            h = u[j] * decay + ct[j]
            k = 0
            kf = zero  # k in the policy dtype
            while k < levels and h > level_thr[k]:
                k += 1
                kf += one
            if k > 0:
                oidx[n] = j
                ovals[n] = kf
                n += 1
                count[j] += kf
                u[j] = zero if hard else h - thr * kf
            else:
                u[j] = h
        cnt[t] = n


@njit(cache=True, inline="always")
def dn_layer(cur, v, uu, c, s_prev, current_decay, thr, theta_r, theta_s, theta_v, theta_u, count, idx, vals, cnt,
             one, zero):  # pragma: no cover - compiled
    """Dynamic neuron (MDC-SAN, second order; ``theta_u`` carries the sign of u_sign) over the T steps::

        C = current_decay C + I_t;  V = V (1 - S) + theta_r S;  U = U + theta_s S   (S: the previous step's spike)
        V, U = V + (V^2 - V - U + C), U + (theta_v V + theta_u U);  S = [V > thr]

    Events of value 1."""
    T, n_out = cur.shape
    for t in range(T):
        ct = cur[t]
        oidx = idx[t]
        ovals = vals[t]
        n = 0
        for j in range(n_out):
            cj = c[j] * current_decay + ct[j]
            s = s_prev[j]
            vj = v[j] * (one - s) + theta_r * s
            uj = uu[j] + theta_s * s
            dv = vj * vj - vj - uj + cj
            du = theta_v * vj + theta_u * uj
            vj = vj + dv
            uj = uj + du
            c[j] = cj
            v[j] = vj
            uu[j] = uj
            if vj > thr:
                oidx[n] = j
                ovals[n] = one
                n += 1
                count[j] += one
                s_prev[j] = one
            else:
                s_prev[j] = zero
        cnt[t] = n


@njit(cache=True, inline="always")
def diff_layer(cur, x0, v, r_in, r_out, em, count, lvt, signed, m, sel, flag, idx, vals, cnt, one,
               zero):  # pragma: no cover - compiled
    """A diff-conv layer over the steps t = 1..T (``cur[t - 1]`` holds I_t): per-neuron state v, r_in, r_out,
    emitted output ``em`` and event ``count``; level table ``lvt[3, levels, n]`` (l_i, positive cuts, negative
    cuts); ``m``, ``sel[4, n]`` and ``flag`` are scratch. Per step, events (neuron index, message +-l_i)::

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
    T, n_out = cur.shape
    levels = lvt.shape[1]
    tstep = zero  # t in the policy dtype
    for t in range(T):
        tstep += one
        cu = cur[t]
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
                    neg_next[j] = -lj if (m[j] <= ni[j]) & (tstep * r_out[j] >= lj) else nj
                neg, neg_next = neg_next, neg
        for j in range(n_out):  # o = pos, else neg; v = m - o; m keeps o from here on
            pj = pos[j]
            nj = neg[j]
            o = pj if pj != zero else nj
            v[j] = m[j] - o
            m[j] = o
        for j in range(n_out):
            r_in[j] = r_in[j] + (cu[j] - x0[j]) / tstep
            r_out[j] = r_out[j] + m[j] / tstep
        for j in range(n_out):
            o = m[j]
            fired = o != zero
            em[j] += abs(o)
            count[j] += one if fired else zero
            flag[j] = 1 if fired else 0
        cnt[t] = emit_valued_events(flag, idx[t], vals[t], n_out, m)


@njit(cache=True, inline="always")
def crpi_carry(u, c, theta, emitted, count, diff, alpha, half, carry):  # pragma: no cover - compiled
    """CRPI carry for the next decision: c_j = clip(alpha max(u_T - u_0, -theta_j N_j), -theta_j/2, theta_j/2)
    with u_0 in ``c``; N_j is the spike count, or for a diff-conv layer (``diff``) the output emitted in units of
    theta_j, ``emitted_j / theta_j``."""
    for j in range(u.shape[0]):
        th = theta[j]
        r = u[j] - c[j]
        floor_ = -th * (emitted[j] / th if diff else count[j])
        cv = alpha * (r if r > floor_ else floor_)
        lim = th * half
        if cv > lim:
            cv = lim
        elif cv < -lim:
            cv = -lim
        carry[j] = cv


@njit(cache=True, inline="always")
def population_readout(count, dw, db, tf, out, zero):  # pragma: no cover - compiled
    """a_k = tanh(sum_j w_kj (count_kj / T) + b_k) over action k's group of output neurons (``dw[k * DP + j]``)."""
    A = out.shape[0]
    DP = dw.shape[0] // A
    for k in range(A):
        acc = zero
        for j in range(DP):
            acc += count[k * DP + j] / tf * dw[k * DP + j]
        out[k] = np.tanh(acc + db[k])


@njit(cache=True, inline="always")
def linear_readout(r, dw, db, out, zero):  # pragma: no cover - compiled
    """a = tanh(W_r r + b_r) of a converted policy (``dw`` is W_r row-major, ``r`` the last layer's rates)."""
    A = out.shape[0]
    DP = r.shape[0]
    for k in range(A):
        acc = zero
        for j in range(DP):
            acc += r[j] * dw[k * DP + j]
        out[k] = np.tanh(acc + db[k])


@njit(cache=True, inline="always")
def run_layer(layer, x, analog, w, fp, meta, counts, carry, rows, sel, currents, flag, idx, vals, cnt,
              src):  # pragma: no cover - compiled
    """Layer ``layer`` over the T steps: reads the events of slot ``src`` of ``idx``/``vals``/``cnt`` (or the
    analog input ``x`` when ``analog``) and writes its own to slot ``1 - src``; counts its spikes and, for a
    CRPI policy, updates its carry. ``rows[7, maxn]`` holds the neuron state, ``currents`` the [T, n] currents."""
    T = meta[H_T]
    one = fp[F_ONE]
    zero = fp[F_ZERO]
    lb = HEADER + layer * LSTRIDE
    n_in = meta[lb]
    n_out = meta[lb + 1]
    wt = w[meta[lb + 2]:meta[lb + 2] + n_in * n_out].reshape((n_in, n_out))
    bias = w[meta[lb + 3]:meta[lb + 3] + n_out]
    kind = meta[lb + 4]
    levels = meta[lb + 5]
    po = meta[lb + 6]
    lcount = counts[meta[lb + 7]:meta[lb + 7] + n_out]
    theta = w[meta[lb + 8]:meta[lb + 8] + n_out]
    lcarry = carry[meta[lb + 9]:meta[lb + 9] + n_out]
    n_lv = levels if kind == DIFF else 0  # the level table of a diff-conv layer (empty for other kinds)
    lvt = w[meta[lb + 10]:meta[lb + 10] + 3 * n_lv * n_out].reshape((3, n_lv, n_out))
    thr = fp[po]
    decay = fp[po + 1]
    alpha = fp[po + 2]  # current decay (CLIF, DN) or CRPI alpha (if-conv, diff-conv)
    hard = fp[po + 3] != zero
    switch = fp[po + 5] != zero  # fire 'ge' (if-conv) or signed messages (diff-conv)
    cur = currents[:T * n_out].reshape((T, n_out))
    u = rows[0, :n_out]  # membrane (DN: V; diff-conv: v)
    c = rows[1, :n_out]  # CLIF/DN current; if-conv/diff-conv: the start potential u_0
    u2 = rows[2, :n_out]  # DN: U; diff-conv: r_in
    sp = rows[3, :n_out]  # DN: previous spike; diff-conv: r_out
    em = rows[4, :n_out]  # diff-conv: output emitted, sum_t |o_t|
    x0 = rows[5, :n_out]  # diff-conv: I_0
    m = rows[6, :n_out]  # diff-conv scratch
    for j in range(n_out):
        u[j] = zero
        c[j] = zero
        u2[j] = zero
        sp[j] = zero
        em[j] = zero
        lcount[j] = zero
    converted = kind == CONV or kind == DIFF
    use_carry = converted and meta[H_CARRY] == 1
    if converted:  # u_0 = v0 theta + c (CRPI carry); c keeps u_0 for the residual
        v0f = fp[po + 4]
        for j in range(n_out):
            v = v0f * theta[j]
            if use_carry:
                v = v + lcarry[j]
            u[j] = v
            c[j] = v
    if kind == DIFF:  # I_0: 0 for the analog input (sent at step 1 only), b for a hidden layer (o_0 = 0); r_in = I_0
        for j in range(n_out):
            x0[j] = zero if analog else bias[j]
            u2[j] = x0[j]
    dst = 1 - src
    layer_currents(cur, bias, wt, x, analog, kind == DIFF, idx[src], vals[src], cnt[src], one, zero)
    oidx, ovals, ocnt = idx[dst], vals[dst], cnt[dst]
    if kind == LEAKY:
        leaky_layer(cur, u, decay, thr, hard, lcount, flag, oidx, ovals, ocnt, one, zero)
    elif kind == CLIF:
        clif_currents(cur, c, alpha)
        leaky_layer(cur, u, decay, thr, hard, lcount, flag, oidx, ovals, ocnt, one, zero)
    elif kind == CONV:
        conv_layer(cur, u, theta, switch, lcount, flag, oidx, ovals, ocnt, one, zero)
    elif kind == DIFF:
        diff_layer(cur, x0, u, u2, sp, em, lcount, lvt, switch, m, sel, flag, oidx, ovals, ocnt, one, zero)
    elif kind == MULTI:
        multi_threshold_layer(cur, u, decay, thr, fp[po + PSTRIDE:po + PSTRIDE + levels], hard, lcount, oidx, ovals,
                              ocnt, one, zero)
    else:
        dn_layer(cur, u, u2, c, sp, alpha, thr, fp[po + 4], fp[po + 5], fp[po + 6], fp[po + 7], lcount, oidx, ovals,
                 ocnt, one, zero)
    if use_carry:
        crpi_carry(u, c, theta, em, lcount, kind == DIFF, alpha, fp[F_HALF], lcarry)


@njit(cache=True)
def decide(obs, w, fp, meta, work, iwork, counts, out, carry):  # pragma: no cover - compiled
    """One decision for ``obs[obs_dim]``; writes ``out[act_dim]`` and ``counts`` (and ``carry``, the CRPI
    state of the if-conv / diff-conv neurons, when ``meta[H_CARRY]``).

    Returns -1, or the index of the first non-finite observation entry (then nothing is computed).
    """
    T = meta[H_T]
    D = meta[H_OBS]
    P = meta[H_POP]
    L = meta[H_L]
    maxn = meta[H_MAXN]
    zero = fp[F_ZERO]
    x = work[0:D]
    enc_a = work[D:D + D * P]
    enc_v = work[D + D * P:D + 2 * D * P]
    o = D + 2 * D * P
    rows = work[o:o + STATE_ROWS * maxn].reshape((STATE_ROWS, maxn))
    o += STATE_ROWS * maxn
    sel = work[o:o + 4 * maxn].reshape((4, maxn))
    o += 4 * maxn
    currents = work[o:o + T * maxn]
    o += T * maxn
    vals = work[o:o + 2 * T * maxn].reshape((2, T, maxn))
    idx = iwork[0:2 * T * maxn].reshape((2, T, maxn))
    cnt = iwork[2 * T * maxn:2 * T * maxn + 2 * T].reshape((2, T))
    flag = iwork[2 * T * maxn + 2 * T:2 * T * maxn + 2 * T + maxn]

    status = read_observation(obs, x, meta[H_PRE] == 1)
    if status >= 0:
        return status
    direct = meta[H_ENC] == 1
    if not direct:  # the encoder's spikes go to event slot 0
        encode_population(x, w[meta[H_MEAN]:meta[H_MEAN] + D * P], w[meta[H_STD]:meta[H_STD] + D * P],
                          fp[F_ENC_THR], fp[F_NEG_HALF], enc_a, enc_v, counts[meta[H_ENCCNT]:meta[H_ENCCNT] + D * P],
                          flag, idx[0], vals[0], cnt[0], fp[F_ONE], zero)
    src = 0  # the event slot holding the current layer's input
    for layer in range(L):
        run_layer(layer, x, direct and layer == 0, w, fp, meta, counts, carry, rows, sel, currents, flag, idx, vals,
                  cnt, src)
        src = 1 - src

    A = meta[H_ACT]
    DP = meta[H_DPOP]
    llb = HEADER + (L - 1) * LSTRIDE
    ocount = counts[meta[llb + 7]:]
    dw = w[meta[H_DECW]:meta[H_DECW] + A * DP]
    db = w[meta[H_DECB]:meta[H_DECB] + A]
    if meta[H_READ] == 0:
        population_readout(ocount, dw, db, fp[F_T], out, zero)
        return -1
    r = rows[0, :DP]  # the last layer's rates: diff-conv r = r_out; if-conv r_j = theta_j count_j / T
    if meta[llb + 4] == DIFF:
        r_out = rows[3]
        for j in range(DP):
            r[j] = r_out[j]
    else:
        theta = w[meta[llb + 8]:meta[llb + 8] + DP]
        tf = fp[F_T]
        for j in range(DP):
            r[j] = theta[j] * ocount[j] / tf
    linear_readout(r, dw, db, out, zero)
    return -1


@njit(cache=True)
def decide_batch(obs, w, fp, meta, work, iwork, counts, out, keep_counts, carry):  # pragma: no cover - compiled
    """:func:`decide` for each row of ``obs[B, obs_dim]`` (``carry[B, n]``, or one dummy row when not carried);
    returns -1 or the flat index of a non-finite entry."""
    D = obs.shape[1]
    per_row = carry.shape[0] == obs.shape[0]
    for b in range(obs.shape[0]):
        r = decide(obs[b], w, fp, meta, work, iwork, counts[b if keep_counts else 0], out[b],
                   carry[b if per_row else 0])
        if r >= 0:
            return b * D + r
    return -1
