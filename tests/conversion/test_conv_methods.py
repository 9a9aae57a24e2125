"""SRP, CRPI, DCGS, max/percentile calibration and the max-norm convergence check."""

import numpy as np
import pytest
import torch
from torch import nn

from spikerl.conversion import QCFS, ConversionSpec, convert
from spikerl.conversion.reference import crpi_next_carry, if_counts

from .helpers import dyadic, dyadicize


def _mlp(seed=0, obs=6, hidden=32, act=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(obs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, act), nn.Tanh()).double().requires_grad_(False)


def _states(n=512, obs=6, seed=1):
    return torch.randn(n, obs, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------- calibration
def _relu_outputs(net, x):
    outs = []
    h = x
    for m in net:
        h = m(h)
        if isinstance(m, nn.ReLU):
            outs.append(h.detach())
    return outs


def test_max_thresholds_equal_site_max_at_each_granularity():
    net, x = _mlp(), _states()
    acts = _relu_outputs(net, x)
    for gran, ref in (("layer", lambda a: a.max()), ("neuron", lambda a: a.amax(0))):
        snn = convert(net, ConversionSpec(T=8, method="max", granularity=gran), calib_data=x)
        for site, a in zip(("1", "3"), acts, strict=True):
            assert torch.equal(snn.thresholds[site], ref(a))
    # an iterable of batches gives the same global statistic as one tensor
    snn_b = convert(net, ConversionSpec(T=8, method="max"), calib_data=list(x.split(100)))
    assert torch.equal(snn_b.thresholds["1"], acts[0].max())


def test_channel_max_on_cnn_and_percentile_equals_quantile():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).double()
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64)
    a = torch.relu(net[0](x)).detach()
    snn = convert(net, ConversionSpec(T=8, method="max", granularity="channel"), calib_data=x)
    assert torch.equal(snn.thresholds["1"], a.amax(dim=(0, 2, 3)).view(4, 1, 1))
    snn = convert(net, ConversionSpec(T=8, method="percentile:99.5"), calib_data=x)
    assert torch.allclose(snn.thresholds["1"], torch.quantile(a.flatten(), 0.995), rtol=0, atol=1e-12)
    snn = convert(net, ConversionSpec(T=8, method="percentile:90", granularity="channel"), calib_data=x)
    q = torch.quantile(a.transpose(0, 1).reshape(4, -1), 0.9, dim=1).view(4, 1, 1)
    assert torch.allclose(snn.thresholds["1"], q, rtol=0, atol=1e-12)


def test_dead_units_get_the_layer_threshold():
    net = _mlp()
    with torch.no_grad():
        net[0].bias[:4] = -1e3  # four units that never fire
    x = _states()
    snn = convert(net, ConversionSpec(T=8, method="max", granularity="neuron"), calib_data=x)
    th = snn.thresholds["1"]
    assert bool((th > 0).all()) and torch.equal(th[:4], th.max().expand(4))


def test_max_norm_error_decreases_with_T():
    net, x = _mlp(seed=5), _states(seed=6)
    obs = _states(200, seed=7)
    errs = [float((convert(net, ConversionSpec(T=T, method="max"), calib_data=x)(obs) - net(obs)).abs().mean())
            for T in (4, 16, 64, 256)]
    assert all(a > b for a, b in zip(errs[:-1], errs[1:], strict=True)), errs
    assert errs[-1] < 0.01


def test_dcgs_error_decreases_with_T_and_beats_rate_coding():
    net, x = _mlp(seed=8), _states(seed=9)
    obs = _states(200, seed=10)
    errs = [float((convert(net, ConversionSpec(T=T, method="dcgs"), calib_data=x)(obs) - net(obs)).abs().mean())
            for T in (2, 4, 8, 16)]
    assert all(a > b for a, b in zip(errs[:-1], errs[1:], strict=True)), errs
    plain = float((convert(net, ConversionSpec(T=16, method="max"), calib_data=x)(obs) - net(obs)).abs().mean())
    assert errs[-1] < plain
    snn = convert(net, ConversionSpec(T=8, method="dcgs"), calib_data=x)
    assert snn.latency == 9


# ---------------------------------------------------------------- SRP
def test_srp_masks_first_layer_by_presim_residual():
    T, tau = 8, 4
    net = dyadicize(nn.Sequential(nn.Linear(5, 16), QCFS(L=T, lam_init=1.0), nn.Linear(16, 2)))
    x = dyadic(50, 5, scale=64)
    snn = convert(net, ConversionSpec(T=T, method="srp", presim_steps=tau))
    assert snn.latency == T + tau
    z = net[0](x).detach()
    theta = 1.0
    _, v_tau = if_counts(z.expand(tau, *z.shape), theta, 0.5 * theta)
    mask = (v_tau > 1e-3 * theta).double()
    n_plain, _ = if_counts(z.expand(T, *z.shape), theta, 0.5 * theta)
    counts = snn.run(x).spike_counts["1"]
    assert torch.equal(counts, n_plain * mask)
    assert (mask == 0).any() and ((mask == 1) & (n_plain > 0)).any()


# ---------------------------------------------------------------- CRPI
def _rollout(snn, obs_seq):
    return [snn.run(o) for o in obs_seq]


def test_crpi_alpha_zero_equals_plain_conversion_over_a_rollout():
    net, x = _mlp(seed=11), _states(seed=12)
    obs_seq = [_states(8, seed=20 + k) for k in range(6)]
    plain = convert(net, ConversionSpec(T=16, method="max"), calib_data=x)
    crpi0 = convert(net, ConversionSpec(T=16, method="max", carry="crpi", alpha=0.0), calib_data=x)
    for o in obs_seq:
        assert torch.equal(crpi0(o), plain(o))


def test_crpi_carry_rule_bounds_and_reset():
    net, x = _mlp(seed=13), _states(seed=14)
    snn = convert(net, ConversionSpec(T=8, method="max", carry="crpi", alpha=1.0, granularity="neuron"),
                  calib_data=x)
    assert all(c is None for c in snn.carry.values())
    base = 0.05 * _states(4, seed=15)
    for k in range(8):
        trace = snn.run(base + 0.01 * k)
        for site, theta in snn.thresholds.items():
            v0 = trace.v_start[site]
            assert bool((v0 >= 0).all()) and bool((v0 <= theta).all())
            carry = snn.carry[site]
            assert bool((carry.abs() <= theta / 2).all())
            ref = crpi_next_carry(trace.v_final[site] - v0, trace.spike_counts[site], theta, 1.0)
            assert torch.equal(carry, ref)
    assert any(bool((c != 0).any()) for c in snn.carry.values())
    # reset(mask): only masked batch indices go back to v0 = theta/2
    before = {s: c.clone() for s, c in snn.carry.items()}
    mask = np.array([True, False, True, False])
    snn.reset(mask=mask)
    for s, c in snn.carry.items():
        assert torch.equal(c[[0, 2]], torch.zeros_like(c[[0, 2]]))
        assert torch.equal(c[[1, 3]], before[s][[1, 3]])
    trace = snn.run(base)
    for s, theta in snn.thresholds.items():
        assert torch.equal(trace.v_start[s][[0, 2]], (0.5 * theta).expand_as(trace.v_start[s][[0, 2]]))
    # full reset: the next decision equals a fresh model's
    snn.reset()
    fresh = convert(net, ConversionSpec(T=8, method="max", carry="crpi", alpha=1.0, granularity="neuron"),
                    calib_data=x)
    assert torch.equal(snn(base), fresh(base))
    with pytest.raises(ValueError, match="reset"):
        snn(_states(3, seed=1))


def test_crpi_alpha_one_pairwise_sum_identity_P11():
    """Constant input z in [0, theta): N_k + N_{k+1} == floor(2 T z / theta + 1/2) for k >= 2."""
    T, theta = 8, 1.0
    net = nn.Sequential(nn.Linear(1, 64, bias=False), QCFS(L=T, lam_init=theta), nn.Linear(64, 1)).double()
    z = (torch.arange(64, dtype=torch.float64) + 0.37) / 64  # in [0, 1)
    with torch.no_grad():
        net[0].weight.copy_(z.view(64, 1))
    snn = convert(net, ConversionSpec(T=T, method="qcfs", carry="crpi", alpha=1.0))
    obs = torch.ones(1, 1, dtype=torch.float64)
    counts = [snn.run(obs).spike_counts["1"][0] for _ in range(8)]
    expected = torch.floor(2 * T * z / theta + 0.5)
    for k in range(1, 7):
        assert torch.equal(counts[k] + counts[k + 1], expected)
    plain = convert(net, ConversionSpec(T=T, method="qcfs")).run(obs).spike_counts["1"][0]
    assert not torch.equal(2 * plain, expected)  # without the carry the 2T-step error is not cancelled


def _quantization_mse(theta, mu, sigma, n):
    """E[(ReLU(x) - theta clip(floor(n x/theta + 1/2), 0, n)/n)^2], x ~ N(mu, sigma^2), by fine quadrature."""
    x = torch.linspace(mu - 10 * sigma, mu + 10 * sigma, 100001, dtype=torch.float64)
    pdf = torch.exp(-((x - mu) ** 2) / (2 * sigma ** 2))
    pdf = pdf / pdf.sum()
    q = theta * torch.clamp(torch.floor(n * x / theta + 0.5), 0, n) / n
    return float(((torch.relu(x) - q) ** 2 * pdf).sum())


def test_gauss_iter_fixed_point_is_the_mse_minimiser_P9():
    from spikerl.conversion.calibrate import gauss_iter_threshold, gauss_k1

    for mu, sigma, n in ((0.0, 1.0, 4), (0.3, 0.5, 16), (-0.2, 1.5, 8), (0.3, 0.5, 128)):
        theta = gauss_iter_threshold(torch.tensor(mu), torch.tensor(sigma), n)
        k1 = gauss_k1(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64), theta, n)
        assert abs(float(k1) - 1) < 1e-9
        grid = torch.linspace(0.8 * float(theta), 1.2 * float(theta), 81, dtype=torch.float64)
        mses = [_quantization_mse(float(t), mu, sigma, n) for t in grid]
        best = float(grid[int(np.argmin(mses))])
        assert abs(best - float(theta)) / float(theta) < 1e-2, (mu, sigma, n, float(theta), best)
        assert _quantization_mse(float(theta), mu, sigma, n) <= min(mses) + 1e-9


def test_gauss_iter_calibration_uses_preactivation_moments():
    net, x = _mlp(seed=21), _states(seed=22)
    snn = convert(net, ConversionSpec(T=8, method="dcgs", threshold="gauss_iter", granularity="neuron"),
                  calib_data=x)
    from spikerl.conversion.calibrate import gauss_iter_threshold

    z = net[0](x)
    expected = gauss_iter_threshold(z.mean(0), z.std(0, unbiased=False), 8 * 2 ** 4)
    assert torch.allclose(snn.thresholds["1"], expected, rtol=1e-9, atol=0)
    obs = _states(100, seed=23)
    err = float((snn(obs) - net(obs)).abs().mean())
    assert err < 0.05


@pytest.mark.parametrize("neuron", ["if-diff", "mth-diff"])
def test_crpi_on_differential_coding_rule_reset_and_alpha_zero(neuron):
    """CRPI on DCGS neurons (spikerl's extension): v0 = v0 theta + c, c' = clip(alpha max(R, -|out|), +-theta/2)
    with R = v_T - v_0 and |out| the output emitted; alpha = 0 is plain DCGS; reset(mask) per batch index."""
    net, x = _mlp(seed=21), _states(seed=22)
    obs_seq = [0.3 * _states(4, seed=30 + k) for k in range(6)]
    spec = dict(T=8, method="dcgs", neuron=neuron, granularity="neuron")
    plain = convert(net, ConversionSpec(**spec), calib_data=x)
    crpi0 = convert(net, ConversionSpec(**spec, carry="crpi", alpha=0.0), calib_data=x)
    crpi = convert(net, ConversionSpec(**spec, carry="crpi", alpha=1.0), calib_data=x)
    changed = False
    for o in obs_seq:
        assert torch.equal(crpi0(o), plain(o))
        previous = {s: c for s, c in crpi.carry.items()}
        trace = crpi.run(o)
        changed |= not torch.equal(trace.output, plain(o))
        for site, theta in crpi.thresholds.items():
            v0 = trace.v_start[site]
            expected_v0 = crpi.settings["v0"] * theta + (0 if previous[site] is None else previous[site])
            assert torch.equal(v0, expected_v0 + torch.zeros_like(v0))
            carry = crpi.carry[site]
            assert bool((carry.abs() <= theta / 2).all())
            assert bool((carry >= -(trace.v_final[site] - v0).abs()).all())
    assert changed  # the carry changes decisions
    assert any(bool((c != 0).any()) for c in crpi.carry.values())
    before = {s: c.clone() for s, c in crpi.carry.items()}
    crpi.reset(mask=np.array([False, True, False, True]))
    for s, c in crpi.carry.items():
        assert torch.equal(c[[1, 3]], torch.zeros_like(c[[1, 3]])) and torch.equal(c[[0, 2]], before[s][[0, 2]])
    crpi.reset()
    assert torch.equal(crpi(obs_seq[0]), plain(obs_seq[0]))  # a full reset starts like the stateless model


def test_crpi_on_differential_coding_cancels_the_repeated_error():
    """For a repeated observation the time-averaged action of consecutive decisions is closer to the ANN's
    with the carry (the residual of one decision is paid out in the next) than without."""
    net, x = _mlp(seed=23, hidden=64), _states(seed=24)
    obs = 0.5 * _states(16, seed=25)
    ann = net(obs)
    spec = dict(T=4, method="dcgs", neuron="if-diff", granularity="neuron")
    plain = convert(net, ConversionSpec(**spec), calib_data=x)
    crpi = convert(net, ConversionSpec(**spec, carry="crpi", alpha=1.0), calib_data=x)
    k = 16
    err_plain = (plain(obs) - ann).abs().mean()  # every decision makes the same error
    err_crpi = (torch.stack([crpi(obs) for _ in range(k)]).mean(0) - ann).abs().mean()
    assert err_crpi < 0.5 * err_plain, (float(err_crpi), float(err_plain))
