"""Shared by the C export tests: skip without a C compiler, strict compile flags, direct ctypes access."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np
import pytest

from spikerl.runtime.c_policy import build_library, find_compiler, load_c_policy

#: the export must compile warning-free as strict C99
STRICT = ("-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror")

needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc, gcc, clang or $CC) on this "
                              "machine: the C export tests compile the export into a shared library")


def load_strict(path: Path):
    """The C export at ``path`` built with :data:`STRICT`."""
    return load_c_policy(path, flags=STRICT)


def object_symbols(path: Path, tmp: Path) -> tuple[set[str], set[str]]:
    """(undefined symbols, symbol types of the defined ones) of the export compiled as a device object file."""
    obj = tmp / "spikerl_policy.o"
    subprocess.run([find_compiler(), *STRICT, "-c", "-I", str(path), "-o", str(obj), str(path / "spikerl_policy.c")],
                   check=True, capture_output=True, text=True)
    out = subprocess.run(["nm", str(obj)], check=True, capture_output=True, text=True).stdout.splitlines()
    undefined = {line.split()[-1] for line in out if line.split()[0] == "U"}
    kinds = {line.split()[1] for line in out if len(line.split()) == 3}
    return undefined, kinds


class RawC:
    """The host-API library of an export called directly: ``act``, ``checked`` and ``reset`` on one state."""

    def __init__(self, path: Path, obs_dim: int, act_dim: int) -> None:
        self.lib = ctypes.CDLL(str(build_library(path, flags=STRICT)))
        sizes = np.zeros(5, dtype=np.int32)
        self.lib.spikerl_sizes(sizes.ctypes.data_as(ctypes.c_void_p))
        self.state = np.zeros(int(sizes[3]), dtype=np.uint8)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.lib.spikerl_act_checked.restype = ctypes.c_int
        self.reset()

    def _ptr(self, a: np.ndarray) -> ctypes.c_void_p:
        return ctypes.c_void_p(a.ctypes.data)

    def reset(self) -> None:
        self.lib.spikerl_reset(self._ptr(self.state))

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        out = np.full(self.act_dim, np.nan, dtype=np.float32)
        self.lib.spikerl_act(self._ptr(obs), self._ptr(out), self._ptr(self.state))
        return out

    def checked(self, obs: np.ndarray, length: int) -> tuple[int, np.ndarray]:
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        out = np.full(self.act_dim, np.nan, dtype=np.float32)
        rc = self.lib.spikerl_act_checked(self._ptr(obs), ctypes.c_int(length), self._ptr(out), self._ptr(self.state))
        return int(rc), out
