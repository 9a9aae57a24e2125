"""``spikerl train``: train a preset or YAML config into a run directory, or resume a killed run."""

from __future__ import annotations

import argparse
import importlib.resources
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from spikerl.cli import CLIError
from spikerl.cli.args import default_threads, existing_dir, step_count
from spikerl.cli.threads import set_torch_threads

if TYPE_CHECKING:  # spikerl.config imports torch; `spikerl --help` does not
    from spikerl.config import Config

EPILOG = """examples:
  spikerl train td3-proxy-lif --env InvertedPendulum-v5 --steps 20000 --set learning_starts=1000
  spikerl train my.yaml --seed 3 --set actor.T=8 proxy.lr=3e-3 batch_size=128
  spikerl train --resume runs/td3-proxy-lif-Hopper-v5-s0-20260101-120000

--set takes dotted keys (SB3 arguments under SB3's names: learning_starts, batch_size, ...; spikerl's
blocks: actor.*, critic.*, proxy.*, eval.*, checkpoint.*, action_noise.*); values are YAML scalars or
lists ([64, 64]). Put --set after the config name.
"""


def _preset_names() -> list[str]:
    """Shipped presets, listed without importing torch (``spikerl --help`` stays fast)."""
    try:
        root = importlib.resources.files("spikerl.configs")
        return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))
    except (ModuleNotFoundError, OSError):  # pragma: no cover - broken install
        return []


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an SNN/ANN agent from a preset or YAML config",
                       description="Train TD3/SAC with a spiking (or ANN) actor into a run directory "
                       "(config.yaml, model.zip, checkpoints/, tb/, evaluations.csv, metrics.json).",
                       epilog=f"presets: {', '.join(_preset_names())}\n\n{EPILOG}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", metavar="PRESET_OR_YAML",
                   help="a preset name (td3-proxy-lif, td3-ann, sac-lif, ...) or the path of a YAML config")
    p.add_argument("--env", metavar="ID", help="Gymnasium env id (sets env=ID), e.g. Hopper-v5")
    p.add_argument("--steps", type=step_count, metavar="N", help="training env steps (sets total_timesteps=N)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (sets seed=S)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="run directory (default runs/<preset>-<env>-s<seed>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--checkpoint-every", type=step_count, metavar="N",
                   help="env steps between checkpoints (sets checkpoint.every=N)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="dotted config overrides, e.g. learning_starts=1000 actor.T=8 proxy.lr=3e-3")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --run-dir (if any) and start again")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a run from its newest checkpoint to its original step budget")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-evaluation lines")
    p.add_argument("--threads", type=int, default=default_threads(), metavar="N",
                   help="torch CPU threads (default: $SPIKERL_NUM_THREADS or 1; RL-sized networks gain little "
                   "from more, and extra threads on a busy machine slow training down several times)")


def _default_run_dir(cfg: Config) -> Path:
    env = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg.env)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg.name or "run")
    return Path("runs") / f"{name}-{env}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def _overrides(args: argparse.Namespace) -> list[str]:
    out = list(args.overrides)
    for flag, key in (("env", "env"), ("steps", "total_timesteps"), ("seed", "seed"),
                      ("checkpoint_every", "checkpoint.every")):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={value}")
    return out


def run(args: argparse.Namespace) -> int:
    """Train or resume; SIGINT and SIGTERM end it with one line and exit code 128 + the signal's number, after a
    checkpoint of the step where it stopped and ``metrics.json`` (status ``interrupted``) are written."""
    with _sigterm_as_interrupt() as received:
        try:
            return _run(args)
        except KeyboardInterrupt as stop:
            signum = received[-1] if received else signal.SIGINT
            name = signal.Signals(signum).name
            training = sys.modules.get("spikerl.agents.training")  # not imported: stopped before training
            if training is not None and isinstance(stop, training.TrainingInterrupted):
                from spikerl.run_layout import RunLayout, list_checkpoints

                saved = list_checkpoints(RunLayout(stop.run_dir).checkpoints)
                kept = f"the newest checkpoint is at step {saved[-1]}" if saved else "no checkpoint was written yet"
                print(f"spikerl train: stopped by {name} at step {stop.result.total_timesteps}; metrics.json says "
                      f"interrupted and {kept}: continue with spikerl train --resume {stop.run_dir}", file=sys.stderr)
            else:
                print(f"spikerl train: stopped by {name} before training started", file=sys.stderr)
            return 128 + signum


@contextmanager
def _sigterm_as_interrupt() -> Iterator[list[int]]:
    """While inside, SIGTERM raises KeyboardInterrupt as SIGINT does, so both stop training the same way; the list
    yielded collects the signal numbers received. A SIGTERM that was ignored when this process started stays so."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield received
        return

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from spikerl.config import ConfigError, check_device_available, load_config
    from spikerl.lifeline import ParentGoneError, die_with_parent_from_env

    try:
        die_with_parent_from_env()  # a trainer started by spikerl sweep does not outlive it
    except ParentGoneError as err:
        raise CLIError(str(err)) from None
    if args.resume:
        given = [f for f, v in (("PRESET_OR_YAML", args.config), ("--env", args.env), ("--steps", args.steps),
                                ("--seed", args.seed), ("--run-dir", args.run_dir),
                                ("--checkpoint-every", args.checkpoint_every), ("--set", args.overrides),
                                ("--overwrite", args.overwrite)) if v]
        if given:
            raise CLIError(f"--resume continues a run with its saved config.yaml; drop {', '.join(given)}")
        existing_dir(args.resume)
        cfg = None
    else:
        if not args.config:
            raise CLIError("give a preset name or YAML path (e.g. spikerl train td3-proxy-lif), "
                           "or --resume RUN_DIR")
        try:
            cfg = load_config(args.config, _overrides(args))
            check_device_available(cfg.device)
        except ConfigError as err:
            raise CLIError(str(err)) from None

    from rich.console import Console

    from spikerl.agents.cpu import flush_denormals, keep_freed_memory
    from spikerl.agents.training import RunError, io_error_text, resume_run, train_run

    flush_denormals()  # before torch starts its worker threads, which inherit it: subnormal Adam state is slow
    set_torch_threads(args.threads)
    keep_freed_memory()  # reuse freed tensor memory instead of page-faulting fresh pages every update

    console = Console(stderr=False)
    progress = (not args.quiet) and sys.stdout.isatty()

    def warn(text: str) -> None:
        print(f"spikerl train: warning: {text}", file=sys.stderr, flush=True)

    def on_eval(rec) -> None:
        if not args.quiet and not progress:
            print(f"step {rec.step}: eval return {rec.mean:.2f} ± {rec.std:.2f} ({rec.wall_time:.0f} s)",
                  flush=True)

    try:
        if args.resume:
            run_dir = Path(args.resume)
            if not args.quiet:
                print(f"resuming {run_dir}", flush=True)
            result = resume_run(run_dir, progress=progress, console=console, on_eval=on_eval, on_notice=warn)
        else:
            run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(cfg)
            if not args.quiet:
                print(f"training {cfg.name} ({cfg.algo}, target {cfg.target}, {cfg.policy}) on "
                      f"{cfg.env} for {cfg.total_timesteps} steps -> {run_dir}", flush=True)
            result = train_run(cfg, run_dir, progress=progress, console=console, on_eval=on_eval,
                               overwrite=args.overwrite)
    except RunError as err:
        raise CLIError(str(err)) from None
    except (ValueError, ImportError) as err:  # bad env id, missing MuJoCo, invalid model arguments
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    except OSError as err:  # a full disk or read-only folder before training started
        raise CLIError(io_error_text(err)) from None

    if result.status != "completed":
        print(f"spikerl train: error: training stopped at step {result.total_timesteps}: {result.message}. "
              f"The last good checkpoint is kept in {run_dir / 'checkpoints'}.", file=sys.stderr)
        return 1
    final = "-" if result.final_return is None else f"{result.final_return:.2f} ± {result.final_return_std:.2f}"
    best = "-" if result.best_return is None else f"{result.best_return:.2f} (step {result.best_step})"
    stopped = f" (stopped early: {result.message})" if result.stopped_early else ""
    print(f"done: {result.total_timesteps} steps{stopped} in {result.wall_time_s:.0f} s ({result.steps_per_second:.1f} "
          f"steps/s); final eval return {final}; best {best}; run saved to {run_dir}", flush=True)
    return 0
