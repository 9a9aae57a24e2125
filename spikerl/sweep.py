"""Experiment sweeps: a grid of env x preset x seed, each trial an ordinary ``spikerl train`` run.

Every trial runs as its own ``spikerl train`` process (one torch thread), so a crash, a NaN or an
out-of-memory in one trial cannot take the others down, and each trial directory
``OUT/<env>/<preset>/s<seed>`` is a normal run that ``evaluate``, ``export`` and ``compare`` accept.

Backends: ``local`` (a pool of at most K concurrent processes; default K = number of cores) and
``ray`` (the same trial function as Ray tasks with ``num_cpus=1``, on ``ray.init()`` or an existing
cluster address; install with ``pip install "spikerl[ray]"``). Scheduling is left to the pool / Ray.

Fault tolerance: re-running a sweep with the same out dir skips finished trials (``metrics.json`` says
so), resumes interrupted ones from their last checkpoint (``spikerl train --resume``) and starts the
rest. A failing trial is reported with the tail of its log and does not stop the others; a trial that
stopped on a non-finite loss is reported as such on every run (resuming it would only repeat the loss).

No trainer outlives its sweep. Each runs in its own session (a terminal's Ctrl-C reaches the sweep alone)
and ties its life to the sweep's (:mod:`spikerl.lifeline`: a parent-death signal and a watch of its
parent), so a sweep killed even by SIGKILL takes its trainers with it. SIGINT or SIGTERM of the sweep
passes SIGINT on to every running trainer, which stops through its interrupt path, keeping its last
checkpoint; the sweep then reports the stopped trials, which the next run of the same sweep resumes.
The Ray backend cancels its tasks instead, which interrupts their trainers the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spikerl.lifeline import PARENT_ENV
from spikerl.run_layout import RunLayout
from spikerl.run_lock import lock_holder

#: a trial's state in the live table; a finished trial's is its TrialResult status
STATUSES = ("pending", "running", "done", "failed", "skipped", "non_finite", "interrupted", "not_started")
#: seconds a trainer has to stop after the sweep passed it SIGINT, before it is killed
STOP_GRACE_S = 20.0


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
    """How a trial ended in this sweep. ``status``: ``done`` (trained to its budget now), ``skipped`` (finished
    before), ``failed``, ``non_finite`` (stopped on a non-finite loss, now or before), ``interrupted`` (stopped by
    the sweep's SIGINT/SIGTERM: resumable) or ``not_started`` (the sweep was stopped first)."""

    trial: Trial
    status: str
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


def validate_trials(trials: Sequence[Trial], check_env: Callable[[str], Any] | None = None) -> None:
    """Resolve every trial's config up front, check that its device exists here, and check its env id with
    ``check_env`` (which raises ValueError naming the valid ids), so a bad preset, override, device or env id fails
    before anything runs."""
    from spikerl.config import ConfigError, check_device_available, load_config

    checked: set[str] = set()
    envs_checked: set[str] = set()
    for t in trials:
        if check_env is not None and t.env not in envs_checked:
            try:
                check_env(t.env)
            except ValueError as err:
                raise ValueError(f"trial {t.name}: {err}") from None
            envs_checked.add(t.env)
        if t.preset in checked:
            continue
        overrides = [*t.overrides, f"env={t.env}", f"seed={t.seed}"]
        if t.steps is not None:
            overrides.append(f"total_timesteps={t.steps}")
        try:
            check_device_available(load_config(t.preset, overrides).device)
        except (ConfigError, FileNotFoundError, OSError) as err:
            raise ValueError(f"trial {t.name}: {err}") from None
        checked.add(t.preset)


#: the keys of a sweep file
SWEEP_FILE_KEYS = ("presets", "envs", "seeds", "steps", "set", "out", "backend", "max_parallel", "address")


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """A YAML sweep file: ``presets``, ``envs``, ``seeds`` and optional ``steps``, ``set`` (mapping or
    list of ``key=value``), ``out``, ``backend``, ``max_parallel``, ``address``.

    Every problem is a one-line ValueError naming the file and the key."""
    from spikerl.config.loading import yaml_file
    from spikerl.config.values import step_count

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    data = yaml_file(path)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"sweep file {path}: expected a YAML mapping with keys {', '.join(SWEEP_FILE_KEYS)}, "
                         f"got a {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in SWEEP_FILE_KEYS)
    if unknown:
        raise ValueError(f"sweep file {path}: unknown key(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(sorted(SWEEP_FILE_KEYS))}")
    missing = [k for k in ("presets", "envs", "seeds") if k not in data]
    if missing:
        raise ValueError(f"sweep file {path}: missing key(s) {', '.join(missing)}")
    try:
        if data.get("steps") is not None:
            data["steps"] = step_count(data["steps"])
    except ValueError as err:
        raise ValueError(f"sweep file {path}: steps: {err}") from None
    if data.get("max_parallel") is not None:
        value = data["max_parallel"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sweep file {path}: max_parallel: expected an integer >= 1, got {value!r}")
    sets = data.get("set") or []
    if isinstance(sets, dict):
        sets = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sets.items()]
    elif not isinstance(sets, list) or not all(isinstance(v, str) for v in sets):
        raise ValueError(f"sweep file {path}: set: expected a mapping of keys to values or a list of key=value "
                         f"strings, got {sets!r}")
    data["set"] = list(sets)
    return data


# -- one trial ---------------------------------------------------------------------------------
def _read_metrics(trial: Trial) -> dict[str, Any]:
    """The trial's ``metrics.json`` (empty when missing or unreadable)."""
    path = RunLayout(trial.run_dir).metrics
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def trial_state(trial: Trial) -> str:
    """``done`` (finished its budget), ``non_finite`` (stopped on a non-finite loss: resuming would only repeat
    it), ``interrupted`` (has a committed checkpoint to resume) or ``new`` (never started, or killed before its
    first committed checkpoint: run from scratch).

    A checkpoint counts once its JSON marker is written (the marker comes last, see
    ``spikerl.agents.callbacks.save_checkpoint``); a leftover ``*.tmp`` file of a killed write does not."""
    status = _read_metrics(trial).get("status")
    if status == "completed":
        return "done"
    if status == "non_finite_loss":
        return "non_finite"
    if RunLayout(trial.run_dir).checkpoint_steps():
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


def _non_finite_result(trial: Trial, resumed: bool = False, returncode: int | None = None,
                       seconds: float = 0.0) -> TrialResult:
    metrics = _read_metrics(trial)
    error = f"stopped at step {metrics.get('total_timesteps', '?')}: {metrics.get('message') or 'non-finite loss'}"
    return TrialResult(trial, "non_finite", resumed=resumed, returncode=returncode, error=error, seconds=seconds)


def finished_result(trial: Trial, state: str) -> TrialResult | None:
    """The result of a trial that has nothing left to run (``done`` or ``non_finite``), else None."""
    if state == "done":
        return TrialResult(trial, "skipped")
    if state == "non_finite":
        return _non_finite_result(trial)
    return None


class TrialProcess:
    """A trial's ``spikerl train`` child, started at construction (a ``new`` trial's leftovers are removed first).

    The child runs in its own session, so a terminal's Ctrl-C reaches the sweep alone, and it is told to die with
    this process (``SPIKERL_PARENT_PID``, see :mod:`spikerl.lifeline`). Start and wait for it in the same thread:
    the kernel's parent-death signal follows the thread that started the child."""

    def __init__(self, trial: Trial, state: str, threads: int = 1) -> None:
        self.trial, self.resumed, self.stopping = trial, state == "interrupted", False
        # a start that left no checkpoint has nothing to keep, unless its trainer still runs: then the trainer
        # started below is refused by the run directory's lock, which names that process
        if state == "new" and trial.run_dir.exists() and lock_holder(trial.run_dir) is None:
            shutil.rmtree(trial.run_dir)
        trial.run_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = trial.run_dir.parent / f"{trial.run_dir.name}.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "SPIKERL_NUM_THREADS": str(threads), PARENT_ENV: str(os.getpid())}
        cmd = trial_command(trial, state)
        self.started = time.time()
        with self.log.open("a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def poll(self) -> TrialResult | None:
        """The result once the trainer has exited, else None."""
        code = self.proc.poll()
        return None if code is None else self._result(code)

    def interrupt(self) -> None:
        """SIGINT to the trainer (and anything it started): it stops through its interrupt path, which keeps
        the last checkpoint."""
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def stop(self, grace_s: float = STOP_GRACE_S) -> TrialResult:
        """Interrupt the trainer, kill it if it is still alive ``grace_s`` seconds later; its result."""
        self.interrupt()
        try:
            code = self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        return self._result(code)

    def _signal(self, sig: int) -> None:
        self.stopping = True
        if self.proc.poll() is None:  # not reaped yet, so its pid (= its process group) is still its own
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def _result(self, code: int) -> TrialResult:
        seconds = time.time() - self.started
        if code == 0:
            return TrialResult(self.trial, "done", resumed=self.resumed, returncode=0, seconds=seconds)
        if _read_metrics(self.trial).get("status") == "non_finite_loss":
            return _non_finite_result(self.trial, self.resumed, code, seconds)
        if self.stopping:
            return TrialResult(self.trial, "interrupted", resumed=self.resumed, returncode=code, seconds=seconds)
        tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        return TrialResult(self.trial, "failed", resumed=self.resumed, returncode=code, seconds=seconds,
                           error=" | ".join(tail) or f"exit code {code}")


#: seconds between two looks at the running trainers
POLL_S = 0.2


def run_trial(trial: Trial, threads: int = 1) -> TrialResult:
    """Run (or resume, or skip) one trial in a child process and wait for it; never raises for a failing trial.

    An exception while waiting (a KeyboardInterrupt: Ctrl-C, or Ray cancelling the task) stops the trainer
    first, then propagates. The wait polls, so an exception raised asynchronously in this thread is seen."""
    state = trial_state(trial)
    finished = finished_result(trial, state)
    if finished is not None:
        return finished
    child = TrialProcess(trial, state, threads)
    try:
        while (result := child.poll()) is None:
            time.sleep(POLL_S)
        return result
    except BaseException:
        child.stop()
        raise


def trial_progress(trial: Trial) -> dict[str, Any]:
    """Live numbers of a trial from its run directory (``progress.json`` and ``evaluations.csv``)."""
    info: dict[str, Any] = {}
    layout = RunLayout(trial.run_dir)
    prog = layout.progress
    if prog.is_file():
        try:
            data = json.loads(prog.read_text())
            info.update(data if isinstance(data, dict) else {})
        except (OSError, ValueError):
            pass
    evals = layout.evaluations
    if evals.is_file():
        try:
            rows = [r for r in evals.read_text().strip().splitlines()[1:] if r]
            if rows:
                info.setdefault("last_return", float(rows[-1].split(",")[1]))
        except (OSError, ValueError, IndexError):
            pass
    return info


# -- stopping ----------------------------------------------------------------------------------
class SweepInterrupted(Exception):
    """The sweep got SIGINT or SIGTERM and stopped its trials; ``results`` holds every trial's result (the
    stopped ones ``interrupted``: the next run of the same sweep resumes them)."""

    def __init__(self, signum: int, results: list[TrialResult]) -> None:
        self.signum, self.results = signum, results
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class _StopRequest:
    """The SIGINT/SIGTERM signals the sweep received, in order (a signal handler: it only records)."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    @property
    def requested(self) -> bool:
        return bool(self.signals)


@contextmanager
def _stop_on_signals(stop: _StopRequest) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM are recorded in ``stop`` instead of ending the process (main thread only:
    elsewhere Python cannot install handlers, and the caller's handling stays)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _stop_all(running: list[TrialProcess], stop: _StopRequest) -> list[TrialResult]:
    """Interrupt every running trainer and wait for them; a trainer still alive after ``STOP_GRACE_S``, or when a
    second signal arrives, is killed (its last committed checkpoint is still resumable)."""
    for child in running:
        child.interrupt()
    deadline, signals_seen, results = time.monotonic() + STOP_GRACE_S, len(stop.signals), []
    running = list(running)
    while running:
        for child in list(running):
            result = child.poll()
            if result is not None:
                running.remove(child)
                results.append(result)
        if running and (time.monotonic() > deadline or len(stop.signals) > signals_seen):
            for child in running:
                child.kill()
        time.sleep(POLL_S / 2 if running else 0)
    return results


# -- backends ----------------------------------------------------------------------------------
OnUpdate = Callable[[Trial | None, str, TrialResult | None], None]


def _run_local(trials: Sequence[Trial], max_parallel: int, on_update: OnUpdate) -> list[TrialResult]:
    results: list[TrialResult] = []

    def finish(result: TrialResult) -> None:
        results.append(result)
        on_update(result.trial, result.status, result)

    stop = _StopRequest()
    pending, running = list(trials), []
    with _stop_on_signals(stop):
        while (pending or running) and not stop.requested:
            while pending and len(running) < max_parallel and not stop.requested:
                trial = pending.pop(0)
                state = trial_state(trial)
                finished = finished_result(trial, state)
                if finished is not None:
                    finish(finished)
                    continue
                running.append(TrialProcess(trial, state))
                on_update(trial, "running", None)
            time.sleep(POLL_S)
            for child in list(running):
                result = child.poll()
                if result is not None:
                    running.remove(child)
                    finish(result)
            on_update(None, "tick", None)
        if stop.requested:
            for result in _stop_all(running, stop):
                finish(result)
            for trial in pending:
                finish(TrialResult(trial, "not_started"))
            raise SweepInterrupted(stop.signals[0], results)
    return results


def _run_ray(trials: Sequence[Trial], max_parallel: int, address: str | None, on_update: OnUpdate
             ) -> list[TrialResult]:
    try:
        import ray
    except ImportError:
        raise RuntimeError('the ray backend needs Ray: pip install "spikerl[ray]" (or use --backend local)') from None
    started_here = not ray.is_initialized()
    if started_here:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # a shell's background job starts with SIGINT ignored, which Ray's processes would inherit; a task is
            # cancelled by a SIGINT in its worker, so it must be handled there
            signal.signal(signal.SIGINT, signal.default_int_handler)
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": max_parallel}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    stop = _StopRequest()
    try:
        with _stop_on_signals(stop):  # after ray.init, so that Ray's own handlers do not replace these
            remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
            refs = {}
            for t in trials:
                refs[remote.remote(t)] = t
                on_update(t, "running", None)
            results = []
            pending = list(refs)
            while pending and not stop.requested:
                ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                for ref in ready:
                    results.append(_ray_result(ray, ref, refs[ref]))
                    on_update(refs[ref], results[-1].status, results[-1])
                if not ready:
                    on_update(None, "tick", None)
            if stop.requested:
                for ref in pending:  # a running task gets a KeyboardInterrupt: run_trial stops its trainer
                    ray.cancel(ref)
                _, left = ray.wait(pending, num_returns=len(pending), timeout=STOP_GRACE_S + 5)
                for ref in left:  # a worker that did not stop: killed, its trainer stops as its parent died
                    ray.cancel(ref, force=True)
                for ref in pending:
                    results.append(_ray_result(ray, ref, refs[ref], cancelled=True))
                    on_update(refs[ref], results[-1].status, results[-1])
                raise SweepInterrupted(stop.signals[0], results)
            return results
    finally:
        if started_here:
            ray.shutdown()  # ends its workers; a trainer left behind sees its parent die and stops


def _ray_result(ray: Any, ref: Any, trial: Trial, cancelled: bool = False) -> TrialResult:
    try:
        return ray.get(ref, timeout=0 if cancelled else None)
    except Exception as err:  # noqa: BLE001 - a worker that died, or a cancelled task
        if cancelled:
            return TrialResult(trial, "interrupted" if trial.run_dir.exists() else "not_started")
        return TrialResult(trial, "failed", error=f"ray task failed: {type(err).__name__}: {err}")


def run_sweep(trials: Sequence[Trial], backend: str = "local", max_parallel: int | None = None,
              address: str | None = None, live: bool = True) -> list[TrialResult]:
    """Run all trials on ``backend``; show a live table of trials when ``live``.

    ``max_parallel`` defaults to the number of cores. SIGINT or SIGTERM (received in the main thread) stops the
    running trials, which stay resumable, and raises :class:`SweepInterrupted` with every trial's result."""
    if backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    if max_parallel is None:
        max_parallel = os.cpu_count() or 1
    elif isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise ValueError(f"max_parallel: expected an integer >= 1 (concurrent trials), got {max_parallel!r}")
    status = {t.name: "pending" for t in trials}
    if live:
        from rich.live import Live

        live_ctx = Live(_table(trials, status), refresh_per_second=2, transient=False)
    else:
        from contextlib import nullcontext

        live_ctx = nullcontext()
    with live_ctx as view:
        last_tick = [0.0]

        def on_update(trial: Trial | None, state: str, result: TrialResult | None) -> None:
            if trial is not None:
                status[trial.name] = state if result is None else (
                    "skipped" if result.status == "skipped" else
                    ("resumed+done" if result.resumed and result.status == "done" else result.status))
            elif time.monotonic() - last_tick[0] < 1.0:  # a tick: refresh the live numbers once a second
                return
            else:
                last_tick[0] = time.monotonic()
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
    colors = {"done": "green", "resumed+done": "green", "failed": "red", "non_finite": "red", "running": "yellow",
              "skipped": "cyan", "interrupted": "magenta"}
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
    """Counts of done / resumed / skipped / failed / non_finite / interrupted / not_started trials, the failures
    and the non-finite trials with their errors, and every trial's result."""
    def count(status: str) -> int:
        return sum(r.status == status for r in results)

    return {
        "done": count("done"),
        "resumed": sum(r.resumed and r.status == "done" for r in results),
        "skipped": count("skipped"),
        "failed": count("failed"),
        "non_finite": count("non_finite"),
        "interrupted": count("interrupted"),
        "not_started": count("not_started"),
        "failures": [{"trial": r.trial.name, "error": r.error, "returncode": r.returncode}
                     for r in results if r.status == "failed"],
        "non_finite_trials": [{"trial": r.trial.name, "error": r.error} for r in results if r.status == "non_finite"],
        "trials": [{**{k: str(v) for k, v in asdict(r.trial).items()}, "status": r.status, "resumed": r.resumed,
                    "returncode": r.returncode, "seconds": round(r.seconds, 1)} for r in results],
    }
