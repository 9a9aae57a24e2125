"""Process-wide CPU settings of training: subnormal floats flushed to zero on torch's worker threads too."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_helpers import run_cli

PROBE = """
import sys, torch
from spikerl.agents.cpu import flush_denormals
ok = flush_denormals() if sys.argv[1] == "flush" else None
torch.set_num_threads(2)
x = torch.full((1 << 22,), 1e-39)           # a float32 subnormal, in a tensor large enough to split over threads
y = x * 3.0                                  # computed on torch's worker threads as well as this one
print(ok, int((y != 0).sum()), y.numel())
"""


def _probe(mode: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(not _probe("flush")[0] == "True", reason="this CPU has no flush-to-zero mode")
def test_flush_denormals_reaches_every_worker_thread() -> None:
    ok, nonzero, n = _probe("flush")
    assert ok == "True" and nonzero == "0" and int(n) == 1 << 22  # DAZ: the subnormal input reads as zero
    _, nonzero_kept, _ = _probe("keep")
    assert nonzero_kept == n  # without it every element keeps its subnormal value, 3e-39


def test_train_flushes_denormals_before_it_sets_torch_threads(monkeypatch, capsys) -> None:
    import spikerl.agents.cpu as cpu

    import spikerl.cli.train as train_cli

    calls: list[str] = []

    class Stop(Exception):
        pass

    def keep_freed_memory() -> bool:
        raise Stop

    monkeypatch.setattr(cpu, "flush_denormals", lambda: calls.append("flush") or True)
    monkeypatch.setattr(train_cli, "set_torch_threads", lambda n: calls.append(f"threads {n}"))
    monkeypatch.setattr(cpu, "keep_freed_memory", keep_freed_memory)
    with pytest.raises(Stop):
        run_cli(capsys, "train", "td3-ann", "--env", "InvertedPendulum-v5", "--threads", "2", "--steps", "10")
    assert calls == ["flush", "threads 2"]
