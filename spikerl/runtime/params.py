"""The inference parameters of each neuron kind a policy spec (and a bundle manifest) may name, and their checks.

Every value is checked for type, range and finiteness, since a bundle's manifest is read from disk: a
threshold of NaN, a decay of 5 or a reset of "sometimes" would otherwise run silently and wrongly. The
ranges are those of the torch neurons (:mod:`spikerl.neurons`): thresholds positive, ``decay`` in (0, 1]
(PLIF: sigmoid(w)), ``current_decay`` in [0, 1], CRPI's ``alpha`` in [0, 1].

Messages name the field as ``layers[i].params.<name>``, the same path in a spec (``spec.layers[i].params``)
and in a manifest.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

#: inference parameters (beyond the weights) of each neuron kind, as stored in a manifest
NEURON_PARAMS: dict[str, tuple[str, ...]] = {
    "if": ("threshold", "reset"),
    "lif": ("threshold", "reset", "decay"),
    "plif": ("threshold", "reset", "decay"),
    "clif": ("threshold", "reset", "decay", "current_decay"),
    "dn": ("threshold", "current_decay", "theta_v", "theta_u", "theta_r", "theta_s", "u_sign"),
    "multi-threshold": ("threshold", "reset", "decay", "levels"),
    "if-conv": ("v0", "fire", "reset"),
    "diff-conv": ("v0", "levels", "signed"),
}
#: parameters a layer may carry besides the required ones: PLIF's learned logit w (decay = sigmoid(w), for
#: the record), the CRPI carry factor of converted layers, and DN's reset (always "hard": DN resets to theta_r)
OPTIONAL_PARAMS: dict[str, tuple[str, ...]] = {"plif": ("decay_logit",), "if-conv": ("alpha",),
                                               "diff-conv": ("alpha",), "dn": ("reset",)}
#: layer kinds of converted ANN policies (per-neuron ``threshold`` array, ``readout="linear"``)
CONVERTED_NEURONS = ("if-conv", "diff-conv")
RESETS = ("hard", "soft")
#: upper bound on graded-spike levels: a diff-conv level theta/2^i with i >= 64 is below the float64
#: resolution of theta (it cannot change a membrane of that size), and no neuron model uses more
MAX_LEVELS = 64


def is_real(value: Any) -> bool:
    """A number that is not a bool (JSON ``true`` would otherwise pass as 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An integer that is not a bool (``5.5`` and ``5.0`` are not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _number(field: str, value: Any, low: float | None = None, high: float | None = None, *,
            low_open: bool = False) -> None:
    """``ValueError`` unless ``value`` is a finite number in the interval given by low/high."""
    if low is None and high is None:
        need = "a finite number"
    else:
        need = f"a number in {'(' if low_open else '['}{low}, {high}]" if high is not None else \
            f"a number {'>' if low_open else '>='} {low}"
    if not is_real(value) or not math.isfinite(value):
        raise ValueError(f"{field} must be {need}, got {show(value)}")
    if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
        raise ValueError(f"{field} must be {need}, got {show(value)}")


def check_layer_params(index: int, neuron: str, params: Any, carry: str | None) -> None:
    """``ValueError`` naming ``layers[index].params.<name>`` unless ``params`` holds exactly the parameters of
    ``neuron`` (plus its optional ones), each of the right type and in range."""
    where = f"layers[{index}].params"
    if not isinstance(params, dict):
        raise ValueError(f"{where} must be a mapping of parameter names to values, got {show(params)}")
    missing = [k for k in NEURON_PARAMS[neuron] if k not in params]
    if missing:
        raise ValueError(f"{where} ({neuron}): missing neuron parameter(s) {', '.join(missing)}")
    unknown = sorted(set(params) - set(NEURON_PARAMS[neuron]) - set(OPTIONAL_PARAMS.get(neuron, ())))
    if unknown:
        raise ValueError(f"{where} ({neuron}): unknown parameter(s) {', '.join(map(str, unknown))}; a {neuron} layer "
                         f"takes {', '.join(NEURON_PARAMS[neuron] + OPTIONAL_PARAMS.get(neuron, ()))}")
    p = params
    if "threshold" in p:
        _number(f"{where}.threshold", p["threshold"], 0.0, None, low_open=True)
    if "decay" in p:
        _number(f"{where}.decay", p["decay"], 0.0, 1.0, low_open=True)
    if "current_decay" in p:
        _number(f"{where}.current_decay", p["current_decay"], 0.0, 1.0)
    for key in ("theta_v", "theta_u", "theta_r", "theta_s", "decay_logit", "v0"):
        if key in p:
            _number(f"{where}.{key}", p[key])
    resets = ("hard",) if neuron == "dn" else ("soft",) if neuron == "if-conv" else RESETS
    if "reset" in p and p["reset"] not in resets:
        raise ValueError(f"{where}.reset must be {' or '.join(map(repr, resets))} for a {neuron} layer, "
                         f"got {show(p['reset'])}")
    if neuron == "dn" and p["u_sign"] not in ("-", "+"):
        raise ValueError(f"{where}.u_sign must be '-' (paper) or '+' (upstream code), got {show(p['u_sign'])}")
    if neuron == "if-conv" and p["fire"] not in ("ge", "gt"):
        raise ValueError(f"{where}.fire must be 'ge' or 'gt', got {show(p['fire'])}")
    if "levels" in p and (not is_integer(p["levels"]) or not 1 <= p["levels"] <= MAX_LEVELS):
        raise ValueError(f"{where}.levels must be an integer >= 1 and <= {MAX_LEVELS} (graded spike levels; "
                         f"diff-conv: thresholds theta/2^i), got {show(p['levels'])}")
    if neuron == "diff-conv" and not isinstance(p["signed"], (bool, np.bool_)):
        raise ValueError(f"{where}.signed must be true or false, got {show(p['signed'])}")
    if neuron in CONVERTED_NEURONS and carry == "crpi" and "alpha" not in p:
        raise ValueError(f"{where} ({neuron}): carry='crpi' needs params['alpha'] in [0, 1], got None")
    if "alpha" in p:
        _number(f"{where}.alpha", p["alpha"], 0.0, 1.0)
