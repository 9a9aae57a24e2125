"""A child process that dies with the process that started it (``spikerl sweep``'s trainers).

A parent started with ``SPIKERL_PARENT_PID=<its pid>`` in the child's environment, and the child calls
:func:`die_with_parent_from_env` first thing. The child then:

- raises KeyboardInterrupt on SIGINT, even where it inherited SIGINT ignored or blocked;
- asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGINT)``): when the parent dies, even by
  SIGKILL, the kernel sends the child SIGINT, which ends it through its ordinary interrupt path;
- watches its parent in a daemon thread (the portable fallback, and the guard against a parent that died before
  the ``prctl``): once ``os.getppid()`` no longer names the parent, the child sends itself SIGINT (where the
  kernel could not) and, if it is still alive ``grace_s`` seconds later, exits at once.

The parent-death signal belongs to the parent *thread* that forked the child, so a parent must start such a child
from a thread that outlives it (``spikerl.sweep`` starts and waits for each trainer in the same thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

#: environment variable naming the parent process a child must not outlive
PARENT_ENV = "SPIKERL_PARENT_PID"
#: ``PR_SET_PDEATHSIG`` from ``<linux/prctl.h>``
_PR_SET_PDEATHSIG = 1
#: the exit status of a child whose parent died and that did not end on its own signal in time
ORPHAN_EXIT_CODE = 129


class ParentGoneError(RuntimeError):
    """The parent named in ``SPIKERL_PARENT_PID`` exited before this process could tie its life to it."""


def set_parent_death_signal(sig: int = signal.SIGINT) -> bool:
    """Linux only: have the kernel send ``sig`` to this process when its parent thread exits. True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, signalled_by_kernel: bool, interval_s: float, grace_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    if not signalled_by_kernel:
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(grace_s)
    os._exit(ORPHAN_EXIT_CODE)  # the interrupt path did not end the process: do not outlive the parent


def die_with_parent(parent_pid: int, *, interval_s: float = 0.5, grace_s: float = 30.0) -> None:
    """Tie this process's life to ``parent_pid`` (see the module docstring); raises :class:`ParentGoneError` when
    that process is no longer the parent (it died between starting this process and this call)."""
    if threading.current_thread() is threading.main_thread():
        # a sweep started in the background by a shell inherits SIGINT ignored, and a Ray worker runs its tasks with
        # SIGINT blocked; both pass on to this process, whose SIGINT must still raise KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signalled_by_kernel = set_parent_death_signal(signal.SIGINT)
    if os.getppid() != parent_pid:  # checked after the prctl: a parent dying in between is not missed
        raise ParentGoneError(f"the process that started this one (pid {parent_pid}) has exited")
    threading.Thread(target=_watch, args=(parent_pid, signalled_by_kernel, interval_s, grace_s),
                     name="spikerl-lifeline", daemon=True).start()


def die_with_parent_from_env() -> None:
    """:func:`die_with_parent` for the pid in ``$SPIKERL_PARENT_PID``; nothing when the variable is unset. The
    variable is removed, so that processes this one starts are not tied to a parent that is not theirs."""
    text = os.environ.pop(PARENT_ENV, "").strip()
    if not text:
        return
    try:
        parent_pid = int(text)
    except ValueError:
        raise ParentGoneError(f"{PARENT_ENV}={text!r} is not a process id") from None
    die_with_parent(parent_pid)
