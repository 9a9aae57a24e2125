"""Compact replay-buffer checkpoints: only the filled rows are written.

SB3's ``save_replay_buffer`` pickles the whole preallocated buffer, so a checkpoint taken after 10k
steps of a ``buffer_size=1e6`` Hopper run writes ~112 MB of zeros. Here the per-transition arrays
(first axis = ``buffer_size``) are cut to the rows written so far before pickling and re-allocated
to the full capacity on load; everything else (``pos``, ``full``, spaces, ...) is pickled as is.
A plain pickled SB3 buffer (older spikerl checkpoints, ``model.save_replay_buffer``) still loads.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

FORMAT = "spikerl-replay-buffer-v1"


def _filled_rows(buffer: ReplayBuffer) -> int:
    return int(buffer.buffer_size if buffer.full else buffer.pos)


def _row_arrays(buffer: ReplayBuffer) -> list[str]:
    """Names of the attributes holding one row per buffer slot (observations, actions, rewards, ...)."""
    return [name for name, value in vars(buffer).items()
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == buffer.buffer_size]


def dump_replay_buffer(buffer: ReplayBuffer, fh: IO[bytes]) -> None:
    """Pickle ``buffer`` into ``fh`` with its per-slot arrays cut to the filled rows."""
    rows = _filled_rows(buffer)
    names = _row_arrays(buffer)
    compact = copy.copy(buffer)  # shallow: the big arrays are replaced by views, the original is untouched
    for name in names:
        setattr(compact, name, getattr(buffer, name)[:rows])
    payload = {"format": FORMAT, "capacity": int(buffer.buffer_size), "rows": rows, "arrays": names,
               "buffer": compact}
    pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)


def read_replay_buffer(path: str | Path) -> ReplayBuffer:
    """The buffer written by :func:`dump_replay_buffer` (or a plain pickled SB3 buffer), at full capacity."""
    with open(path, "rb") as fh:
        payload: Any = pickle.load(fh)
    if isinstance(payload, ReplayBuffer):
        return payload
    if not (isinstance(payload, dict) and payload.get("format") == FORMAT):
        raise ValueError(f"{path} is neither a spikerl replay-buffer checkpoint ({FORMAT}) nor a pickled "
                         f"SB3 ReplayBuffer")
    buffer: ReplayBuffer = payload["buffer"]
    capacity, rows = int(payload["capacity"]), int(payload["rows"])
    for name in payload["arrays"]:
        part = getattr(buffer, name)
        full = np.zeros((capacity, *part.shape[1:]), dtype=part.dtype)
        full[:rows] = part
        setattr(buffer, name, full)
    return buffer


def load_replay_buffer(model: Any, path: str | Path) -> None:
    """``model.load_replay_buffer`` for spikerl checkpoints: restore the buffer and move it to the model's device."""
    buffer = read_replay_buffer(path)
    if not isinstance(buffer, ReplayBuffer):
        raise ValueError(f"{path} holds a {type(buffer).__name__}, expected a stable_baselines3 ReplayBuffer")
    buffer.device = model.device
    model.replay_buffer = buffer
