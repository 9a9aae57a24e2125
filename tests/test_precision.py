"""bfloat16 GEMMs (``spikerl.precision``): within bf16 rounding of float32, float32 master weights, the refusal on a
CPU without native bf16, and configs saved before the option existed."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import spikerl.precision as mixed_precision
from spikerl.precision import Bf16Linear, check_precision, refresh_after_steps, use_bf16

# bfloat16 has 8 significant bits: unit roundoff u = 2^-8. An output element of a bf16 GEMM with float32
# accumulation over K products is sum_k a_k (1 + d1_k) b_k (1 + d2_k) (|d| <= u: the rounded operands; their
# product is exact in float32), summed in float32 (error <= K 2^-24 sum |a_k b_k|), then rounded to bf16 (u). So
# |computed - exact| <= (3u + 4u^2 + 2 K 2^-24) sum_k |a_k| |b_k|, and the float32 bias add after it adds at most
# 2^-24 of the result (bounded here by 2^-23 (|exact| + |bias|)).
U = 2.0**-8


def gemm_bound(abs_a: torch.Tensor, abs_b: torch.Tensor) -> torch.Tensor:
    """The bound above for ``a @ b`` given |a| and |b| (float64), elementwise."""
    k = abs_a.shape[-1]
    return (3 * U + 4 * U**2 + 2 * k * 2.0**-24) * (abs_a @ abs_b)


def assert_within(computed: torch.Tensor, exact: torch.Tensor, bound: torch.Tensor) -> None:
    excess = (computed.double() - exact).abs() - bound
    assert float(excess.max()) <= 0.0, f"exceeds the bf16 bound by {float(excess.max()):.3g}"


@pytest.mark.parametrize("spikes", [False, True])
def test_bf16_linear_forward_and_backward_within_bf16_rounding(spikes: bool):
    gen = torch.Generator().manual_seed(3)
    layer = nn.Linear(110, 64)
    x = (torch.rand(5, 40, 110, generator=gen) < 0.3).float() if spikes else torch.randn(5, 40, 110, generator=gen)
    x.requires_grad_(True)
    bf16 = Bf16Linear.from_linear(copy.deepcopy(layer))
    y = bf16(x)
    g = torch.randn(y.shape, generator=gen)
    y.backward(g)
    assert y.dtype == torch.float32 and x.grad.dtype == torch.float32 and bf16.weight.grad.dtype == torch.float32

    x64, w64, b64, g64 = x.detach().double().reshape(-1, 110), layer.weight.detach().double(), \
        layer.bias.detach().double(), g.double().reshape(-1, 64)
    exact = x64 @ w64.T + b64
    bound = gemm_bound(x64.abs(), w64.abs().T) + 2.0**-23 * (exact.abs() + b64.abs())
    assert_within(y.detach().reshape(-1, 64), exact, bound)
    assert_within(x.grad.reshape(-1, 110), g64 @ w64, gemm_bound(g64.abs(), w64.abs()))
    assert_within(bf16.weight.grad, g64.T @ x64, gemm_bound(g64.abs().T, x64.abs()))
    # the bias gradient is a float32 sum of float32 values: n = 200 terms, error <= n 2^-24 sum |g|
    assert_within(bf16.bias.grad, g64.sum(0), 200 * 2.0**-24 * g64.abs().sum(0))
    # the bound is not vacuous: bf16 does differ from float32 here
    assert not torch.equal(y.detach(), layer(x.detach()))


def test_bf16_linear_is_nn_linear_outside_its_modes_and_keeps_the_state_dict():
    layer = nn.Linear(7, 5)
    net = nn.Sequential(copy.deepcopy(layer), nn.ReLU())
    keys = list(net.state_dict())
    state = torch.get_rng_state()
    (converted,) = use_bf16(net, modes=["no_grad"])
    assert torch.equal(torch.get_rng_state(), state)  # no random initialisation
    assert list(net.state_dict()) == keys and net[0] is converted
    x = torch.randn(3, 7)
    assert torch.equal(net(x), torch.relu(layer(x)))  # a grad pass: float32, bit for bit
    with torch.no_grad():
        assert not torch.equal(net(x), torch.relu(layer(x)))  # a no_grad pass: bf16
    assert torch.equal(net.double()(x.double()), torch.relu(layer.double()(x.double())))  # float64: never bf16


def test_bf16_copies_follow_optimizer_steps_loads_and_refreshes():
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    layers = use_bf16(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    refresh_after_steps(optimizer, net)

    def current() -> bool:
        return all(torch.equal(layer.weight_bf16, layer.weight.detach().to(torch.bfloat16)) for layer in layers)

    before = copy.deepcopy(net.state_dict())
    net(torch.randn(4, 6)).square().sum().backward()
    optimizer.step()
    assert not torch.equal(before["0.weight"], net[0].weight) and current()
    net.load_state_dict(before)
    assert torch.equal(before["0.weight"], net[0].weight) and current()
    with torch.no_grad():
        net[2].weight.mul_(0.5)  # a change no hook sees (a Polyak update): refreshed by hand
    assert not current()
    mixed_precision.refresh_bf16([net])
    assert current()


def test_check_precision_refuses_bf16_without_native_support(monkeypatch):
    monkeypatch.setattr(mixed_precision, "cpu_flags", lambda: {"avx2", "avx512f"})
    with pytest.raises(ValueError, match=r"^precision 'bf16' needs native bfloat16 .* use precision 'float32'$"):
        check_precision("bf16", "cpu")
    check_precision("float32", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("fp16")
    monkeypatch.setattr(mixed_precision, "cpu_flags", lambda: {"avx512_bf16"})
    check_precision("bf16", "cpu")
    monkeypatch.setattr(mixed_precision, "cpu_flags", lambda: {"amx_bf16"})
    check_precision("bf16", "cpu")
