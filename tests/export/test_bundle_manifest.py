"""Every manifest field is checked on load: a wrong type, range, non-finite value or disagreement with the arrays is
one BundleError line naming the file and the field, also when the tamperer recomputed the bundle checksum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikerl.export import export_policy
from spikerl.runtime import BundleError, LayerSpec, PolicySpec, load_policy
from spikerl.runtime.params import MAX_LEVELS, check_layer_params

from .bundle_edits import edit_manifest
from .helpers import ACT_DIM, OBS_DIM, make_actor, observations

ACTION_SPACE = {"shape": [ACT_DIM], "low": [-1.0, -0.4, 0.0], "high": [1.0, 0.4, 3.0]}
OBS_SPACE = {"shape": [OBS_DIM], "low": [-math.inf] * OBS_DIM, "high": [math.inf] * OBS_DIM}


def _set(*keys, value):
    """An edit that sets manifest[keys[0]][keys[1]]... = value."""
    def edit(m):
        for k in keys[:-1]:
            m = m[k]
        m[keys[-1]] = value
    return edit


def _pop(*keys):
    def edit(m):
        for k in keys[:-1]:
            m = m[k]
        del m[keys[-1]]
    return edit


def _swap_action_bounds(m):
    space = m["action_space"]
    space["low"], space["high"] = space["high"], space["low"]


#: (edit of the manifest dict, the file the error names, the message after "FILE: "); one id per case
CASES = [
    pytest.param(_pop("action_space"), "manifest.json", "missing key(s) action_space", id="action-space-removed"),
    pytest.param(_pop("action_scaling"), "manifest.json", "missing key(s) action_scaling",
                 id="action-scaling-removed"),
    pytest.param(_set("action_space", value=None), "manifest.json",
                 "action_space is null but action_scaling.kind is 'affine' (scaling onto the action space)",
                 id="action-space-null-with-affine-scaling"),
    pytest.param(_set("action_scaling", "kind", value="none"), "manifest.json",
                 "action_scaling.kind is 'none' but an action_space is given; a bundle with an action space scales "
                 "onto it ('affine')", id="action-scaling-none-with-space"),
    pytest.param(_swap_action_bounds, "manifest.json", "action_space.low must be below action_space.high in every "
                 "dimension; dimension 0 has low 1.0, high -1.0", id="action-bounds-swapped"),
    pytest.param(_set("action_space", "high", 2, value="inf"), "manifest.json",
                 "action_space.high[2] must be a finite number, got 'inf'", id="action-high-inf"),
    pytest.param(_set("action_space", "high", 2, value=math.inf), "manifest.json",
                 "action_space.high[2] must be a finite number, got inf", id="action-high-json-infinity"),
    pytest.param(_set("action_space", "low", 0, value="half"), "manifest.json",
                 "action_space.low[0] must be a finite number, got 'half'", id="action-low-not-a-number"),
    pytest.param(_set("action_space", "low", value=[-1.0]), "manifest.json",
                 "action_space.low must be a list of 3 number(s) (shape [3]), got 1 value(s)",
                 id="action-low-too-short"),
    pytest.param(_set("action_space", "shape", value=[2]), "manifest.json",
                 "action_space.shape must be [3] (the policy's size), got [2]", id="action-shape-wrong"),
    pytest.param(_set("observation_space", "low", 1, value="nan"), "manifest.json",
                 "observation_space.low[1] must be a finite number, \"inf\" or \"-inf\", got 'nan'",
                 id="observation-low-nan"),
    pytest.param(_set("layers", 0, "params", "threshold", value=math.nan), "manifest.json",
                 "layers[0].params.threshold must be a number > 0.0, got nan", id="threshold-nan"),
    pytest.param(_set("layers", 0, "params", "threshold", value="half"), "manifest.json",
                 "layers[0].params.threshold must be a number > 0.0, got 'half'", id="threshold-not-a-number"),
    pytest.param(_set("layers", 1, "params", "threshold", value=-0.5), "manifest.json",
                 "layers[1].params.threshold must be a number > 0.0, got -0.5", id="threshold-negative"),
    pytest.param(_set("layers", 0, "params", "decay", value=5.0), "manifest.json",
                 "layers[0].params.decay must be a number in (0.0, 1.0], got 5.0", id="decay-above-one"),
    pytest.param(_set("layers", 2, "params", "decay", value=0), "manifest.json",
                 "layers[2].params.decay must be a number in (0.0, 1.0], got 0", id="decay-zero"),
    pytest.param(_set("layers", 1, "params", "reset", value="sometimes"), "manifest.json",
                 "layers[1].params.reset must be 'hard' or 'soft' for a lif layer, got 'sometimes'",
                 id="reset-unknown"),
    pytest.param(_set("layers", 0, "params", "gain", value=2.0), "manifest.json",
                 "layers[0].params (lif): unknown parameter(s) gain; a lif layer takes threshold, reset, decay",
                 id="param-unknown"),
    pytest.param(_pop("layers", 0, "params", "decay"), "manifest.json",
                 "layers[0].params (lif): missing neuron parameter(s) decay", id="param-missing"),
    pytest.param(_set("T", value=5.5), "manifest.json", "T must be an integer in [1, 10000], got 5.5",
                 id="T-fractional"),
    pytest.param(_set("T", value=10**12), "manifest.json", "T must be an integer in [1, 10000], got 1000000000000",
                 id="T-huge"),
    pytest.param(_set("T", value="5"), "manifest.json", "T must be an integer in [1, 10000], got '5'",
                 id="T-string"),
    pytest.param(_set("T", value=True), "manifest.json", "T must be an integer in [1, 10000], got True",
                 id="T-bool"),
    pytest.param(_set("obs_dim", value=5.0), "manifest.json", "obs_dim must be an integer >= 1, got 5.0",
                 id="obs-dim-float"),
    pytest.param(_set("dtype", value="float16"), "manifest.json",
                 "dtype must be one of 'float32', 'float64', got 'float16'", id="dtype-unsupported"),
    pytest.param(_set("layers", 0, "in", value=49), "manifest.json",
                 "layers[0] says in=49, out=48 but layer0.weight has shape (48, 50) (out, in)",
                 id="layer-in-disagrees-with-weight"),
    pytest.param(_set("layers", 1, "in", value=47), "manifest.json", "layers[1].in is 47 but layers[0].out is 48",
                 id="layer-sizes-do-not-chain"),
    pytest.param(_set("layers", value=[]), "manifest.json", "layers must be a non-empty list, got []",
                 id="layers-empty"),
    pytest.param(_set("weights", "arrays", "layer0.bias", "shape", value=[47]), "manifest.json",
                 "weights.arrays['layer0.bias'] says shape [47] and dtype float64, the array has shape [48] and "
                 "dtype float64", id="weights-listing-disagrees"),
    pytest.param(_set("weights", "sha256", value="abc"), "manifest.json",
                 "weights.sha256 must be 64 lowercase hex digits, got 'abc'", id="weights-digest-malformed"),
    pytest.param(_set("coding", "encoder", value="rate"), "manifest.json",
                 "coding.encoder must be one of 'pop', 'direct', got 'rate'", id="encoder-unknown"),
    pytest.param(_set("coding", "pop_dim", value=9), "weights.npz",
                 "array 'encoder.mean' has shape (5, 10), the manifest's sizes need (5, 9)", id="pop-dim-disagrees"),
    pytest.param(_set("coding", "encoder_threshold", value=0.5), "manifest.json",
                 "coding.encoder_threshold must be 0.999 (the runtime's population encoder), got 0.5",
                 id="encoder-threshold-changed"),
    pytest.param(_set("coding", "readout", value="max"), "manifest.json",
                 "coding.readout must be one of 'population', 'linear', got 'max'", id="readout-unknown"),
    pytest.param(_set("policy", "stateful", value=True), "manifest.json",
                 "policy.stateful must be false with policy.carry None, got True", id="stateful-without-carry"),
    pytest.param(_set("policy", "carry", value="lstm"), "manifest.json",
                 "policy.carry must be null or 'crpi', got 'lstm'", id="carry-unknown"),
    pytest.param(_set("env", "seed", value="7"), "manifest.json", "env.seed must be an integer >= 0, got '7'",
                 id="env-seed-string"),
    pytest.param(_set("env", "id", value=""), "manifest.json", "env.id must be a Gymnasium env id, got ''",
                 id="env-id-empty"),
]


@pytest.fixture(scope="module")
def actor():
    return make_actor("lif")


@pytest.fixture
def bundle(actor, tmp_path):
    path = export_policy(actor, tmp_path / "bundle", "bundle", action_space=ACTION_SPACE, observation_space=OBS_SPACE,
                         env={"id": "Test-v0", "kwargs": {}, "seed": 3})
    assert load_policy(path).act(observations(n=1)).shape == (1, ACT_DIM)  # it loads before the edit
    return path


@pytest.mark.parametrize("edit, file, message", CASES)
def test_a_wrong_field_is_one_error_naming_file_and_field(bundle, edit, file, message):
    edit_manifest(bundle, edit)  # the bundle checksum is recomputed: the field check alone must catch it
    with pytest.raises(BundleError) as err:
        load_policy(bundle)
    assert str(err.value) == f"{bundle / file}: {message}"


@pytest.mark.parametrize("edit, file, message", CASES)
def test_a_wrong_field_with_the_old_checksum_is_caught_by_the_checksum(bundle, edit, file, message):
    edit_manifest(bundle, edit, recompute=False)
    with pytest.raises(BundleError, match=r"manifest.json: bundle_sha256 mismatch \(recorded "):
        load_policy(bundle)


def _layer(neuron: str, **params) -> tuple[str, dict]:
    base = {"if": {"threshold": 0.5, "reset": "hard"},
            "dn": {"threshold": 0.5, "current_decay": 0.5, "theta_v": -0.172, "theta_u": 0.529, "theta_r": 0.021,
                   "theta_s": 0.132, "u_sign": "-"},
            "multi-threshold": {"threshold": 0.5, "reset": "soft", "decay": 1.0, "levels": 4},
            "clif": {"threshold": 0.5, "reset": "soft", "decay": 0.75, "current_decay": 0.5},
            "plif": {"threshold": 0.5, "reset": "soft", "decay": 0.6, "decay_logit": 0.4},
            "if-conv": {"v0": 0.5, "fire": "ge", "reset": "soft"},
            "diff-conv": {"v0": 0.0, "levels": 4, "signed": True}}[neuron]
    return neuron, {**base, **params}


#: (neuron, parameters, carry, the ValueError message); the neuron kinds the lif bundle above does not exercise
PARAM_CASES = [
    pytest.param(*_layer("dn", u_sign="*"), None, "layers[0].params.u_sign must be '-' (paper) or '+' (upstream "
                 "code), got '*'", id="dn-u-sign"),
    pytest.param(*_layer("dn", current_decay=1.5), None, "layers[0].params.current_decay must be a number in "
                 "[0.0, 1.0], got 1.5", id="dn-current-decay"),
    pytest.param(*_layer("dn", theta_v=math.inf), None, "layers[0].params.theta_v must be a finite number, got inf",
                 id="dn-theta-v-inf"),
    pytest.param(*_layer("dn", reset="soft"), None, "layers[0].params.reset must be 'hard' for a dn layer, got 'soft'",
                 id="dn-soft-reset"),
    pytest.param(*_layer("clif", current_decay=-0.1), None, "layers[0].params.current_decay must be a number in "
                 "[0.0, 1.0], got -0.1", id="clif-current-decay"),
    pytest.param(*_layer("plif", decay_logit=math.nan), None, "layers[0].params.decay_logit must be a finite "
                 "number, got nan", id="plif-logit-nan"),
    pytest.param(*_layer("multi-threshold", levels=0), None, f"layers[0].params.levels must be an integer >= 1 and "
                 f"<= {MAX_LEVELS} (graded spike levels; diff-conv: thresholds theta/2^i), got 0", id="levels-zero"),
    pytest.param(*_layer("multi-threshold", levels=10**9), None, f"layers[0].params.levels must be an integer >= 1 "
                 f"and <= {MAX_LEVELS} (graded spike levels; diff-conv: thresholds theta/2^i), got 1000000000",
                 id="levels-huge"),
    pytest.param(*_layer("multi-threshold", levels=2.0), None, f"layers[0].params.levels must be an integer >= 1 "
                 f"and <= {MAX_LEVELS} (graded spike levels; diff-conv: thresholds theta/2^i), got 2.0",
                 id="levels-float"),
    pytest.param(*_layer("if", threshold=True), None, "layers[0].params.threshold must be a number > 0.0, got True",
                 id="threshold-bool"),
    pytest.param(*_layer("if-conv", fire="eq"), None, "layers[0].params.fire must be 'ge' or 'gt', got 'eq'",
                 id="if-conv-fire"),
    pytest.param(*_layer("if-conv", reset="hard"), None, "layers[0].params.reset must be 'soft' for a if-conv layer, "
                 "got 'hard'", id="if-conv-hard-reset"),
    pytest.param(*_layer("if-conv", v0=math.nan), None, "layers[0].params.v0 must be a finite number, got nan",
                 id="if-conv-v0-nan"),
    pytest.param(*_layer("if-conv"), "crpi", "layers[0].params (if-conv): carry='crpi' needs params['alpha'] in "
                 "[0, 1], got None", id="crpi-without-alpha"),
    pytest.param(*_layer("diff-conv", alpha=2.0), "crpi", "layers[0].params.alpha must be a number in [0.0, 1.0], "
                 "got 2.0", id="crpi-alpha-above-one"),
    pytest.param(*_layer("diff-conv", signed="yes"), None, "layers[0].params.signed must be true or false, got 'yes'",
                 id="diff-conv-signed"),
]


@pytest.mark.parametrize("neuron, params, carry, message", PARAM_CASES)
def test_neuron_parameters_are_checked_for_type_and_range(neuron, params, carry, message):
    with pytest.raises(ValueError) as err:
        check_layer_params(0, neuron, params, carry)
    assert str(err.value) == message
    good = _layer(neuron)[1] | ({"alpha": 0.5} if carry else {})
    check_layer_params(0, neuron, good, carry)  # the same layer with its valid parameters passes


def test_spec_validation_names_the_field_for_converted_layers():
    layer = LayerSpec(np.zeros((3, 2)), np.zeros(3), "if-conv", {"v0": 0.5, "fire": "ge", "reset": "soft"},
                      threshold=np.array([1.0, 0.0, 1.0]))
    spec = PolicySpec(obs_dim=2, act_dim=1, T=4, encoder="direct", preprocess="none", layers=[layer],
                      decoder_weight=np.zeros((1, 3)), decoder_bias=np.zeros(1), readout="linear")
    with pytest.raises(ValueError, match=r"array 'layer0.threshold' must be positive everywhere, got minimum 0.0"):
        spec.validate()
    layer.threshold = np.ones(3)
    spec.validate()
