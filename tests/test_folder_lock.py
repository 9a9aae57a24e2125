"""spikerl.run_lock: one holder per folder, refusals that name the holder, and no block from a dead holder."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

import pytest

from spikerl.run_lock import LOCK_FILE, FolderLock, FolderLockedError, FolderLockError, LockHolder, lock_holder

HOLD = ("import sys, time; from spikerl.run_lock import FolderLock; FolderLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(120)")


@pytest.fixture
def holder(tmp_path):
    """Start another process that holds ``tmp_path / 'run'``'s lock; yields (folder, process)."""
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield folder, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _this_command() -> str:
    return shlex.join(sys.argv)


def test_second_lock_in_this_process_is_refused_naming_it(tmp_path) -> None:
    folder = tmp_path / "run"
    with FolderLock(folder, "run directory") as first:
        assert first.held and (folder / LOCK_FILE).is_file()
        with pytest.raises(FolderLockedError) as refused:
            FolderLock(folder, "run directory").acquire()
        assert refused.value.holder == LockHolder(os.getpid(), _this_command())
        assert str(refused.value) == (f"run directory {folder} is in use by another process (pid {os.getpid()}: "
                                      f"{_this_command()}); wait for it to end or stop it, then try again")
        assert lock_holder(folder) == LockHolder(os.getpid(), _this_command())
    assert not (folder / LOCK_FILE).exists() and lock_holder(folder) is None
    FolderLock(folder).acquire().release()  # free again


def test_another_process_holding_the_lock_is_named(holder) -> None:
    folder, proc = holder
    expected = LockHolder(proc.pid, shlex.join(["-c", str(folder)]))  # sys.argv of `python -c CODE FOLDER`
    assert lock_holder(folder) == expected
    with pytest.raises(FolderLockedError, match=rf"^sweep folder .* \(pid {proc.pid}: -c .*\); wait for it"):
        FolderLock(folder, "sweep folder").acquire()


def test_lock_of_a_killed_process_never_blocks(holder) -> None:
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_FILE).is_file()  # left behind, holding a dead process's pid
    assert lock_holder(folder) is None
    with FolderLock(folder) as lock:
        assert lock.held
        assert lock_holder(folder) == LockHolder(os.getpid(), _this_command())


def test_folders_created_for_the_lock_are_removed_when_left_empty(tmp_path) -> None:
    folder = tmp_path / "a" / "b"
    FolderLock(folder).acquire().release()
    assert not (tmp_path / "a").exists()
    with FolderLock(folder):
        (folder / "config.yaml").write_text("x")
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml"]


def test_a_folder_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "run"
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(30, os.strerror(30), str(path))  # EROFS
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    with pytest.raises(FolderLockError, match=rf"^cannot write to run directory {folder}: Read-only file system$"):
        FolderLock(folder, "run directory").acquire()
    assert not folder.exists()  # the folder this attempt created is removed again
