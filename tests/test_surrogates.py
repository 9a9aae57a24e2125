"""Surrogate gradients: Heaviside forward, the documented pseudo-derivative backward."""

import math

import pytest
import torch

from spikerl.surrogates import SURROGATES, make_surrogate

D = torch.float64


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_forward_is_strict_heaviside_and_backward_is_derivative(name):
    sg = make_surrogate(name)
    x = torch.tensor([-1.0, -0.2, 0.0, 1e-12, 0.3], dtype=D, requires_grad=True)
    y = sg(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert torch.allclose(x.grad, sg.derivative(x.detach()))


def test_rectangular_window_and_height():
    sg = make_surrogate("rectangular", width=0.5)
    d = sg.derivative(torch.tensor([-0.6, -0.49, 0.0, 0.49, 0.5], dtype=D))
    assert d.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert make_surrogate("rectangular", width=0.25).derivative(torch.zeros(1, dtype=D)).item() == 2.0


@pytest.mark.parametrize(("name", "area"), [("rectangular", 1.0), ("sigmoid", 1.0), ("arctan", 1.0),
                                            ("fast-sigmoid", 2 / 25)])
def test_pseudo_derivative_area(name, area):
    # rectangular/sigmoid/arctan are derivatives of a smoothed step from 0 to 1; SuperSpike's fast
    # sigmoid 1/(1+k|x|)^2 is conventionally unnormalised (area 2/k)
    x = torch.linspace(-2000, 2000, 4_000_001, dtype=D)
    got = torch.trapezoid(make_surrogate(name).derivative(x), x).item()
    assert got == pytest.approx(area, rel=2e-3)


def test_parameterised_shapes():
    x = torch.tensor([0.1], dtype=D)
    assert make_surrogate("sigmoid", alpha=4).derivative(x).item() == pytest.approx(
        4 * (1 / (1 + math.exp(-0.4))) * (1 - 1 / (1 + math.exp(-0.4)))
    )
    assert make_surrogate("arctan", alpha=2).derivative(x).item() == pytest.approx(1 / (1 + (math.pi * 0.1) ** 2))
    assert make_surrogate("fast-sigmoid", slope=25).derivative(x).item() == pytest.approx(1 / 3.5**2)


def test_errors():
    with pytest.raises(ValueError, match="known surrogates: rectangular, sigmoid, arctan, fast-sigmoid"):
        make_surrogate("step")
    with pytest.raises(ValueError, match="width must be a positive"):
        make_surrogate("rectangular", width=0)
    with pytest.raises(ValueError, match="bad parameters"):
        make_surrogate("sigmoid", width=1)
