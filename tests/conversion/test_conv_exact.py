"""Network-level exact identities in float64 with dyadic data."""

import pytest
import torch
from torch import nn

from spikerl.conversion import QCFS, ClipReLU, ConversionSpec, convert
from spikerl.conversion.neurons import if_forward
from spikerl.conversion.reference import qcfs_ref

from .helpers import dyadic, dyadicize


def qcfs(L, lam=1.0):
    return QCFS(L=L, lam_init=lam)


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_one_hidden_layer_qcfs_mlp_equals_snn_exactly(T):
    net = dyadicize(nn.Sequential(nn.Linear(6, 32), qcfs(T, 2.0), nn.Linear(32, 3)))
    x = dyadic(64, 6, scale=64)
    snn = convert(net, ConversionSpec(T=T, method="qcfs"))
    out, ann = snn(x), net(x)
    assert torch.equal(out, ann)
    # the hidden counts are QCFS levels: theta N / T == QCFS(z)
    trace = snn.run(x)
    z = net[0](x)
    assert torch.equal(2.0 * trace.spike_counts["1"] / T, qcfs_ref(z, 2.0, T))
    # the last anytime output is the output
    assert torch.equal(trace.step_outputs[-1], out)


def test_one_layer_qcfs_conv_encoder_equals_snn_exactly():
    T = 4
    net = dyadicize(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), qcfs(T, 1.0), nn.AvgPool2d(2), nn.Flatten(),
                                  nn.Linear(4 * 4 * 4, 5)))
    x = dyadic(8, 2, 8, 8, scale=64)
    snn = convert(net, ConversionSpec(T=T, method="qcfs"))
    assert torch.equal(snn(x), net(x))


def test_deep_nonnegative_if_network_exact_under_P4():
    """Non-negative weights/biases/inputs with every per-step hidden current < theta: IF == QCFS(L=T)."""
    T, theta = 8, 4.0
    net = dyadicize(nn.Sequential(nn.Linear(5, 16), qcfs(T, theta), nn.Linear(16, 16), qcfs(T, theta),
                                  nn.Linear(16, 16), qcfs(T, theta), nn.Linear(16, 2)), scale=6, nonneg=True)
    x = dyadic(100, 5, scale=64).abs()
    snn = convert(net, ConversionSpec(T=T, method="qcfs"))
    # precondition: every per-step current is < theta (layer 1: the constant input current; deeper layers:
    # the largest current any spike pattern of value theta can produce, all weights being >= 0)
    with torch.no_grad():
        assert float(net[0](x).max()) < theta
        for lin in (net[2], net[4]):
            assert float(lin(torch.full((1, 16), theta, dtype=torch.float64)).max()) < theta
    assert torch.equal(snn(x), net(x))


def _deep_mlp(T):
    return nn.Sequential(nn.Linear(7, 24), qcfs(T, 1.0), nn.Linear(24, 24), qcfs(T, 2.0), nn.Linear(24, 24),
                         qcfs(T, 1.0), nn.Linear(24, 24), qcfs(T, 0.5), nn.Linear(24, 3), nn.Tanh())


class _Block(nn.Module):
    def __init__(self, c, T):
        super().__init__()
        self.c1, self.a1 = nn.Conv2d(c, c, 3, padding=1), qcfs(T, 1.0)
        self.c2, self.a2 = nn.Conv2d(c, c, 3, padding=1), qcfs(T, 1.0)

    def forward(self, x):
        return self.a2(self.c2(self.a1(self.c1(x))) + x)


def _cnn(T, with_block=False, maxpool=False):
    layers = [nn.Conv2d(2, 6, 3, padding=1), qcfs(T, 2.0)]
    layers += [nn.MaxPool2d(2)] if maxpool else [nn.AvgPool2d(2)]
    layers += [nn.Conv2d(6, 6, 3, padding=1), qcfs(T, 1.0)]
    layers += [nn.MaxPool2d(2)] if maxpool else []
    if with_block:
        layers.append(_Block(6, T))
    hw = 2 if maxpool else 4
    layers += [nn.Flatten(), nn.Linear(6 * hw * hw, 16), qcfs(T, 1.0), nn.Linear(16, 4)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("T", [2, 4, 8])
@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet", "maxpool-cnn"])
def test_parallel_conversion_equals_quantized_ann_exactly(T, kind):
    torch.manual_seed(T)
    net = {"mlp": lambda: _deep_mlp(T), "cnn": lambda: _cnn(T), "resnet": lambda: _cnn(T, with_block=True),
           "maxpool-cnn": lambda: _cnn(T, maxpool=True)}[kind]()
    dyadicize(net)
    x = dyadic(32, 7, scale=64) if kind == "mlp" else dyadic(16, 2, 8, 8, scale=64)
    snn = convert(net, ConversionSpec(T=T, method="parallel"))
    assert torch.equal(snn(x), net(x))
    # sequential IF on the same deep net is not exact (the unevenness error Parallel removes)
    if kind == "mlp" and T >= 4:
        assert not torch.equal(convert(net, ConversionSpec(T=T, method="qcfs"))(x), net(x))


def test_qcfs_module_forward_gradient_and_state_dict():
    act = QCFS(L=4, lam_init=2.0).double()
    z = torch.linspace(-1.005, 3.005, 401, dtype=torch.float64).requires_grad_()  # no z exactly at 0 or lam
    y = act(z)
    assert torch.equal(y, qcfs_ref(z.detach(), 2.0, 4))
    y.sum().backward()
    inside = (z.detach() > 0) & (z.detach() < 2.0)
    assert torch.equal(z.grad, inside.double())
    # y = q(z) with q = floor(L x + 1/2) lam / L and x = clip(z / lam, 0, 1); straight-through floor:
    # dy/dlam = q / lam - (z / lam) [0 < z < lam]  (the first term from y's factor lam, the second through x)
    lam_grad = (y.detach() / 2.0).sum() - (z.detach() / 2.0 * inside).sum()
    # two float64 sums of 401 terms of size <= 1: their rounding stays below 401 * 401 * 2^-53 < 2e-11
    assert abs(float(act.lam.grad) - float(lam_grad)) < 2e-11 and abs(float(lam_grad)) > 1.0
    other = QCFS(L=4).double()
    other.load_state_dict(act.state_dict())
    assert torch.equal(other(z.detach()), y.detach())
    clip = ClipReLU(1.5).double()
    assert torch.equal(clip(z.detach()), z.detach().clamp(0, 1.5))


def test_qcfs_expected_error_theorem_P2b():
    """Mean SNN_T - QCFS_L over a fine grid on [0, lam] vanishes with phi = v0 = 1/2, not with 0."""
    lam = 1.0
    z = (torch.arange(200000, dtype=torch.float64) + 0.5) / 200000 * lam
    for T, L in ((4, 8), (8, 4), (3, 16)):
        for v0, phi, ok in ((0.5, 0.5, True), (0.0, 0.0, False)):
            s, _ = if_forward(z.expand(T, -1), torch.tensor(lam, dtype=torch.float64), torch.full_like(z, v0 * lam))
            err = (lam * s.sum(0) / T - qcfs_ref(z, lam, L, phi)).mean().abs()
            assert (err < 1e-4) if ok else (err > 0.05), (T, L, v0, float(err))
