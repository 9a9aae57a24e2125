"""The runtime never imports torch: it loads and runs a bundle in a process where ``import torch`` fails."""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from blocked_imports import import_guard, run_blocked

from spikerl.export import export_policy

from .helpers import make_actor, observations, torch_action

CHILD = import_guard("torch") + textwrap.dedent("""
    import json, sys
    import numpy as np
    from spikerl.runtime import load_policy
    policy = load_policy(sys.argv[1])
    obs = np.load(sys.argv[2])
    batch = policy.act(obs, normalized=True)
    single = [policy.act(o, normalized=True).tolist() for o in obs]
    policy.reset()
    raw = policy.spike_counts(obs)
    counts = {k: v.tolist() for k, v in raw.items()}
    energy = policy.energy(raw).energy_j
    bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    ours = sorted(m for m in sys.modules if m.startswith("spikerl"))
    print(json.dumps({"blocked": blocked["torch"], "batch": batch.tolist(), "single": single, "counts": counts,
                      "energy": energy, "torch_modules": bad, "spikerl_modules": ours}))
""")


def test_runtime_runs_a_bundle_where_torch_cannot_be_imported(tmp_path):
    actor = make_actor("clif", "soft")
    bundle = export_policy(actor, tmp_path / "bundle", "bundle")
    obs = observations(n=12)
    np.save(tmp_path / "obs.npy", obs)
    _, out = run_blocked(tmp_path, CHILD, bundle, tmp_path / "obs.npy")
    assert out["blocked"] == "torch is blocked in this test"
    assert out["torch_modules"] == []
    assert "spikerl.runtime" in out["spikerl_modules"] and "spikerl.networks" not in out["spikerl_modules"]
    ref = torch_action(actor, obs)
    np.testing.assert_allclose(np.array(out["batch"]), ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(np.array(out["single"]), np.array(out["batch"]))
    ref_counts = {k: v.numpy() for k, v in actor.spike_counts(torch.from_numpy(obs)).items()}
    for name, counts in out["counts"].items():
        np.testing.assert_array_equal(np.array(counts), ref_counts[name])
    from spikerl.energy import snn_energy

    np.testing.assert_allclose(out["energy"], snn_energy(actor, torch.from_numpy(obs)).energy_j, rtol=1e-12)
