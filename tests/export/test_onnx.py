"""ONNX export (T unrolled) run in onnxruntime against the torch actors."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from spikerl.export import export_policy

from .helpers import NEURON_RESETS, ids, make_actor, observations, torch_action, torch_counts

#: standard ONNX operators the unrolled policy may use (no custom or ATen ops)
ALLOWED_OPS = {"Add", "Cast", "Concat", "Constant", "ConstantOfShape", "Div", "Exp", "Expand", "Gather", "Gemm",
               "Greater", "MatMul", "Mul", "Pow", "ReduceMean", "ReduceSum", "Reshape", "Shape", "Sub", "Tanh",
               "Unsqueeze", "Clip", "Min", "Slice", "Squeeze", "Transpose", "Where", "Identity"}


def _session(path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("cfg", NEURON_RESETS, ids=ids)
def test_onnx_float64_identical_spikes_and_actions(tmp_path, cfg):
    actor = make_actor(*cfg)
    path = export_policy(actor, tmp_path / "policy.onnx", "onnx", spike_counts=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {n.op_type for n in model.graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    sess = _session(path)
    obs = observations()
    action, *counts = sess.run(None, {"obs": obs})
    assert [o.name for o in sess.get_outputs()] == ["action", "count_encoder", "count_hidden0", "count_hidden1",
                                                     "count_output"]
    for got, (name, ref) in zip(counts, torch_counts(actor, obs).items(), strict=True):
        np.testing.assert_array_equal(got, ref, err_msg=f"{cfg} {name}")
    np.testing.assert_allclose(action, torch_action(actor, obs), rtol=0, atol=1e-10)
    one = sess.run(["action"], {"obs": obs[:1]})[0]  # dynamic batch
    np.testing.assert_allclose(one, action[:1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("neuron", ["lif", "clif", "if"])
@pytest.mark.parametrize("encoder", ["pop", "direct"])
def test_onnx_float32_actions_within_1e5(tmp_path, neuron, encoder):
    actor = make_actor(neuron, "hard", encoder=encoder, dtype=torch.float32)
    path = export_policy(actor, tmp_path / "policy.onnx", "onnx")
    sess = _session(path)
    assert [o.name for o in sess.get_outputs()] == ["action"]
    obs = observations(np.float32, n=64)
    (action,) = sess.run(None, {"obs": obs})
    assert action.dtype == np.float32
    ref = torch_action(actor, obs)
    np.testing.assert_allclose(action, ref, rtol=0, atol=1e-5)
    assert np.abs(ref).max() > 0.05


def test_onnx_gaussian_actor_is_tanh_mean(tmp_path):
    actor = make_actor("plif", gaussian=True)
    sess = _session(export_policy(actor, tmp_path / "sac.onnx", "onnx"))
    obs = observations()
    np.testing.assert_allclose(sess.run(None, {"obs": obs})[0], torch_action(actor, obs), rtol=0, atol=1e-10)


def test_onnx_rejects_old_opset(tmp_path):
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_policy(make_actor(), tmp_path / "p.onnx", "onnx", opset=13)
