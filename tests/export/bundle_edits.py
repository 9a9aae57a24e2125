"""Edits of a written bundle for the corruption tests: the manifest and weights.npz, with or without their digests
recomputed (recomputing them isolates the field check under test from the checksums)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The bundle checksum as the format defines it, written out here independently of spikerl: SHA-256 of the
    manifest as JSON with sorted keys, no whitespace, ASCII only, without the ``bundle_sha256`` entry."""
    body = {k: v for k, v in manifest.items() if k != "bundle_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest_json(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


def edit_manifest(path: Path, edit: Callable[[dict[str, Any]], Any], *, recompute: bool = True) -> None:
    """Apply ``edit`` to the manifest dict and write it back (JSON NaN/Infinity allowed, as a tamperer might);
    ``recompute``: store the new bundle checksum, so that only the edited field is wrong."""
    m = read_manifest_json(path)
    edit(m)
    if recompute and "bundle_sha256" in m:
        m["bundle_sha256"] = manifest_digest(m)
    (path / "manifest.json").write_text(json.dumps(m))


def weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / "weights.npz") as npz:
        return {k: npz[k] for k in npz.files}


def resave_weights(path: Path, *, recompute: bool = True, **changes: np.ndarray | None) -> None:
    """Rewrite weights.npz with some arrays replaced (None deletes one); ``recompute``: record the new file's
    SHA-256 (and so the new bundle checksum) in the manifest."""
    arrays = weights(path)
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    np.savez(path / "weights.npz", **arrays)
    if recompute:
        digest = hashlib.sha256((path / "weights.npz").read_bytes()).hexdigest()
        edit_manifest(path, lambda m: m["weights"].update(sha256=digest))
