"""Bundle export and the Numba runtime against the torch actors: identical spikes, actions within 1e-5."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
import torch

from spikerl.export import export_policy
from spikerl.runtime import BundleError, BundleWarning, load_policy, read_bundle, write_bundle

from .bundle_edits import edit_manifest, manifest_digest, read_manifest_json, resave_weights, weights
from .helpers import (
    ACT_DIM,
    NEURON_RESETS,
    OBS_DIM,
    ids,
    make_actor,
    observations,
    torch_action,
    torch_counts,
)

ACTION_SPACE = {"shape": [ACT_DIM], "low": [-1.0, -0.4, 0.0], "high": [1.0, 0.4, 3.0]}
OBS_SPACE = {"shape": [OBS_DIM], "low": [-math.inf] * OBS_DIM, "high": [math.inf] * OBS_DIM}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Every neuron type and reset, population coding, float64: (torch actor, loaded runtime policy)."""
    root = tmp_path_factory.mktemp("bundles")
    out = {}
    for neuron, reset in NEURON_RESETS:
        actor = make_actor(neuron, reset)
        path = export_policy(actor, root / f"{neuron}-{reset}", "bundle", observation_space=OBS_SPACE,
                             action_space=ACTION_SPACE, env={"id": "Test-v0", "kwargs": {}})
        out[neuron, reset] = actor, load_policy(path), path
    return out


@pytest.mark.parametrize("cfg", NEURON_RESETS, ids=ids)
def test_runtime_float64_identical_spikes_and_actions(bundles, cfg):
    actor, policy, _ = bundles[cfg]
    obs = observations()
    ref = torch_counts(actor, obs)
    got = policy.spike_counts(obs)
    assert list(got) == list(ref) == ["encoder", "hidden0", "hidden1", "output"]
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{cfg} {name}")
    rates = {k: v.mean() / actor.T for k, v in ref.items()}
    assert all(r > 0.05 for r in rates.values()), rates  # the comparison is not vacuous
    ref_act = torch_action(actor, obs)
    act = policy.act(obs, normalized=True)
    assert act.dtype == np.float64 and act.shape == (len(obs), ACT_DIM)
    np.testing.assert_allclose(act, ref_act, rtol=0, atol=1e-10)
    assert np.abs(ref_act).max() > 0.05


@pytest.mark.parametrize("cfg", [("lif", "hard"), ("clif", "soft"), ("multi-threshold", "hard")], ids=ids)
def test_runtime_float32_and_direct_encoding(tmp_path, cfg):
    actor = make_actor(*cfg, encoder="direct", dtype=torch.float32)
    policy = load_policy(export_policy(actor, tmp_path / "b", "bundle"))
    assert policy.dtype == np.float32 and "encoder" not in policy.spike_counts(observations(n=2))
    obs = observations(np.float32)
    np.testing.assert_allclose(policy.act(obs), torch_action(actor, obs), rtol=0, atol=1e-5)


@pytest.mark.parametrize("encoder", ["pop", "direct"])
def test_runtime_energy_equals_the_torch_energy_and_act_and_count_equals_act(tmp_path, encoder):
    from spikerl.energy import snn_energy

    actor = make_actor("lif", "soft", encoder=encoder)
    policy = load_policy(export_policy(actor, tmp_path / "b", "bundle", action_space=ACTION_SPACE))
    obs = observations(n=20)
    actions, counts = policy.act_and_count(obs)
    np.testing.assert_array_equal(actions, policy.act(obs))
    for name, c in policy.spike_counts(obs).items():
        np.testing.assert_array_equal(counts[name], c)
    for model in ("paper", "45nm"):
        ref = snn_energy(actor, torch.from_numpy(obs), model)
        got = policy.energy(counts, model)
        assert got.sops > 0 and got.per_layer_sops.keys() == ref.per_layer_sops.keys()
        np.testing.assert_allclose([got.sops, got.macs, got.energy_j, got.firing_rate],
                                   [ref.sops, ref.macs, ref.energy_j, ref.firing_rate], rtol=1e-12)
    with pytest.raises(ValueError, match="spike counts for .* are missing"):
        policy.energy({"hidden0": counts["hidden0"]})


def test_env_action_scaling_single_and_batch(bundles):
    actor, policy, _ = bundles["lif", "hard"]
    obs = observations(n=6)
    a = torch_action(actor, obs)
    low, high = np.array(ACTION_SPACE["low"]), np.array(ACTION_SPACE["high"])
    expected = low + 0.5 * (a + 1.0) * (high - low)  # SB3 unscale_action
    batch = policy.act(obs)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-12)
    assert np.all(batch >= low) and np.all(batch <= high)
    single = np.stack([policy.act(o) for o in obs])
    np.testing.assert_array_equal(single, batch)
    assert policy.act(obs[0]).shape == (ACT_DIM,)
    policy.reset()  # stateless: a no-op, the next action is unchanged
    np.testing.assert_array_equal(policy.act(obs[0]), batch[0])
    assert not policy.stateful and policy.env_id == "Test-v0"


def test_gaussian_actor_exports_deterministic_action(tmp_path):
    actor = make_actor("lif", gaussian=True)
    policy = load_policy(export_policy(actor, tmp_path / "sac", "bundle"))
    obs = observations()
    np.testing.assert_allclose(policy.act(obs), torch_action(actor, obs), rtol=0, atol=1e-10)
    assert policy.manifest["policy"]["output"] == "tanh(mean)"


def test_manifest_contents(bundles):
    actor, _, path = bundles["plif", "soft"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "spikerl-bundle" and manifest["format_version"] == 1
    assert manifest["T"] == actor.T and manifest["dtype"] == "float64"
    assert {"spikerl", "numpy", "torch"} <= set(manifest["versions"])
    assert manifest["coding"]["encoder"] == "pop" and manifest["coding"]["pop_dim"] == 10
    assert manifest["coding"]["preprocess"] == "tanh" and manifest["coding"]["decoder_pop_dim"] == 10
    assert [(lay["in"], lay["out"]) for lay in manifest["layers"]] == [(50, 48), (48, 32), (32, 30)]
    for lay, neuron in zip(manifest["layers"], actor.snn.neurons, strict=True):
        assert lay["neuron"] == "plif" and lay["params"]["reset"] == "soft"
        assert lay["params"]["decay"] == float(neuron.decay.detach())  # the learned decay, exact
        assert lay["params"]["decay"] != 0.75
        assert "u_t = h_t - V_th s_t" in lay["equations"]
    assert manifest["observation_space"]["low"] == ["-inf"] * OBS_DIM
    assert manifest["action_space"]["high"] == ACTION_SPACE["high"]
    assert manifest["action_scaling"]["kind"] == "affine"
    assert manifest["env"] == {"id": "Test-v0", "kwargs": {}}
    digest = hashlib.sha256((path / "weights.npz").read_bytes()).hexdigest()
    assert manifest["weights"]["sha256"] == digest
    spec, _ = read_bundle(path)
    np.testing.assert_array_equal(spec.layers[1].weight, actor.snn.linears[1].weight.detach().numpy())
    np.testing.assert_array_equal(spec.encoder_std, actor.encoder.std.detach().numpy())


def test_export_is_atomic_and_replaces_only_bundles(tmp_path):
    a1, a2 = make_actor("lif", seed=0), make_actor("lif", seed=1)
    path = tmp_path / "b"
    export_policy(a1, path, "bundle")
    export_policy(a2, path, "bundle")  # replaces the existing bundle
    obs = observations(n=4)
    np.testing.assert_allclose(load_policy(path).act(obs), torch_action(a2, obs), atol=1e-10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary directories left
    plain = tmp_path / "plain"
    plain.mkdir()  # the bundle folder has the mode of any folder made here (the staging one is not private)
    assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    plain.rmdir()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "x.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not a spikerl bundle"):
        export_policy(a1, other, "bundle")
    assert (other / "x.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_policy(a1, tmp_path / "y", "tflite")
    with pytest.raises(ValueError, match="action_space has shape \\[2\\]"):
        export_policy(a1, tmp_path / "z", "bundle", action_space={"shape": [2], "low": [0, 0], "high": [1, 1]})


def _remove_directory(path) -> None:
    shutil.rmtree(path)


def _remove_manifest(path) -> None:
    (path / "manifest.json").unlink()


def _remove_weights(path) -> None:
    (path / "weights.npz").unlink()


def _scale_weights_keeping_old_checksum(path) -> None:
    resave_weights(path, recompute=False, **{"layer0.weight": weights(path)["layer0.weight"] * 1.01})


def _cut_layer0_columns(path) -> None:
    resave_weights(path, **{"layer0.weight": weights(path)["layer0.weight"][:, :40]})


def _drop_decoder_bias(path) -> None:
    resave_weights(path, **{"decoder.bias": None})


def _layer1_bias_as_float16(path) -> None:
    resave_weights(path, **{"layer1.bias": np.zeros(32, dtype=np.float16)})


def _nan_weight_with_checksum_recomputed(path) -> None:
    w = weights(path)["layer1.weight"]
    w[3, 7] = np.nan
    resave_weights(path, **{"layer1.weight": w})


def _infinite_decoder_bias_with_checksum_recomputed(path) -> None:
    resave_weights(path, **{"decoder.bias": np.array([0.0, -np.inf, 0.0])})


def _negative_encoder_width_with_checksum_recomputed(path) -> None:
    std = weights(path)["encoder.std"]
    std[1, 2] = -0.5
    resave_weights(path, **{"encoder.std": std})


def _future_format_version(path) -> None:
    edit_manifest(path, lambda m: m.update(format_version=99))


def _other_format(path) -> None:
    edit_manifest(path, lambda m: m.update(format="other"))


def _manifest_not_json(path) -> None:
    (path / "manifest.json").write_text("{not json")


def _unknown_neuron(path) -> None:
    edit_manifest(path, lambda m: m["layers"][1].update(neuron="izhikevich"))


def _carry_across_decisions(path) -> None:
    edit_manifest(path, lambda m: m["policy"].update(carry="crpi", stateful=True))


def _manifest_edited_keeping_old_checksum(path) -> None:
    edit_manifest(path, lambda m: m["layers"][0]["params"].update(threshold=0.25), recompute=False)


def _weights_digest_edited_keeping_old_checksum(path) -> None:
    edit_manifest(path, lambda m: m["weights"].update(sha256="0" * 64), recompute=False)


def _checksum_not_hex(path) -> None:
    edit_manifest(path, lambda m: m.update(bundle_sha256="sha256:abc"), recompute=False)


#: (corruption of a good bundle, the one-line error it must give, the file it must name); the test id names what
#: was corrupted. Manifest edits recompute the bundle checksum unless the case is about that checksum, so that
#: each case reaches the check it is about; tests/export/test_bundle_manifest.py has the field-by-field cases.
CORRUPTIONS = [
    pytest.param(_remove_directory, "not a bundle directory", "", id="directory-missing"),
    pytest.param(_remove_manifest, "manifest.json is missing", "", id="manifest-missing"),
    pytest.param(_remove_weights, "weights.npz is missing", "", id="weights-missing"),
    pytest.param(_scale_weights_keeping_old_checksum, "SHA-256 checksum mismatch", "weights.npz",
                 id="weights-tampered"),
    pytest.param(_cut_layer0_columns, r"'layer0.weight' has shape \(48, 40\), the manifest's sizes need \(48, 50\)",
                 "weights.npz", id="weight-shape-wrong"),
    pytest.param(_drop_decoder_bias, "decoder.weight or decoder.bias is missing", "weights.npz",
                 id="decoder-bias-missing"),
    pytest.param(_layer1_bias_as_float16, "'layer1.bias' has dtype float16", "weights.npz", id="bias-dtype-float16"),
    pytest.param(_nan_weight_with_checksum_recomputed, r"array 'layer1.weight' holds nan at index \(3, 7\); a "
                 "policy's weights must be finite", "weights.npz", id="weight-nan-checksum-recomputed"),
    pytest.param(_infinite_decoder_bias_with_checksum_recomputed, "array 'decoder.bias' holds -inf at index 1",
                 "weights.npz", id="decoder-bias-inf-checksum-recomputed"),
    pytest.param(_negative_encoder_width_with_checksum_recomputed, "array 'encoder.std' must be positive everywhere, "
                 "got minimum -0.5", "weights.npz", id="encoder-std-negative-checksum-recomputed"),
    pytest.param(_future_format_version, "unknown format_version 99", "manifest.json", id="format-version-unknown"),
    pytest.param(_other_format, "format is 'other'", "manifest.json", id="format-not-spikerl"),
    pytest.param(_manifest_not_json, "not valid JSON", "manifest.json", id="manifest-not-json"),
    pytest.param(_unknown_neuron, r"layers\[1\].neuron: unknown neuron 'izhikevich'", "manifest.json",
                 id="neuron-unknown"),
    pytest.param(_carry_across_decisions, "carries state across decisions", "", id="carry-across-decisions"),
    pytest.param(_manifest_edited_keeping_old_checksum, r"bundle_sha256 mismatch \(recorded [0-9a-f]{16}\.\.\., the "
                 r"manifest hashes to [0-9a-f]{16}\.\.\.\); the manifest was modified", "manifest.json",
                 id="manifest-tampered"),
    pytest.param(_weights_digest_edited_keeping_old_checksum, "bundle_sha256 mismatch", "manifest.json",
                 id="weights-digest-tampered"),
    pytest.param(_checksum_not_hex, "bundle_sha256 must be 64 lowercase hex digits, got 'sha256:abc'",
                 "manifest.json", id="bundle-checksum-malformed"),
]


@pytest.fixture(scope="module")
def lif_actor():
    return make_actor("lif")


@pytest.mark.parametrize("corrupt, message, file", CORRUPTIONS)
def test_a_corrupted_bundle_gives_one_clear_error(lif_actor, tmp_path, corrupt, message, file):
    path = export_policy(lif_actor, tmp_path / "bundle", "bundle", action_space=ACTION_SPACE,
                         observation_space=OBS_SPACE, env={"id": "Test-v0", "kwargs": {}})
    assert load_policy(path).act(observations(n=1)).shape == (1, ACT_DIM)  # it loads before the corruption
    corrupt(path)
    with pytest.raises(BundleError, match=message) as err:
        load_policy(path)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(str(path / file) if file else str(path))  # names the file


def test_the_bundle_checksum_covers_the_manifest_and_an_old_bundle_without_it_loads_with_one_warning(
        lif_actor, tmp_path):
    path = export_policy(lif_actor, tmp_path / "bundle", "bundle", action_space=ACTION_SPACE)
    manifest = read_manifest_json(path)
    assert manifest["bundle_sha256"] == manifest_digest(manifest)
    assert manifest["weights"]["sha256"] == hashlib.sha256((path / "weights.npz").read_bytes()).hexdigest()
    obs = observations(n=5)
    expected = load_policy(path).act(obs)
    edit_manifest(path, lambda m: m.pop("bundle_sha256"))  # what a bundle written before the checksum looks like
    with pytest.warns(BundleWarning) as caught:
        policy = load_policy(path)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert text.startswith(f"{path / 'manifest.json'}: no bundle_sha256") and "\n" not in text
    np.testing.assert_array_equal(policy.act(obs), expected)
    space = read_manifest_json(path)["action_space"]
    edit_manifest(path, lambda m: m["action_space"].update(low=space["high"], high=space["low"]))
    with pytest.warns(BundleWarning), pytest.raises(BundleError, match="action_space.low must be below"):
        load_policy(path)  # without the checksum the field checks still hold


def test_export_refuses_what_the_runtime_would_refuse(lif_actor, tmp_path):
    from spikerl.export.extract import spec_from_actor

    spec = spec_from_actor(lif_actor)
    spec.layers[0].weight[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"array 'layer0.weight' holds inf at index \(0, 0\)"):
        write_bundle(spec, tmp_path / "inf")
    spec = spec_from_actor(lif_actor)
    spec.T = 10**12
    with pytest.raises(ValueError, match=r"T must be an integer in \[1, 10000\], got 1000000000000"):
        write_bundle(spec, tmp_path / "long")
    spec = spec_from_actor(lif_actor)
    with pytest.raises(ValueError, match=r"action_space.low must be below action_space.high in every dimension; "
                                         r"dimension 1 has low 0.4, high -0.4"):
        write_bundle(spec, tmp_path / "swapped", action_space={"shape": [ACT_DIM], "low": [-1.0, 0.4, 0.0],
                                                               "high": [1.0, -0.4, 3.0]})
    assert not any(tmp_path.iterdir())  # nothing was written
