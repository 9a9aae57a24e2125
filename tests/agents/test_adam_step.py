"""adam_step: the fused Adam kernel called directly equals optimizer.step() bit for bit, else falls back."""

from __future__ import annotations

import copy

import pytest
import torch
from spikerl.agents import adam_step as adam_step_module
from spikerl.agents.adam_step import adam_step
from torch import nn


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 3))


def _trajectories(make_opt, steps: int = 6, lrs=(1e-3, 1e-3, 5e-4, 5e-4, 2e-3, 2e-3), skip_grad=None):
    """Parameters and optimizer state after ``steps`` updates through step() and through adam_step."""
    results = []
    for use_direct in (False, True):
        net = _net()
        opt = make_opt(net)
        gen = torch.Generator().manual_seed(1)
        for i in range(steps):
            for group in opt.param_groups:
                group["lr"] = lrs[i]
            for j, p in enumerate(net.parameters()):
                p.grad = None if (skip_grad is not None and j == skip_grad and i % 2) else torch.randn(
                    p.shape, generator=gen)
            if use_direct:
                adam_step(opt)
            else:
                opt.step()
        results.append((net, opt))
    return results


def _assert_same(a, b) -> None:
    (net_a, opt_a), (net_b, opt_b) = a, b
    for pa, pb in zip(net_a.parameters(), net_b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[k][name], sb[k][name]), (k, name)


def test_direct_fused_step_equals_optimizer_step_bit_for_bit():
    ref, direct = _trajectories(lambda n: torch.optim.Adam(n.parameters(), lr=1e-3, fused=True))
    _assert_same(ref, direct)
    assert float(direct[1].state_dict()["state"][0]["step"]) == 6


def test_direct_step_with_weight_decay_groups_and_missing_grads():
    def make(net):
        params = list(net.parameters())
        return torch.optim.Adam([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.01,
                                                          "betas": (0.8, 0.99)}], lr=1e-3, fused=True)

    ref, direct = _trajectories(make, skip_grad=3)
    _assert_same(ref, direct)


def test_direct_path_really_skips_optimizer_step(monkeypatch):
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    adam_step(opt)  # first step: state is created by Optimizer.step
    calls = []
    monkeypatch.setattr(opt, "step", lambda *a, **k: calls.append(1))
    before = [p.clone() for p in net.parameters()]
    adam_step(opt)
    assert not calls
    assert all(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


@pytest.mark.parametrize("kwargs", [dict(fused=False), dict(fused=True, amsgrad=True), dict(fused=True, maximize=True)])
def test_falls_back_to_optimizer_step_when_the_kernel_does_not_apply(kwargs):
    ref, direct = _trajectories(lambda n: torch.optim.Adam(n.parameters(), lr=1e-3, **kwargs))
    _assert_same(ref, direct)


def test_falls_back_for_other_optimizers_hooks_and_a_missing_kernel(monkeypatch):
    ref, direct = _trajectories(lambda n: torch.optim.SGD(n.parameters(), lr=1e-2, momentum=0.9))
    for pa, pb in zip(ref[0].parameters(), direct[0].parameters(), strict=True):
        assert torch.equal(pa, pb)

    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    seen = []
    opt.register_step_post_hook(lambda *a: seen.append(1))
    for _ in range(2):
        for p in net.parameters():
            p.grad = torch.ones_like(p)
        adam_step(opt)
    assert seen == [1, 1]  # hooks run: the direct path was not taken

    monkeypatch.setattr(adam_step_module, "_KERNEL", None)
    ref, direct = _trajectories(lambda n: torch.optim.Adam(n.parameters(), lr=1e-3, fused=True))
    _assert_same(ref, direct)


def test_state_dict_round_trip_continues_identically():
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    for _ in range(3):
        for p in net.parameters():
            p.grad = torch.randn_like(p)
        adam_step(opt)
    net2 = copy.deepcopy(net)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3, fused=True)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict may share the tensors
    grads = [torch.randn_like(p) for p in net.parameters()]
    for p, p2, g in zip(net.parameters(), net2.parameters(), grads, strict=True):
        p.grad, p2.grad = g, g.clone()
    opt.step()
    adam_step(opt2)
    for p, p2 in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(p, p2)


def test_a_kernel_with_another_signature_falls_back_once_and_for_good(monkeypatch):
    calls = []

    def other_signature(*args, **kwargs):
        calls.append(1)
        raise TypeError("_fused_adam_() got an unexpected keyword argument")

    monkeypatch.setattr(adam_step_module, "_KERNEL", other_signature)
    ref, direct = _trajectories(lambda n: torch.optim.Adam(n.parameters(), lr=1e-3, fused=True))
    _assert_same(ref, direct)  # the step count was restored before Optimizer.step ran
    assert len(calls) == 1 and adam_step_module._KERNEL is None
