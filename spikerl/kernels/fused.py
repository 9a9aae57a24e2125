"""Fused multi-step kernel for the leaky neurons (IF, LIF, CLIF, PLIF): one autograd node per layer.

Forward (no autograd graph, T steps):
    c_t = alpha c_{t-1} + x_t        (CLIF only; otherwise c_t = x_t)
    h_t = lambda u_{t-1} + c_t
    s_t = [h_t > V_th]
    u_t = h_t (1 - s_t)   (hard)    or    h_t - V_th s_t   (soft)

Backward (BPTT through the membrane, surrogate sigma' at the spike). With g_u the gradient reaching
u_t from step t+1 (g_u = lambda g_h[t+1]) the reference loop computes
    g_s  = dL/ds_t + g_u * du_t/ds_t          (du/ds = -h_t hard, -V_th soft; 0 when the reset is detached)
    g_h  = g_u * du_t/dh_t + g_s * sigma'(h_t - V_th)     (du/dh = 1 - s_t hard, 1 soft)
which is the first-order linear recursion
    g_h[t] = G_t + A_t g_h[t+1],   G_t = dL/ds_t sigma'_t,   A_t = lambda (du_t/dh_t + du_t/ds_t sigma'_t),
with G and A computed for all t at once (a few whole-tensor ops) and one ``addcmul`` per step. Then
    dL/dlambda = sum_{t>=1} g_h[t] u_{t-1}    (PLIF; u_{t-1} from the saved h, s)
    g_c[t] = g_h[t] + alpha g_c[t+1],  dL/dx_t = g_c[t]   (CLIF; otherwise dL/dx_t = g_h[t])

Two implementations of the same node:
- CPU, float32/float64 (``CPU_BACKEND = "numba"``, the default): ``numba_leaky`` runs the forward as
  one compiled pass and the backward as one pass per step (surrogate derivative inline for the
  rectangular, arctan and fast-sigmoid surrogates, precomputed by ``derivative`` for the others).
- Otherwise (CUDA, other dtypes, ``CPU_BACKEND = "torch"``): tensor ops. The forward takes four
  in-place ops per step (``mul``, ``add_``, ``gt`` into the float spike buffer, ``addcmul``/``sub`` for
  the reset); the backward computes G and A as whole tensors and runs one ``addcmul`` per step.
The Numba loops run on the calling thread. Splitting each layer's neurons over torch's threads (GIL-free
kernels on a thread pool) was measured not to pay on a 2-core machine: the SNN actor's training pass took
1.03-1.06x as long split at 2 torch threads (torch's other worker spins after each GEMM) and 0.94-1.00x with
torch on 1 thread; torch's own parallel tensor ops at 2 threads tie with the one-thread loops (1.00x).
Both allocate only the saved h, s and the returned gradient; every forward value is computed with the
reference's roundings (hard reset h - h s equals h (1 - s) exactly for s in {0, 1}), so spikes match
it exactly. The reference is ``SpikingNeuron.reference_forward`` (autograd through a loop of ``step``).
"""

from __future__ import annotations

import threading

import torch

from spikerl.surrogates import Rectangular, Surrogate

_SCRATCH = threading.local()


def _scratch(like: torch.Tensor) -> torch.Tensor:
    """A per-thread reusable CPU temporary shaped like ``like``; on other devices a fresh tensor.

    On CPU, large fresh tensors come from pages that fault in on first touch (glibc returns freed
    memory to the OS), which costs more than the elementwise work on them; reusing scratch avoids it.
    """
    if like.device.type != "cpu":
        return torch.empty_like(like, memory_format=torch.contiguous_format)
    cache = getattr(_SCRATCH, "buffers", None)
    if cache is None:
        cache = _SCRATCH.buffers = {}
    key = (tuple(like.shape), like.dtype, like.device)
    buf = cache.get(key)
    if buf is None:
        if len(cache) >= 16:
            cache.clear()
        buf = cache[key] = torch.empty(like.shape, dtype=like.dtype, device=like.device)
    return buf


def _surrogate_derivative_(surrogate: Surrogate, x: torch.Tensor) -> torch.Tensor:
    """``surrogate.derivative(x)``, computed in x's buffer (x is a temporary) for the rectangular surrogate.

    Large temporaries are costly on CPU (fresh pages fault in on first touch), so the default surrogate
    avoids them; the values are the same as ``Rectangular.derivative``. Others use ``derivative``.
    """
    if type(surrogate) is Rectangular:
        return x.abs_().lt_(surrogate.width).mul_(0.5 / surrogate.width)
    return surrogate.derivative(x)


#: CPU implementation of the kernel: "numba" (one compiled pass per layer, ``numba_leaky``) or "torch"
#: (the tensor ops below, also used on other devices, for other dtypes and for surrogates without an
#: inline derivative). Both give the same spikes; gradients agree to rounding.
CPU_BACKEND = "numba"


_NUMBA_MODULE: list = []  # the imported ``numba_leaky`` module (or None if numba is unusable), once known


def _numba_backend(x: torch.Tensor):
    """The ``numba_leaky`` module when the Numba path applies to tensor x, else None."""
    if CPU_BACKEND != "numba" or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    if x.numel() == 0:
        return None
    if not _NUMBA_MODULE:
        try:
            from spikerl.kernels import numba_leaky
        except ImportError:  # numba missing or broken: the torch ops still work
            numba_leaky = None
        _NUMBA_MODULE.append(numba_leaky)
    return _NUMBA_MODULE[0]


def _flat(t: torch.Tensor):
    """A ``[T, M]`` NumPy view of a contiguous CPU tensor ``[T, ...]``."""
    return t.numpy().reshape(t.shape[0], -1)


def _forward_torch(x_seq, lam, current_decay, threshold, hard):
    h_seq = torch.empty_like(x_seq, memory_format=torch.contiguous_format)
    s_seq = torch.empty_like(h_seq)
    u = _scratch(x_seq[0])
    c = x_seq[0].clone(memory_format=torch.contiguous_format) if current_decay is not None else None
    for t in range(x_seq.shape[0]):
        h = h_seq[t]
        if c is not None and t > 0:
            c.mul_(current_decay).add_(x_seq[t])
        inp = x_seq[t] if c is None else c
        if t == 0:
            h.copy_(inp)  # 0 * lambda + c_0 = c_0
        else:
            torch.mul(u, lam, out=h).add_(inp)
        s = torch.gt(h, threshold, out=s_seq[t])
        if hard:
            torch.addcmul(h, h, s, value=-1.0, out=u)  # h - h s = h (1 - s)
        else:
            torch.sub(h, s, alpha=threshold, out=u)  # h - V_th s
    return h_seq, s_seq


def _backward_torch(ctx, grad_s, h_seq, s_seq, lam, decay_t, need_lam):
    thr, hard, alpha = ctx.threshold, ctx.hard, ctx.current_decay
    sg = _surrogate_derivative_(ctx.surrogate, h_seq - thr)
    if hard:
        du_dh = torch.sub(1.0, s_seq, out=_scratch(s_seq))
        coef = du_dh if ctx.detach_reset else du_dh.addcmul_(h_seq, sg, value=-1.0)
    else:
        coef = None if ctx.detach_reset else torch.mul(sg, -thr, out=_scratch(sg)).add_(1.0)
    grad_h = sg.mul_(grad_s)  # G_t, in the surrogate's buffer; becomes g_h in place below
    if coef is None:  # soft reset, detached: A_t = lambda
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad_h[t].add_(grad_h[t + 1] * lam)
    else:
        coef.mul_(lam)
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad_h[t].addcmul_(grad_h[t + 1], coef[t])
    grad_lam = None
    if need_lam:
        hp, sp = h_seq[:-1], s_seq[:-1]
        u_prev = hp.addcmul(hp, sp, value=-1.0) if hard else hp.sub(sp, alpha=thr)
        grad_lam = (grad_h[1:] * u_prev).sum().reshape(decay_t.shape).to(decay_t.dtype)
    if alpha is not None:
        for t in range(h_seq.shape[0] - 2, -1, -1):
            grad_h[t].add_(grad_h[t + 1], alpha=alpha)
    return grad_h, grad_lam


class _LeakyMultiStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_seq, decay, current_decay, threshold, hard, detach_reset, surrogate):  # type: ignore[override]
        lam = decay.detach() if isinstance(decay, torch.Tensor) else decay
        backend = _numba_backend(x_seq)
        if backend is not None:
            xs = x_seq.detach().contiguous()
            h_seq, s_seq = torch.empty_like(xs), torch.empty_like(xs)
            backend.forward(_flat(xs), _flat(h_seq), _flat(s_seq), float(lam), current_decay, threshold, hard)
        else:
            h_seq, s_seq = _forward_torch(x_seq, lam, current_decay, threshold, hard)
        decay_is_tensor = isinstance(decay, torch.Tensor)
        ctx.save_for_backward(h_seq, s_seq, decay if decay_is_tensor else None)
        ctx.lam_value = None if decay_is_tensor else float(decay)
        ctx.current_decay = current_decay
        ctx.threshold = threshold
        ctx.hard = hard
        ctx.detach_reset = detach_reset
        ctx.surrogate = surrogate
        ctx.decay_is_tensor = decay_is_tensor
        return s_seq

    @staticmethod
    def backward(ctx, grad_s):  # type: ignore[override]
        h_seq, s_seq, decay_t = ctx.saved_tensors
        lam = decay_t.detach() if ctx.decay_is_tensor else ctx.lam_value
        need_lam = ctx.decay_is_tensor and ctx.needs_input_grad[1]
        backend = _numba_backend(h_seq)
        if backend is None or grad_s.dtype != h_seq.dtype:
            grad_x, grad_lam = _backward_torch(ctx, grad_s, h_seq, s_seq, lam, decay_t, need_lam)
        else:
            code = backend.surrogate_code(ctx.surrogate)
            sg_pre = None
            if code[0] == backend.PRECOMPUTED:
                sg_pre = _flat(ctx.surrogate.derivative(h_seq - ctx.threshold).to(h_seq.dtype).contiguous())
            gs = grad_s.detach().contiguous()
            grad_x = torch.empty_like(h_seq)
            g_lam = backend.backward(_flat(gs), _flat(h_seq), _flat(s_seq), _flat(grad_x), sg_pre, float(lam),
                                     ctx.current_decay, ctx.threshold, ctx.hard, ctx.detach_reset, code, need_lam)
            grad_lam = torch.tensor(g_lam, dtype=decay_t.dtype).reshape(decay_t.shape) if need_lam else None
        return grad_x, grad_lam, None, None, None, None, None


def leaky_spikes(x_seq: torch.Tensor, decay: float | torch.Tensor, current_decay: float | None, threshold: float,
                 hard: bool) -> torch.Tensor:
    """Inference only (no autograd node, nothing saved): the spikes of ``leaky_multistep``, bit for bit.

    ``x_seq`` may be an expanded view (one current broadcast over T); the Numba backend then reads the
    single row, and the only allocation is the spike tensor.
    """
    lam = float(decay.detach()) if isinstance(decay, torch.Tensor) else float(decay)
    backend = _numba_backend(x_seq)
    if backend is None:
        return _forward_torch(x_seq.detach(), lam, current_decay, float(threshold), hard)[1]
    s_seq = torch.empty(x_seq.shape, dtype=x_seq.dtype)
    xs = x_seq.detach()
    if xs.shape[0] > 1 and xs.stride(0) == 0:  # one current broadcast over T: pass the single row
        xs = xs[:1]
    backend.forward_spikes(_flat(xs.contiguous()), _flat(s_seq), lam, current_decay, float(threshold), hard)
    return s_seq


def leaky_multistep(
    x_seq: torch.Tensor,
    decay: float | torch.Tensor,
    current_decay: float | None,
    threshold: float,
    reset: str,
    detach_reset: bool,
    surrogate: Surrogate,
) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a leaky neuron layer driven by ``x_seq[T, ...]``, from a zero state.

    ``decay`` may be a 0-dim tensor (PLIF), which then receives a gradient.
    """
    if reset not in ("hard", "soft"):
        raise ValueError(f"reset must be 'hard' or 'soft', got {reset!r}")
    if not torch.is_grad_enabled() or not (x_seq.requires_grad or getattr(decay, "requires_grad", False)):
        return leaky_spikes(x_seq, decay, current_decay, threshold, reset == "hard")
    return _LeakyMultiStep.apply(x_seq, decay, current_decay, float(threshold), reset == "hard",
                                 bool(detach_reset), surrogate)
