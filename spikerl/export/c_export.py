"""Export a spiking policy as dependency-free C99 (``spikerl export --format c``), in float32 or int8 fixed point.

    spec, manifest = spikerl.runtime.read_bundle("runs/hopper/bundle")
    write_c(spec, "runs/hopper/c-float32", manifest=manifest)                   # float32
    write_c(spec, "runs/hopper/c-int8", "int8", manifest=manifest, calib=obs)    # int8, calibrated on obs[N, D]

writes ``spikerl_policy.h``, ``spikerl_policy.c`` and ``spikerl_policy.json`` (see
:mod:`spikerl.export.c_common`); :mod:`spikerl.runtime.c_policy` builds and runs them from Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.export.c_common import PRECISIONS, write_files
from spikerl.runtime.spec import PolicySpec

__all__ = ["PRECISIONS", "write_c"]


def write_c(spec: PolicySpec, out: str | os.PathLike[str], precision: str = "float32", *,
            manifest: dict[str, Any] | None = None, calib: np.ndarray | None = None,
            source: str | None = None) -> Path:
    """Write the C export of ``spec`` into the directory ``out``; returns it.

    ``manifest``: the bundle manifest (its action space becomes the C action scaling, its env goes into the
    metadata). ``calib[N, obs_dim]``: observations the int8 export calibrates on (required for int8).
    ``source``: what the header names as the origin (default: the manifest's policy source).
    Raises ``ValueError`` with one line for what the export does not cover.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown C precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    source = source or str((manifest or {}).get("policy", {}).get("source") or "PolicySpec")
    if precision == "float32":
        from spikerl.export.c_source import float_parts

        parts = float_parts(spec)
    else:
        from spikerl.export.c_fixed import fixed_parts

        if calib is None:
            raise ValueError("int8 C export needs calibration observations (calib[N, obs_dim]); record some from "
                             "the policy's env or pass --calib FILE.npy")
        parts = fixed_parts(spec, np.asarray(calib))
    return write_files(spec, parts, out, precision=precision, manifest=manifest, source=source)
