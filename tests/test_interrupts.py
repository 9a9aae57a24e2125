"""spikerl.interrupts.HeldInterrupts: the first SIGINT/SIGTERM waits for release(), a second one acts at once, the
handlers come back afterwards, and a signal without a Python handler is not held."""

from __future__ import annotations

import os
import signal

import pytest

from spikerl.interrupts import HeldInterrupts


def _raise_term(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def test_the_first_signal_waits_for_release() -> None:
    with HeldInterrupts() as held:
        os.kill(os.getpid(), signal.SIGINT)  # delivered to this (main) thread before os.kill returns
        assert held.pending == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            held.release()
        assert held.pending is None
        held.release()  # nothing held: nothing happens
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_signal_does_not_wait() -> None:
    with HeldInterrupts() as held:
        os.kill(os.getpid(), signal.SIGINT)
        assert held.pending == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_sigterm_is_held_when_it_has_a_python_handler_and_runs_that_handler() -> None:
    previous = signal.signal(signal.SIGTERM, _raise_term)
    try:
        with HeldInterrupts() as held:
            os.kill(os.getpid(), signal.SIGTERM)
            assert held.pending == signal.SIGTERM
            with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
                held.release()
        assert signal.getsignal(signal.SIGTERM) is _raise_term
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_still_held_at_the_end_is_dropped_and_default_handlers_are_left_alone() -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with HeldInterrupts() as held:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # no Python handler: not held
        os.kill(os.getpid(), signal.SIGINT)
    assert held.pending == signal.SIGINT  # the work finished first; leaving the block raised nothing
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
