"""``spikerl sweep``: a grid of env x preset x seed on a local process pool or on Ray."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from spikerl.cli.args import positive_int, step_count
from spikerl.run_lock import FolderLock, FolderLockedError, FolderLockError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of presets x envs x seeds (local pool or Ray), then compare",
        description="Each trial is an ordinary run directory OUT/<env>/<preset>/s<seed>. Re-running with the same "
        "--out skips finished trials and resumes interrupted ones from their checkpoints; a failing trial "
        "does not stop the others. Ctrl-C (SIGINT) or SIGTERM stops the running trials, keeping their checkpoints "
        "for the next run; the trials never outlive the sweep. At the end, comparison.md and curves.png are written "
        "into OUT.")
    p.add_argument("presets", nargs="?", help="preset names or YAML paths, comma-separated: td3-ann,td3-proxy-lif")
    p.add_argument("--file", help="YAML sweep file with presets, envs, seeds and optional steps, set, out, backend, "
                   "max_parallel, address (command-line flags override it)")
    p.add_argument("--envs", help="env ids, comma-separated (e.g. Hopper-v5,Walker2d-v5)")
    p.add_argument("--seeds", help="seed range or list: 0-4 or 0,3,7")
    p.add_argument("--steps", type=step_count, help="training steps per trial, e.g. 300000 or 3e5 (default: the "
                   "preset's)")
    p.add_argument("--set", nargs="+", default=None, metavar="KEY=VALUE", help="config overrides for every trial")
    p.add_argument("--out", help="sweep output folder (default sweeps/<timestamp>)")
    p.add_argument("--backend", choices=("local", "ray"), help="local process pool (default) or Ray")
    p.add_argument("--max-parallel", type=positive_int, help="concurrent trials (default: number of CPU cores)")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--no-live", action="store_true", help="no live table (for logs and CI)")


def run(args: argparse.Namespace) -> int:
    import time

    from spikerl.cli import CLIError
    from spikerl.envs import resolve_env_id
    from spikerl.sweep import SweepInterrupted, expand_grid, load_sweep_file, run_sweep, validate_trials

    spec: dict = {}
    if args.file:
        try:
            spec = load_sweep_file(args.file)
        except (OSError, ValueError) as err:
            raise CLIError(str(err)) from None
    presets = args.presets or spec.get("presets")
    envs = args.envs or spec.get("envs")
    seeds = args.seeds if args.seeds is not None else spec.get("seeds")
    if not presets or not envs or seeds is None:
        raise CLIError("a sweep needs presets, --envs and --seeds (or a --file that gives them), e.g. "
                       "spikerl sweep td3-ann,td3-proxy-lif --envs Hopper-v5 --seeds 0-2")
    out = Path(args.out or spec.get("out") or f"sweeps/{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder for the sweep's run directories")
    with _lock_sweep_folder(out):  # one sweep per folder: a second one is refused, naming the first
        overrides = args.set if args.set is not None else spec.get("set", [])
        try:
            trials = expand_grid(presets, envs, seeds, out, steps=args.steps or spec.get("steps"), overrides=overrides)
            validate_trials(trials, check_env=resolve_env_id)
            results = run_sweep(trials, backend=args.backend or spec.get("backend", "local"),
                                max_parallel=args.max_parallel or spec.get("max_parallel"),
                                address=args.address or spec.get("address"), live=not args.no_live)
        except SweepInterrupted as stopped:
            summary = _write_summary(out, stopped.results)
            name = signal.Signals(stopped.signum).name
            print(f"spikerl sweep: stopped by {name}: {summary['interrupted']} running trial(s) interrupted with their "
                  f"checkpoints kept, {summary['not_started']} not started; run the same command again to resume them",
                  file=sys.stderr)
            return 128 + stopped.signum
        except (ValueError, RuntimeError) as err:
            raise CLIError(str(err)) from None
        summary = _write_summary(out, results)
        _compare(out)
        return 1 if summary["failed"] or summary["non_finite"] else 0


def _lock_sweep_folder(out: Path) -> FolderLock:
    """``out``'s lock (``spikerl.run_lock``), held by this sweep until it ends; CLIError naming the holder."""
    from spikerl.cli import CLIError

    try:
        return FolderLock(out, "sweep folder").acquire()
    except (FolderLockedError, FolderLockError) as err:
        raise CLIError(str(err)) from None


def _write_summary(out: Path, results: list) -> dict:
    """``OUT/sweep_summary.json`` and the summary lines: counts, then one line per failed or non-finite trial."""
    from spikerl.sweep import summarize

    summary = summarize(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"sweep: {summary['done']} done ({summary['resumed']} resumed), {summary['skipped']} already finished, "
          f"{summary['non_finite']} stopped on a non-finite loss, {summary['failed']} failed")
    for f in summary["failures"]:
        print(f"failed {f['trial']}: {f['error']}")
    for f in summary["non_finite_trials"]:
        print(f"non-finite loss {f['trial']}: {f['error']} (not counted as done, and not resumed: it would repeat "
              "the loss; delete its folder to run it again)")
    return summary


def _compare(out: Path) -> None:
    from spikerl.compare import compare_runs

    def skipped(path: Path, reason: str) -> None:
        print(f"spikerl sweep: warning: compare skipped {path}: {reason}")

    try:
        md, png, _ = compare_runs([out], out, on_skip=skipped)
        print(f"wrote {md} and {png}")
    except FileNotFoundError:
        print("no finished run to compare")
