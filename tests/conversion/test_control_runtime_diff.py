"""Differential-coding (DCGS) converted policies in the torch-free runtime: bundle round trip against torch.

``diff-conv`` layers (method dcgs, neurons mth-diff with 4 levels and if-diff), without and with the CRPI
carry: in float64 the Numba kernel gives the same events per layer at every decision, the same carry (1e-12)
and the same actions (1e-9) as ``SpikingModel``; only the summation order of the currents differs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikerl.conversion import ConversionSpec, convert
from spikerl.conversion.saved import converted_policy_spec
from spikerl.export import export_policy
from spikerl.runtime import load_policy
from spikerl.runtime.spec import LayerSpec, PolicySpec

from .runtime_checks import assert_same_events_and_carry
from .runtime_checks import control_mlp as _mlp
from .runtime_checks import control_states as _states
from .runtime_checks import torch_carry as _torch_carry


def _dcgs(T: int, neuron: str, carry: str | None, alpha: float = 0.5, granularity: str = "neuron",
          dtype: torch.dtype = torch.float64):
    mlp = _mlp(dtype)
    spec = ConversionSpec(T=T, method="dcgs", neuron=neuron, carry=carry, alpha=alpha, granularity=granularity)
    return convert(mlp, spec, calib_data=_states(400, 0, dtype)), mlp


CASES = [(T, neuron, carry, alpha) for T in (8, 32) for neuron in ("mth-diff", "if-diff")
         for carry, alpha in ((None, 0.5), ("crpi", 0.5), ("crpi", 1.0))]


@pytest.mark.parametrize("T,neuron,carry,alpha", CASES)
def test_diff_bundle_matches_torch_over_consecutive_decisions(tmp_path, T, neuron, carry, alpha) -> None:
    snn, mlp = _dcgs(T, neuron, carry, alpha)
    bundle = export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle")
    policy = load_policy(bundle, dtype=np.float64)
    assert policy.stateful == (carry == "crpi")
    layer = policy.manifest["layers"][0]
    assert layer["neuron"] == "diff-conv" and layer["params"]["levels"] == (4 if neuron == "mth-diff" else 1)
    obs = [_states(4, 10 + k) * 1.3 for k in range(5)]
    counts = assert_same_events_and_carry(snn, policy, obs, carry)  # events per layer, decision after decision
    assert sum(c.sum() for c in counts.values()) > 0
    snn.reset()
    policy.reset()
    first = None
    for k, o in enumerate(obs):  # actions from a fresh start
        a_t, a_r = snn(o).numpy(), policy.act(o.numpy(), normalized=True)
        assert np.abs(a_r - a_t).max() < 1e-9
        if k == 0:
            first = a_r
    if carry == "crpi":  # reset(mask): only row 1 starts over
        snn.reset(mask=torch.tensor([False, True, False, False]))
        policy.reset(np.array([False, True, False, False]))
        np.testing.assert_allclose(policy._kernel.carry, _torch_carry(snn), rtol=0, atol=1e-12)
        assert np.all(policy._kernel.carry[1] == 0) and np.any(policy._kernel.carry[0] != 0)
        assert np.abs(policy.act(obs[0].numpy(), normalized=True) - snn(obs[0]).numpy()).max() < 1e-9
        np.testing.assert_allclose(policy._kernel.carry, _torch_carry(snn), rtol=0, atol=1e-12)
    policy.reset()
    np.testing.assert_array_equal(policy.act(obs[0].numpy(), normalized=True), first)  # a fresh start repeats


def test_per_layer_threshold_is_broadcast_and_single_observations_work(tmp_path) -> None:
    snn, mlp = _dcgs(8, "mth-diff", "crpi", 1.0, granularity="layer")
    assert all(t.dim() == 0 for t in snn.thresholds.values())
    spec = converted_policy_spec(snn, mlp)
    for layer, theta in zip(spec.layers, snn.thresholds.values(), strict=True):
        assert layer.threshold.shape == (layer.n_out,) and np.all(layer.threshold == float(theta))
    policy = load_policy(export_policy(spec, tmp_path / "b", "bundle"), dtype=np.float64)
    o = _states(1, 5)
    actions = [policy.act(o[0].numpy(), normalized=True) for _ in range(3)]
    expected = [snn(o).numpy()[0] for _ in range(3)]
    np.testing.assert_allclose(np.stack(actions), np.stack(expected), rtol=0, atol=1e-9)
    assert np.abs(actions[1] - actions[0]).max() > 0  # the carry changes the next decision


@pytest.mark.parametrize("neuron", ["mth-diff", "if-diff"])
def test_unsigned_messages_match_torch(tmp_path, neuron) -> None:
    mlp = _mlp()
    snn = convert(mlp, ConversionSpec(T=16, method="dcgs", neuron=neuron, signed=False, granularity="neuron",
                                      carry="crpi", alpha=0.5), calib_data=_states(400, 0))
    policy = load_policy(export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle"), dtype=np.float64)
    assert policy.manifest["layers"][0]["params"]["signed"] is False
    for k in range(3):
        o = _states(4, 30 + k) * 1.3
        trace = snn.run(o)
        a_r, counts = policy.act_and_count(o.numpy(), normalized=True)
        for i, site in enumerate(snn.site_names):
            np.testing.assert_array_equal(counts[f"hidden{i}"], trace.spike_counts[site].numpy())
        assert np.abs(a_r - trace.output.numpy()).max() < 1e-9
        np.testing.assert_allclose(policy._kernel.carry, _torch_carry(snn), rtol=0, atol=1e-12)


@pytest.mark.parametrize("neuron", ["mth-diff", "if-diff"])
def test_float32_policy_agrees_with_torch(tmp_path, neuron) -> None:
    """T = 8: the same events as torch float32 and actions within 1e-4 (measured ~1.5e-6). Longer windows
    are sensitive to the summation order of the float32 currents: at T = 32 a flipped event changes later
    messages, and torch itself differs by as much between a batch and row-by-row evaluation (see the
    dyadic test below for the kernel's float32 arithmetic at T = 32)."""
    snn, mlp = _dcgs(8, neuron, "crpi", 0.5, dtype=torch.float32)
    policy = load_policy(export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle"))
    assert policy.dtype == np.float32 and policy.manifest["dtype"] == "float32"
    for k in range(5):
        o = _states(16, 40 + k, torch.float32)
        trace = snn.run(o)
        a_r, counts = policy.act_and_count(o.numpy(), normalized=True)
        assert a_r.dtype == np.float32
        for i, site in enumerate(snn.site_names):
            np.testing.assert_array_equal(counts[f"hidden{i}"], trace.spike_counts[site].numpy())
        np.testing.assert_allclose(a_r, trace.output.numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(policy._kernel.carry, _torch_carry(snn), rtol=0, atol=1e-5)


@pytest.mark.parametrize("neuron", ["mth-diff", "if-diff"])
def test_float32_arithmetic_matches_torch_at_T32_with_exact_currents(tmp_path, neuron) -> None:
    """Dyadic weights, inputs and thresholds (multiples of 1/16) make every current exact in float32 in any
    summation order; then the kernel's float32 neuron updates (r_in, r_out, cuts, carry) equal torch's:
    the same events over T = 32 steps and consecutive decisions, actions within 1e-5."""
    mlp = _mlp(torch.float32)
    with torch.no_grad():
        for p in mlp.parameters():
            p.copy_(torch.round(p * 16) / 16)
    states = torch.round(_states(400, 0, torch.float32) * 16) / 16
    calibrated = convert(mlp, ConversionSpec(T=32, method="dcgs", neuron=neuron, granularity="neuron"),
                         calib_data=states)
    thresholds = {k: torch.round(v * 16).clamp(min=1) / 16 for k, v in calibrated.thresholds.items()}
    snn = convert(mlp, ConversionSpec(T=32, method="dcgs", neuron=neuron, granularity="neuron", carry="crpi",
                                      alpha=1.0), thresholds=thresholds)
    policy = load_policy(export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle"))
    for k in range(4):
        o = torch.round(_states(32, 60 + k, torch.float32) * 24) / 16
        trace = snn.run(o)
        a_r, counts = policy.act_and_count(o.numpy(), normalized=True)
        for i, site in enumerate(snn.site_names):
            np.testing.assert_array_equal(counts[f"hidden{i}"], trace.spike_counts[site].numpy())
        np.testing.assert_allclose(a_r, trace.output.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(policy._kernel.carry, _torch_carry(snn), rtol=0, atol=1e-5)


def test_manifest_energy_and_refusals(tmp_path) -> None:
    snn, mlp = _dcgs(8, "mth-diff", "crpi", 0.5)
    spec = converted_policy_spec(snn, mlp)
    policy = load_policy(export_policy(spec, tmp_path / "b", "bundle"), dtype=np.float64)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["coding"]["readout"] == "linear"
    assert manifest["coding"]["decoder_equations"][0].startswith("r_j = sum_{t=1..T} o_jt / t")
    assert manifest["layers"][1]["params"] == {"v0": 0.0, "levels": 4, "signed": True, "alpha": 0.5}
    assert any("carry" in line for line in manifest["layers"][1]["equations"])
    _, counts = policy.act_and_count(_states(3, 9).numpy())
    report = policy.energy(counts)
    assert report.macs == 6 * 24 + 3 * 20  # the observation enters once (differential coding), plus the head
    assert report.sops == pytest.approx(counts["hidden0"].sum(1).mean() * 20)
    with pytest.raises(ValueError, match="NIR cannot express a converted ANN policy"):
        export_policy(spec, tmp_path / "p.nir", "nir")
    stateless, mlp = _dcgs(8, "if-diff", None)
    with pytest.raises(ValueError, match="ONNX export of differential-coding"):
        export_policy(converted_policy_spec(stateless, mlp), tmp_path / "p.onnx", "onnx")
    for method in ("srp", "cos"):
        other = convert(mlp, ConversionSpec(T=8, method=method), calib_data=_states(100, 0))
        with pytest.raises(ValueError, match=r"methods max, percentile:<p>, qcfs, opi\) or with differential "
                                             r"coding \(method dcgs") as err:
            converted_policy_spec(other, mlp)
        assert repr(method) in str(err.value)


def _diff_layer(n_in: int, n_out: int, **params) -> LayerSpec:
    p = {"v0": 0.0, "levels": 4, "signed": True, **params}
    return LayerSpec(np.zeros((n_out, n_in)), np.zeros(n_out), "diff-conv", p, threshold=np.ones(n_out))


def test_spec_validation_of_diff_layers() -> None:
    def spec(*layers: LayerSpec, carry: str | None = None) -> PolicySpec:
        return PolicySpec(obs_dim=2, act_dim=1, T=4, encoder="direct", preprocess="none", layers=list(layers),
                          decoder_weight=np.zeros((1, 3)), decoder_bias=np.zeros(1), carry=carry, readout="linear")

    spec(_diff_layer(2, 3)).validate()
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        spec(_diff_layer(2, 3, levels=0)).validate()
    with pytest.raises(ValueError, match="signed must be true or false"):
        spec(_diff_layer(2, 3, signed="yes")).validate()
    with pytest.raises(ValueError, match=r"missing neuron parameter\(s\) levels"):
        bad = _diff_layer(2, 3)
        del bad.params["levels"]
        spec(bad).validate()
    with pytest.raises(ValueError, match="carry='crpi' needs params"):
        spec(_diff_layer(2, 3), carry="crpi").validate()
    conv = LayerSpec(np.zeros((3, 2)), np.zeros(3), "if-conv", {"v0": 0.5, "fire": "ge", "reset": "soft"},
                     threshold=np.ones(3))
    with pytest.raises(ValueError, match="one coding in every layer"):
        spec(conv, _diff_layer(3, 3)).validate()
    no_theta = _diff_layer(2, 3)
    no_theta.threshold = None
    with pytest.raises(ValueError, match="layer0.threshold"):
        spec(no_theta).validate()
