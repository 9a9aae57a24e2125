"""Both CPU backends of the fused leaky kernel (Numba loops and torch tensor ops) equal the reference loop."""

from __future__ import annotations

import itertools

import pytest
import torch

import spikerl.kernels.fused as fused
from spikerl import make_neuron

D = torch.float64
CASES = list(itertools.product(["lif", "clif", "plif"], ["hard", "soft"], [False, True],
                               ["rectangular", "sigmoid", "arctan", "fast-sigmoid"]))


@pytest.fixture(params=["numba", "torch"])
def backend(request, monkeypatch):
    monkeypatch.setattr(fused, "CPU_BACKEND", request.param)
    return request.param


def _run(neuron, x, g, use_fused):
    x = x.clone().requires_grad_()
    neuron.zero_grad()
    s = neuron.fused_forward(x) if use_fused else neuron.reference_forward(x)
    (s * g).sum().backward()
    return s.detach(), x.grad, [p.grad.clone() for p in neuron.parameters()]


@pytest.mark.parametrize(("name", "reset", "detach", "surrogate"), CASES)
def test_backend_matches_reference(backend, name, reset, detach, surrogate):
    gen = torch.Generator().manual_seed(7)
    neuron = make_neuron(name, reset=reset, detach_reset=detach, surrogate=surrogate).double()
    if name == "plif":
        with torch.no_grad():
            neuron.decay_logit.fill_(0.4)
    x = torch.randn(6, 5, 23, dtype=D, generator=gen) * 0.8 + 0.3
    g = torch.randn(6, 5, 23, dtype=D, generator=gen)
    s_ref, gx_ref, gp_ref = _run(neuron, x, g, use_fused=False)
    s, gx, gp = _run(neuron, x, g, use_fused=True)
    assert torch.equal(s, s_ref)
    assert 0 < s_ref.mean() < 1
    assert (gx - gx_ref).abs().max() < 1e-10
    assert gx_ref.abs().max() > 0
    for a, b in zip(gp, gp_ref, strict=True):
        assert (a - b).abs().max() < 1e-10
        assert b.abs().max() > 0  # the PLIF decay gradient is exercised


def test_float32_backends_agree_and_spikes_exact(monkeypatch):
    torch.manual_seed(0)
    x = torch.randn(5, 64, 100) * 0.7 + 0.3
    g = torch.randn(5, 64, 100)
    results = {}
    for backend in ("numba", "torch"):
        monkeypatch.setattr(fused, "CPU_BACKEND", backend)
        neuron = make_neuron("clif")
        results[backend] = _run(neuron, x, g, use_fused=True)
    s_ref, gx_ref, _ = _run(make_neuron("clif"), x, g, use_fused=False)
    for s, gx, _ in results.values():
        assert torch.equal(s, s_ref)
        assert (gx - gx_ref).abs().max() < 1e-5


def test_expanded_gradient_and_empty_input():
    neuron = make_neuron("lif")
    x = torch.randn(4, 3, 7, requires_grad=True)
    neuron(x).sum().backward()  # grad_s arrives as an expanded (stride-0) tensor
    x_ref = x.detach().clone().requires_grad_()
    neuron.reference_forward(x_ref).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, rtol=0, atol=1e-6)
    empty = torch.zeros(3, 0, 5, requires_grad=True)
    out = neuron(empty)
    assert out.shape == (3, 0, 5)
    out.sum().backward()
    assert empty.grad.shape == (3, 0, 5)


@pytest.mark.parametrize(("name", "reset"), list(itertools.product(["if", "lif", "clif", "plif"], ["hard", "soft"])))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inference_path_equals_autograd_spikes(backend, name, reset, dtype):
    """Without autograd (no_grad, or inputs that need no gradient) the kernel saves nothing and runs the
    spikes-only loop; the spikes equal the autograd path's and the reference loop's bit for bit."""
    gen = torch.Generator().manual_seed(11)
    neuron = make_neuron(name, reset=reset).to(dtype)
    x = (torch.randn(5, 7, 31, generator=gen) * 0.8 + 0.3).to(dtype)
    with_graph = neuron.fused_forward(x.clone().requires_grad_())
    assert with_graph.grad_fn is not None
    with torch.no_grad():
        inferred = neuron.fused_forward(x)
    assert inferred.grad_fn is None and inferred.dtype == dtype
    assert torch.equal(inferred, with_graph.detach())
    assert torch.equal(inferred, neuron.reference_forward(x).detach())
    assert 0 < inferred.mean() < 1
    if name != "plif":  # a PLIF decay is a parameter: its graph stays even for a plain input
        assert neuron.fused_forward(x).grad_fn is None
    # a constant current broadcast over T (zero stride) is read in place and gives the same spikes
    row = x[0]
    expanded = row.expand(5, *row.shape)
    with torch.no_grad():
        assert torch.equal(neuron.fused_forward(expanded), neuron.fused_forward(expanded.contiguous()))
