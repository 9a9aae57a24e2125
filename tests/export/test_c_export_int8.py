"""The int8 fixed-point C export: its integer arithmetic equals the NumPy model, its format, its refusals.

``spikerl.export.fixed_point.simulate`` computes every integer in int64 without wrap-around, so the C code
(int32 membranes) agreeing with it on extreme inputs also shows that no int32 overflowed. The closed-loop
return of a trained policy is checked in ``test_c_export_cli.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conversion.runtime_checks import control_mlp, control_states

from spikerl.conversion import ConversionSpec, convert
from spikerl.conversion.saved import converted_policy_spec
from spikerl.export import policy_spec
from spikerl.export.c_export import write_c
from spikerl.export.fixed_point import INPUT_MAX, quantize, simulate

from .c_helpers import load_strict, needs_cc
from .helpers import ACT_DIM, ids, make_actor, observations

KINDS = [("if", "hard"), ("lif", "soft"), ("clif", "hard"), ("plif", "soft"), ("multi-threshold", "soft"),
         ("multi-threshold", "hard")]


def _inputs(dim: int, n: int = 48) -> np.ndarray:
    obs = observations(np.float32, n=n, dim=dim)
    obs[:4] *= 100.0  # far outside the calibration range: saturated encoder, clamped analog input
    return obs


@needs_cc
@pytest.mark.parametrize("encoder", ["pop", "direct"])
@pytest.mark.parametrize("cfg", KINDS, ids=ids)
def test_int8_c_equals_the_integer_model(tmp_path, cfg, encoder):
    spec = policy_spec(make_actor(*cfg, encoder=encoder, dtype=torch.float32))
    calib = observations(np.float32, n=200, seed=7)
    c_policy = load_strict(write_c(spec, tmp_path / "c", "int8", calib=calib))
    obs = _inputs(spec.obs_dim)
    a_c, n_c = c_policy.act_and_count(obs)
    a_m, n_m, _ = simulate(quantize(spec, calib), obs)
    assert list(n_c) == list(n_m)
    for name in n_m:
        np.testing.assert_array_equal(n_c[name], n_m[name], err_msg=name)
    assert all(n.sum() > 0 for n in n_m.values())
    np.testing.assert_allclose(a_c, a_m, rtol=0, atol=2e-7)  # float readout: tanhf vs NumPy's tanh, 1 ulp


@needs_cc
def test_int8_converted_policy_with_the_carry_equals_the_integer_model(tmp_path):
    mlp = control_mlp(torch.float32)
    snn = convert(mlp, ConversionSpec(T=8, method="opi", carry="crpi", alpha=0.5),
                  calib_data=control_states(400, 0, torch.float32))
    spec = converted_policy_spec(snn, mlp)
    calib = (control_states(300, 3) * 1.3).numpy().astype(np.float32)
    c_policy = load_strict(write_c(spec, tmp_path / "c", "int8", calib=calib))
    fp = quantize(spec, calib)
    carry = None
    for k in range(5):  # consecutive decisions, one env each row, both sides carrying their own state
        obs = (control_states(6, 20 + k) * 1.3).numpy().astype(np.float32)
        a_m, n_m, carry = simulate(fp, obs, carry)
        a_c, n_c = c_policy.act_and_count(obs)
        for name in n_m:
            np.testing.assert_array_equal(n_c[name], n_m[name])
        np.testing.assert_allclose(a_c, a_m, rtol=0, atol=2e-7)
    assert max(np.abs(c).max() for c in carry) > 0  # the carry is really used


def test_quantized_format():
    spec = policy_spec(make_actor("lif", "soft", encoder="direct", dtype=torch.float32))
    spec.preprocess = "none"
    calib = observations(np.float32, n=100, seed=3)
    fp = quantize(spec, calib)
    peak = float(np.abs(calib).max())
    assert fp.input_exp == int(np.floor(np.log2(INPUT_MAX / peak)))  # the largest E keeping max|x| in range
    assert peak * 2.0 ** fp.input_exp <= INPUT_MAX < peak * 2.0 ** (fp.input_exp + 1)
    for float_layer, layer in zip(spec.layers, fp.layers, strict=True):
        q = layer.weight.astype(np.int64)
        assert layer.weight.dtype == np.int8 and np.abs(q).max(axis=1).tolist() == [127] * layer.n_out
        err = np.abs(q * layer.scale[:, None] - float_layer.weight)
        assert np.all(err <= layer.scale[:, None] / 2 * (1 + 1e-9))  # rounding to nearest
        unit = layer.scale / 2.0 ** layer.frac_bits
        thr = float(float_layer.params["threshold"])
        assert np.all(np.abs(layer.threshold * unit - thr) <= unit / 2 * (1 + 1e-9))
        assert layer.decay == round(float(float_layer.params["decay"]) * 2 ** 15)
        assert 0 <= layer.frac_bits <= 16 and layer.threshold.dtype == np.int32 and layer.bias.dtype == np.int32
    assert fp.decoder_weight.dtype == np.int8 and fp.decoder_weight.shape == (ACT_DIM, spec.decoder_pop_dim)


def test_bias_correction_moves_each_bias_by_the_mean_rounding_error():
    spec = policy_spec(make_actor("lif", "hard", dtype=torch.float32))
    calib = observations(np.float32, n=100, seed=5)
    plain, corrected = quantize(spec, calib, bias_correction=False), quantize(spec, calib)
    layer, q, fl = spec.layers[0], corrected.layers[0], plain.layers[0]
    from spikerl.runtime.policy import Policy

    rates = Policy(spec, {}, None, np.float32).spike_counts(calib)["encoder"].mean(0) / spec.T
    shift = (layer.weight.astype(np.float64) - q.weight * q.scale[:, None]) @ rates
    unit = q.scale / 2.0 ** q.frac_bits
    assert q.frac_bits == fl.frac_bits
    np.testing.assert_array_equal(q.bias, np.rint((layer.bias + shift) / unit).astype(np.int32))
    assert np.any(q.bias != fl.bias)


def test_int8_refuses_dn_and_diff_conv_with_the_reason(tmp_path):
    calib = observations(np.float32, n=10)
    with pytest.raises(ValueError, match=r"^int8 C export: layer 0 is a dn neuron, whose v\^2 term has no "
                                         r"fixed-point form here; export it with --precision float32$"):
        write_c(policy_spec(make_actor("dn", "hard")), tmp_path / "dn", "int8", calib=calib)
    mlp = control_mlp(torch.float32)
    snn = convert(mlp, ConversionSpec(T=8, method="dcgs"), calib_data=control_states(200, 0, torch.float32))
    with pytest.raises(ValueError, match=r"^int8 C export: layer 0 is 'diff-conv', which has no fixed-point code"):
        write_c(converted_policy_spec(snn, mlp), tmp_path / "diff", "int8", calib=calib)
    with pytest.raises(ValueError, match=r"calibration observations must have shape \[N, 5\]"):
        write_c(policy_spec(make_actor()), tmp_path / "x", "int8", calib=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="int8 C export needs calibration observations"):
        write_c(policy_spec(make_actor()), tmp_path / "y", "int8")
