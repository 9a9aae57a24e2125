"""Expectation compensation (ECMT P6/P7): decoded output after t steps == f(decoded inputs after t steps)."""

import torch
import torch.nn.functional as F
from torch import nn

from spikerl.conversion import ConversionSpec, convert
from spikerl.conversion.neurons import ecm_diff, ecm_rate, running_mean, running_rate_diff

FUNCS = {
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "layernorm": lambda x: F.layer_norm(x, x.shape[-1:]),
    "softmax": lambda x: torch.softmax(x, -1),
}


def test_ecm_rate_identity_for_nonlinearities_and_products():
    g = torch.Generator().manual_seed(0)
    S = 12
    x = torch.randn(S, 5, 7, generator=g, dtype=torch.float64)
    y = torch.randn(S, 5, 7, generator=g, dtype=torch.float64)
    t = torch.arange(1, S + 1, dtype=torch.float64).view(S, 1, 1)
    for name, f in FUNCS.items():
        out = ecm_rate(f(running_mean(x)))
        assert torch.allclose(torch.cumsum(out, 0), t * f(torch.cumsum(x, 0) / t), rtol=0, atol=1e-12), name
    prod = ecm_rate(running_mean(x) * running_mean(y))  # product of two spike trains (AtNeuron)
    assert torch.allclose(torch.cumsum(prod, 0) / t, (torch.cumsum(x, 0) / t) * (torch.cumsum(y, 0) / t),
                          rtol=0, atol=1e-12)


def test_ecm_diff_identity():
    g = torch.Generator().manual_seed(1)
    S = 10
    x = torch.randn(S + 1, 4, 6, generator=g, dtype=torch.float64)
    rates = running_rate_diff(x)
    for name, f in FUNCS.items():
        out = ecm_diff(f(rates))
        decoded = running_rate_diff(out)
        assert torch.allclose(decoded, f(rates), rtol=0, atol=1e-12), name
    # the decoding itself: r_t = x_0 + sum (x_s - x_0)/s
    r3 = x[0] + (x[1] - x[0]) + (x[2] - x[0]) / 2 + (x[3] - x[0]) / 3
    assert torch.allclose(rates[3], r3, rtol=0, atol=1e-12)


def test_spec_ecm_converts_a_hidden_tanh_layer():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(),
                        nn.Linear(32, 2)).double().requires_grad_(False)
    calib = torch.randn(400, 5, dtype=torch.float64)
    x = torch.randn(50, 5, dtype=torch.float64)
    for method in ("max", "dcgs"):
        errs = [float((convert(net, ConversionSpec(T=T, method=method, ecm=True), calib_data=calib)(x) - net(x))
                      .abs().mean()) for T in (4, 16, 64)]
        assert errs[0] > errs[1] > errs[2], (method, errs)
