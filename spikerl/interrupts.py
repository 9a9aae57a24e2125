"""Hold SIGINT and SIGTERM until a safe point, where the caller saves its state before the signal takes effect.

A training loop interrupted at an arbitrary point (in the middle of an update, between an env step and storing
its transition) can only fall back to its last periodic checkpoint. Inside :class:`HeldInterrupts` the first SIGINT
or SIGTERM is only recorded; the loop calls :meth:`HeldInterrupts.release` at its next safe point (between two
env steps, after the previous update), having saved its state there, and the signal's own handler then runs
(``KeyboardInterrupt`` for SIGINT). A second signal does not wait: its handler runs at once.

Only signals whose current handler is a Python callable are held (SIGINT's ``default_int_handler``, the SIGTERM
handler ``spikerl train`` installs); others keep their handler (a SIGTERM left at the default still ends the
process). Signals are handled in the main thread, so outside it nothing is held. A signal still held when the
block ends (the work finished before its next safe point) is dropped: what it would have stopped is done.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HeldInterrupts:
    """Context manager; ``pending`` is the signal number waiting for :meth:`release` (None if none)."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self._handlers: dict[int, Any] = {}

    def __enter__(self) -> HeldInterrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in HELD_SIGNALS:
                handler = signal.getsignal(sig)
                if callable(handler):
                    self._handlers[sig] = handler
                    signal.signal(sig, self._hold)
        return self

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        if self.pending is not None:  # asked twice: stop now
            self._handlers[signum](signum, frame)
            return
        self.pending = signum

    def release(self) -> None:
        """At a safe point: run the held signal's own handler (which raises, for SIGINT); nothing if none is held."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self._handlers[signum](signum, None)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers.clear()
