"""The policy bundle: a directory with ``weights.npz`` and ``manifest.json`` (NumPy and JSON only, no torch).

``manifest.json`` (format ``spikerl-bundle``, version :data:`FORMAT_VERSION`) holds everything needed to run
the policy besides the weights: T, the coding (encoder kind, population sizes, preprocessing), every
layer's size, neuron model, parameters (PLIF: the learned decay) and update equations as text, the
observation/action spaces (shape, low, high) and the action scaling ``a_env = low + (a + 1)/2 (high - low)``
(Stable-Baselines3's ``unscale_action``), the env it was trained on, versions, the SHA-256 of ``weights.npz``
and ``bundle_sha256``, the SHA-256 of the manifest itself (:func:`bundle_sha256`), which holds the weights'
digest and so covers the whole bundle. :func:`write_bundle` writes a bundle atomically (a temporary directory
renamed into place); :func:`read_bundle` verifies both digests, checks every manifest field
(:mod:`spikerl.runtime.manifest`) and the arrays, and gives one :class:`BundleError` per problem, naming the
file and the field. A bundle without ``bundle_sha256`` (written before bundles carried it) still loads,
with one :class:`BundleWarning` line saying that its manifest is not covered by a checksum.

New layer kinds stay within format version 1 (``diff-conv``, differential-coding converted policies, was
added so): a bundle names each layer's neuron, and a runtime that does not know one refuses the bundle with
"unknown neuron" rather than running it wrongly; every older bundle still loads unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.runtime.manifest import check_arrays, check_manifest, space_bounds
from spikerl.runtime.params import show
from spikerl.runtime.spec import ENCODER_THRESHOLD, LayerSpec, PolicySpec, first_non_finite, neuron_equations

FORMAT = "spikerl-bundle"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.npz"
SCALING_EQUATION = "a_env = low + (a + 1) / 2 * (high - low)"
CHECKSUM_KEY = "bundle_sha256"


class BundleError(ValueError):
    """A missing, malformed or tampered bundle: the message names the file, the field and what is wrong."""


class BundleWarning(UserWarning):
    """A bundle that loads but is less protected than a current one (no manifest checksum)."""


# ---------------------------------------------------------------------------------------------------
# spaces
# ---------------------------------------------------------------------------------------------------
def _num(x: float) -> float | str:
    x = float(x)
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def space_to_json(space: Any, what: str) -> dict[str, Any] | None:
    """``{"shape", "low", "high"}`` of a Box-like space (``.shape``, ``.low``, ``.high``) or such a dict."""
    if space is None:
        return None
    if isinstance(space, dict):
        shape, low, high = space.get("shape"), space.get("low"), space.get("high")
    else:
        shape, low, high = getattr(space, "shape", None), getattr(space, "low", None), getattr(space, "high", None)
    if shape is None or low is None or high is None:
        raise ValueError(f"{what}: expected a Box space (with shape, low and high), got {space!r}")
    shape = tuple(int(s) for s in shape)
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), shape)
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), shape)
    dtype = space.get("dtype", "float32") if isinstance(space, dict) else getattr(space, "dtype", "float32")
    return {"shape": list(shape), "low": [_num(v) for v in low.ravel()], "high": [_num(v) for v in high.ravel()],
            "dtype": str(np.dtype(dtype))}


# ---------------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_sha256(manifest: dict[str, Any]) -> str:
    """The SHA-256 of the manifest's canonical JSON (sorted keys, no whitespace, ASCII, ``bundle_sha256`` left
    out). The manifest holds the SHA-256 of ``weights.npz``, so this one digest covers the whole bundle."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _versions(extra: dict[str, str] | None) -> dict[str, str]:
    from spikerl import __version__

    return {"spikerl": __version__, "numpy": np.__version__, "python": platform.python_version(), **(extra or {})}


def build_manifest(spec: PolicySpec, weights_sha256: str, *, observation_space: Any = None,
                   action_space: Any = None, env: dict[str, Any] | None = None,
                   versions: dict[str, str] | None = None) -> dict[str, Any]:
    """The manifest dict of ``spec`` (see the module docstring)."""
    obs_space = space_to_json(observation_space, "observation_space")
    act_space = space_to_json(action_space, "action_space")
    if obs_space is not None and obs_space["shape"] != [spec.obs_dim]:
        raise ValueError(f"observation_space has shape {obs_space['shape']} but the policy takes {spec.obs_dim} "
                         "inputs")
    scaling: dict[str, Any] = {"kind": "none", "equation": "a_env = a  (actions in [-1, 1])"}
    if act_space is not None:
        if act_space["shape"] != [spec.act_dim]:
            raise ValueError(f"action_space has shape {act_space['shape']} but the policy gives {spec.act_dim} "
                             "actions")
        if any(isinstance(v, str) for v in act_space["low"] + act_space["high"]):
            raise ValueError("action_space must have finite low and high to scale [-1, 1] actions onto it")
        space_bounds(act_space, "action_space", spec.act_dim, finite=True)  # low < high in every dimension
        scaling = {"kind": "affine", "equation": SCALING_EQUATION}
    diff = spec.layers[-1].neuron == "diff-conv"
    coding: dict[str, Any] = {"encoder": spec.encoder, "preprocess": spec.preprocess, "pop_dim": spec.pop_dim,
                              "decoder_pop_dim": spec.decoder_pop_dim}
    if spec.encoder == "pop":
        coding["encoder_threshold"] = ENCODER_THRESHOLD
        coding["encoder_equations"] = ["s = tanh(obs)" if spec.preprocess == "tanh" else "s = obs",
                                       "A_ij = exp(-0.5 (s_i - mean_ij)^2 / std_ij^2)",
                                       "V_t = V_{t-1} + A; S_t = [V_t > 0.999]; V_t = V_t - 0.999 S_t"]
    elif diff:
        coding["encoder_equations"] = ["s = tanh(obs)" if spec.preprocess == "tanh" else "s = obs",
                                       "differential coding, steps t = 0..T: I_1 = W s + b (the analog input "
                                       "current, sent once), I_t = 0 for t != 1"]
    else:
        coding["encoder_equations"] = ["s = tanh(obs)" if spec.preprocess == "tanh" else "s = obs",
                                       "I_t = W s + b at every step t (analog input current)"]
    coding["readout"] = spec.readout
    if spec.readout == "linear":
        rate = ("r_j = sum_{t=1..T} o_jt / t  (decoded rate of last-layer neuron j's messages o_jt)" if diff else
                "r_j = theta_j (spikes of last-layer neuron j over T) / T")
        coding["decoder_equations"] = [rate, "a_k = tanh(sum_j w_kj r_j + b_k)"]
        names = [f"hidden{i}" for i in range(len(spec.layers))]
    else:
        coding["decoder_equations"] = ["r_kj = (spikes of output neuron k*pop+j over T) / T",
                                       "a_k = tanh(sum_j w_kj r_kj + b_k)"]
        names = [f"hidden{i}" for i in range(len(spec.layers) - 1)] + ["output"]
    layers = [{"name": name, "in": layer.n_in, "out": layer.n_out, "neuron": layer.neuron,
               "params": dict(layer.params), "equations": neuron_equations(layer.neuron, layer.params)}
              for name, layer in zip(names, spec.layers, strict=True)]
    arrays = spec.arrays()
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": _versions(versions),
        "policy": {"source": spec.extra.get("source", "PolicySpec"), "output": spec.extra.get("output", "action"),
                   "stateful": spec.carry is not None, "carry": spec.carry},
        "obs_dim": spec.obs_dim, "act_dim": spec.act_dim, "T": spec.T, "dtype": spec.dtype.name,
        "coding": coding, "layers": layers,
        "observation_space": obs_space, "action_space": act_space, "action_scaling": scaling,
        "env": env,
        "actor_config": spec.extra.get("actor_config"),
        "weights": {"file": WEIGHTS_FILE, "sha256": weights_sha256,
                    "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()}},
    }


def write_bundle(spec: PolicySpec, path: str | os.PathLike[str], *, observation_space: Any = None,
                 action_space: Any = None, env: dict[str, Any] | None = None,
                 versions: dict[str, str] | None = None) -> Path:
    """Write ``spec`` as a bundle directory at ``path`` (atomically; an existing bundle there is replaced)."""
    spec.validate()
    path = Path(path)
    if path.exists() and not (path / MANIFEST_FILE).is_file() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} exists and is not a spikerl bundle; choose another path or remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()  # not mkdtemp: the bundle keeps the mode of a folder made here (mkdtemp's is 0700)
    try:
        np.savez(tmp / WEIGHTS_FILE, **spec.arrays())
        manifest = build_manifest(spec, sha256_file(tmp / WEIGHTS_FILE), observation_space=observation_space,
                                  action_space=action_space, env=env, versions=versions)
        manifest = json.loads(json.dumps(manifest, allow_nan=False))  # hash what a reader will see (tuples: lists)
        manifest[CHECKSUM_KEY] = bundle_sha256(manifest)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "bundle")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ---------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------
def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of the bundle at ``path``: format, version, ``bundle_sha256`` and every field."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle directory (expected a directory with {MANIFEST_FILE} and "
                          f"{WEIGHTS_FILE}, as written by spikerl export --format bundle)")
    mpath = path / MANIFEST_FILE
    if not mpath.is_file():
        raise BundleError(f"{path}: {MANIFEST_FILE} is missing; not a spikerl bundle (export the run again with "
                          "spikerl export --format bundle)")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BundleError(f"{mpath}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleError(f"{mpath}: format is {got!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise BundleError(f"{mpath}: unknown format_version {version!r}; this spikerl reads "
                          f"{', '.join(map(str, SUPPORTED_VERSIONS))} (upgrade spikerl or re-export the policy)")
    _verify_checksum(manifest, mpath)
    try:
        check_manifest(manifest)
    except ValueError as err:
        raise BundleError(f"{mpath}: {err}") from None
    return manifest


def _verify_checksum(manifest: dict[str, Any], mpath: Path) -> None:
    recorded = manifest.get(CHECKSUM_KEY)
    if recorded is None:
        warnings.warn(f"{mpath}: no {CHECKSUM_KEY} (a bundle from an older spikerl): weights.npz is checksummed but "
                      "the manifest is not; export the policy again to cover both", BundleWarning, stacklevel=4)
        return
    if not isinstance(recorded, str) or len(recorded) != 64 or recorded.strip("0123456789abcdef"):
        raise BundleError(f"{mpath}: {CHECKSUM_KEY} must be 64 lowercase hex digits, got {show(recorded)}")
    actual = bundle_sha256(manifest)
    if actual != recorded:
        raise BundleError(f"{mpath}: {CHECKSUM_KEY} mismatch (recorded {recorded[:16]}..., the manifest hashes to "
                          f"{actual[:16]}...); the manifest was modified or corrupted, export the policy again")


def _load_arrays(path: Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    wpath = path / WEIGHTS_FILE
    if not wpath.is_file():
        raise BundleError(f"{path}: {WEIGHTS_FILE} is missing")
    expected = manifest["weights"]["sha256"]
    actual = sha256_file(wpath)
    if actual != expected:
        raise BundleError(f"{wpath}: SHA-256 checksum mismatch (manifest {expected}, file {actual}); the weights "
                          "were modified or corrupted, re-export the bundle")
    try:
        with np.load(wpath, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise BundleError(f"{wpath}: unreadable ({err})") from None


def read_bundle(path: str | os.PathLike[str]) -> tuple[PolicySpec, dict[str, Any]]:
    """(spec, manifest) of the bundle at ``path``, checked: both checksums, every manifest field, array names,
    shapes, dtypes and finiteness, neuron parameters."""
    path = Path(path)
    manifest = read_manifest(path)
    arrays = _load_arrays(path, manifest)
    mpath, wpath = path / MANIFEST_FILE, path / WEIGHTS_FILE
    coding = manifest["coding"]
    layers = []
    for i, entry in enumerate(manifest["layers"]):
        w, b = arrays.get(f"layer{i}.weight"), arrays.get(f"layer{i}.bias")
        if w is None or b is None:
            raise BundleError(f"{wpath}: layer{i}.weight or layer{i}.bias is missing")
        layers.append(LayerSpec(w, b, entry["neuron"], dict(entry["params"]),
                                threshold=arrays.get(f"layer{i}.threshold")))
    pop = coding["encoder"] == "pop"
    spec = PolicySpec(
        obs_dim=manifest["obs_dim"], act_dim=manifest["act_dim"], T=manifest["T"],
        encoder=coding["encoder"], preprocess=coding["preprocess"], layers=layers,
        decoder_weight=arrays.get("decoder.weight"), decoder_bias=arrays.get("decoder.bias"),  # type: ignore
        pop_dim=coding["pop_dim"], encoder_mean=arrays.get("encoder.mean") if pop else None,
        encoder_std=arrays.get("encoder.std") if pop else None, carry=manifest["policy"].get("carry"),
        readout=coding.get("readout", "population"),
        extra={"source": manifest["policy"].get("source"), "output": manifest["policy"].get("output")},
    )
    if spec.decoder_weight is None or spec.decoder_bias is None:
        raise BundleError(f"{wpath}: decoder.weight or decoder.bias is missing")
    unknown = sorted(set(arrays) - set(spec.expected_shapes()))
    if unknown:
        raise BundleError(f"{wpath}: unexpected array(s) {', '.join(unknown)}")
    for name, shape in spec.expected_shapes().items():
        arr = arrays.get(name)
        if arr is None:
            raise BundleError(f"{wpath}: array {name!r} is missing")
        if tuple(arr.shape) != shape:
            raise BundleError(f"{wpath}: array {name!r} has shape {tuple(arr.shape)}, the manifest's sizes need "
                              f"{shape}")
        if arr.dtype != np.dtype(manifest["dtype"]):
            raise BundleError(f"{wpath}: array {name!r} has dtype {arr.dtype}, expected {manifest['dtype']} "
                              "(the manifest's dtype)")
        bad = first_non_finite(arr)
        if bad is not None:
            raise BundleError(f"{wpath}: array {name!r} holds {bad}; a policy's weights must be finite")
    try:
        check_arrays(manifest, arrays)
    except ValueError as err:
        raise BundleError(f"{mpath}: {err}") from None
    try:
        spec.validate()
    except ValueError as err:  # array values live in weights.npz, everything else in the manifest
        raise BundleError(f"{wpath if str(err).startswith('array ') else mpath}: {err}") from None
    return spec, manifest
