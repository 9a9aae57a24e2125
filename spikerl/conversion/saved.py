"""Converted MLP policies on disk, and their plain-array form for the torch-free runtime.

A converted-policy directory (written by ``spikerl convert``) holds::

    converted.json   format "spikerl-converted", the ConversionSpec, the MLP's layer list, the env
                     (id, kwargs, seed, algo, source run), observation/action spaces, calibration info
    policy.pt        {"ann": state_dict of the plain MLP, "thresholds": site -> theta}

:func:`mlp_from_actor` rebuilds an actor's deterministic action network as a plain
``nn.Sequential`` of ``Linear``/``ReLU``/``Tanh`` (duck-typed: SB3 TD3 ``mu``, SAC ``latent_pi``+``mu``+tanh);
:func:`load_converted` rebuilds the :class:`SpikingModel` from the saved thresholds (no calibration data).
:func:`converted_policy_spec` turns a converted MLP into a :class:`~spikerl.runtime.spec.PolicySpec` with
``if-conv`` layers (rate coding: per-neuron thresholds, v0, soft reset, graded spikes theta_j; readout
``a = tanh(W_r (theta * count / T) + b_r)``) or ``diff-conv`` layers (differential coding, DCGS: signed graded
messages +-theta_j / 2^i over T + 1 steps; readout ``a = tanh(W_r sum_t o_t / t + b_r)``), which
``spikerl.runtime`` runs, with the CRPI carry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spikerl.conversion.actor import deterministic_actor
from spikerl.conversion.convert import ConversionSpec, convert
from spikerl.conversion.model import SpikingModel

FORMAT = "spikerl-converted"
FORMAT_VERSION = 1
META_FILE = "converted.json"
WEIGHTS_FILE = "policy.pt"

_SKIP = (nn.Flatten, nn.Identity, nn.Dropout)


def mlp_from_actor(actor: nn.Module) -> nn.Sequential:
    """A plain ``nn.Sequential`` (Linear/ReLU/Tanh, float64 copies of the weights kept in their dtype) of the
    actor's deterministic action network. ValueError naming any other layer."""
    net = deterministic_actor(actor)
    layers: list[nn.Module] = []
    for name, module in net.named_modules():
        if list(module.children()):
            continue
        if isinstance(module, nn.Linear):
            lin = nn.Linear(module.in_features, module.out_features, dtype=module.weight.dtype)
            lin.load_state_dict(module.state_dict())
            layers.append(lin)
        elif isinstance(module, nn.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(module, nn.Tanh):
            layers.append(nn.Tanh())
        elif not isinstance(module, _SKIP):
            raise ValueError(f"layer {name!r} ({type(module).__name__}) of the actor is not supported for a saved "
                             "converted MLP policy; supported: Linear, ReLU, Tanh (and Flatten/Identity)")
    describe(nn.Sequential(*layers))  # validates the order
    return nn.Sequential(*layers)


def describe(mlp: nn.Sequential) -> list[dict[str, Any]]:
    """The layer list of a plain MLP: ``[{"type": "linear", "in", "out"}, {"type": "relu"}, ..., {"type": "tanh"}]``.

    Valid MLPs: ``(Linear ReLU)+ Linear [Tanh]``."""
    out: list[dict[str, Any]] = []
    for m in mlp:
        if isinstance(m, nn.Linear):
            out.append({"type": "linear", "in": m.in_features, "out": m.out_features})
        elif isinstance(m, (nn.ReLU, nn.Tanh)):
            out.append({"type": type(m).__name__.lower()})
        else:
            raise ValueError(f"unsupported layer {type(m).__name__} in a converted MLP; use Linear, ReLU, Tanh")
    kinds = [e["type"] for e in out]
    body = kinds[:-1] if kinds and kinds[-1] == "tanh" else kinds
    ok = len(body) >= 3 and body[-1] == "linear" and all(
        k == ("linear" if i % 2 == 0 else "relu") for i, k in enumerate(body))
    if not ok:
        raise ValueError(f"a converted MLP policy must be (Linear ReLU)+ Linear [Tanh], got {' '.join(kinds)}")
    return out


def build_mlp(layers: list[dict[str, Any]], dtype: torch.dtype = torch.float32) -> nn.Sequential:
    mods: list[nn.Module] = []
    for e in layers:
        if e["type"] == "linear":
            mods.append(nn.Linear(int(e["in"]), int(e["out"]), dtype=dtype))
        elif e["type"] == "relu":
            mods.append(nn.ReLU())
        elif e["type"] == "tanh":
            mods.append(nn.Tanh())
        else:
            raise ValueError(f"unknown layer type {e['type']!r} in {META_FILE}")
    return nn.Sequential(*mods)


def is_converted_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / META_FILE).is_file()


def save_converted(path: str | os.PathLike[str], mlp: nn.Sequential, snn: SpikingModel,
                   meta: dict[str, Any]) -> Path:
    """Write ``converted.json`` (``meta`` plus the spec and layer list) and ``policy.pt`` into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    spec: ConversionSpec = snn.spec
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec.to_dict(),
           "layers": describe(mlp), "dtype": str(next(mlp.parameters()).dtype).replace("torch.", ""),
           "sites": snn.site_names, **meta}
    torch.save({"ann": mlp.state_dict(), "thresholds": {k: v.cpu() for k, v in snn.thresholds.items()}},
               path / WEIGHTS_FILE)
    tmp = path / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path / META_FILE)
    return path


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    mpath = Path(path) / META_FILE
    if not mpath.is_file():
        raise ValueError(f"{path} is not a converted-policy directory (no {META_FILE}; write one with "
                         "spikerl convert RUN_DIR)")
    try:
        doc = json.loads(mpath.read_text())
    except ValueError as err:
        raise ValueError(f"{mpath}: not valid JSON ({err})") from None
    if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{mpath}: format {doc.get('format')!r} version {doc.get('format_version')!r}, expected "
                         f"{FORMAT!r} version {FORMAT_VERSION}")
    return doc


def load_converted(path: str | os.PathLike[str], dtype: torch.dtype | None = None
                   ) -> tuple[SpikingModel, nn.Sequential, dict[str, Any]]:
    """(snn, ann mlp, meta) of a converted-policy directory; ``dtype`` (e.g. torch.float64) casts both."""
    path = Path(path)
    meta = read_meta(path)
    saved_dtype = getattr(torch, meta.get("dtype", "float32"))
    mlp = build_mlp(meta["layers"], saved_dtype)
    state = torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    mlp.load_state_dict(state["ann"])
    thresholds = state["thresholds"]
    if dtype is not None:
        mlp = mlp.to(dtype)
        thresholds = {k: v.to(dtype) for k, v in thresholds.items()}
    snn = convert(mlp, ConversionSpec(**meta["spec"]), thresholds=thresholds)
    return snn, mlp, meta


def converted_policy_spec(snn: SpikingModel, mlp: nn.Sequential, extra: dict[str, Any] | None = None):
    """The :class:`~spikerl.runtime.spec.PolicySpec` of a converted MLP (linear readout a = tanh(W_r r + b_r)).

    Rate coding with the sequential ``if`` neuron without pre-simulation (methods max, percentile, qcfs,
    opi) gives ``if-conv`` layers (r = theta * count / T); differential coding (method dcgs, neurons
    ``if-diff`` / ``mth-diff``) gives ``diff-conv`` layers (r = sum_t o_t / t over the T + 1 steps). Carry
    None or crpi; the MLP must be ``(Linear ReLU)+ Linear Tanh``. ValueError for anything else (methods srp,
    cos, parallel)."""
    from spikerl.runtime.spec import LayerSpec, PolicySpec

    s = snn.settings
    params = runtime_layer_params(s)
    kind = "diff-conv" if s["coding"] == "diff" else "if-conv"
    kinds = [e["type"] for e in describe(mlp)]
    if kinds[-1] != "tanh":
        raise ValueError("the runtime's converted readout is tanh(W r + b); this MLP has no Tanh head")
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    thetas = list(snn.thresholds.values())
    if len(thetas) != len(linears) - 1:
        raise ValueError(f"expected {len(linears) - 1} activation sites, found {len(thetas)}")

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().copy()

    layers = []
    for lin, theta in zip(linears[:-1], thetas, strict=True):
        th = np.broadcast_to(arr(theta).astype(arr(lin.weight).dtype), (lin.out_features,)).copy()
        layers.append(LayerSpec(arr(lin.weight), arr(lin.bias), kind, dict(params), threshold=th))
    head = linears[-1]
    spec = PolicySpec(obs_dim=linears[0].in_features, act_dim=head.out_features, T=int(s["T"]), encoder="direct",
                      preprocess="none", layers=layers, decoder_weight=arr(head.weight), decoder_bias=arr(head.bias),
                      carry=s["carry"], readout="linear",
                      extra={"source": "converted", "output": "action", **(extra or {})})
    spec.validate()
    return spec


def runtime_layer_params(s: dict[str, Any]) -> dict[str, Any]:
    """The runtime layer parameters of a converted model's settings (``SpikingModel.settings``): if-conv
    {v0, fire, reset} or diff-conv {v0, levels, signed}, plus alpha with the CRPI carry. ValueError naming
    the supported methods when the runtime cannot run these settings."""
    if s["coding"] == "diff" and s["neuron"] in ("if-diff", "mth-diff") and s["presim"] is None:
        params: dict[str, Any] = {"v0": s["v0"], "levels": int(s["levels"]), "signed": bool(s["signed"])}
    elif s["coding"] == "rate" and s["neuron"] == "if" and s["presim"] is None:
        params = {"v0": s["v0"], "fire": s["fire"], "reset": "soft"}
    else:
        raise ValueError(f"the torch-free runtime runs converted policies with the sequential 'if' neuron and no "
                         f"pre-simulation (methods max, percentile:<p>, qcfs, opi) or with differential coding "
                         f"(method dcgs, neurons if-diff / mth-diff); this one uses method {s['method']!r}, "
                         f"neuron {s['neuron']!r}")
    if s["carry"] == "crpi":
        params["alpha"] = s["alpha"]
    return params
