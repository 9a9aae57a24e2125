"""Experiment sweeps: a grid of env x preset x seed, each trial an ordinary ``spikerl train`` run.

Every trial runs as its own ``spikerl train`` process (one torch thread), so a crash, a NaN or an
out-of-memory in one trial cannot take the others down, and each trial directory
``OUT/<env>/<preset>/s<seed>`` is a normal run that ``evaluate``, ``export`` and ``compare`` accept.

Backends: ``local`` (a pool of at most K concurrent processes; default K = number of cores) and
``ray`` (the same trial function as Ray tasks with ``num_cpus=1``, on ``ray.init()`` or an existing
cluster address; install with ``pip install "spikerl[ray]"``). Scheduling is left to the pool / Ray.

Fault tolerance: re-running a sweep with the same out dir skips finished trials (``metrics.json`` says
so), resumes interrupted ones from their last checkpoint (``spikerl train --resume``) and starts the
rest. A failing trial is reported with the tail of its log and does not stop the others.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spikerl.run_lock import lock_holder

STATUSES = ("pending", "running", "done", "failed", "skipped")


@dataclass
class Trial:
    """One cell of the grid."""

    env: str
    preset: str
    seed: int
    run_dir: Path
    steps: int | None = None
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.env}/{Path(self.preset).stem}/s{self.seed}"


@dataclass
class TrialResult:
    trial: Trial
    status: str  # done | failed | skipped
    resumed: bool = False
    returncode: int | None = None
    error: str = ""
    seconds: float = 0.0


def parse_seeds(spec: str | int | Sequence[int]) -> list[int]:
    """``"0-4"`` -> [0..4], ``"1,3,7"`` -> [1, 3, 7], ``5`` -> [5]."""
    if isinstance(spec, int):
        return [spec]
    if not isinstance(spec, str):
        return [int(s) for s in spec]
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                if int(hi) < int(lo):
                    raise ValueError
                seeds.extend(range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"bad seed list {spec!r}: use a range like 0-4 or a list like 0,3,7") from None
    if not seeds:
        raise ValueError(f"bad seed list {spec!r}: it names no seed (use e.g. 0-4)")
    return sorted(set(seeds))


def _as_list(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def expand_grid(presets: str | Iterable[str], envs: str | Iterable[str], seeds: str | Sequence[int],
                out: str | Path, steps: int | None = None, overrides: Sequence[str] = ()) -> list[Trial]:
    """All trials of the grid, each with its run directory ``out/<env>/<preset>/s<seed>``."""
    presets, envs = _as_list(presets), _as_list(envs)
    if not presets or not envs:
        raise ValueError("a sweep needs at least one preset and one env (e.g. td3-proxy-lif and Hopper-v5)")
    out = Path(out)
    return [
        Trial(env=e, preset=p, seed=s, run_dir=out / e / Path(p).stem / f"s{s}", steps=steps,
              overrides=list(overrides))
        for e in envs for p in presets for s in parse_seeds(seeds)
    ]


def validate_trials(trials: Sequence[Trial]) -> None:
    """Resolve every trial's config up front, so a bad preset or override fails before anything runs."""
    from spikerl.config import ConfigError, load_config

    checked: set[str] = set()
    for t in trials:
        if t.preset in checked:
            continue
        overrides = [*t.overrides, f"env={t.env}", f"seed={t.seed}"]
        if t.steps is not None:
            overrides.append(f"total_timesteps={t.steps}")
        try:
            load_config(t.preset, overrides)
        except (ConfigError, FileNotFoundError, OSError) as err:
            raise ValueError(f"trial {t.name}: {err}") from None
        checked.add(t.preset)


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """A YAML sweep file: ``presets``, ``envs``, ``seeds`` and optional ``steps``, ``set`` (mapping or
    list of ``key=value``), ``out``, ``backend``, ``max_parallel``."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    allowed = {"presets", "envs", "seeds", "steps", "set", "out", "backend", "max_parallel", "address"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"sweep file {path}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    missing = [k for k in ("presets", "envs", "seeds") if k not in data]
    if missing:
        raise ValueError(f"sweep file {path}: missing key(s) {', '.join(missing)}")
    sets = data.get("set") or []
    if isinstance(sets, dict):
        sets = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sets.items()]
    data["set"] = list(sets)
    return data


# -- one trial ---------------------------------------------------------------------------------
def trial_state(trial: Trial) -> str:
    """``done`` (finished its budget), ``interrupted`` (has a committed checkpoint to resume) or ``new``
    (never started, or killed before its first committed checkpoint: run from scratch).

    A checkpoint counts once its JSON marker is written (the marker comes last, see
    ``spikerl.agents.callbacks.save_checkpoint``); a leftover ``*.tmp`` file of a killed write does not."""
    metrics = trial.run_dir / "metrics.json"
    if metrics.is_file():
        try:
            data = json.loads(metrics.read_text())
        except json.JSONDecodeError:
            data = {}
        # "completed", or "non_finite_loss" (stopped on NaN: resuming would only repeat it)
        if data.get("status") in ("completed", "non_finite_loss"):
            return "done"
    ckpt = trial.run_dir / "checkpoints"
    if ckpt.is_dir() and any(ckpt.glob("*.json")):
        return "interrupted"
    return "new"


def trial_command(trial: Trial, state: str, exe: Sequence[str] | None = None) -> list[str]:
    """The ``spikerl train`` command line for a trial in ``state``."""
    exe = list(exe or [sys.executable, "-m", "spikerl"])
    if state == "interrupted":
        return [*exe, "train", "--resume", str(trial.run_dir), "--quiet"]
    cmd = [*exe, "train", trial.preset, "--env", trial.env, "--seed", str(trial.seed), "--run-dir",
           str(trial.run_dir), "--quiet"]
    if trial.steps is not None:
        cmd += ["--steps", str(trial.steps)]
    if trial.overrides:
        cmd += ["--set", *trial.overrides]
    return cmd


def run_trial(trial: Trial, threads: int = 1) -> TrialResult:
    """Run (or resume, or skip) one trial in a child process; never raises for a failing trial."""
    state = trial_state(trial)
    if state == "done":
        return TrialResult(trial, "skipped")
    # a start that left no checkpoint has nothing to keep, unless its trainer still runs: then the trainer
    # started below is refused by the run directory's lock, which names that process
    if state == "new" and trial.run_dir.exists() and lock_holder(trial.run_dir) is None:
        shutil.rmtree(trial.run_dir)
    trial.run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = trial.run_dir.parent / f"{trial.run_dir.name}.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "SPIKERL_NUM_THREADS": str(threads)}
    t0 = time.time()
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(trial_command(trial, state))}\n")
        fh.flush()
        proc = subprocess.run(trial_command(trial, state), stdout=fh, stderr=subprocess.STDOUT, env=env)
    result = TrialResult(trial, "done" if proc.returncode == 0 else "failed", resumed=state == "interrupted",
                         returncode=proc.returncode, seconds=time.time() - t0)
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        result.error = " | ".join(tail) or f"exit code {proc.returncode}"
    return result


def trial_progress(trial: Trial) -> dict[str, Any]:
    """Live numbers of a trial from its run directory (``progress.json`` and ``evaluations.csv``)."""
    info: dict[str, Any] = {}
    prog = trial.run_dir / "progress.json"
    if prog.is_file():
        try:
            info.update(json.loads(prog.read_text()))
        except json.JSONDecodeError:
            pass
    evals = trial.run_dir / "evaluations.csv"
    if evals.is_file():
        rows = [r for r in evals.read_text().strip().splitlines()[1:] if r]
        if rows:
            info.setdefault("last_return", float(rows[-1].split(",")[1]))
    return info


# -- backends ----------------------------------------------------------------------------------
def _run_local(trials: Sequence[Trial], max_parallel: int,
               on_update: Callable[[Trial, str, TrialResult | None], None]) -> list[TrialResult]:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    results: list[TrialResult] = []
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        pending = list(trials)
        running: dict[Any, Trial] = {}
        while pending or running:
            while pending and len(running) < max_parallel:
                t = pending.pop(0)
                running[pool.submit(run_trial, t)] = t
                on_update(t, "running", None)
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                t = running.pop(fut)
                res = fut.result()
                results.append(res)
                on_update(t, res.status, res)
            if not done:
                on_update(None, "tick", None)  # type: ignore[arg-type]
    return results


def _run_ray(trials: Sequence[Trial], max_parallel: int, address: str | None,
             on_update: Callable[[Trial, str, TrialResult | None], None]) -> list[TrialResult]:
    try:
        import ray
    except ImportError:
        raise RuntimeError('the ray backend needs Ray: pip install "spikerl[ray]" (or use --backend local)') from None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": max_parallel}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        refs = {}
        for t in trials:
            refs[remote.remote(t)] = t
            on_update(t, "running", None)
        results = []
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                t = refs[ref]
                try:
                    res = ray.get(ref)
                except Exception as err:  # a worker that died
                    res = TrialResult(t, "failed", error=f"ray task failed: {err}")
                results.append(res)
                on_update(t, res.status, res)
            if not ready:
                on_update(None, "tick", None)  # type: ignore[arg-type]
        return results
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(trials: Sequence[Trial], backend: str = "local", max_parallel: int | None = None,
              address: str | None = None, live: bool = True) -> list[TrialResult]:
    """Run all trials on ``backend``; show a live table of trials when ``live``."""
    if backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    max_parallel = max(1, int(max_parallel or os.cpu_count() or 1))
    status = {t.name: "pending" for t in trials}
    if live:
        from rich.live import Live

        live_ctx = Live(_table(trials, status), refresh_per_second=2, transient=False)
    else:
        from contextlib import nullcontext

        live_ctx = nullcontext()
    with live_ctx as view:
        def on_update(trial: Trial | None, state: str, result: TrialResult | None) -> None:
            if trial is not None:
                status[trial.name] = state if result is None else (
                    "skipped" if result.status == "skipped" else
                    ("resumed+done" if result.resumed and result.status == "done" else result.status))
            if view is not None:
                view.update(_table(trials, status))

        if backend == "local":
            return _run_local(trials, max_parallel, on_update)
        return _run_ray(trials, max_parallel, address, on_update)


def _table(trials: Sequence[Trial], status: dict[str, str]):
    from rich.table import Table

    table = Table(title="spikerl sweep")
    for col in ("trial", "status", "steps", "steps/s", "last return"):
        table.add_column(col, justify="left" if col in ("trial", "status") else "right")
    colors = {"done": "green", "resumed+done": "green", "failed": "red", "running": "yellow", "skipped": "cyan"}
    for t in trials:
        st = status[t.name]
        info = trial_progress(t) if st not in ("pending",) else {}
        steps = info.get("steps")
        sps = info.get("steps_per_s")
        ret = info.get("last_return")
        table.add_row(t.name, f"[{colors.get(st, 'white')}]{st}[/]", "" if steps is None else str(steps),
                      "" if sps is None else f"{sps:.1f}", "" if ret is None else f"{ret:.1f}")
    return table


def summarize(results: Sequence[TrialResult]) -> dict[str, Any]:
    """Counts of done / failed / resumed / skipped and the failures with their errors."""
    return {
        "done": sum(r.status == "done" for r in results),
        "resumed": sum(r.resumed and r.status == "done" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "failures": [{"trial": r.trial.name, "error": r.error, "returncode": r.returncode}
                     for r in results if r.status == "failed"],
        "trials": [{**{k: str(v) for k, v in asdict(r.trial).items()}, "status": r.status, "resumed": r.resumed,
                    "seconds": round(r.seconds, 1)} for r in results],
    }
