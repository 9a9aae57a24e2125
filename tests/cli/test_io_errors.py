"""A full disk or a read-only folder ends `spikerl train` with one line naming the path and the cause, keeps the last
good checkpoint, leaves no temporary file and writes metrics.json status io_error where it can.

A read-only folder is made with chmod where that stops writes; as root (which chmod does not stop) writes under it
raise the error the kernel would give instead (EACCES for a chmod-ed folder, EROFS for a read-only filesystem).
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
from pathlib import Path

import pytest
from cli_helpers import ENV, run_cli, tiny
from spikerl.agents import callbacks, replay_io
from spikerl.agents.callbacks import verify_checkpoint

CKPT = "checkpoints"
TRAIN = ("train", "td3-ann", "--env", ENV, "--steps", "400", "--checkpoint-every", "100", "--quiet", "--set",
         *tiny(False))


def _chmod_stops_writes(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (probe / "x").write_text("x")
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(stat.S_IRWXU)


class ReadOnly:
    """Makes folders read-only for this process (chmod, or refused writes where chmod does not stop them)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.use_chmod = _chmod_stops_writes(tmp_path)
        self.folders: list[tuple[Path, int]] = []
        self.monkeypatch = monkeypatch
        self._patched = False

    def add(self, folder: Path, code: int = errno.EACCES) -> None:
        """From now on, nothing can be created, replaced or removed in ``folder`` (and below)."""
        if self.use_chmod:
            folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        else:
            self._patch()
        self.folders.append((folder, code))

    def restore(self) -> None:
        if self.use_chmod:
            for folder, _ in self.folders:
                folder.chmod(stat.S_IRWXU)
        self.folders.clear()

    def _refuse(self, path: object) -> None:
        for folder, code in self.folders:
            if Path(os.fspath(path)).absolute().is_relative_to(folder):
                raise OSError(code, os.strerror(code), os.fspath(path))

    def _patch(self) -> None:
        if self._patched:
            return
        self._patched = True
        real_open, real_os_open = io.open, os.open
        real = {name: getattr(os, name) for name in ("mkdir", "replace", "unlink", "rename")}

        def fake_open(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
                self._refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                self._refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def refusing(name: str):
            def call(path, *args, **kwargs):
                self._refuse(path)
                if name in ("replace", "rename"):
                    self._refuse(args[0])
                return real[name](path, *args, **kwargs)
            return call

        self.monkeypatch.setattr(io, "open", fake_open)
        self.monkeypatch.setattr(os, "open", fake_os_open)
        for name in real:
            self.monkeypatch.setattr(os, name, refusing(name))


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    ro = ReadOnly(tmp_path, monkeypatch)
    yield ro
    ro.restore()


def _leftovers(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.name.endswith(".tmp"))


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_full_disk_during_a_checkpoint(tmp_path, capsys, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    real_dump, calls = replay_io.dump_replay_buffer, []

    def dump_until_the_disk_is_full(buffer, fh) -> None:
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint (step 200): part of the file, then no space left
            fh.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_dump(buffer, fh)

    monkeypatch.setattr(replay_io, "dump_replay_buffer", dump_until_the_disk_is_full)
    code, _out, err = run_cli(capsys, *TRAIN, "--run-dir", str(run_dir))
    ckpt = run_dir / CKPT
    assert code == 1
    assert err == (f"spikerl train: error: training stopped at step 200: I/O error on {ckpt}/step_0000000200.replay.pkl"
                   f": No space left on device. The last good checkpoint is kept in {ckpt}.\n")
    assert _leftovers(run_dir) == []
    assert sorted(p.name for p in ckpt.iterdir()) == [f"step_0000000100{s}" for s in (".json", ".replay.pkl", ".zip")]
    assert verify_checkpoint(ckpt, 100)["step"] == 100
    metrics = _metrics(run_dir)
    assert (metrics["status"], metrics["total_timesteps"]) == ("io_error", 200)
    assert metrics["message"] == f"I/O error on {ckpt}/step_0000000200.replay.pkl: No space left on device"
    assert not (run_dir / ".lock").exists() and not (run_dir / "model.zip").exists()

    monkeypatch.setattr(replay_io, "dump_replay_buffer", real_dump)  # space again: the run resumes from step 100
    code, _out, err = run_cli(capsys, "train", "--resume", str(run_dir), "--quiet")
    assert code == 0, err
    assert (_metrics(run_dir)["status"], _metrics(run_dir)["resumed_from"]) == ("completed", 100)


def test_checkpoints_folder_made_read_only_mid_run(tmp_path, capsys, monkeypatch, read_only) -> None:
    run_dir = tmp_path / "run"
    ckpt = run_dir / CKPT
    real_save = callbacks.save_checkpoint

    def save(model, ckpt_dir, state, keep):
        if model.num_timesteps >= 200:
            read_only.add(ckpt_dir)
        return real_save(model, ckpt_dir, state, keep)

    monkeypatch.setattr(callbacks, "save_checkpoint", save)
    code, _out, err = run_cli(capsys, *TRAIN, "--run-dir", str(run_dir))
    read_only.restore()
    assert code == 1
    assert err == (f"spikerl train: error: training stopped at step 200: I/O error on {ckpt}/step_0000000200.zip: "
                   f"Permission denied. The last good checkpoint is kept in {ckpt}.\n")
    assert _leftovers(run_dir) == []
    assert verify_checkpoint(ckpt, 100)["step"] == 100 and not (ckpt / "step_0000000200.json").exists()
    assert _metrics(run_dir)["status"] == "io_error"


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES], ids=["read-only-filesystem", "permission-denied"])
def test_new_run_in_a_read_only_folder(tmp_path, capsys, read_only, code) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    read_only.add(parent, code)
    cause = os.strerror(code if not read_only.use_chmod else errno.EACCES)
    code_, _out, err = run_cli(capsys, *TRAIN, "--run-dir", str(parent / "run"))
    assert code_ == 2
    assert err == f"spikerl train: error: cannot create run directory {parent / 'run'}: {cause}\n"


def test_resume_in_a_read_only_run_directory(tmp_path, capsys, read_only) -> None:
    run_dir = tmp_path / "run"
    code, _out, err = run_cli(capsys, "train", "td3-ann", "--env", ENV, "--steps", "1", "--run-dir", str(run_dir),
                              "--quiet", "--set", *tiny(False), "learning_starts=0", "eval.freq=1")
    assert code == 0, err
    (run_dir / "metrics.json").unlink()  # as if it had been killed: a run to resume
    read_only.add(run_dir, errno.EROFS)
    cause = os.strerror(errno.EACCES if read_only.use_chmod else errno.EROFS)
    code, _out, err = run_cli(capsys, "train", "--resume", str(run_dir))
    assert code == 2
    assert err == f"spikerl train: error: cannot write to run directory {run_dir}: {cause}\n"
