"""Neuron models: exact single-neuron dynamics against hand-computed equations, registry and errors."""

import pytest
import torch

from spikerl import make_neuron
from spikerl.neurons import NEURONS, allowed_params

D = torch.float64


def run(neuron, inputs):
    x = torch.tensor(inputs, dtype=D).reshape(-1, 1)
    return neuron.reference_forward(x).flatten().tolist()


def test_lif_hard_reset_matches_hand_computation():
    # h1 = 0.3 -> no spike; h2 = 0.75*0.3 + 0.4 = 0.625 -> spike, reset to 0;
    # h3 = 0 + 0.2 = 0.2; h4 = 0.15 + 0.4 = 0.55 -> spike
    n = make_neuron("lif", threshold=0.5, decay=0.75, reset="hard")
    assert run(n, [0.3, 0.4, 0.2, 0.4]) == [0.0, 1.0, 0.0, 1.0]


def test_lif_soft_reset_keeps_residual():
    # h1 = 0.9 -> spike, u = 0.4; h2 = 0.3 + 0.1 = 0.4 -> none; h3 = 0.3 + 0.25 = 0.55 -> spike
    n = make_neuron("lif", threshold=0.5, decay=0.75, reset="soft")
    assert run(n, [0.9, 0.1, 0.25]) == [1.0, 0.0, 1.0]
    hard = make_neuron("lif", threshold=0.5, decay=0.75, reset="hard")
    assert run(hard, [0.9, 0.1, 0.25]) == [1.0, 0.0, 0.0]


def test_threshold_is_strict():
    n = make_neuron("if", threshold=0.5)
    assert run(n, [0.5]) == [0.0]
    assert run(n, [0.5, 1e-9]) == [0.0, 1.0]


def test_if_integrates_without_leak():
    n = make_neuron("if", threshold=1.0, reset="soft")
    # constant 0.3: crossings when cumulative sum exceeds 1, 2 -> at t=4 (1.2) and t=7 (2.1 - 1 = 1.1)
    assert run(n, [0.3] * 7) == [0, 0, 0, 1, 0, 0, 1]


def test_clif_current_accumulates():
    # c1 = 0.2, h1 = 0.2; c2 = 0.1 + 0.2 = 0.3, h2 = 0.15 + 0.3 = 0.45; c3 = 0.15+0.2=0.35, h3 = 0.3375+0.35
    n = make_neuron("clif", threshold=0.5, decay=0.75, current_decay=0.5)
    assert run(n, [0.2, 0.2, 0.2]) == [0.0, 0.0, 1.0]
    state = n.init_state((1,), dtype=D)
    assert len(state) == 2


def test_plif_decay_is_learnable_and_starts_at_given_value():
    n = make_neuron("plif", decay=0.75)
    assert n.decay.item() == pytest.approx(0.75, abs=1e-7)
    x = torch.full((4, 3, 5), 0.3, requires_grad=True)
    n(x).sum().backward()
    assert n.decay_logit.grad is not None and n.decay_logit.grad.abs() > 0


def test_dn_follows_paper_equations():
    n = make_neuron("dn")
    x = torch.tensor([0.4, 0.4, 0.4], dtype=D)
    v = u = c = s_prev = 0.0
    expected = []
    for xi in x.tolist():
        c = 0.5 * c + xi
        v = v * (1 - s_prev) + 0.021 * s_prev
        u = u + 0.132 * s_prev
        dv, du = v * v - v - u + c, -0.172 * v - 0.529 * u
        v, u = v + dv, u + du
        s_prev = float(v > 0.5)
        expected.append(s_prev)
    assert run(n, x.tolist()) == expected
    assert sum(expected) >= 1  # the test input does make the neuron fire
    plus = make_neuron("dn", u_sign="+")
    assert plus.hparams()["u_sign"] == "+"


def test_multi_threshold_emits_levels():
    n = make_neuron("multi-threshold", threshold=0.5, levels=4, reset="soft")
    # h = 1.3 -> two crossings (1.0 < 1.3, 1.5 > 1.3) -> k = 2, u = 0.3; then h = 0.3 + 2.5 -> 4 (capped)
    assert run(n, [1.3, 2.5]) == [2.0, 4.0]
    x = torch.full((3, 2), 0.8, requires_grad=True)
    n(x).sum().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(NEURONS))
def test_state_step_and_forward_agree(name):
    n = make_neuron(name).double()
    x = torch.randn(6, 4, 3, dtype=D)
    out = n(x)
    assert out.shape == x.shape
    state = n.init_state((4, 3), dtype=D)
    steps = []
    for t in range(6):
        s, state = n.step(x[t], state)
        steps.append(s)
    assert torch.equal(torch.stack(steps), out)
    rebuilt = make_neuron(name, **{k: v for k, v in n.hparams().items()})
    assert torch.equal(rebuilt.double()(x), out)


def test_unknown_neuron_lists_known_ones():
    with pytest.raises(ValueError, match="known neurons: .*lif.*clif"):
        make_neuron("izhikevich")


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("lif", {"threshold": -1}, "threshold must be a positive"),
        ("lif", {"decay": 1.5}, r"decay must lie in \(0, 1\]"),
        ("lif", {"reset": "zero"}, "reset must be one of"),
        ("lif", {"tau": 2.0}, "unknown parameter.*tau.*allowed:.*decay"),
        ("clif", {"current_decay": -0.1}, "current_decay must lie"),
        ("if", {"decay": 0.5}, "unknown parameter.*decay"),
        ("dn", {"u_sign": "*"}, "u_sign"),
        ("multi-threshold", {"levels": 0}, "levels must be a positive integer"),
        ("lif", {"surrogate": "gauss"}, "unknown surrogate"),
    ],
)
def test_bad_parameters_raise_clear_errors(name, params, match):
    with pytest.raises(ValueError, match=match):
        make_neuron(name, **params)


def test_allowed_params_names_constructor_arguments():
    assert {"decay", "current_decay", "threshold", "reset"} <= set(allowed_params("clif"))


def test_forward_rejects_single_step_input():
    with pytest.raises(ValueError, match=r"\[T, B, ...\]"):
        make_neuron("lif")(torch.zeros(3))
