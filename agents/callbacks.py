"""SB3 callbacks of a spikerl run: periodic evaluation, atomic checkpoints, a rich progress bar.

Timing. SB3's off-policy loop is ``collect (env step, num_timesteps += 1, on_step) -> store transition ->
train``; ``on_rollout_start`` runs at the top of the next collection, when the replay buffer holds
every transition up to ``num_timesteps`` and the gradient step for it is done. Evaluation and
checkpoints therefore run in ``on_rollout_start`` (and once more at the end of training), so that a
checkpoint taken at step ``n`` is exactly the state after ``n`` steps, and the evaluation logged at
step ``n`` is of that same policy.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from spikerl.interrupts import HeldInterrupts
from spikerl.run_layout import checkpoint_files, list_checkpoints

EVAL_HEADER = ("step", "mean_return", "std_return", "wall_time_s")


@dataclass
class EvalRecord:
    step: int
    mean: float
    std: float
    wall_time: float


@dataclass
class RunClock:
    """Training wall time that survives resume: time banked at the checkpoint plus this session's."""

    banked: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.banked + (time.perf_counter() - self.started)


def read_evaluations(path: Path, up_to_step: int | None = None) -> list[EvalRecord]:
    """Rows of ``evaluations.csv`` (a torn last line from a killed process is skipped)."""
    rows: list[EvalRecord] = []
    if not path.is_file():
        return rows
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                rec = EvalRecord(int(row["step"]), float(row["mean_return"]), float(row["std_return"]),
                                 float(row["wall_time_s"]))
            except (KeyError, TypeError, ValueError):
                continue
            if up_to_step is None or rec.step <= up_to_step:
                rows.append(rec)
    return rows


class StopTraining(Exception):
    """Raised by :class:`CsvEvalCallback` to end ``model.learn`` at the rollout boundary where an evaluation reached
    ``eval.stop_at``: before the next env step, so the model's step count and weights are those of that evaluation."""

    def __init__(self, record: EvalRecord, stop_at: float) -> None:
        super().__init__(f"evaluation return {record.mean:.2f} at step {record.step} >= eval.stop_at {stop_at:g}")
        self.record, self.stop_at = record, stop_at


def write_evaluations(path: Path, rows: list[EvalRecord]) -> None:
    """Rewrite ``evaluations.csv`` atomically (used on resume to drop rows after the checkpoint)."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(EVAL_HEADER)
    for r in rows:
        w.writerow(_eval_row(r))
    atomic_write(path, lambda fh: fh.write(text.getvalue().encode()))


def _eval_row(rec: EvalRecord) -> list[Any]:
    return [rec.step, repr(rec.mean), repr(rec.std), f"{rec.wall_time:.3f}"]


class _EvaluationAbandoned(Exception):
    """Raised inside ``evaluate_policy`` to end an evaluation early (a stop signal is held)."""


class CsvEvalCallback(BaseCallback):
    """Every ``freq`` env steps (and at step 0 and at the end): ``episodes`` episodes on ``eval_env``.

    The eval env is re-seeded with ``eval_seed`` before every evaluation, so each evaluation sees the
    same start states (the Proxy Target protocol re-creates its eval env with seed + 100 each time).
    Appends ``step, mean_return, std_return, wall_time_s`` to ``csv_path`` and logs ``eval/*``. Unlike SB3's
    ``EvalCallback`` it evaluates at rollout boundaries and resumes its schedule from ``history``.

    With ``stop_at``, a periodic evaluation whose mean return is >= ``stop_at`` raises :class:`StopTraining`; the
    caller catches it and ends training with that policy (no checkpoint is taken at that step). The evaluation at
    the end of the budget does not raise.

    With ``interrupts`` (see :class:`ResumableCheckpointCallback`), a periodic evaluation in progress when a signal
    is held is abandoned after the current env step, unrecorded, so that the checkpoint and the stop follow at once;
    a resume from that step then evaluates first (the schedule resumes from ``history``). The evaluation at the end
    of the budget always finishes.
    """

    def __init__(self, eval_env: VecEnv, csv_path: Path, freq: int, episodes: int, deterministic: bool,
                 eval_seed: int, clock: RunClock, history: list[EvalRecord] | None = None,
                 on_eval: Callable[[EvalRecord], None] | None = None, stop_at: float | None = None) -> None:
        super().__init__()
        self.eval_env, self.csv_path, self.freq = eval_env, Path(csv_path), int(freq)
        self.episodes, self.deterministic, self.eval_seed = int(episodes), bool(deterministic), int(eval_seed)
        self.clock, self.on_eval, self.stop_at = clock, on_eval, stop_at
        self.interrupts: HeldInterrupts | None = None
        self.history: list[EvalRecord] = list(history or [])
        last = self.history[-1].step if self.history else -1
        self.next_step = 0 if last < 0 else (last // self.freq + 1) * self.freq

    @property
    def last(self) -> EvalRecord | None:
        return self.history[-1] if self.history else None

    @property
    def best(self) -> EvalRecord | None:
        return max(self.history, key=lambda r: r.mean) if self.history else None

    def _abandon_if_interrupted(self, _locals: dict[str, Any], _globals: dict[str, Any]) -> None:
        if self.interrupts is not None and self.interrupts.pending is not None:
            raise _EvaluationAbandoned

    def evaluate(self, abandon_on_interrupt: bool = False) -> EvalRecord:
        self.eval_env.seed(self.eval_seed)
        returns, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.episodes,
                                     deterministic=self.deterministic, return_episode_rewards=True, warn=False,
                                     callback=self._abandon_if_interrupted if abandon_on_interrupt else None)
        rec = EvalRecord(int(self.num_timesteps), float(np.mean(returns)), float(np.std(returns)),
                         self.clock.elapsed())
        self.history.append(rec)
        new = not self.csv_path.exists()
        try:
            with self.csv_path.open("a", newline="") as fh:
                w = csv.writer(fh)
                if new:
                    w.writerow(EVAL_HEADER)
                w.writerow(_eval_row(rec))
                fh.flush()
        except OSError as err:  # name the file: a write error on a full disk carries no filename
            raise OSError(err.errno, err.strerror or str(err), str(self.csv_path)) from err
        self.logger.record("eval/mean_return", rec.mean)
        self.logger.record("eval/std_return", rec.std)
        self.logger.dump(rec.step)
        self.next_step = (rec.step // self.freq + 1) * self.freq
        if self.on_eval is not None:
            self.on_eval(rec)
        return rec

    def _stop_if_reached(self, rec: EvalRecord | None) -> None:
        if self.stop_at is not None and rec is not None and rec.mean >= self.stop_at:
            raise StopTraining(rec, self.stop_at)

    def _maybe_evaluate(self) -> None:
        if self.num_timesteps >= self.next_step:
            try:
                rec = self.evaluate(abandon_on_interrupt=True)
            except _EvaluationAbandoned:
                return  # a signal is held: the checkpoint callback saves this step and stops
            self._stop_if_reached(rec)

    def _on_training_start(self) -> None:
        self._maybe_evaluate()

    def _on_rollout_start(self) -> None:
        self._maybe_evaluate()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.last is None or self.last.step < self.num_timesteps:
            self.evaluate()


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(file)`` to ``path.tmp``, fsync, then ``os.replace`` onto ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was; an ``OSError`` (a full disk, a
    read-only folder) is raised again with ``path`` as its filename, so the caller can name what it was writing."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        _remove_quietly(tmp)
        if isinstance(err, OSError) and err.filename != str(path):
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a folder that became read-only: nothing more can be done about the leftover
        pass


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(model: Any, ckpt_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Model + replay buffer (filled rows only) + JSON (step count, sizes, SHA-256s, run state), each written
    atomically.

    The JSON is written last: a checkpoint without its JSON was interrupted and is ignored on resume. The sizes and
    SHA-256s recorded in it let resume detect a truncated, replaced or altered file. A write that fails (a full disk,
    a read-only folder) removes the files of this checkpoint and raises; the older checkpoints stay. Keeps the
    newest ``keep``.
    """
    from spikerl.agents.replay_io import dump_replay_buffer

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    step = int(model.num_timesteps)
    zip_path, buf_path, meta_path = checkpoint_files(ckpt_dir, step)
    try:
        atomic_write(zip_path, model.save)
        atomic_write(buf_path, lambda fh: dump_replay_buffer(model.replay_buffer, fh))
        files = (zip_path, buf_path)
        meta = {"step": step, "model": zip_path.name, "replay_buffer": buf_path.name,
                "sizes": {p.name: p.stat().st_size for p in files},
                "sha256": {p.name: file_sha256(p) for p in files},
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **state}
        atomic_write(meta_path, lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    except BaseException:
        for p in (meta_path, buf_path, zip_path):  # the marker first: a partial checkpoint never looks committed
            _remove_quietly(p)
        raise
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        for p in checkpoint_files(ckpt_dir, old):
            p.unlink(missing_ok=True)
    return meta_path


class CheckpointError(Exception):
    """A committed checkpoint whose files do not match its JSON marker (the message says how)."""


def verify_checkpoint(ckpt_dir: Path, step: int) -> dict[str, Any]:
    """The JSON marker of the checkpoint at ``step``, after checking its files against it.

    Each file must exist with the recorded size and, where the marker records one, SHA-256. Markers written before
    SHA-256s were recorded carry sizes only, and are checked by size. Raises :class:`CheckpointError`."""
    zip_path, buf_path, meta_path = checkpoint_files(ckpt_dir, step)
    try:
        meta = json.loads(meta_path.read_text())
        sizes = meta["sizes"]
        digests = meta.get("sha256", {})
        if int(meta["step"]) != step or not isinstance(sizes, dict) or not isinstance(digests, dict):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{meta_path.name} is not a readable checkpoint marker") from None
    for p in (zip_path, buf_path):
        if not p.is_file():
            raise CheckpointError(f"{p.name} is missing")
        if p.stat().st_size != sizes.get(p.name):
            raise CheckpointError(f"{p.name} has {p.stat().st_size} bytes, {sizes.get(p.name)} were written")
        if p.name in digests and file_sha256(p) != digests[p.name]:
            raise CheckpointError(f"{p.name} does not match the SHA-256 recorded when it was written")
    return meta


class ResumableCheckpointCallback(BaseCallback):
    """Every ``every`` env steps: :func:`save_checkpoint` with the run state from ``state_fn()``. Unlike SB3's
    ``CheckpointCallback`` it saves the replay buffer and a JSON marker with it, so that a run resumes exactly.

    With ``interrupts`` (a :class:`spikerl.interrupts.HeldInterrupts` around ``learn``), a held SIGINT/SIGTERM is
    released at the next rollout start, after a checkpoint of that step: an interrupted run resumes from where it
    stopped, not from its last periodic checkpoint. A rollout starts between two env steps, after the previous
    update, which is the state periodic checkpoints hold too."""

    def __init__(self, ckpt_dir: Path, every: int, keep: int, state_fn: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self.ckpt_dir, self.every, self.keep, self.state_fn = Path(ckpt_dir), int(every), int(keep), state_fn
        self.interrupts: HeldInterrupts | None = None  # set by the caller around learn(), as for CsvEvalCallback
        self.next_step: int | None = None
        self.saved_step: int | None = None

    def _on_training_start(self) -> None:
        self.next_step = (self.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        assert self.next_step is not None
        if self.num_timesteps >= self.next_step:
            self._save()
            self.next_step = (self.num_timesteps // self.every + 1) * self.every
        if self.interrupts is not None and self.interrupts.pending is not None:
            if self.saved_step != self.num_timesteps:
                self._save()
            self.interrupts.release()

    def _save(self) -> None:
        save_checkpoint(self.model, self.ckpt_dir, self.state_fn(), self.keep)
        self.saved_step = int(self.num_timesteps)

    def _on_step(self) -> bool:
        return True


class RichProgressCallback(BaseCallback):
    """A rich progress bar: steps done/total, steps/s, last evaluation return, ETA."""

    def __init__(self, total: int, description: str, last_eval: Callable[[], EvalRecord | None],
                 console: Any = None) -> None:
        super().__init__()
        self.total, self.description, self.last_eval, self.console = int(total), description, last_eval, console
        self.progress: Any = None
        self.task: Any = None
        self._shown_eval: EvalRecord | None = None

    def _eval_text(self) -> str:
        rec = self.last_eval()
        return "eval -" if rec is None else f"eval {rec.mean:.1f} ± {rec.std:.1f} @ {rec.step}"

    def _on_training_start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class StepsPerSecond(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.speed
                return Text("- steps/s" if speed is None or not math.isfinite(speed) else f"{speed:.0f} steps/s")

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 StepsPerSecond(), TextColumn("{task.fields[eval]}"), TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(), console=self.console,
                                 refresh_per_second=4, speed_estimate_period=60.0)
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=self.total, completed=self.num_timesteps,
                                           eval=self._eval_text())

    def _on_step(self) -> bool:
        rec = self.last_eval()
        if rec is not self._shown_eval:
            self._shown_eval = rec
            self.progress.update(self.task, completed=self.num_timesteps, eval=self._eval_text())
        else:
            self.progress.update(self.task, completed=self.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=self.num_timesteps, eval=self._eval_text())
            self.progress.stop()
            self.progress = None


class ProgressFileCallback(BaseCallback):
    """Every ``every_s`` seconds (and at the end) write ``progress.json`` atomically for outside monitors
    (``spikerl sweep`` reads it): ``steps``, ``total_timesteps``, ``steps_per_s`` (this session),
    ``last_return``, ``last_eval_step``, ``elapsed_s``."""

    def __init__(self, path: Path, total: int, last_eval: Callable[[], EvalRecord | None], clock: RunClock,
                 every_s: float = 5.0) -> None:
        super().__init__()
        self.path, self.total, self.last_eval = Path(path), int(total), last_eval
        self.clock, self.every_s = clock, every_s
        self._t0 = self._next = 0.0
        self._start_step = 0

    def write(self) -> None:
        now = time.perf_counter()
        rec = self.last_eval()
        data = {"steps": int(self.num_timesteps), "total_timesteps": self.total,
                "steps_per_s": (self.num_timesteps - self._start_step) / max(now - self._t0, 1e-9),
                "last_return": None if rec is None else rec.mean, "last_eval_step": None if rec is None else rec.step,
                "elapsed_s": self.clock.elapsed()}
        atomic_write(self.path, lambda fh: fh.write(json.dumps(data).encode()))
        self._next = now + self.every_s

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        self._start_step = int(self.num_timesteps)
        self.write()

    def _on_step(self) -> bool:
        if time.perf_counter() >= self._next:
            self.write()
        return True

    def _on_training_end(self) -> None:
        self.write()
