"""Neurons of converted SNNs (inference only, no surrogate gradients).

All neurons take an input current sequence ``x_seq[S, B, ...]`` and a threshold ``theta`` broadcastable
to one step ``[B, ...]`` (a scalar, a per-channel ``[C, 1, 1]`` or a per-neuron tensor), integrate with
reset by subtraction and emit graded spikes (value theta, or a level of it) to the next layer:

    m_t = v_{t-1} + x_t;    s_t = H(m_t - theta);    v_t = m_t - theta s_t;     out_t = theta s_t

``fire="ge"`` fires on m >= theta (QCFS, SpikingJelly), ``fire="gt"`` on m > theta (CRPI, LTB code).
Charge conservation holds for every neuron here: sum_t out_t = v_0 + sum_t x_t - v_S.

* :func:`if_forward` sequential IF (OPI / QCFS / max-norm / SRP / COS / CRPI).
* :func:`parallel_forward` Parallel conversion (Hao et al., ICML 2025): fires at step t iff
  sum_s x_s + v0 >= t theta, so the first N steps fire, N = clip(floor((sum x + v0)/theta), 0, T).
* :func:`cos_initial_potential` the COS offset-spike shift of v0 (Hao et al., ICLR 2023).
* :func:`diff_forward` DCGS differential-coding IF and multi-threshold neurons (Huang et al., ICML 2025),
  optionally from a carried start potential (CRPI on differential coding, spikerl's extension).
* :func:`ecm_rate` / :func:`ecm_diff` expectation compensation (ECMT, Huang et al. 2024): a unit whose
  decoded output after t steps is exactly f(decoded inputs after t steps), for any f.
"""

from __future__ import annotations

import torch

FIRE_MODES = ("ge", "gt")


def _crosses(m: torch.Tensor, theta: torch.Tensor, fire: str) -> torch.Tensor:
    return m >= theta if fire == "ge" else m > theta


def if_forward(x_seq: torch.Tensor, theta: torch.Tensor, v_start: torch.Tensor, fire: str = "ge",
               record_pre: bool = False):
    """Sequential IF over ``x_seq[S, B, ...]`` from potential ``v_start[B, ...]`` (absolute units).

    Returns ``(spikes[S, B, ...] in {0, 1}, v_S)``, plus the pre-reset potentials ``m[S, B, ...]`` when
    ``record_pre``."""
    v = v_start
    spikes, pre = [], []
    for x in x_seq:
        m = v + x
        s = _crosses(m, theta, fire).to(x_seq.dtype)
        v = m - theta * s
        spikes.append(s)
        if record_pre:
            pre.append(m)
    out = (torch.stack(spikes), v)
    return (*out, torch.stack(pre)) if record_pre else out


def parallel_forward(x_seq: torch.Tensor, theta: torch.Tensor, v_start: torch.Tensor, T: int,
                     fire: str = "ge", total: torch.Tensor | None = None):
    """Parallel IF: spike at step t = 1..T iff sum(x) + v0 >= t theta (sorted spike train).

    ``total`` (sum of the input over the window) may be passed for a time-constant input (T * x).
    Returns ``(spikes[T, B, ...], v_T)`` with v_T = v0 + sum x - theta N."""
    if total is None:
        total = x_seq.sum(0)
    p = total + v_start
    steps = torch.arange(1, T + 1, dtype=p.dtype, device=p.device).view(T, *([1] * p.dim()))
    spikes = _crosses(p.unsqueeze(0), steps * theta, fire).to(p.dtype)
    return spikes, p - theta * spikes.sum(0)


def cos_initial_potential(x_pre: torch.Tensor, theta: torch.Tensor, v0: torch.Tensor,
                          fire: str = "ge") -> torch.Tensor:
    """COS: pre-simulate ``x_pre[rho, B, ...]`` from ``v0`` and shift v0 by the offset-spike rule.

    In units of theta: if v(rho) < 0 and the neuron fired, v0 -= max(1, m - 0.999) with m the smallest
    pre-reset potential of a firing step (removes exactly one spike); elif v(rho) >= 1,
    v0 += max(1, 1.001 - M) with M the largest potential of a non-firing step (adds exactly one spike;
    no shift when every step fired).
    """
    spikes, v_end, pre = if_forward(x_pre, theta, v0, fire, record_pre=True)
    fired = spikes.bool()
    inf = torch.tensor(float("inf"), dtype=pre.dtype, device=pre.device)
    m = torch.where(fired, pre, inf).amin(0) / theta
    big_m = torch.where(fired, -inf, pre).amax(0) / theta
    u = v_end / theta
    down = (u < 0) & fired.any(0)
    up = (u >= 1) & ~down & (~fired).any(0)      # a neuron that fired every step cannot gain one
    one = torch.ones_like(u)
    shift_down = torch.maximum(one, m - 0.999)
    shift_up = torch.maximum(one, 1.001 - big_m)
    shift = torch.where(down, -shift_down, torch.where(up, shift_up, torch.zeros_like(u)))
    return v0 + shift * theta


def mt_levels(theta: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Multi-threshold levels theta_i = theta / 2^i, i = 0..levels-1 (DCGS MTH)."""
    return [theta / (2 ** i) for i in range(levels)]


def diff_forward(x_seq: torch.Tensor, theta: torch.Tensor, v0_frac: float, levels: int = 1,
                 signed: bool = True, v_start: torch.Tensor | None = None):
    """Differential-coding neuron (DCGS ``IF_diff`` for ``levels=1``, ``MTH_diff`` for ``levels>1``).

    ``x_seq[T+1, B, ...]``: step 0 carries only the bias level x_0; steps t = 1..T carry messages whose
    decoded input rate is r_in,t = x_0 + sum_{s<=t} (x_s - x_0)/s. Per step:

        m_t = v_{t-1} + (x_t - x_0) + r_in,t-1 - r_out,t-1
        spike_t = theta_i for the first level with m_t >= 0.75 theta_i (single level: m_t >= theta),
                  or -theta_i for the first level with m_t <= -0.75 theta_i (single level: m_t <= 0) if the
                  decoded output rate stays >= 0 (t r_out,t-1 >= theta_i)   [only when ``signed``]
        v_t = m_t - spike_t;  r_out,t = r_out,t-1 + spike_t / t

    Invariant: t (r_in,t - r_out,t) = v_t - v_0. Returns ``(out[T+1, B, ...], v_T, events[B, ...])``
    where out_0 = 0 and out_t = spike_t (the output messages), events counts non-zero spikes.
    ``v_start`` (absolute potential ``[B, ...]``, e.g. theta v0_frac plus a CRPI carry) overrides v_0.
    """
    x0 = x_seq[0]
    v = v0_frac * theta + torch.zeros_like(x0) if v_start is None else v_start
    r_in = x0
    r_out = torch.zeros_like(x0)
    pow2 = torch.tensor([2.0 ** i for i in range(levels)], dtype=x0.dtype, device=x0.device)
    lv = (theta + torch.zeros_like(x0)).unsqueeze(0) / pow2.view(levels, *([1] * x0.dim()))   # [levels, B, ...]
    cut_pos = lv if levels == 1 else 0.75 * lv
    cut_neg = torch.zeros_like(lv) if levels == 1 else -0.75 * lv
    outs = [torch.zeros_like(x0)]
    events = torch.zeros_like(x0)
    for t in range(1, x_seq.shape[0]):
        d = x_seq[t] - x0
        m = v + d + r_in - r_out
        # crossings are monotone in the level index (levels decrease), so the first crossed level is
        # levels - (number crossed)
        pos = m.unsqueeze(0) >= cut_pos
        n_pos = pos.sum(0, keepdim=True)
        spike = torch.where(n_pos > 0, lv.gather(0, (levels - n_pos).clamp(max=levels - 1)), 0.0).squeeze(0)
        if signed:
            neg = (m.unsqueeze(0) <= cut_neg) & (t * r_out.unsqueeze(0) >= lv)
            n_neg = neg.sum(0, keepdim=True)
            neg_spike = -lv.gather(0, (levels - n_neg).clamp(max=levels - 1))
            spike = torch.where(((n_pos == 0) & (n_neg > 0)).squeeze(0), neg_spike.squeeze(0), spike)
        v = m - spike
        r_in = r_in + d / t
        r_out = r_out + spike / t
        events = events + (spike != 0).to(events.dtype)
        outs.append(spike)
    return torch.stack(outs), v, events


def running_mean(seq: torch.Tensor) -> torch.Tensor:
    """Rate decoding after each step: mean_{s<=t} x_s for t = 1..S, over ``seq[S, ...]``."""
    t = torch.arange(1, seq.shape[0] + 1, dtype=seq.dtype, device=seq.device)
    return torch.cumsum(seq, 0) / t.view(-1, *([1] * (seq.dim() - 1)))


def running_rate_diff(seq: torch.Tensor) -> torch.Tensor:
    """Differential decoding after each step: r_0 = x_0, r_t = x_0 + sum_{1<=s<=t} (x_s - x_0)/s."""
    x0 = seq[0:1]
    t = torch.arange(1, seq.shape[0], dtype=seq.dtype, device=seq.device).view(-1, *([1] * (seq.dim() - 1)))
    return torch.cat([x0, x0 + torch.cumsum((seq[1:] - x0) / t, 0)], 0)


def ecm_rate(f_of_means: torch.Tensor) -> torch.Tensor:
    """ECM output for rate coding from F_t = f(running means): out_t = t F_t - (t-1) F_{t-1}.

    Then sum_{s<=t} out_s = t F_t, i.e. the running mean of the output is f(running mean of the input)."""
    t = torch.arange(1, f_of_means.shape[0] + 1, dtype=f_of_means.dtype, device=f_of_means.device)
    g = f_of_means * t.view(-1, *([1] * (f_of_means.dim() - 1)))
    return torch.cat([g[0:1], g[1:] - g[:-1]], 0)


def ecm_diff(f_of_rates: torch.Tensor) -> torch.Tensor:
    """ECM messages for differential coding from F_t = f(decoded rates): out_0 = F_0,
    out_t = F_0 + t (F_t - F_{t-1}), so the decoded output rate after t steps is F_t."""
    f = f_of_rates
    t = torch.arange(1, f.shape[0], dtype=f.dtype, device=f.device).view(-1, *([1] * (f.dim() - 1)))
    return torch.cat([f[0:1], f[0:1] + t * (f[1:] - f[:-1])], 0)
