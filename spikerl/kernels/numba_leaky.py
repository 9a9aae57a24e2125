"""Numba CPU loops for the fused leaky kernel (``spikerl.kernels.fused``): one pass over memory per layer.

Same equations and the same operation order as the reference loop (see ``fused.py``): forward
``c = alpha c + x; h = lambda u + c; s = [h > V_th]; u = h - h s (hard) or h - V_th s (soft)`` and the
backward recursion through u (and c for CLIF) with the surrogate derivative computed inline. The torch
version needs a handful of whole-tensor ops per step, each with dispatch overhead and a trip through
memory; these loops touch every element once per pass. No fastmath (exact IEEE arithmetic, so the
forward spikes equal the reference's bit for bit). Compiled once, cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from spikerl.surrogates import Arctan, FastSigmoid, Rectangular, Surrogate

__all__ = ["forward", "forward_spikes", "backward", "surrogate_code"]

# p layout (tensor dtype): lambda, alpha, V_th, 1, 0, surrogate c1, surrogate c2
_RECT, _ARCTAN, _FAST = 0, 1, 2
PRECOMPUTED = -1


def surrogate_code(surrogate: Surrogate) -> tuple[int, float, float]:
    """(kind, c1, c2) of the surrogates whose derivative the loop computes inline; kind ``PRECOMPUTED``
    for the others (the sigmoid's scalar ``exp`` is slower than torch's vectorised one, and unknown
    classes have only ``derivative``): then the caller passes ``surrogate.derivative(h - V_th)``."""
    cls = type(surrogate)
    if cls is Rectangular:
        return _RECT, surrogate.width, 0.5 / surrogate.width
    if cls is Arctan:
        return _ARCTAN, 0.5 * surrogate.alpha, 0.5 * math.pi * surrogate.alpha
    if cls is FastSigmoid:
        return _FAST, surrogate.slope, 0.0
    return PRECOMPUTED, 0.0, 0.0


@njit(cache=True)
def _forward(x, h, s, p, hard, clif):  # pragma: no cover - compiled
    T, M = x.shape
    lam, alpha, thr, one, zero = p[0], p[1], p[2], p[3], p[4]
    u = np.zeros_like(x[0])
    c = np.zeros_like(x[0])
    for t in range(T):
        xt, ht, st = x[t], h[t], s[t]
        for i in range(M):
            inp = xt[i]
            if clif:
                inp = c[i] * alpha + inp
                c[i] = inp
            hi = u[i] * lam + inp
            fired = hi > thr
            ht[i] = hi
            st[i] = one if fired else zero
            if hard:
                u[i] = hi - hi if fired else hi
            else:
                u[i] = hi - thr if fired else hi


@njit(cache=True)
def _forward_spikes(x, s, p, hard, clif):  # pragma: no cover - compiled
    """``_forward`` without storing h (inference: nothing is saved for a backward pass). ``x`` has T
    rows, or one row: a constant input current for every step. Kept separate from ``_forward`` on purpose:
    a "store h" flag in one shared kernel puts a branch in the inner loop, which stops the compiler vectorising
    the training path."""
    T, M = s.shape
    lam, alpha, thr, one, zero = p[0], p[1], p[2], p[3], p[4]
    u = np.zeros_like(s[0])
    c = np.zeros_like(s[0])
    const = x.shape[0] == 1
    for t in range(T):
        xt, st = x[0 if const else t], s[t]
        for i in range(M):
            inp = xt[i]
            if clif:
                inp = c[i] * alpha + inp
                c[i] = inp
            hi = u[i] * lam + inp
            fired = hi > thr
            st[i] = one if fired else zero
            if hard:
                u[i] = hi - hi if fired else hi
            else:
                u[i] = hi - thr if fired else hi


@njit(cache=True)
def _backward(gs, h, s, gx, sg_pre, p, hard, detach, clif, skind, need_lam):  # pragma: no cover - compiled
    T, M = h.shape
    lam, alpha, thr, one, zero, c1, c2 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    gnext = np.zeros_like(h[0])  # g_h[t+1]
    gcnext = np.zeros_like(h[0])  # g_c[t+1] (CLIF)
    sg_buf = np.empty_like(h[0])
    glam = 0.0
    for t in range(T - 1, -1, -1):
        gst, ht, st, gxt = gs[t], h[t], s[t], gx[t]
        # surrogate derivative of row t (branch outside the loops so that each loop vectorises)
        if skind == _RECT:
            sg = sg_buf
            for i in range(M):
                sg[i] = c2 if abs(ht[i] - thr) < c1 else zero
        elif skind == _ARCTAN:
            sg = sg_buf
            for i in range(M):
                q = c2 * (ht[i] - thr)
                sg[i] = c1 / (one + q * q)
        elif skind == _FAST:
            sg = sg_buf
            for i in range(M):
                q = one + c1 * abs(ht[i] - thr)
                sg[i] = one / (q * q)
        else:  # precomputed by the surrogate's own derivative()
            sg = sg_pre[t]
        # g_u = lambda g_h[t+1];  g_s = dL/ds - g_u du/ds;  g_h = g_s sg + g_u du/dh
        if hard and not detach:
            for i in range(M):
                gu = gnext[i] * lam
                gh = (gst[i] - gu * ht[i]) * sg[i] + gu * (one - st[i])
                gnext[i] = gh
                gxt[i] = gh
        elif hard:
            for i in range(M):
                gu = gnext[i] * lam
                gh = gst[i] * sg[i] + gu * (one - st[i])
                gnext[i] = gh
                gxt[i] = gh
        elif not detach:
            for i in range(M):
                gu = gnext[i] * lam
                gh = (gst[i] - gu * thr) * sg[i] + gu
                gnext[i] = gh
                gxt[i] = gh
        else:
            for i in range(M):
                gu = gnext[i] * lam
                gh = gst[i] * sg[i] + gu
                gnext[i] = gh
                gxt[i] = gh
        if need_lam and t > 0:  # dL/dlambda += g_h[t] u_{t-1}
            hp, sp = h[t - 1], s[t - 1]
            for i in range(M):
                glam += gxt[i] * (hp[i] * (one - sp[i]) if hard else hp[i] - thr * sp[i])
        if clif:  # g_c[t] = g_h[t] + alpha g_c[t+1] = dL/dx_t
            for i in range(M):
                gc = gxt[i] + gcnext[i] * alpha
                gcnext[i] = gc
                gxt[i] = gc
    return glam


def _params(dtype: np.dtype, lam: float, alpha: float | None, thr: float, c1: float = 0.0,
            c2: float = 0.0) -> np.ndarray:
    return np.array([lam, 0.0 if alpha is None else alpha, thr, 1.0, 0.0, c1, c2], dtype=dtype)


def forward(x: np.ndarray, h: np.ndarray, s: np.ndarray, lam: float, alpha: float | None, thr: float,
            hard: bool) -> None:
    """Fill ``h`` and ``s`` (``[T, M]``, C-contiguous, dtype of x) from the input currents ``x``."""
    _forward(x, h, s, _params(x.dtype, lam, alpha, thr), hard, alpha is not None)


def forward_spikes(x: np.ndarray, s: np.ndarray, lam: float, alpha: float | None, thr: float, hard: bool) -> None:
    """Fill only the spikes ``s`` (``[T, M]``) from the input currents ``x`` (``[T, M]``, or ``[1, M]``: the
    same current at every step); C-contiguous, dtype of s. The same spikes as ``forward``."""
    _forward_spikes(x, s, _params(s.dtype, lam, alpha, thr), hard, alpha is not None)


def backward(gs: np.ndarray, h: np.ndarray, s: np.ndarray, gx: np.ndarray, sg_pre: np.ndarray | None,
             lam: float, alpha: float | None, thr: float, hard: bool, detach: bool,
             code: tuple[int, float, float], need_lam: bool) -> float:
    """Write dL/dx into ``gx`` (all ``[T, M]``); return dL/dlambda (0.0 unless ``need_lam``).

    ``sg_pre`` is the surrogate derivative at h - V_th when ``code`` is ``PRECOMPUTED``, else None.
    """
    kind, c1, c2 = code
    if sg_pre is None:
        sg_pre = np.empty((0, 0), dtype=h.dtype)
    return _backward(gs, h, s, gx, sg_pre, _params(h.dtype, lam, alpha, thr, c1, c2), hard, detach,
                     alpha is not None, kind, need_lam)
