"""One writer per folder: an exclusive OS file lock on ``FOLDER/.lock`` (run directories, sweep folders).

The lock is ``flock(LOCK_EX | LOCK_NB)`` on an open file, which the kernel drops when the file is closed, so a
process that ends in any way (SIGKILL included) releases it: a lock file left behind by a dead process never blocks.
The file holds its holder's pid and command line, for the one-line message that refuses a second writer.

A holder removes the lock file before it unlocks it; a process that opened that file just before then finds, once it
holds the lock, that the path names another file (or none) and starts over, so two processes never both believe they
hold the folder. On platforms without ``fcntl`` (Windows) the lock is not taken.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: the lock file's name inside the locked folder
LOCK_FILE = ".lock"
#: how long a refused process waits for the holder's pid to appear in a lock file taken a moment ago
_HOLDER_WAIT_S = 1.0
#: how often acquiring starts over after the lock file was replaced under it (a release in between)
_ATTEMPTS = 10


@dataclass(frozen=True)
class LockHolder:
    """The process that holds a folder's lock, as it wrote itself into the lock file."""

    pid: int | None
    command: str

    def describe(self) -> str:
        pid = "an unknown pid" if self.pid is None else f"pid {self.pid}"
        return f"{pid}: {self.command}" if self.command else pid


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock (the message names it and says what to do)."""

    def __init__(self, folder: Path, holder: LockHolder, what: str) -> None:
        self.folder, self.holder = folder, holder
        super().__init__(f"{what} {folder} is in use by another process ({holder.describe()}); wait for it to end "
                         "or stop it, then try again")


class FolderLockError(RuntimeError):
    """The lock could not be taken for another reason than a holder (a read-only folder, no locking there)."""


def _command_line() -> str:
    argv = list(sys.argv)
    if argv and (Path(argv[0]).name == "spikerl" or Path(argv[0]).parent.name == "spikerl"):
        argv[0] = "spikerl"  # `spikerl ...` or `python -m spikerl ...`
    return shlex.join(argv)


def _read_holder(fd: int) -> LockHolder:
    """The holder written into the lock file open as ``fd``; waits briefly for a holder that just took the lock."""
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        raw = os.pread(fd, 65536, 0)
        try:
            data = json.loads(raw.decode("utf-8", "replace"))
            return LockHolder(int(data["pid"]), str(data.get("command", "")))
        except (ValueError, KeyError, TypeError):
            if time.monotonic() >= deadline:
                return LockHolder(None, "")
            time.sleep(0.05)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class FolderLock:
    """The exclusive lock of ``folder`` for this process: ``with FolderLock(run_dir, "run directory"): ...``.

    ``acquire`` creates the folder (and missing parents) when needed; ``release`` removes the lock file and the
    folders ``acquire`` created if they are still empty, so a start that failed before writing leaves nothing behind.
    ``what`` names the folder's kind in the refusal (``run directory``, ``sweep folder``).
    """

    def __init__(self, folder: str | Path, what: str = "folder") -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`FolderLockedError` (held by a live process) or :class:`FolderLockError`."""
        if self._fd is not None:
            raise RuntimeError(f"the lock of {self.folder} is already held by this FolderLock")
        self._created = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        for _ in range(_ATTEMPTS):
            self._make_folder()
            if fcntl is None:  # pragma: no cover - Windows
                return self
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                self._remove_created()
                raise FolderLockedError(self.folder, holder, self.what) from None
            except OSError as err:
                os.close(fd)
                self._remove_created()
                raise FolderLockError(f"cannot lock {self.path}: {err.strerror or err}") from None
            if _same_file(fd, self.path):
                self._fd = fd
                self._write_holder()
                return self
            os.close(fd)  # the holder released and removed this file between our open and our lock: start over
        raise FolderLockError(f"cannot lock {self.path}: it keeps being replaced")

    def _make_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self._remove_created()
            raise FolderLockError(f"cannot create {self.what} {self.folder}: {err.strerror or err}") from None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as err:
            self._remove_created()
            raise FolderLockError(f"cannot write to {self.what} {self.folder}: {err.strerror or err}") from None

    def _write_holder(self) -> None:
        assert self._fd is not None
        data = json.dumps({"pid": os.getpid(), "command": _command_line()}).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:  # the lock holds without its note; a refused process then names an unknown pid
            pass

    def release(self) -> None:
        """Remove the lock file, unlock, and remove the folders ``acquire`` created while they are empty."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # a read-only folder now: the file stays, unlocked, which blocks nobody
            pass
        os.close(self._fd)  # closing the only descriptor of the open file drops the flock
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []

    def __enter__(self) -> FolderLock:
        return self if self.held else self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def lock_holder(folder: str | Path) -> LockHolder | None:
    """The live process holding ``folder``'s lock, or None (no lock file, or one that nobody holds)."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        except OSError:
            return None
        return None  # closing fd below drops this shared lock
    finally:
        os.close(fd)
