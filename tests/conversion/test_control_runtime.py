"""Converted MLP policies in the torch-free runtime: bundle round trip against the torch SpikingModel.

float64 throughout: identical spike counts per layer at every decision, the same CRPI carry, actions within
1e-5 (in practice ~1e-15: only the summation order of the currents differs), reset() and reset(mask).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from blocked_imports import import_guard, run_blocked
from torch import nn

from spikerl.conversion import ConversionSpec, convert
from spikerl.conversion.saved import converted_policy_spec, load_converted, mlp_from_actor, save_converted
from spikerl.export import export_policy
from spikerl.runtime import load_policy

from .runtime_checks import assert_same_events_and_carry
from .runtime_checks import control_mlp as _mlp
from .runtime_checks import control_states as _states
from .runtime_checks import torch_carry as _torch_carry


@pytest.mark.parametrize("carry,fire,granularity", [(None, "ge", "neuron"), ("crpi", "ge", "neuron"),
                                                    ("crpi", "gt", "layer")])
def test_bundle_matches_torch_over_consecutive_decisions(tmp_path, carry, fire, granularity) -> None:
    mlp = _mlp()
    spec = ConversionSpec(T=16, method="max", carry=carry, alpha=0.75, fire=fire, granularity=granularity)
    snn = convert(mlp, spec, calib_data=_states(400, 0))
    bundle = export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle")
    policy = load_policy(bundle, dtype=np.float64)
    assert policy.stateful == (carry == "crpi")
    obs = [_states(4, 10 + k) * 1.3 for k in range(5)]
    assert_same_events_and_carry(snn, policy, obs, carry)
    # actions: fresh episode in both, then consecutive decisions
    snn.reset()
    policy.reset()
    first = None
    for k, o in enumerate(obs):
        a_t = snn(o).numpy()
        a_r = policy.act(o.numpy(), normalized=True)
        np.testing.assert_allclose(a_r, a_t, rtol=0, atol=1e-5)
        assert np.abs(a_r - a_t).max() < 1e-12
        if k == 0:
            first = a_r
    # reset(mask): only row 1 starts over; reset(): all rows start over (first decision repeats exactly)
    if carry == "crpi":
        snn.reset(mask=torch.tensor([False, True, False, False]))
        policy.reset(np.array([False, True, False, False]))
        np.testing.assert_allclose(policy._kernel.carry, _torch_carry(snn), rtol=0, atol=1e-12)
        assert np.all(policy._kernel.carry[1] == 0) and np.any(policy._kernel.carry[0] != 0)
        np.testing.assert_allclose(policy.act(obs[0].numpy(), normalized=True), snn(obs[0]).numpy(), atol=1e-12)
        with pytest.raises(ValueError, match="batch size 4"):
            policy.act(obs[0][:2].numpy())
    policy.reset()
    np.testing.assert_array_equal(policy.act(obs[0].numpy(), normalized=True), first)


def test_crpi_carry_changes_decisions_and_single_observations_work(tmp_path) -> None:
    mlp = _mlp()
    states = _states(400, 0)
    plain = load_policy(export_policy(converted_policy_spec(
        convert(mlp, ConversionSpec(T=8, method="max", granularity="neuron"), calib_data=states), mlp),
        tmp_path / "plain", "bundle"), dtype=np.float64)
    crpi_snn = convert(mlp, ConversionSpec(T=8, method="max", granularity="neuron", carry="crpi", alpha=1.0),
                       calib_data=states)
    crpi = load_policy(export_policy(converted_policy_spec(crpi_snn, mlp), tmp_path / "crpi", "bundle"),
                       dtype=np.float64)
    o = _states(1, 5)[0].numpy()
    np.testing.assert_array_equal(crpi.act(o, normalized=True), plain.act(o, normalized=True))  # same start
    second_c, second_p = crpi.act(o, normalized=True), plain.act(o, normalized=True)
    assert np.abs(second_c - second_p).max() > 0          # the carried residual changes the next decision
    np.testing.assert_array_equal(plain.act(o, normalized=True), second_p)  # stateless: always the same
    crpi_snn.reset()
    crpi_snn(torch.from_numpy(o)[None])
    np.testing.assert_allclose(second_c, crpi_snn(torch.from_numpy(o)[None]).numpy()[0], atol=1e-12)
    manifest = crpi.manifest
    assert manifest["policy"]["carry"] == "crpi" and manifest["coding"]["readout"] == "linear"
    assert manifest["layers"][0]["neuron"] == "if-conv" and manifest["layers"][0]["params"]["alpha"] == 1.0


@pytest.mark.parametrize("fire", ["ge", "gt"])
def test_stateless_converted_policy_exports_to_onnx(tmp_path, fire) -> None:
    ort = pytest.importorskip("onnxruntime")
    mlp = _mlp()
    snn = convert(mlp, ConversionSpec(T=16, method="max", fire=fire, granularity="neuron"), calib_data=_states(400, 0))
    path = export_policy(converted_policy_spec(snn, mlp), tmp_path / "p.onnx", "onnx", spike_counts=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = _states(32, 7) * 1.3
    action, *counts = sess.run(None, {"obs": obs.numpy()})
    trace = snn.run(obs)
    for got, site in zip(counts, snn.site_names, strict=True):
        np.testing.assert_array_equal(got, trace.spike_counts[site].numpy())
    assert 0 < sum(c.sum() for c in counts)
    np.testing.assert_allclose(action, snn(obs).numpy(), rtol=0, atol=1e-10)


def test_converted_policies_refuse_nir_and_onnx_and_methods_the_runtime_cannot_run(tmp_path) -> None:
    mlp = _mlp()
    snn = convert(mlp, ConversionSpec(T=8, method="max", carry="crpi"), calib_data=_states(100, 0))
    spec = converted_policy_spec(snn, mlp)
    with pytest.raises(ValueError, match="NIR cannot express a converted ANN policy"):
        export_policy(spec, tmp_path / "p.nir", "nir")
    with pytest.raises(ValueError, match="state carried across decisions"):
        export_policy(spec, tmp_path / "p.onnx", "onnx")
    srp = convert(mlp, ConversionSpec(T=8, method="srp"), calib_data=_states(100, 0))
    with pytest.raises(ValueError, match="sequential 'if' neuron and no pre-simulation"):
        converted_policy_spec(srp, mlp)


def test_saved_converted_policy_rebuilds_the_same_snn(tmp_path) -> None:
    mlp = _mlp()
    snn = convert(mlp, ConversionSpec(T=16, method="percentile:99", carry="crpi", alpha=0.5,
                                      granularity="neuron"), calib_data=_states(300, 0))
    save_converted(tmp_path / "c", mlp, snn, {"env": {"id": "X"}})
    again, mlp2, meta = load_converted(tmp_path / "c")
    assert meta["spec"]["method"] == "percentile:99" and meta["env"] == {"id": "X"}
    for k in snn.site_names:
        assert torch.equal(snn.thresholds[k], again.thresholds[k])
    for k in range(3):
        o = _states(3, 20 + k)
        assert torch.equal(snn(o), again(o))
    with pytest.raises(ValueError, match="not supported for a saved converted MLP"):
        mlp_from_actor(nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 1)))


CHILD = import_guard("torch") + """
import json, sys
import numpy as np
from spikerl.runtime import load_policy
policy = load_policy(sys.argv[1], dtype=np.float64)
obs = np.load(sys.argv[2])
acts = [policy.act(obs, normalized=True).tolist() for _ in range(3)]
policy.reset()
acts.append(policy.act(obs, normalized=True).tolist())
print(json.dumps({"acts": acts, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def test_converted_crpi_bundle_runs_where_torch_cannot_be_imported(tmp_path) -> None:
    mlp = _mlp()
    snn = convert(mlp, ConversionSpec(T=8, method="max", granularity="neuron", carry="crpi", alpha=0.5),
                  calib_data=_states(300, 0))
    bundle = export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle")
    obs = _states(3, 7)
    np.save(tmp_path / "obs.npy", obs.numpy())
    _, out = run_blocked(tmp_path, CHILD, bundle, tmp_path / "obs.npy")
    assert out["torch"] == []
    ref = [snn(obs).numpy() for _ in range(3)]
    snn.reset()
    ref.append(snn(obs).numpy())
    np.testing.assert_allclose(np.array(out["acts"]), np.stack(ref), rtol=0, atol=1e-12)
    assert np.abs(ref[1] - ref[0]).max() > 0  # the carry made the decisions differ
    np.testing.assert_array_equal(np.array(out["acts"][3]), np.array(out["acts"][0]))  # reset: a fresh start


@pytest.mark.parametrize("carry", [None, "crpi"])
def test_converted_agent_energy_equals_the_bundle_energy(tmp_path, carry) -> None:
    """The energy that ``spikerl evaluate CONVERTED_DIR`` reports (torch spike counts of every decision) equals
    the runtime's figure for the same decisions (float64: identical counts), and the SOPs follow the counts."""
    from spikerl.agents.conversion import ConvertedAgent

    mlp = _mlp()
    spec = ConversionSpec(T=16, method="max", carry=carry, alpha=0.5, fire="gt", granularity="neuron")
    snn = convert(mlp, spec, calib_data=_states(400, 0))
    policy = load_policy(export_policy(converted_policy_spec(snn, mlp), tmp_path / "b", "bundle"), dtype=np.float64)
    agent = ConvertedAgent(snn, -np.ones(3), np.ones(3), count=True)
    runtime_counts: dict[str, list[np.ndarray]] = {}
    for k in range(4):  # consecutive decisions of 5 envs
        o = _states(5, 20 + k)
        agent.predict(o.numpy())
        _, counts = policy.act_and_count(o.numpy())
        for name, c in counts.items():
            runtime_counts.setdefault(name, []).append(c)
    mine = agent.energy()
    theirs = policy.energy({n: np.concatenate(c) for n, c in runtime_counts.items()})
    assert mine.sops == pytest.approx(theirs.sops, rel=1e-12) and mine.sops > 0
    assert mine.macs == theirs.macs == 16 * 6 * 24 + 20 * 3
    assert mine.energy_j == pytest.approx(theirs.energy_j, rel=1e-12)
    hidden0 = np.concatenate(agent.counts[snn.site_names[0]])
    assert mine.per_layer_sops[snn.site_names[0]] == pytest.approx(hidden0.sum(1).mean() * 20)
