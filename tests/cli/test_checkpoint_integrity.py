"""Checkpoint markers record a SHA-256 per file; resume falls back past a checkpoint that fails it, in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from spikerl.agents.callbacks import CheckpointError, verify_checkpoint

CKPT = "checkpoints"


@pytest.fixture
def run_dir(unfinished_run) -> Path:
    """A run with checkpoints at steps 100 and 200 whose process 'died' after step 250 (a fresh copy per test)."""
    return unfinished_run


def _file(run_dir: Path, step: int, suffix: str) -> Path:
    return run_dir / CKPT / f"step_{step:010d}{suffix}"


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _overwrite_4kb_random(path: Path) -> None:
    data = bytearray(path.read_bytes())
    assert len(data) > 4096
    start = (len(data) - 4096) // 2
    data[start:start + 4096] = np.random.default_rng(0).bytes(4096)
    path.write_bytes(bytes(data))


def _resume(capsys, run_dir: Path) -> tuple[int, str, str]:
    return run_cli(capsys, "train", "--resume", str(run_dir), "--quiet")


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_marker_records_size_and_sha256_of_each_file(run_dir) -> None:
    for step in (100, 200):
        marker = json.loads(_file(run_dir, step, ".json").read_text())
        for suffix in (".zip", ".replay.pkl"):
            path = _file(run_dir, step, suffix)
            assert marker["sizes"][path.name] == path.stat().st_size
            assert marker["sha256"][path.name] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert verify_checkpoint(run_dir / CKPT, step)["step"] == step


@pytest.mark.parametrize("damage", [_flip_one_byte, _overwrite_4kb_random], ids=["flipped-byte", "random-4kb"])
def test_damaged_replay_buffer_falls_back_to_the_previous_checkpoint(run_dir, capsys, damage) -> None:
    damage(_file(run_dir, 200, ".replay.pkl"))
    code, out, err = _resume(capsys, run_dir)
    assert code == 0, err
    assert err == (f"spikerl train: warning: skipped unusable checkpoint(s) in {run_dir / CKPT}: step 200: "
                   "step_0000000200.replay.pkl does not match the SHA-256 recorded when it was written; "
                   "using the one at step 100\n")
    metrics = _metrics(run_dir)
    assert (metrics["status"], metrics["resumed_from"], metrics["total_timesteps"]) == ("completed", 100, 250)


def test_damaged_model_zip_falls_back_too(run_dir, capsys) -> None:
    _flip_one_byte(_file(run_dir, 200, ".zip"))
    code, _out, err = _resume(capsys, run_dir)
    assert code == 0, err
    assert err.count("\n") == 1 and "step 200: step_0000000200.zip does not match the SHA-256" in err
    assert _metrics(run_dir)["resumed_from"] == 100


def test_every_checkpoint_damaged_is_one_clear_line(run_dir, capsys) -> None:
    _flip_one_byte(_file(run_dir, 200, ".replay.pkl"))
    _overwrite_4kb_random(_file(run_dir, 100, ".zip"))
    code, _out, err = _resume(capsys, run_dir)
    assert code == 2
    assert err == (f"spikerl train: error: no usable checkpoint in {run_dir / CKPT}: step 200: "
                   "step_0000000200.replay.pkl does not match the SHA-256 recorded when it was written; step 100: "
                   "step_0000000100.zip does not match the SHA-256 recorded when it was written; start it again: "
                   f"spikerl train <config> --run-dir {run_dir} --overwrite\n")
    assert not (run_dir / "metrics.json").exists() and not (run_dir / ".lock").exists()


def _make_legacy(run_dir: Path) -> None:
    """Markers as written before SHA-256s were recorded: sizes only."""
    for step in (100, 200):
        marker_path = _file(run_dir, step, ".json")
        marker = json.loads(marker_path.read_text())
        del marker["sha256"]
        marker_path.write_text(json.dumps(marker, indent=2))


def test_legacy_markers_without_sha256_resume_as_before(run_dir, capsys) -> None:
    _make_legacy(run_dir)
    assert "sha256" not in verify_checkpoint(run_dir / CKPT, 200)
    code, _out, err = _resume(capsys, run_dir)
    assert code == 0 and err == ""
    metrics = _metrics(run_dir)
    assert (metrics["status"], metrics["resumed_from"], metrics["total_timesteps"]) == ("completed", 200, 250)


def test_legacy_checkpoint_that_does_not_load_falls_back(run_dir, capsys) -> None:
    """Without a SHA-256 the size check passes a same-size garbage zip; loading it fails, and resume falls back."""
    _make_legacy(run_dir)
    newest = _file(run_dir, 200, ".zip")
    newest.write_bytes(b"x" * newest.stat().st_size)
    code, _out, err = _resume(capsys, run_dir)
    assert code == 0, err
    assert err.count("\n") == 1
    assert err.startswith(f"spikerl train: warning: skipped unusable checkpoint(s) in {run_dir / CKPT}: step 200: "
                          "step_0000000200.zip does not load: ")
    assert err.endswith("; using the one at step 100\n")
    assert _metrics(run_dir)["resumed_from"] == 100


def test_size_mismatch_is_named(run_dir) -> None:
    path = _file(run_dir, 200, ".replay.pkl")
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"^step_0000000200\.replay\.pkl has 1000 bytes, {size} were written$"):
        verify_checkpoint(run_dir / CKPT, 200)


def test_evaluate_uses_the_newest_good_checkpoint_and_says_so(run_dir, capsys) -> None:
    _flip_one_byte(_file(run_dir, 200, ".replay.pkl"))
    code, _out, err = run_cli(capsys, "evaluate", str(run_dir), "--episodes", "1")
    assert code == 0, err
    model = json.loads((run_dir / "evaluation.json").read_text())["model"]
    assert model.startswith("checkpoints/step_0000000100.zip (no model.zip: the run is unfinished; skipped")
    assert "step 200: step_0000000200.replay.pkl does not match the SHA-256" in model
