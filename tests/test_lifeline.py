"""spikerl.lifeline: a process started with SPIKERL_PARENT_PID stops through its KeyboardInterrupt path when its
parent dies, even by SIGKILL, and even when it inherited SIGINT ignored and blocked (as from a shell's background job
or a Ray worker)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

#: the child: ties itself to its parent, says it is ready, then waits for a KeyboardInterrupt
CHILD = """
import sys, time
import spikerl.lifeline as lifeline
if sys.argv[2] == "watch-only":
    lifeline.set_parent_death_signal = lambda sig: False  # the portable fallback alone
lifeline.die_with_parent_from_env()
open(sys.argv[1] + ".ready", "w").close()
try:
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    open(sys.argv[1], "w").write("interrupted")
"""

#: the parent: starts the child with SIGINT ignored and blocked (both inherited), prints its pid, waits forever
PARENT = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], start_new_session=True,
                         env={**os.environ, "SPIKERL_PARENT_PID": str(os.getpid())})
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie has an empty command line
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["parent-death-signal", "watch-only"])
def test_child_stops_through_its_interrupt_path_when_the_parent_is_killed(mode, tmp_path) -> None:
    marker = tmp_path / "child"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(marker), mode], stdout=subprocess.PIPE,
                              text=True)
    try:
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 120
        while not Path(f"{marker}.ready").exists():
            assert time.monotonic() < deadline and parent.poll() is None, "the child never got ready"
            time.sleep(0.05)
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child outlived its parent"
    assert marker.read_text() == "interrupted"  # ended by KeyboardInterrupt, not killed


def test_trainer_whose_parent_is_already_gone_refuses_to_start(tmp_path) -> None:
    env = dict(os.environ, SPIKERL_PARENT_PID="1")  # not this trainer's parent
    proc = subprocess.run([sys.executable, "-m", "spikerl", "train", "td3-ann"], env=env, capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "spikerl train: error: the process that started this one (pid 1) has exited\n"
    assert not (tmp_path / "runs").exists()

