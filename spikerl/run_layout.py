"""The files of a run directory and the naming of its checkpoints, in one place.

A run directory (``spikerl train``)::

    RUN_DIR/
      config.yaml        resolved config (spikerl.config.resolve)
      model.zip          final SB3 model
      checkpoints/       step_<n>.zip (model), step_<n>.replay.pkl (replay buffer), step_<n>.json
                         (step count, file sizes and SHA-256s, eval and clock state); each written to a temp
                         name and os.replace'd, the JSON last; the newest `checkpoint.keep` are kept
      tb/                TensorBoard events (SB3 logger: train/*, rollout/*, eval/*)
      evaluations.csv    step, mean_return, std_return, wall_time_s of the periodic evaluations
      metrics.json       status, total steps, final/best evaluation return, steps/s, wall time, and whether
                         training stopped early because an evaluation reached eval.stop_at
      progress.json      live: steps, steps_per_s, last_return (rewritten every 5 s while training)
      evaluation.json    written by `spikerl evaluate` (also into the bundle or C export it evaluates)
      videos/            written by `spikerl evaluate --video`
      converted/<name>/  converted spiking policies of an ANN run (`spikerl convert`, default output)
      .lock              while a process trains into the run: its flock, pid and command line (spikerl.run_lock)

A checkpoint is committed once its JSON marker exists: the marker is written last, so a checkpoint without
one was interrupted. Step numbers are zero-padded to 10 digits, so the names sort by step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from spikerl.run_lock import LOCK_FILE

__all__ = [
    "CHECKPOINT_DIR", "CHECKPOINT_PREFIX", "CONFIG_FILE", "CONVERTED_DIR", "EVALUATIONS_FILE", "EVALUATION_FILE",
    "METRICS_FILE", "MODEL_FILE", "PROGRESS_FILE", "TENSORBOARD_DIR", "VIDEO_DIR", "CheckpointFiles", "RunLayout",
    "checkpoint_files", "list_checkpoints",
]

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.zip"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tb"
EVALUATIONS_FILE = "evaluations.csv"
METRICS_FILE = "metrics.json"
PROGRESS_FILE = "progress.json"
#: the result of ``spikerl evaluate``, in the run directory, bundle or C export it evaluated
EVALUATION_FILE = "evaluation.json"
#: ``spikerl evaluate --video`` records its episodes here
VIDEO_DIR = "videos"
CONVERTED_DIR = "converted"
CHECKPOINT_PREFIX = "step_"


class CheckpointFiles(NamedTuple):
    """The files of one checkpoint: the SB3 model zip, the replay buffer, and the JSON marker written last."""

    model: Path
    replay_buffer: Path
    marker: Path


def checkpoint_files(ckpt_dir: str | os.PathLike[str], step: int) -> CheckpointFiles:
    """The files of the checkpoint at ``step`` in ``ckpt_dir`` (``step_<step:010d>.zip``, ``.replay.pkl``,
    ``.json``)."""
    stem = Path(ckpt_dir) / f"{CHECKPOINT_PREFIX}{step:010d}"
    return CheckpointFiles(stem.with_name(f"{stem.name}.zip"), stem.with_name(f"{stem.name}.replay.pkl"),
                           stem.with_name(f"{stem.name}.json"))


def list_checkpoints(ckpt_dir: str | os.PathLike[str]) -> list[int]:
    """Steps of the committed checkpoints in ``ckpt_dir`` (those with a JSON marker), oldest first; [] when the
    folder does not exist."""
    steps = []
    for p in Path(ckpt_dir).glob(f"{CHECKPOINT_PREFIX}*.json"):
        try:
            steps.append(int(p.stem[len(CHECKPOINT_PREFIX):]))
        except ValueError:
            continue
    return sorted(steps)


class RunLayout:
    """The paths of the run directory ``root`` (see the module docstring); nothing is read or created."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunLayout({str(self.root)!r})"

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def model(self) -> Path:
        return self.root / MODEL_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINT_DIR

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    @property
    def evaluations(self) -> Path:
        """The periodic evaluations written while training (CSV)."""
        return self.root / EVALUATIONS_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def progress(self) -> Path:
        return self.root / PROGRESS_FILE

    @property
    def evaluation(self) -> Path:
        """The result of ``spikerl evaluate`` (JSON)."""
        return self.root / EVALUATION_FILE

    @property
    def videos(self) -> Path:
        return self.root / VIDEO_DIR

    @property
    def converted(self) -> Path:
        """The folder of the run's converted policies (one sub-folder each)."""
        return self.root / CONVERTED_DIR

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    def is_run(self) -> bool:
        """Whether ``root`` holds a run (its ``config.yaml`` exists)."""
        return self.config.is_file()

    def checkpoint(self, step: int) -> CheckpointFiles:
        """The files of the checkpoint at ``step``."""
        return checkpoint_files(self.checkpoints, step)

    def checkpoint_steps(self) -> list[int]:
        """Steps of the committed checkpoints, oldest first."""
        return list_checkpoints(self.checkpoints)
