"""Build a C export (``spikerl export --format c``) with the system C compiler and run it through ctypes.

    from spikerl.runtime.c_policy import load_c_policy
    policy = load_c_policy("runs/hopper/c-float32")    # compiles spikerl_policy.c into a shared library
    action = policy.act(obs)                             # [obs_dim] or [B, obs_dim], as spikerl.runtime.Policy
    policy.reset()                                       # at episode start (CRPI policies)

The library is built with ``-std=c99 -O2 -fPIC -shared -DSPIKERL_HOST_API`` (the host API adds the spike
counts, for the energy estimate and the tests) and cached by the SHA-256 of the sources, the compiler and the
flags. NumPy and ctypes only: importing this module never imports torch.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.energy import EnergyReport, count_energy

HEADER_FILE, SOURCE_FILE, META_FILE = "spikerl_policy.h", "spikerl_policy.c", "spikerl_policy.json"
META_FORMAT, META_VERSION = "spikerl-c", 1
DEFAULT_FLAGS = ("-std=c99", "-O2")
HOST_FLAGS = ("-fPIC", "-shared", "-DSPIKERL_HOST_API")


class CompilerError(ValueError):
    """No C compiler, or the compiler rejected the source: the message names which and the first error line."""


def find_compiler(cc: str | None = None) -> str | None:
    """``cc``, else ``$CC``, else the first of cc, gcc, clang on the PATH (None when there is none)."""
    for name in (cc, os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cache_dir() -> Path:
    root = os.environ.get("SPIKERL_C_CACHE") or os.path.join(tempfile.gettempdir(), f"spikerl-c-{os.getuid()}")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_library(path: str | os.PathLike[str], *, cc: str | None = None, flags: tuple[str, ...] = DEFAULT_FLAGS,
                  host_api: bool = True, out: str | os.PathLike[str] | None = None) -> Path:
    """Compile ``path/spikerl_policy.c`` into a shared library; returns its path (cached unless ``out``)."""
    path = Path(path)
    compiler = find_compiler(cc)
    if compiler is None:
        raise CompilerError("no C compiler found (tried $CC, cc, gcc, clang); install gcc or clang, or set CC")
    src = path / SOURCE_FILE
    if not src.is_file() or not (path / HEADER_FILE).is_file():
        raise ValueError(f"{path} is not a spikerl C export ({SOURCE_FILE} and {HEADER_FILE} expected)")
    argv_flags = [*flags, *(HOST_FLAGS if host_api else ("-fPIC", "-shared"))]
    key = hashlib.sha256()
    for part in (src.read_bytes(), (path / HEADER_FILE).read_bytes(), compiler.encode(), " ".join(argv_flags).encode()):
        key.update(part)
        key.update(b"\0")
    target = Path(out) if out is not None else _cache_dir() / f"libspikerl_policy-{key.hexdigest()[:20]}.so"
    if out is None and target.is_file():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    cmd = [compiler, *argv_flags, "-I", str(path), "-o", str(tmp), str(src), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        lines = [ln for ln in res.stderr.splitlines() if "error" in ln] or res.stderr.splitlines() or ["(no output)"]
        raise CompilerError(f"{Path(compiler).name} failed on {src}: {lines[0].strip()}")
    os.replace(tmp, target)
    return target


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


class CPolicy:
    """A compiled C export (build it with :func:`load_c_policy`); the interface of :class:`spikerl.runtime.Policy`.

    Not thread-safe: make one per thread."""

    def __init__(self, path: Path, meta: dict[str, Any], library: Path) -> None:
        self.path, self.meta, self.library = path, meta, library
        self._lib = ctypes.CDLL(str(library))
        lib = self._lib
        lib.spikerl_sizes.argtypes = [ctypes.c_void_p]
        lib.spikerl_sizes.restype = None
        lib.spikerl_reset.argtypes = [ctypes.c_void_p]
        lib.spikerl_reset.restype = None
        lib.spikerl_act_rows.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.c_void_p, ctypes.c_int]
        lib.spikerl_act_rows.restype = ctypes.c_int
        sizes = np.zeros(5, dtype=np.int32)
        lib.spikerl_sizes(sizes.ctypes.data)
        self.obs_dim, self.act_dim, self.n_counts, self.state_bytes, self.ram_bytes = (int(v) for v in sizes)
        if (self.obs_dim, self.act_dim) != (meta["obs_dim"], meta["act_dim"]):
            raise ValueError(f"{path}: the C source has obs_dim={self.obs_dim}, act_dim={self.act_dim} but "
                             f"spikerl_policy.json says {meta['obs_dim']}, {meta['act_dim']}; re-export the policy")
        self.T = int(meta["T"])
        self.precision = str(meta["precision"])
        self.env_id: str | None = (meta.get("env") or {}).get("id")
        self.count_names: list[str] = list(meta["counts"]["names"])
        self._count_sizes: list[int] = [int(n) for n in meta["counts"]["sizes"]]
        self._states: np.ndarray | None = None
        self._one = self._new_states(1)
        # one observation: preallocated buffers at fixed addresses (no per-call allocation or conversion)
        self._obs1 = np.zeros(self.obs_dim, dtype=np.float32)
        self._out1 = np.zeros(self.act_dim, dtype=np.float32)
        self._obs1_at, self._out1_at, self._one_at = _address(self._obs1), _address(self._out1), _address(self._one)
        self._act_rows = lib.spikerl_act_rows

    @property
    def stateful(self) -> bool:
        """True when the policy carries state across decisions (CRPI) until :meth:`reset`."""
        return bool(self.meta["stateful"])

    def _new_states(self, rows: int) -> np.ndarray:
        states = np.zeros((rows, self.state_bytes), dtype=np.uint8)
        for row in states:
            self._lib.spikerl_reset(row.ctypes.data)
        return states

    def _rows_states(self, rows: int) -> tuple[np.ndarray, int]:
        if not self.stateful:
            return self._one, 0
        if self._states is None:
            self._states = self._new_states(rows)
        elif self._states.shape[0] != rows:
            raise ValueError(f"the carried state has batch size {self._states.shape[0]} but this call has {rows} "
                             "observation(s); call reset() when the number of environments changes")
        return self._states, 1

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Clear the carried state (of the rows where the bool ``mask[B]`` is true; all rows without a mask)."""
        if mask is None:
            self._states = None
            return
        if self._states is None:
            return
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if mask.shape[0] != self._states.shape[0]:
            raise ValueError(f"reset(mask): mask has {mask.shape[0]} entries but the carried state has batch size "
                             f"{self._states.shape[0]}; pass one bool per environment")
        for row in np.flatnonzero(mask):
            self._lib.spikerl_reset(self._states[row].ctypes.data)

    def _prepare(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"expected an observation of shape [{self.obs_dim}] or a batch [B, {self.obs_dim}], "
                             f"got shape {obs.shape}")
        if obs.dtype.kind not in "fiub":
            raise ValueError(f"observations must be numeric, got dtype {obs.dtype}")
        return np.ascontiguousarray(obs, dtype=np.float32)

    def _run(self, obs: np.ndarray, counts: bool) -> tuple[np.ndarray, np.ndarray | None]:
        rows = obs.reshape(-1, self.obs_dim)
        out = np.empty((rows.shape[0], self.act_dim), dtype=np.float32)
        cnt = np.empty((rows.shape[0], self.n_counts), dtype=np.float32) if counts else None
        states, per_row = self._rows_states(rows.shape[0])
        rc = self._lib.spikerl_act_rows(rows.ctypes.data, rows.shape[0], out.ctypes.data,
                                        None if cnt is None else cnt.ctypes.data, states.ctypes.data, per_row)
        if rc != 0:
            self._raise_not_finite(rows, obs.ndim, rc)
        return out, cnt

    def _raise_not_finite(self, rows: np.ndarray, ndim: int, rc: int) -> None:
        b, i = divmod(rc - 1, self.obs_dim)
        where = f"({b}, {i})" if ndim == 2 else str(i)
        raise ValueError(f"observation entry at index {where} is not finite ({rows[b, i]}); the policy needs "
                         "finite observations (the C API answers it with the neutral action)")

    def act(self, obs: Any) -> np.ndarray:
        """Env action(s) for ``obs[obs_dim]`` or ``obs[B, obs_dim]`` (float32)."""
        if isinstance(obs, np.ndarray) and obs.shape == self._obs1.shape and obs.dtype.kind in "fiub":
            self._obs1[:] = obs  # cast to float32
            states, per_row = self._rows_states(1)
            at = self._one_at if states is self._one else _address(states)
            rc = self._act_rows(self._obs1_at, 1, self._out1_at, None, at, per_row)
            if rc != 0:
                self._raise_not_finite(self._obs1[None], 1, rc)
            return self._out1.copy()
        obs = self._prepare(obs)
        out, _ = self._run(obs, False)
        return out[0] if obs.ndim == 1 else out

    __call__ = act

    def act_and_count(self, obs: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(actions [B, act_dim], {name: spikes per neuron [B, n]})`` of one decision per row."""
        obs = self._prepare(obs)
        out, cnt = self._run(obs, True)
        result, start = {}, 0
        for name, size in zip(self.count_names, self._count_sizes, strict=True):
            result[name] = cnt[:, start:start + size].copy()  # type: ignore[index]
            start += size
        return out, result

    def spike_counts(self, obs: Any) -> dict[str, np.ndarray]:
        """Spikes per neuron summed over the T steps, ``{name: [B, n]}`` (a decision: advances a carry)."""
        return self.act_and_count(obs)[1]

    def energy(self, counts: dict[str, np.ndarray], model: str = "paper") -> EnergyReport:
        """Energy per decision from spike counts ``{name: [N, n]}``, counted as :meth:`Policy.energy` counts."""
        e = self.meta["energy"]
        return count_energy(counts, e["drivers"], e["fan_outs"], self.T, float(e["macs"]), model)

    def __repr__(self) -> str:
        return (f"CPolicy({self.path}, {self.precision}, obs_dim={self.obs_dim}, act_dim={self.act_dim}, T={self.T}, "
                f"state {self.ram_bytes} B, env={self.env_id})")


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked metadata (``spikerl_policy.json``) of the C export directory ``path``."""
    path = Path(path)
    mpath = path / META_FILE
    missing = [name for name in (HEADER_FILE, SOURCE_FILE, META_FILE) if not (path / name).is_file()]
    if missing:
        raise ValueError(f"{path} is not a spikerl C export ({', '.join(missing)} missing); write one with "
                         "spikerl export RUN_DIR --format c")
    try:
        meta = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{mpath}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT or meta.get("format_version") != META_VERSION:
        raise ValueError(f"{mpath}: not a spikerl C export metadata file (format {META_FORMAT!r} version "
                         f"{META_VERSION}); re-export the policy")
    return meta


def load_c_policy(path: str | os.PathLike[str], *, cc: str | None = None,
                  flags: tuple[str, ...] = DEFAULT_FLAGS) -> CPolicy:
    """Compile and load the C export directory ``path``. ``CompilerError`` when there is no C compiler or
    the source does not compile; ``ValueError`` for a directory that is not a C export."""
    path = Path(path)
    meta = read_meta(path)
    return CPolicy(path, meta, build_library(path, cc=cc, flags=flags))
