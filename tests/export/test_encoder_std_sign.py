"""A population encoder whose learned width went below zero exports: the encoder reads std only as std**2."""

from __future__ import annotations

import numpy as np
import torch

from spikerl.export import export_policy
from spikerl.runtime import load_policy

from .helpers import make_actor, observations, torch_action, torch_counts


def test_a_negative_encoder_std_exports_as_its_magnitude_with_the_same_decisions(tmp_path) -> None:
    actor = make_actor("lif", "hard")  # float64: the runtime's spikes equal torch's
    with torch.no_grad():
        actor.encoder.std[0, :3].neg_()
        actor.encoder.std[2, 5] = -0.03
    obs = observations(n=16)
    policy = load_policy(export_policy(actor, tmp_path / "bundle", "bundle"))
    saved = np.load(tmp_path / "bundle" / "weights.npz")["encoder.std"]
    assert (saved > 0).all() and np.array_equal(saved, np.abs(actor.encoder.std.detach().numpy()))
    counts = policy.spike_counts(obs)
    for name, ref in torch_counts(actor, obs).items():
        np.testing.assert_array_equal(counts[name], ref, err_msg=name)
    # the same spikes; the readout sums in another order than torch, hence rounding
    np.testing.assert_allclose(policy.act(obs, normalized=True), torch_action(actor, obs), rtol=0, atol=1e-10)
