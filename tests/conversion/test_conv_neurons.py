"""Neuron-level identities of the conversion neurons (IF, multi-threshold, differential coding)."""

import torch

from spikerl.conversion.neurons import cos_initial_potential, diff_forward, if_forward, parallel_forward
from spikerl.conversion.reference import if_const_count, if_counts, round_half_up, window_count


def test_round_half_up_rounds_ties_up_not_to_even():
    u = torch.tensor([0.5, 1.5, 2.5, -0.5, 2.4999])
    assert torch.equal(round_half_up(u), torch.tensor([1.0, 2.0, 3.0, 0.0, 2.0]))


def test_if_constant_input_count_identity_P1():
    theta, T = 2.0, 8
    # multiples of theta/(2T) hit every tie exactly; also z < 0 and z > theta
    z = torch.arange(-40, 60, dtype=torch.float64) * (theta / (2 * T))
    for fire in ("ge", "gt"):
        spikes, _ = if_forward(z.expand(T, -1), torch.tensor(theta, dtype=torch.float64),
                               torch.full_like(z, theta / 2), fire)
        expected = if_const_count(z, theta, T, fire)
        assert torch.equal(spikes.sum(0), expected)
    # ge and gt differ exactly at ties T z / theta + 1/2 integer within (0, T]
    n_ge = if_const_count(z, theta, T, "ge")
    n_gt = if_const_count(z, theta, T, "gt")
    tie = (torch.frac(T * z / theta + 0.5) == 0) & (n_ge > 0) & (n_gt < T)
    assert torch.equal(n_ge - n_gt, tie.double())
    assert tie.sum() > 5


def test_if_matches_reference_loop_and_conserves_charge():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 50, generator=g, dtype=torch.float64)
    theta = torch.rand(50, generator=g, dtype=torch.float64) + 0.5
    v0 = 0.5 * theta
    spikes, v_end = if_forward(x, theta, v0.clone())
    n_ref, v_ref = if_counts(x, theta, v0)
    assert torch.equal(spikes.sum(0), n_ref)
    assert torch.equal(v_end, v_ref)
    # conservation: theta N + v_T = v0 + sum x
    assert torch.allclose(theta * spikes.sum(0) + v_end, v0 + x.sum(0), rtol=0, atol=1e-12)


def test_residual_criterion_P3():
    g = torch.Generator().manual_seed(2)
    theta, T = 1.0, 8
    x = torch.randn(T, 20000, generator=g, dtype=torch.float64) * 0.6 + 0.3
    spikes, v_end = if_forward(x, torch.tensor(theta, dtype=torch.float64), torch.full((20000,), 0.5, dtype=x.dtype))
    ok = (v_end >= 0) & (v_end < theta)
    assert ok.float().mean() > 0.3 and (~ok).any()
    expected = window_count(x.sum(0), theta, T)
    assert torch.equal(spikes.sum(0)[ok], expected[ok])


def test_parallel_neuron_counts_sorted_and_conserving_P5():
    g = torch.Generator().manual_seed(3)
    T = 8
    x = torch.randn(T, 1000, generator=g, dtype=torch.float64)
    theta = torch.tensor(0.75, dtype=torch.float64)
    v0 = torch.full((1000,), 0.375, dtype=torch.float64)
    spikes, v_end = parallel_forward(x, theta, v0, T)
    assert torch.equal(spikes.sum(0), window_count(x.sum(0), 0.75, T))
    assert bool((spikes[:-1] >= spikes[1:]).all())  # sorted: the first N steps fire
    assert torch.allclose(theta * spikes.sum(0) + v_end, v0 + x.sum(0), rtol=0, atol=1e-12)


def test_cos_rule_removes_or_adds_exactly_one_spike_P10():
    g = torch.Generator().manual_seed(4)
    rho, n = 6, 20000
    x = torch.randn(rho, n, generator=g, dtype=torch.float64) * 0.8 + 0.2
    theta = torch.tensor(1.0, dtype=torch.float64)
    v0 = torch.full((n,), 0.5, dtype=torch.float64)
    s, v_end = if_forward(x, theta, v0)
    n0 = s.sum(0)
    v_new = cos_initial_potential(x, theta, v0)
    n1 = if_forward(x, theta, v_new)[0].sum(0)
    down = (v_end < 0) & (n0 > 0)
    up = (v_end >= 1) & ~down & (n0 < rho)
    assert down.any() and up.any()
    assert torch.equal(n1[down], n0[down] - 1)
    assert torch.equal(n1[up], n0[up] + 1)
    assert torch.equal(v_new[~down & ~up], v0[~down & ~up])
    assert ((v_end >= 1) & (n0 == rho)).any()  # saturated neurons exist and are left alone
    # P10 with a shift of exactly theta: -theta removes one spike iff a firing step had p < 2 theta
    s, _, pre = if_forward(x, theta, v0, record_pre=True)
    n_minus = if_forward(x, theta, v0 - 1.0)[0].sum(0)
    cond = ((pre < 2.0) & s.bool()).any(0)
    assert torch.equal(n_minus, n0 - cond.double())
    n_plus = if_forward(x, theta, v0 + 1.0)[0].sum(0)
    cond_up = ((pre >= 0.0) & ~s.bool()).any(0)
    assert torch.equal(n_plus, n0 + cond_up.double())
    # N is monotone in v0
    counts = [if_forward(x, theta, v0 + d)[0].sum(0) for d in (-0.75, -0.25, 0.0, 0.25, 0.75)]
    assert all(bool((a <= b).all()) for a, b in zip(counts[:-1], counts[1:], strict=True))


def _decoded(seq: torch.Tensor, t: int) -> torch.Tensor:
    x0 = seq[0]
    return x0 + sum((seq[s] - x0) / s for s in range(1, t + 1))


def test_differential_neurons_rate_invariant_P8prime():
    """t (r_in,t - r_out,t) = v_t - v0 for IF_diff and MTH_diff, signed and unsigned, at every t."""
    g = torch.Generator().manual_seed(5)
    T, n = 12, 3000
    x = torch.randn(T + 1, n, generator=g, dtype=torch.float64) * 0.7
    theta = torch.tensor(1.0, dtype=torch.float64)
    for levels, v0f in ((1, 0.5), (4, 0.0)):
        for signed in (True, False):
            for t in (1, 3, T):
                out, v_t, _ = diff_forward(x[: t + 1], theta, v0f, levels, signed)
                assert torch.equal(out[0], torch.zeros(n, dtype=torch.float64))
                r_in, r_out = _decoded(x, t), _decoded(out, t)
                assert torch.allclose(t * (r_in - r_out), v_t - v0f * theta, rtol=0, atol=1e-10)
                if signed:  # negative spikes never make the decoded output rate negative
                    assert bool((r_out >= -1e-12).all())
                else:
                    assert bool((out >= 0).all())
    # multi-threshold levels are theta / 2^i
    out, _, _ = diff_forward(x, theta, 0.0, 4, True)
    vals = set(out.abs().unique().tolist())
    assert vals <= {0.0, 1.0, 0.5, 0.25, 0.125} and len(vals) > 3
