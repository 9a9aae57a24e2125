"""spikerl.run_layout: the run directory's file names and the checkpoint naming."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spikerl.run_layout import RunLayout, checkpoint_files, list_checkpoints


def test_paths_of_a_run_directory(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    names = {"config": "config.yaml", "model": "model.zip", "checkpoints": "checkpoints", "tensorboard": "tb",
             "evaluations": "evaluations.csv", "metrics": "metrics.json", "progress": "progress.json",
             "evaluation": "evaluation.json", "videos": "videos", "converted": "converted", "lock": ".lock"}
    for prop, name in names.items():
        assert getattr(layout, prop) == tmp_path / "run" / name, prop
    assert not (tmp_path / "run").exists()  # a layout names paths, it creates nothing
    assert not layout.is_run()
    layout.root.mkdir()
    layout.config.write_text("seed: 0\n")
    assert layout.is_run()


def test_checkpoint_names_sort_by_step_and_only_committed_ones_count(tmp_path: Path) -> None:
    files = checkpoint_files(tmp_path, 1200)
    assert [p.name for p in files] == ["step_0000001200.zip", "step_0000001200.replay.pkl", "step_0000001200.json"]
    assert files.model.parent == tmp_path and files.marker == files[2]
    for step in (30000, 1200, 500):
        for p in checkpoint_files(tmp_path, step):
            p.write_text("")
    for p in checkpoint_files(tmp_path, 40000)[:2]:  # interrupted before its marker was written
        p.write_text("")
    (tmp_path / "step_0000050000.json.tmp").write_text("")  # a marker still being written
    (tmp_path / "step_latest.json").write_text("")  # not a step number
    (tmp_path / "notes.json").write_text("")
    assert list_checkpoints(tmp_path) == [500, 1200, 30000]
    layout = RunLayout(tmp_path / "run")
    assert layout.checkpoint_steps() == []  # no checkpoints folder yet
    assert layout.checkpoint(7) == checkpoint_files(tmp_path / "run" / "checkpoints", 7)


def test_core_module_imports_neither_sb3_nor_gymnasium() -> None:
    code = ("import sys, spikerl.run_layout; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('stable_baselines3', 'gymnasium', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
