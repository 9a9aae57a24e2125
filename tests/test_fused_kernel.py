"""The fused multi-step kernel equals the reference Python loop: spikes exactly, gradients to 1e-10."""

import itertools

import pytest
import torch

from spikerl import make_neuron
from spikerl.surrogates import SURROGATES

D = torch.float64
CASES = list(itertools.product(["if", "lif", "clif", "plif"], ["hard", "soft"], [1, 3, 5, 8]))


def _grads(neuron, x, g, fused):
    x = x.clone().requires_grad_()
    neuron.zero_grad()
    s = neuron.fused_forward(x) if fused else neuron.reference_forward(x)
    (s * g).sum().backward()
    params = [p.grad.clone() for p in neuron.parameters()]
    return s.detach(), x.grad, params


@pytest.mark.parametrize(("name", "reset", "T"), CASES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_fused_matches_reference(name, reset, T, detach_reset):
    gen = torch.Generator().manual_seed(hash((name, reset, T, detach_reset)) % 2**31)
    for surrogate in SURROGATES:
        neuron = make_neuron(name, reset=reset, detach_reset=detach_reset, surrogate=surrogate).double()
        x = torch.randn(T, 6, 17, dtype=D, generator=gen) * 0.8 + 0.3
        g = torch.randn(T, 6, 17, dtype=D, generator=gen)
        s_ref, gx_ref, gp_ref = _grads(neuron, x, g, fused=False)
        s_fus, gx_fus, gp_fus = _grads(neuron, x, g, fused=True)
        assert torch.equal(s_ref, s_fus)
        assert 0 < s_ref.mean() < 1  # the inputs exercise both spiking and silent neurons
        assert (gx_ref - gx_fus).abs().max() < 1e-10
        assert gx_ref.abs().max() > 0
        for a, b in zip(gp_ref, gp_fus, strict=True):
            assert (a - b).abs().max() < 1e-10


def test_forward_uses_fused_kernel_with_one_autograd_node():
    neuron = make_neuron("lif")
    x = torch.randn(5, 4, 8, requires_grad=True)
    s = neuron(x)
    assert type(s.grad_fn).__name__ == "_LeakyMultiStepBackward"
    unfused = make_neuron("lif", fused=False)
    assert type(unfused(x).grad_fn).__name__ != "_LeakyMultiStepBackward"


def test_fused_kernel_float32_agrees_with_reference():
    neuron = make_neuron("clif")
    x = torch.randn(5, 32, 64) * 0.7 + 0.3
    assert torch.equal(neuron.fused_forward(x), neuron.reference_forward(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fused_kernel_on_cuda_matches_cpu():
    neuron = make_neuron("lif").double()
    x = torch.randn(5, 8, 16, dtype=D)
    g = torch.randn_like(x)
    s_cpu, gx_cpu, _ = _grads(neuron, x, g, fused=True)
    s_gpu, gx_gpu, _ = _grads(neuron.cuda(), x.cuda(), g.cuda(), fused=True)
    assert torch.equal(s_cpu, s_gpu.cpu())
    assert (gx_cpu - gx_gpu.cpu()).abs().max() < 1e-10
