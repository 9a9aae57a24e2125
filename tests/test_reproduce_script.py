"""scripts/reproduce.py: a sweep stopped by a signal ends with one line and 128 + signal, not a traceback."""

from __future__ import annotations

import signal

import pytest
from script_loader import load_script

import spikerl.sweep as sweep


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_sweep_ends_with_one_line(monkeypatch, capsys, tmp_path, sig) -> None:
    def stopped(*_args, **_kwargs):
        raise sweep.SweepInterrupted(sig, [])

    monkeypatch.setattr(sweep, "run_sweep", stopped)
    reproduce = load_script("reproduce")
    code = reproduce.main(["--presets", "td3-ann", "--envs", "InvertedPendulum-v5", "--seeds", "0", "--steps", "100",
                           "--out", str(tmp_path / "grid")])
    err = capsys.readouterr().err
    assert code == 128 + sig
    assert err == (f"reproduce: stopped by {sig.name}; the running trials keep their checkpoints: run the same "
                   "command again to resume them\n")
