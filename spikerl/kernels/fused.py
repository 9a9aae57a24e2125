"""Fused multi-step kernel for the leaky neurons (IF, LIF, CLIF, PLIF): one autograd node per layer.

Forward (no autograd graph, T steps):
    c_t = alpha c_{t-1} + x_t        (CLIF only; otherwise c_t = x_t)
    h_t = lambda u_{t-1} + c_t
    s_t = [h_t > V_th]
    u_t = h_t (1 - s_t)   (hard)    or    h_t - V_th s_t   (soft)

Backward (BPTT through the membrane, surrogate sigma' at the spike), from t = T-1 down to 0, with
g_u the gradient reaching u_t from step t+1 and g_c the one reaching c_t:
    g_s  = dL/ds_t + g_u * du_t/ds_t          (du/ds = -h_t hard, -V_th soft; 0 when the reset is detached)
    g_h  = g_u * du_t/dh_t + g_s * sigma'(h_t - V_th)     (du/dh = 1 - s_t hard, 1 soft)
    dL/dlambda += g_h * u_{t-1}               (PLIF)
    g_u <- lambda g_h
    g_c <- g_h + alpha g_c ;  dL/dx_t = g_c   (CLIF; otherwise dL/dx_t = g_h)

Pure tensor ops, so it runs on CPU and CUDA tensors alike. The reference it is tested against is
``SpikingNeuron.reference_forward`` (autograd through a Python loop of ``step``).
"""

from __future__ import annotations

import torch

from spikerl.surrogates import Surrogate


class _LeakyMultiStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_seq, decay, current_decay, threshold, hard, detach_reset, surrogate):  # type: ignore[override]
        lam = decay
        h_seq = torch.empty_like(x_seq)
        s_seq = torch.empty_like(x_seq)
        u = torch.zeros_like(x_seq[0])
        c = torch.zeros_like(x_seq[0]) if current_decay is not None else None
        for t in range(x_seq.shape[0]):
            if c is not None:
                c = c * current_decay + x_seq[t]
                inp = c
            else:
                inp = x_seq[t]
            h = u * lam + inp
            s = (h > threshold).to(x_seq.dtype)
            h_seq[t] = h
            s_seq[t] = s
            u = h * (1.0 - s) if hard else h - threshold * s
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
        lam = decay_t if ctx.decay_is_tensor else ctx.lam_value
        thr, hard, alpha = ctx.threshold, ctx.hard, ctx.current_decay
        need_lam = ctx.decay_is_tensor and ctx.needs_input_grad[1]
        grad_x = torch.empty_like(h_seq)
        grad_u = torch.zeros_like(h_seq[0])
        grad_c = torch.zeros_like(h_seq[0]) if alpha is not None else None
        grad_lam = torch.zeros((), dtype=h_seq.dtype, device=h_seq.device) if need_lam else None
        sg_all = ctx.surrogate.derivative(h_seq - thr)
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h, s = h_seq[t], s_seq[t]
            grad_spike = grad_s[t]
            if not ctx.detach_reset:
                grad_spike = grad_spike - grad_u * (h if hard else thr)
            grad_h = grad_spike * sg_all[t]
            grad_h = grad_h + (grad_u * (1.0 - s) if hard else grad_u)
            if need_lam and t > 0:
                hp, sp = h_seq[t - 1], s_seq[t - 1]
                u_prev = hp * (1.0 - sp) if hard else hp - thr * sp
                grad_lam = grad_lam + (grad_h * u_prev).sum()
            grad_u = grad_h * lam
            if grad_c is not None:
                grad_c = grad_h + grad_c * alpha
                grad_x[t] = grad_c
            else:
                grad_x[t] = grad_h
        return grad_x, grad_lam, None, None, None, None, None


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
    return _LeakyMultiStep.apply(x_seq, decay, current_decay, float(threshold), reset == "hard",
                                 bool(detach_reset), surrogate)
