"""The field checks of a bundle's ``manifest.json``: every value's type, range and finiteness, and the fields'
agreement with each other and with the arrays of ``weights.npz``.

A manifest is read from disk, so nothing in it is trusted: a missing ``action_space`` would leave actions
unscaled, swapped bounds would flip their sign, ``T: 5.5`` would run with T = 5. Each check raises a
``ValueError`` whose message starts with the field's path (``action_space.low[1]``,
``layers[0].params.decay``); :func:`spikerl.runtime.bundle.read_bundle` prefixes the file.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from spikerl.runtime.params import NEURON_PARAMS, is_integer, is_real, show
from spikerl.runtime.spec import ENCODER_THRESHOLD, ENCODERS, MAX_T, PREPROCESS, READOUTS

#: every key the writer has put in a format-1 manifest since the format's first version
REQUIRED_KEYS = ("format", "format_version", "created", "versions", "policy", "obs_dim", "act_dim", "T", "dtype",
                 "coding", "layers", "observation_space", "action_space", "action_scaling", "env", "actor_config",
                 "weights")
DTYPES = ("float32", "float64")
SCALING_KINDS = ("affine", "none")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: the JSON spellings of infinite bounds a space may hold (JSON has no infinity)
_INFINITIES = {"inf": math.inf, "-inf": -math.inf}


def check_manifest(manifest: dict[str, Any]) -> None:
    """``ValueError`` naming the first field of ``manifest`` with a wrong type or value (the arrays are checked
    against it by :func:`check_arrays`)."""
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    for key in ("obs_dim", "act_dim"):
        _integer(key, manifest[key], 1)
    _integer("T", manifest["T"], 1, MAX_T)
    _choice("dtype", manifest["dtype"], DTYPES)
    _check_coding(manifest["coding"])
    _check_layers(manifest["layers"])
    _check_policy(manifest["policy"])
    space_bounds(manifest["observation_space"], "observation_space", manifest["obs_dim"], finite=False)
    _check_action(manifest["action_space"], manifest["action_scaling"], manifest["act_dim"])
    _check_env(manifest["env"])
    _mapping("versions", manifest["versions"])
    bad = [k for k, v in manifest["versions"].items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"versions.{bad[0]} must be a version string, got {show(manifest['versions'][bad[0]])}")
    if not isinstance(manifest["created"], str):
        raise ValueError(f"created must be a timestamp string, got {show(manifest['created'])}")
    if manifest["actor_config"] is not None:
        _mapping("actor_config", manifest["actor_config"])
    _check_weights_entry(manifest["weights"])


def check_arrays(manifest: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """``ValueError`` unless the arrays agree with the manifest: ``weights.arrays`` lists exactly their names,
    shapes and dtypes, and each layer's ``in``/``out`` are its weight's columns and rows."""
    listed = manifest["weights"]["arrays"]
    extra, absent = sorted(set(arrays) - set(listed)), sorted(set(listed) - set(arrays))
    if extra or absent:
        raise ValueError(f"weights.arrays lists {', '.join(sorted(listed))} but weights.npz holds "
                         f"{', '.join(sorted(arrays))}")
    for name, arr in arrays.items():
        entry = listed[name]
        if list(arr.shape) != entry["shape"] or arr.dtype.name != entry["dtype"]:
            raise ValueError(f"weights.arrays[{name!r}] says shape {entry['shape']} and dtype {entry['dtype']}, the "
                             f"array has shape {list(arr.shape)} and dtype {arr.dtype.name}")
    for i, layer in enumerate(manifest["layers"]):
        weight = arrays.get(f"layer{i}.weight")
        if weight is not None and weight.ndim == 2 and (layer["out"], layer["in"]) != weight.shape:
            raise ValueError(f"layers[{i}] says in={layer['in']}, out={layer['out']} but layer{i}.weight has shape "
                             f"{weight.shape} (out, in)")


def space_bounds(space: Any, field: str, dim: int, *, finite: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) float64 arrays of a manifest space (None for a null space), after checking its shape
    ``[dim]``, that every bound is a number (or ``"inf"``/``"-inf"`` unless ``finite``) and low <= high
    (low < high when ``finite``: the action scaling divides the range)."""
    if space is None:
        return None
    _mapping(field, space)
    for key in ("shape", "low", "high", "dtype"):
        if key not in space:
            raise ValueError(f"{field}.{key} is missing")
    if space["shape"] != [dim]:
        raise ValueError(f"{field}.shape must be [{dim}] (the policy's size), got {show(space['shape'])}")
    bounds = []
    for key in ("low", "high"):
        values = space[key]
        if not isinstance(values, list) or len(values) != dim:
            got = f"{len(values)} value(s)" if isinstance(values, list) else show(values)
            raise ValueError(f"{field}.{key} must be a list of {dim} number(s) (shape {space['shape']}), got {got}")
        bounds.append(np.array([_bound(f"{field}.{key}[{j}]", v, finite) for j, v in enumerate(values)],
                               dtype=np.float64))
    low, high = bounds
    wrong = np.flatnonzero(low >= high if finite else low > high)
    if wrong.size:
        j = int(wrong[0])
        relation = "below" if finite else "at most"
        raise ValueError(f"{field}.low must be {relation} {field}.high in every dimension; dimension {j} has low "
                         f"{float(low[j])!r}, high {float(high[j])!r}")
    if not isinstance(space["dtype"], str) or not _is_float_dtype(space["dtype"]):
        raise ValueError(f"{field}.dtype must name a NumPy float dtype, got {show(space['dtype'])}")
    return low, high


# ---------------------------------------------------------------------------------------------------
# the parts
# ---------------------------------------------------------------------------------------------------
def _check_coding(coding: Any) -> None:
    _mapping("coding", coding)
    for key in ("encoder", "preprocess", "pop_dim", "decoder_pop_dim", "encoder_equations", "decoder_equations"):
        if key not in coding:
            raise ValueError(f"coding.{key} is missing")
    _choice("coding.encoder", coding["encoder"], ENCODERS)
    _choice("coding.preprocess", coding["preprocess"], PREPROCESS)
    _choice("coding.readout", coding.get("readout", "population"), READOUTS)  # absent in the first bundles
    _integer("coding.pop_dim", coding["pop_dim"], 1, None if coding["encoder"] == "pop" else 1)
    _integer("coding.decoder_pop_dim", coding["decoder_pop_dim"], 1)
    if coding["encoder"] == "pop" and coding.get("encoder_threshold") != ENCODER_THRESHOLD:
        raise ValueError(f"coding.encoder_threshold must be {ENCODER_THRESHOLD} (the runtime's population encoder), "
                         f"got {show(coding.get('encoder_threshold'))}")
    for key in ("encoder_equations", "decoder_equations"):
        _strings(f"coding.{key}", coding[key])


def _check_layers(layers: Any) -> None:
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"layers must be a non-empty list, got {show(layers)}")
    for i, layer in enumerate(layers):
        field = f"layers[{i}]"
        _mapping(field, layer)
        for key in ("name", "in", "out", "neuron", "params", "equations"):
            if key not in layer:
                raise ValueError(f"{field}.{key} is missing")
        if layer["neuron"] not in NEURON_PARAMS:
            raise ValueError(f"{field}.neuron: unknown neuron {show(layer['neuron'])}; this runtime runs "
                             f"{', '.join(NEURON_PARAMS)}")
        if not isinstance(layer["name"], str):
            raise ValueError(f"{field}.name must be a string, got {show(layer['name'])}")
        _integer(f"{field}.in", layer["in"], 1)
        _integer(f"{field}.out", layer["out"], 1)
        _mapping(f"{field}.params", layer["params"])
        _strings(f"{field}.equations", layer["equations"])
        if i and layer["in"] != layers[i - 1]["out"]:
            raise ValueError(f"{field}.in is {layer['in']} but layers[{i - 1}].out is {layers[i - 1]['out']}")


def _check_policy(policy: Any) -> None:
    _mapping("policy", policy)
    carry = policy.get("carry")
    if carry not in (None, "crpi"):
        raise ValueError(f"policy.carry must be null or 'crpi', got {show(carry)}")
    if "stateful" in policy and policy["stateful"] is not (carry is not None):
        raise ValueError(f"policy.stateful must be {str(carry is not None).lower()} with policy.carry "
                         f"{show(carry)}, got {show(policy['stateful'])}")
    for key in ("source", "output"):
        if policy.get(key) is not None and not isinstance(policy[key], str):
            raise ValueError(f"policy.{key} must be a string, got {show(policy[key])}")


def _check_action(space: Any, scaling: Any, act_dim: int) -> None:
    _mapping("action_scaling", scaling)
    kind = scaling.get("kind")
    _choice("action_scaling.kind", kind, SCALING_KINDS)
    if kind == "affine" and space is None:
        raise ValueError("action_space is null but action_scaling.kind is 'affine' (scaling onto the action space)")
    if kind == "none" and space is not None:
        raise ValueError("action_scaling.kind is 'none' but an action_space is given; a bundle with an action space "
                         "scales onto it ('affine')")
    space_bounds(space, "action_space", act_dim, finite=True)


def _check_env(env: Any) -> None:
    if env is None:
        return
    _mapping("env", env)
    if "id" in env and (not isinstance(env["id"], str) or not env["id"]):
        raise ValueError(f"env.id must be a Gymnasium env id, got {show(env['id'])}")
    if "kwargs" in env:
        _mapping("env.kwargs", env["kwargs"])
    if "seed" in env:
        _integer("env.seed", env["seed"], 0)


def _check_weights_entry(weights: Any) -> None:
    _mapping("weights", weights)
    if weights.get("file") != "weights.npz":
        raise ValueError(f"weights.file must be 'weights.npz', got {show(weights.get('file'))}")
    if not isinstance(weights.get("sha256"), str) or not _HEX64.fullmatch(weights["sha256"]):
        raise ValueError(f"weights.sha256 must be 64 lowercase hex digits, got {show(weights.get('sha256'))}")
    listed = weights.get("arrays")
    _mapping("weights.arrays", listed)
    for name, entry in listed.items():
        field = f"weights.arrays[{name!r}]"
        _mapping(field, entry)
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(is_integer(s) and s >= 0 for s in shape):
            raise ValueError(f"{field}.shape must be a list of sizes, got {show(shape)}")
        _choice(f"{field}.dtype", entry.get("dtype"), DTYPES)


# ---------------------------------------------------------------------------------------------------
# value checks
# ---------------------------------------------------------------------------------------------------
def _integer(field: str, value: Any, low: int, high: int | None = None) -> None:
    if not is_integer(value) or value < low or (high is not None and value > high):
        need = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{field} must be an integer {need}, got {show(value)}")


def _choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(map(repr, choices))}, got {show(value)}")


def _mapping(field: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be a JSON object, got {show(value)}")


def _strings(field: str, value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of strings, got {show(value)}")


def _bound(field: str, value: Any, finite: bool) -> float:
    """One space bound: a finite JSON number, or (unless ``finite``) ``"inf"`` / ``"-inf"``."""
    if is_real(value) and math.isfinite(value):
        return float(value)
    if not finite and isinstance(value, str) and value in _INFINITIES:
        return _INFINITIES[value]
    need = "a finite number" if finite else 'a finite number, "inf" or "-inf"'
    raise ValueError(f"{field} must be {need}, got {show(value)}")


def _is_float_dtype(name: str) -> bool:
    try:
        return np.dtype(name).kind == "f"
    except TypeError:
        return False
