"""``spikerl evaluate``: evaluate a run's model, print mean ± std return, write ``evaluation.json``."""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

from spikerl.cli import CLIError
from spikerl.cli.args import default_threads, existing_dir, os_error_line
from spikerl.cli.args import positive_int as _positive
from spikerl.cli.args import seed as _seed
from spikerl.cli.threads import set_torch_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run (mean ± std return, optional videos)",
                       description="Load RUN_DIR/model.zip (or the newest checkpoint of an unfinished run), "
                       "run N episodes on a fresh env, print mean ± std return and energy per decision and write "
                       "RUN_DIR/evaluation.json (a bundle: BUNDLE/evaluation.json), or into --out DIR.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by spikerl train, a policy bundle "
                   "written by spikerl export (run with the torch-free runtime on the env and seeds of its run), or "
                   "a C export (spikerl export --format c; compiled with the system C compiler and run via ctypes)")
    p.add_argument("--episodes", type=_positive, default=10, metavar="N", help="episodes (default 10)")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="deterministic actions (default); --no-deterministic samples (SAC) or adds nothing "
                   "(TD3's policy is deterministic)")
    p.add_argument("--video", action="store_true",
                   help="record every episode to RUN_DIR/videos/*.mp4 (or BUNDLE/videos, or OUT/videos; headless, "
                   "MUJOCO_GL=egl; needs moviepy; not for converted policies)")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="write evaluation.json (and videos/) into DIR, created if missing, instead of the evaluated "
                   "folder: for a folder that should stay as it is, such as a zoo bundle or a read-only copy")
    p.add_argument("--seed", type=_seed, metavar="S", help="env seed, 0 to 2**32 - 1 (default: the run's seed + 100)")
    p.add_argument("--quiet", action="store_true", help="print only the result line")
    p.add_argument("--threads", type=int, default=default_threads(), metavar="N",
                   help="torch CPU threads (default: $SPIKERL_NUM_THREADS or 1)")


def run(args: argparse.Namespace) -> int:
    run_dir = existing_dir(args.run_dir)
    args.out = _output_folder(args.out, run_dir)
    kind = _folder_kind(run_dir)
    if kind == "bundle":
        return _run_bundle(args, run_dir)
    if kind == "converted":
        return _run_converted(args, run_dir)
    if kind == "c-export":
        return _run_c_export(args, run_dir)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spikerl.agents.training import RunError, evaluate_run

    set_torch_threads(args.threads)

    show = (not args.quiet) and sys.stdout.isatty()
    progress = Progress(TextColumn("[bold]evaluate"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), disable=not show)
    try:
        with progress:
            task = progress.add_task("evaluate", total=args.episodes, last="")
            result = evaluate_run(run_dir, episodes=args.episodes, deterministic=args.deterministic,
                                  video=args.video, seed=args.seed, out=args.out,
                                  on_episode=lambda n, r: progress.update(task, completed=n, last=f"return {r:.1f}"))
    except RunError as err:
        raise CLIError(str(err)) from None
    except (ValueError, ImportError) as err:  # env problems, missing moviepy/MuJoCo
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    except OSError as err:  # evaluation.json or videos/ in a folder that cannot be written
        raise CLIError(os_error_line(err)) from None
    _report(args, result, f"model {result['model']}", args.out)
    return 0


def _output_folder(out: Path | None, evaluated: Path) -> Path:
    """The folder for ``evaluation.json`` and ``videos/``: ``out`` (created) or the evaluated folder.

    Refused before any episode is played when it cannot be written: a file is created there and removed again
    (permission bits alone do not tell: root ignores them, a read-only mount or an immutable folder does not).
    """
    folder = evaluated if out is None else out
    try:
        if out is not None:
            if out.exists() and not out.is_dir():
                raise CLIError(f"--out {out} is a file; give a folder for evaluation.json")
            out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".evaluate-", suffix=".tmp"):
            pass
    except OSError as err:
        err.filename = str(folder / "evaluation.json")
        hint = "; write the evaluation elsewhere with --out DIR" if out is None else ""
        raise CLIError(os_error_line(err) + hint) from None
    return folder


#: files that mark a folder as a bundle / C export even when another of its files is missing (the loaders then
#: name the missing one), checked before a run directory's config.yaml
_BUNDLE_FILES = ("manifest.json", "weights.npz")
_C_EXPORT_FILES = ("spikerl_policy.json", "spikerl_policy.c", "spikerl_policy.h")


def _folder_kind(path: Path) -> str:
    """"bundle", "converted", "c-export" or "run" (spikerl train's run directory) from the files in ``path``."""
    if any((path / name).is_file() for name in _BUNDLE_FILES):
        return "bundle"
    if (path / "converted.json").is_file():
        return "converted"
    if any((path / name).is_file() for name in _C_EXPORT_FILES):
        return "c-export"
    return "run"


def _run_converted(args: argparse.Namespace, path: Path) -> int:
    """Evaluate a converted ANN policy (``spikerl convert``); the CRPI carry is reset per env at episode start."""
    if args.video:
        raise CLIError("--video is not supported for converted policies; evaluate the source run for videos")
    if not args.deterministic:
        raise CLIError("a converted policy is deterministic; drop --no-deterministic")

    from spikerl.agents.conversion import evaluate_converted

    set_torch_threads(args.threads)
    try:
        result = evaluate_converted(path, episodes=args.episodes, seed=args.seed, out=args.out)
    except OSError as err:  # an unreadable converted policy, or evaluation.json in a folder that cannot be written
        raise CLIError(os_error_line(err, None)) from None
    except (ValueError, ImportError) as err:
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    _report(args, result, result["model"], args.out)
    return 0


def _run_bundle(args: argparse.Namespace, bundle: Path) -> int:
    """Evaluate a policy bundle with the torch-free runtime; writes ``BUNDLE/evaluation.json``."""
    if not args.deterministic:
        raise CLIError("a bundle holds the deterministic policy only; drop --no-deterministic")
    from spikerl.agents.deploy import evaluate_bundle  # torch-free: NumPy, Numba and Gymnasium

    try:
        with warnings.catch_warnings():  # e.g. a bundle without a manifest checksum: one line each
            warnings.showwarning = _warning_line
            result = evaluate_bundle(bundle, episodes=args.episodes, seed=args.seed, video=args.video, out=args.out)
    except (ValueError, ImportError) as err:  # bad bundle (BundleError), env problems, missing moviepy
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    except OSError as err:  # evaluation.json or videos/ in a folder that cannot be written
        raise CLIError(os_error_line(err)) from None
    _report(args, result, f"bundle {bundle}, runtime spikerl.runtime", args.out)
    return 0


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    print(f"spikerl evaluate: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def _run_c_export(args: argparse.Namespace, path: Path) -> int:
    """Compile a C export (spikerl export --format c) with the system compiler and evaluate it through ctypes;
    writes ``PATH/evaluation.json``."""
    if args.video:
        raise CLIError("--video is not supported for a C export; evaluate its bundle for videos")
    if not args.deterministic:
        raise CLIError("a C export holds the deterministic policy only; drop --no-deterministic")
    from spikerl.agents.deploy_c import evaluate_c_export

    try:
        result = evaluate_c_export(path, episodes=args.episodes, seed=args.seed, out=args.out)
    except OSError as err:  # no compiler, or evaluation.json in a folder that cannot be written
        raise CLIError(os_error_line(err, None)) from None
    except (ValueError, ImportError) as err:  # bad export, env problems
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    _report(args, result, f"{result['runtime']}", args.out)
    return 0


def _report(args: argparse.Namespace, result: dict, what: str, folder: Path) -> None:
    """The result line (mean ± std -> folder/evaluation.json), then, unless --quiet, energy and videos."""
    kind = "deterministic" if result["deterministic"] else "stochastic"
    print(f"{result['env']}: mean return {result['mean_return']:.2f} ± {result['std_return']:.2f} over "
          f"{result['episodes']} {kind} episodes ({what}, seed {result['seed']}) -> {folder / 'evaluation.json'}")
    if args.quiet:
        return
    if "energy" in result:
        e = result["energy"]
        rate = f", firing rate {e['firing_rate']:.3f}" if e["firing_rate"] is not None else ""
        print(f"energy per decision ({e['energy_model']} figures): {e['energy_nj']:.2f} nJ "
              f"({e['sops']:.0f} SOPs, {e['macs']:.0f} MACs{rate})")
    if result.get("videos"):
        print(f"videos: {len(result['videos'])} files in {folder / 'videos'}")
