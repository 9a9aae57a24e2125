"""Runs compared at one budget: returns at a common step, their few-seed statistics, and confidence bands.

- Budget: runs are compared at one environment step per env, the largest step that every compared run of that
  env reached (the last evaluation of the run that has trained least), or at a step the caller names; a run that
  did not reach that step is left out, never extrapolated. A run's return at step s is its evaluation curve read
  at s, linearly interpolated between the two evaluations around s (exact where s is an evaluation step).
- Per (env, variant): the returns at the budget as mean ± population std, and their interquartile mean with a
  95% percentile-bootstrap interval (:func:`spikerl.stats.iqm_interval`).
- Per env and pair of variants: the probability of improvement P(X > Y) with its interval
  (:func:`spikerl.stats.improvement_interval`).
- Curves: the mean over seeds at each step with the 95% percentile-bootstrap interval of that mean, the seeds
  (whole curves) resampled with replacement, the same resample at every step (``scipy.stats.bootstrap``).

Every bootstrap draws from a fixed seed, so the same runs give the same numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import stats as sps

from spikerl.stats import CONFIDENCE, RESAMPLES, Interval, improvement_interval, iqm_interval

__all__ = ["GroupStats", "Improvement", "budget_steps", "group_stats", "improvements", "last_step",
           "mean_band", "return_at", "seed_curves", "stats_json", "stats_markdown"]

#: how the intervals are computed, for the reader of comparison.json / comparison.md
INTERVAL_NOTE = (f"{CONFIDENCE:.0%} percentile bootstrap over runs ({RESAMPLES} resamples, scipy.stats.bootstrap), "
                 "each (env, variant) resampled on its own")


class Run(Protocol):
    """What the statistics read from a run (``spikerl.compare.RunRecord`` has it)."""

    path: Path
    env: str
    variant: str
    seed: int | None
    steps: np.ndarray
    means: np.ndarray


@dataclass(frozen=True)
class GroupStats:
    """The runs of one (env, variant) at ``step``: their returns there, and the runs left out (not reached)."""

    env: str
    variant: str
    step: float | None
    runs: list[Any]
    returns: list[float]
    left_out: list[Any] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof = 0), as the comparison table."""
        return float(np.std(self.returns)) if self.returns else math.nan

    @cached_property
    def iqm(self) -> Interval | None:
        return iqm_interval(self.returns) if self.returns else None


@dataclass(frozen=True)
class Improvement:
    """P(X > Y) of the returns of variants ``x`` and ``y`` at ``step`` in ``env``, with its interval."""

    env: str
    step: float
    x: str
    y: str
    n_x: int
    n_y: int
    probability: Interval


def last_step(run: Run) -> float | None:
    """The step of a run's last evaluation (None without evaluations)."""
    return float(np.max(run.steps)) if len(run.steps) else None


def return_at(run: Run, step: float) -> float | None:
    """The run's evaluation return at ``step``, interpolated between evaluations; None if it did not reach it."""
    last = last_step(run)
    if last is None or step > last or step < float(np.min(run.steps)):
        return None
    order = np.argsort(run.steps, kind="stable")
    return float(np.interp(step, np.asarray(run.steps, dtype=float)[order], np.asarray(run.means, dtype=float)[order]))


def budget_steps(runs: Sequence[Run], at: float | None = None) -> dict[str, float | None]:
    """Per env, the step its runs are compared at: ``at`` if given, else the largest step all its runs reached
    (None for an env whose runs have no evaluation)."""
    out: dict[str, float | None] = {}
    for env in sorted({r.env for r in runs}):
        lasts = [s for s in (last_step(r) for r in runs if r.env == env) if s is not None]
        out[env] = float(at) if at is not None else (min(lasts) if lasts else None)
    return out


def group_stats(runs: Sequence[Run], at: float | None = None) -> list[GroupStats]:
    """One :class:`GroupStats` per (env, variant), sorted, each at its env's budget (:func:`budget_steps`)."""
    steps = budget_steps(runs, at)
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.env, r.variant), []).append(r)
    out = []
    for (env, variant), members in sorted(groups.items()):
        step = steps[env]
        members = sorted(members, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0, str(r.path)))
        values = [(r, None if step is None else return_at(r, step)) for r in members]
        out.append(GroupStats(env, variant, step, runs=[r for r, v in values if v is not None],
                              returns=[v for _, v in values if v is not None],
                              left_out=[r for r, v in values if v is None]))
    return out


def improvements(groups: Sequence[GroupStats], pairs: Sequence[tuple[str, str]] | None = None) -> list[Improvement]:
    """P(X > Y) per env for ``pairs`` of variants (default: every pair of the env's variants, X the one with the
    higher IQM, ties in name order); a pair is skipped where either variant has no run at the budget."""
    by_env: dict[str, dict[str, GroupStats]] = {}
    for g in groups:
        by_env.setdefault(g.env, {})[g.variant] = g
    out = []
    for env, variants in sorted(by_env.items()):
        ranked = sorted(variants, key=lambda v: (-(variants[v].iqm.value if variants[v].iqm else -math.inf), v))
        wanted = pairs if pairs is not None else list(itertools.combinations(ranked, 2))
        for x, y in wanted:
            gx, gy = variants.get(x), variants.get(y)
            if gx is None or gy is None or not gx.returns or not gy.returns or gx.step is None:
                continue
            out.append(Improvement(env, gx.step, x, y, len(gx.returns), len(gy.returns),
                                   improvement_interval(gx.returns, gy.returns)))
    return out


def seed_curves(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, returns[n_runs, n_steps]): every run's curve on the evaluation steps that all of them reached
    (each run interpolated linearly between its own evaluations)."""
    usable = [r for r in runs if len(r.steps)]
    if not usable:
        return np.array([]), np.zeros((0, 0))
    last = min(float(np.max(r.steps)) for r in usable)
    grid = np.unique(np.concatenate([np.asarray(r.steps, dtype=float)[np.asarray(r.steps) <= last] for r in usable]))
    curves = []
    for r in usable:
        order = np.argsort(r.steps, kind="stable")
        curves.append(np.interp(grid, np.asarray(r.steps, dtype=float)[order], np.asarray(r.means, dtype=float)[order]))
    return grid, np.stack(curves)


def mean_band(curves: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """(mean, low, high) over the rows of ``curves[n_runs, n_steps]``: the mean across runs at each step and the
    95% percentile-bootstrap interval of that mean (whole rows resampled). One run: the band is the curve."""
    curves = np.asarray(curves, dtype=float)
    mean = curves.mean(axis=0)
    if curves.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    res = sps.bootstrap((curves,), np.mean, axis=0, n_resamples=resamples, confidence_level=CONFIDENCE,
                        method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    return mean, np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


# -- reports ------------------------------------------------------------------------------------------------------
def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _interval_json(iv: Interval | None) -> dict[str, float] | None:
    return None if iv is None else {"value": iv.value, "low": iv.low, "high": iv.high}


def _run_json(run: Run, step: float | None, root: Path | None) -> dict[str, Any]:
    path = Path(run.path)
    if root is not None and path.is_relative_to(root):
        path = path.relative_to(root)
    entry: dict[str, Any] = {"path": str(path), "seed": run.seed, "reached": last_step(run)}
    if step is not None:
        entry["return"] = return_at(run, step)
    return entry


def stats_json(groups: Sequence[GroupStats], pairs: Sequence[Improvement], at: float | None = None,
               root: Path | None = None) -> dict[str, Any]:
    """The statistics as JSON-ready data (run paths relative to ``root`` where they lie below it)."""
    return {
        "at": at, "confidence": CONFIDENCE, "resamples": RESAMPLES, "interval": INTERVAL_NOTE,
        "steps": {g.env: g.step for g in groups},
        "groups": [{"env": g.env, "variant": g.variant, "step": g.step, "seeds": len(g.returns),
                    "return": {"mean": _finite(g.mean), "std": _finite(g.std)}, "iqm": _interval_json(g.iqm),
                    "runs": [_run_json(r, g.step, root) for r in g.runs],
                    "left_out": [_run_json(r, None, root) for r in g.left_out]} for g in groups],
        "improvement": [{"env": p.env, "step": p.step, "x": p.x, "y": p.y, "n_x": p.n_x, "n_y": p.n_y,
                         "probability": _interval_json(p.probability)} for p in pairs],
    }


def _step_text(step: float | None) -> str:
    return "–" if step is None else f"{step:.0f}"


def stats_markdown(groups: Sequence[GroupStats], pairs: Sequence[Improvement], digits: int = 1) -> str:
    """Two markdown tables: returns at the budget per (env, variant), and the probabilities of improvement."""
    lines = ["| env | variant | step | seeds | return (mean ± std) | IQM [95% CI] | left out (step reached) |",
             "|---|---|---:|---:|---:|---:|---|"]
    for g in groups:
        n = len(g.returns)
        value = "–" if n == 0 else (f"{g.mean:.{digits}f} ± {g.std:.{digits}f}" if n > 1 else f"{g.mean:.{digits}f}")
        iqm = g.iqm.format(digits) if g.iqm is not None else "–"
        left = ", ".join(f"seed {r.seed} ({_step_text(last_step(r))})" for r in g.left_out) or "–"
        lines.append(f"| {g.env} | {g.variant} | {_step_text(g.step)} | {n} | {value} | {iqm} | {left} |")
    text = "\n".join(lines) + "\n"
    if pairs:
        rows = ["| env | step | X | Y | P(X > Y) [95% CI] | runs X, Y |", "|---|---:|---|---|---:|---:|"]
        rows += [f"| {p.env} | {_step_text(p.step)} | {p.x} | {p.y} | {p.probability.format(2)} | {p.n_x}, {p.n_y} |"
                 for p in pairs]
        text += "\n" + "\n".join(rows) + "\n"
    return text
