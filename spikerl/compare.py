"""Compare training runs: a markdown table (mean ± std over seeds), few-seed statistics and learning-curve plots.

A run directory (written by ``spikerl train``) holds ``config.yaml``, ``evaluations.csv`` (step,
mean_return, std_return, wall_time_s of the periodic deterministic evaluations), ``metrics.json`` (steps/s, ...)
and, after ``spikerl evaluate``, ``evaluation.json`` (return, firing rate, energy per decision). Runs are grouped by
(env, variant); a variant is the preset name (``td3-proxy-lif``, ``td3-ann``, ...).

Per run: final return = the last evaluation's mean, best return = the max over evaluations (the
"max average return" of the TD3 / Proxy Target papers, which flatters unstable runs: both are shown).
Across seeds: mean ± population std (ddof = 0), and n. The statistics at one budget per env (IQM with bootstrap
intervals, probability of improvement) and the curves' confidence bands come from :mod:`spikerl.compare_stats`.

Only finished runs (``metrics.json`` status ``completed``) enter the final and best return: a run still
training, interrupted or stopped (no ``metrics.json``, or another status) is counted as unfinished in the seeds
column and listed below the table with its state. A run directory whose files cannot be read is skipped with a
one-line reason (``on_skip``), and the comparison goes on.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spikerl.compare_stats import (
    INTERVAL_NOTE,
    GroupStats,
    Improvement,
    budget_steps,
    group_stats,
    improvements,
    mean_band,
    seed_curves,
    stats_json,
    stats_markdown,
)
from spikerl.run_layout import CONFIG_FILE, RunLayout

#: the ``metrics.json`` status of a run that trained its whole budget
COMPLETED = "completed"
#: the status of a run without ``metrics.json``: still training, or killed before it finished
UNFINISHED = "unfinished"


class RunReadError(ValueError):
    """A run directory whose files cannot be read: one line naming the file and the problem."""


@dataclass
class RunRecord:
    """What ``compare`` reads from one run directory (``status``: ``metrics.json``'s, or ``unfinished``)."""

    path: Path
    env: str
    variant: str
    seed: int | None
    steps: np.ndarray
    means: np.ndarray
    steps_per_s: float | None = None
    extra: dict = field(default_factory=dict)
    status: str = COMPLETED
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.status == COMPLETED

    @property
    def final(self) -> float:
        return float(self.means[-1]) if len(self.means) else math.nan

    @property
    def best(self) -> float:
        return float(self.means.max()) if len(self.means) else math.nan


def variant_name(config: dict) -> str:
    """Preset-style name of a run: ``config['preset']`` if present, else derived from algo/target/actor."""
    for key in ("preset", "name"):
        if config.get(key):
            return str(config[key])
    algo = str(config.get("algo", "td3"))
    policy = str(config.get("policy", "SNNPolicy"))
    if policy.lower().startswith("mlp"):
        actor = "ann"
    else:
        actor = str((config.get("actor") or {}).get("neuron", "snn"))
    proxy = "proxy-" if config.get("target") == "proxy" else ""
    return f"{algo}-{proxy}{actor}"


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each path itself if it holds ``config.yaml``, else those below it."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such run directory: {p}")
        if RunLayout(p).is_run():
            found.append(p)
        else:
            found.extend(sorted(c.parent for c in p.rglob(CONFIG_FILE)))
    if not found:
        raise FileNotFoundError(
            f"no run directories (folders with {CONFIG_FILE}) under: {', '.join(map(str, paths))}"
        )
    return sorted(set(found))


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file (None when the file does not exist)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunReadError(f"{path}: not readable JSON ({_first_line(err)})") from None
    if not isinstance(data, dict):
        raise RunReadError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    return data


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunReadError(f"{path}: not a YAML text file (not UTF-8)") from None
    except (OSError, yaml.YAMLError) as err:
        raise RunReadError(f"{path}: not readable YAML ({_first_line(err)})") from None
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise RunReadError(f"{path}: expected a YAML mapping of config keys, got a {type(config).__name__}")
    seed = config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RunReadError(f"{path}: seed: expected an integer, got {seed!r}")
    return config


def _read_evaluations(path: Path) -> tuple[list[float], list[float]]:
    steps: list[float] = []
    means: list[float] = []
    if not path.is_file():
        return steps, means
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in ("step", "mean_return") if c not in (reader.fieldnames or [])]
            if missing:
                raise RunReadError(f"{path}: no {' or '.join(missing)} column (header: {reader.fieldnames})")
            for row in reader:
                try:
                    steps.append(float(row["step"]))
                    means.append(float(row["mean_return"]))
                except (TypeError, ValueError):
                    raise RunReadError(f"{path}: line {reader.line_num}: expected numbers in step and mean_return, "
                                       f"got {row.get('step')!r} and {row.get('mean_return')!r}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RunReadError(f"{path}: not a readable CSV file ({_first_line(err)})") from None
    return steps, means


def load_run(path: str | Path) -> RunRecord:
    """Read one run directory; :class:`RunReadError` names the file that cannot be read."""
    path = Path(path)
    layout = RunLayout(path)
    cfg_file = layout.config
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a run directory: it has no {CONFIG_FILE}")
    config = _read_config(cfg_file)
    steps, means = _read_evaluations(layout.evaluations)
    metrics = _read_json(layout.metrics)
    extra = _read_json(layout.evaluation) or {}
    seed = config.get("seed")
    steps_per_s = None if metrics is None else metrics.get("steps_per_second", metrics.get("steps_per_s"))
    status = UNFINISHED if metrics is None else str(metrics.get("status", COMPLETED))
    return RunRecord(path=path, env=str(config.get("env", "?")), variant=variant_name(config),
                     seed=int(seed) if seed is not None else None, steps=np.asarray(steps),
                     means=np.asarray(means), steps_per_s=steps_per_s, extra=extra, status=status,
                     message=str((metrics or {}).get("message", "")))


def unfinished_reason(run: RunRecord) -> str:
    """Why a run is not finished, and how far it got: ``no metrics.json (still training, or stopped before the
    end); last evaluation at step 4000``."""
    if run.status == UNFINISHED:
        why = "no metrics.json (still training, or stopped before the end)"
    else:
        why = f"metrics.json status {run.status}" + (f" ({run.message})" if run.message else "")
    last = f"last evaluation at step {int(run.steps[-1])}" if len(run.steps) else "no evaluation yet"
    return f"{why}; {last}"


def _mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    vals = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(vals) == 0:
        return math.nan, math.nan, 0
    return float(vals.mean()), float(vals.std()), len(vals)


def _fmt(mean: float, std: float, n: int, digits: int = 1) -> str:
    if n == 0:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def group_runs(runs: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[(r.env, r.variant)].append(r)
    return dict(sorted(groups.items()))


def summary_rows(runs: Sequence[RunRecord]) -> list[dict]:
    """One dict per (env, variant): n seeds (of which ``unfinished``), mean/std of final and best return over the
    finished runs, and of steps/s, firing rate and energy over the runs that report them."""
    rows = []
    for (env, variant), group in group_runs(runs).items():
        finished = [r for r in group if r.finished]
        row = {"env": env, "variant": variant, "seeds": len(group), "unfinished": len(group) - len(finished)}
        for key, values in (
            ("final", [r.final for r in finished]),
            ("best", [r.best for r in finished]),
            ("steps_per_s", [r.steps_per_s for r in group]),
            ("firing_rate", [r.extra.get("firing_rate") for r in group]),
            ("energy_nj", [r.extra.get("energy_nj") for r in group]),
        ):
            row[key] = _mean_std(values)
        rows.append(row)
    return rows


def markdown_table(runs: Sequence[RunRecord]) -> str:
    """The comparison table in markdown, then the unfinished runs (not in final and best return) with their state."""
    header = ("| env | variant | seeds | final return | best return | steps/s | firing rate | energy/decision (nJ) |\n"
              "|---|---|---|---|---|---|---|---|")
    lines = [header]
    for row in summary_rows(runs):
        seeds = f"{row['seeds']} ({row['unfinished']} unfinished)" if row["unfinished"] else str(row["seeds"])
        lines.append(
            f"| {row['env']} | {row['variant']} | {seeds} | {_fmt(*row['final'])} | {_fmt(*row['best'])} | "
            f"{_fmt(*row['steps_per_s'])} | {_fmt(*row['firing_rate'], digits=3)} | "
            f"{_fmt(*row['energy_nj'], digits=2)} |"
        )
    unfinished = [r for r in runs if not r.finished]
    if unfinished:
        lines += ["", "Unfinished runs (not in final and best return):", ""]
        lines += [f"- `{r.path}`: {unfinished_reason(r)}" for r in unfinished]
    return "\n".join(lines) + "\n"


def mean_curve(group: Sequence[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds on the steps every run reached (linear interpolation between evals)."""
    grid, curves = seed_curves(group)
    if not len(grid):
        return np.array([]), np.array([]), np.array([])
    return grid, curves.mean(0), curves.std(0)


def plot_curves(runs: Sequence[RunRecord], out_png: str | Path, steps: dict[str, float | None] | None = None) -> Path:
    """Learning curves, one panel per env: per variant the mean over seeds with a shaded band, the 95% bootstrap
    interval of that mean (:func:`spikerl.compare_stats.mean_band`); ``steps`` marks each env's compared step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_runs(runs)
    envs = sorted({env for env, _ in groups})
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for (genv, variant), group in groups.items():
            if genv != env:
                continue
            x, curves = seed_curves(group)
            if not len(x):
                continue
            m, low, high = mean_band(curves)
            (line,) = ax.plot(x, m, label=f"{variant} (n={len(curves)})")
            ax.fill_between(x, low, high, alpha=0.2, color=line.get_color(), linewidth=0)
        if steps and steps.get(env) is not None:
            ax.axvline(steps[env], color="0.4", linestyle="--", linewidth=0.8)
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel whose runs have no evaluation yet has no curve
            ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def _warn_skip(path: Path, reason: str) -> None:
    warnings.warn(f"compare skipped {path}: {reason}", stacklevel=3)


def load_runs(paths: Iterable[str | Path], on_skip: Callable[[Path, str], None] | None = None) -> list[RunRecord]:
    """The readable runs among ``paths`` (:func:`find_runs`); each unreadable one is passed to ``on_skip`` with a
    one-line reason (default: a warning) and left out. FileNotFoundError when no run is left."""
    paths = list(paths)
    runs, skipped = [], 0
    for path in find_runs(paths):
        try:
            runs.append(load_run(path))
        except RunReadError as err:
            skipped += 1
            (on_skip or _warn_skip)(path, str(err))
    if not runs:
        raise FileNotFoundError(f"no readable run under {', '.join(map(str, paths))}: all {skipped} run "
                                "directories were skipped")
    return runs


def compare_runs(paths: Iterable[str | Path], out_dir: str | Path, at: float | None = None,
                 on_skip: Callable[[Path, str], None] | None = None) -> tuple[Path, Path, list[RunRecord]]:
    """Read runs, write ``comparison.md``, ``comparison.json`` and ``curves.png`` into ``out_dir``; return the
    markdown's and the plot's paths and the runs. The statistics compare each env's runs at ``at`` (default: the
    largest step all of them reached; :mod:`spikerl.compare_stats`). A run that cannot be read is skipped
    (:func:`load_runs`); ``out_dir`` that is a file is a NotADirectoryError, before anything is read."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file; give a folder for comparison.md, comparison.json and "
                                 "curves.png")
    runs = load_runs(paths, on_skip)
    if at is not None and not any(len(r.steps) and r.steps.max() >= at for r in runs):
        furthest = max((float(r.steps.max()) for r in runs if len(r.steps)), default=None)
        raise ValueError(f"--at {at:.0f}: no run reached that step (the furthest evaluation of any run is at "
                         f"{'no step' if furthest is None else f'{furthest:.0f}'}); choose a smaller step")
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = group_stats(runs, at)
    pairs = improvements(groups)
    md = out_dir / "comparison.md"
    md.write_text("# Comparison\n\nMean ± std over seeds (population std); best = max over evaluations.\n\n"
                  + markdown_table(runs) + "\n" + statistics_section(groups, pairs, at))
    (out_dir / "comparison.json").write_text(json.dumps(stats_json(groups, pairs, at), indent=1) + "\n")
    png = plot_curves(runs, out_dir / "curves.png", budget_steps(runs, at))
    return md, png, runs


def statistics_section(groups: Sequence[GroupStats], pairs: Sequence[Improvement], at: float | None) -> str:
    """The markdown section of the returns at the compared step, IQM intervals and probabilities of improvement."""
    where = (f"at step {at:.0f} (runs that did not reach it are left out)" if at is not None else
             "at the largest step every run of the env reached (runs that trained further are read at that step)")
    return (f"## Returns {where}\n\nReturn at the step: the evaluation curve read there (linear between "
            f"evaluations). IQM: interquartile mean over seeds; intervals: {INTERVAL_NOTE}. P(X > Y): probability "
            "that a run of X beats a run of Y (ties count 1/2).\n\n" + stats_markdown(groups, pairs))
