"""Compact replay-buffer checkpoints: only filled rows are written, and the restored buffer equals the original."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from gymnasium import spaces
from spikerl.agents.replay_io import dump_replay_buffer, load_replay_buffer, read_replay_buffer
from stable_baselines3.common.buffers import ReplayBuffer

OBS = spaces.Box(-np.inf, np.inf, (11,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (3,), np.float32)


def filled_buffer(capacity: int, steps: int, seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(capacity, OBS, ACT, device="cpu")
    for _ in range(steps):
        buf.add(rng.normal(size=(1, 11)).astype(np.float32), rng.normal(size=(1, 11)).astype(np.float32),
                rng.uniform(-1, 1, size=(1, 3)).astype(np.float32), rng.normal(size=1).astype(np.float32),
                rng.uniform(size=1) < 0.1, [{"TimeLimit.truncated": bool(rng.uniform() < 0.05)}])
    return buf


def roundtrip(buf: ReplayBuffer, tmp_path) -> tuple[ReplayBuffer, int]:
    path = tmp_path / "buf.pkl"
    with open(path, "wb") as fh:
        dump_replay_buffer(buf, fh)
    return read_replay_buffer(path), path.stat().st_size


def assert_same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert (a.pos, a.full, a.buffer_size) == (b.pos, b.full, b.buffer_size)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_partly_filled_buffer_writes_only_its_rows_and_restores_exactly(tmp_path) -> None:
    buf = filled_buffer(capacity=20_000, steps=300)
    restored, size = roundtrip(buf, tmp_path)
    assert_same(buf, restored)
    full_size = len(pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL))
    assert size < full_size / 20  # 300 of 20000 rows
    # the restored buffer keeps filling and sampling like the original
    restored.add(np.zeros((1, 11), np.float32), np.zeros((1, 11), np.float32), np.zeros((1, 3), np.float32),
                 np.ones(1, np.float32), np.array([False]), [{}])
    assert restored.pos == 301 and restored.rewards[300, 0] == 1.0
    assert restored.sample(64).observations.shape == (64, 11)


def test_wrapped_full_buffer_restores_exactly(tmp_path) -> None:
    buf = filled_buffer(capacity=100, steps=250)
    assert buf.full and buf.pos == 50
    restored, _ = roundtrip(buf, tmp_path)
    assert_same(buf, restored)


def test_dump_leaves_the_live_buffer_untouched(tmp_path) -> None:
    buf = filled_buffer(capacity=1000, steps=10)
    shape = buf.observations.shape
    dump_replay_buffer(buf, io.BytesIO())
    assert buf.observations.shape == shape == (1000, 1, 11)


def test_plain_sb3_pickle_still_loads_and_model_gets_it(tmp_path) -> None:
    buf = filled_buffer(capacity=50, steps=20)
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(buf))
    model = SimpleNamespace(device="cpu", replay_buffer=None)
    load_replay_buffer(model, path)
    assert_same(buf, model.replay_buffer)


def test_foreign_pickle_is_rejected_with_what_was_expected(tmp_path) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="neither a spikerl replay-buffer checkpoint"):
        read_replay_buffer(path)
