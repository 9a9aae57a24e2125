"""``spikerl compare RUN_DIR... [--out DIR] [--at STEP]``: tables, statistics and learning curves over seeds and
variants."""

from __future__ import annotations

import argparse

from spikerl.cli.args import os_error_line, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare run directories: tables with IQM, intervals and P(improvement), learning curves",
        description="Group runs by env and variant (preset), and write comparison.md (mean ± std over seeds of "
        "final and best evaluation return, steps/s, firing rate, energy per decision; then, at one step per env, "
        "the return mean ± std, the interquartile mean with its 95% bootstrap interval and the probability of "
        "improvement between each pair of variants), comparison.json (the same statistics with every run's "
        "return) and curves.png (mean over seeds with a shaded 95% bootstrap band, one panel per env). A "
        "directory without config.yaml is searched for run directories below it.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or folders that contain them")
    p.add_argument("--out", default="comparison", help="output folder (default ./comparison)")
    p.add_argument("--at", type=positive_int, metavar="STEP",
                   help="compare at this env step (each run's evaluation return interpolated there; runs that did "
                   "not reach it are left out); default: per env, the largest step all its runs reached")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from rich.console import Console
    from rich.markdown import Markdown

    from spikerl.cli import CLIError
    from spikerl.compare import compare_runs

    def skipped(path: Path, reason: str) -> None:
        print(f"spikerl compare: warning: skipped {path}: {reason}", file=sys.stderr)

    try:
        md, png, runs = compare_runs(args.runs, args.out, at=args.at, on_skip=skipped)
    except OSError as err:  # no run found, --out a file, or a folder that cannot be written
        raise CLIError(str(err) if err.filename is None else os_error_line(err)) from None
    except ValueError as err:
        raise CLIError(str(err)) from None
    console = Console()
    console.print(Markdown(md.read_text()))
    unfinished = sum(not r.finished for r in runs)
    note = f" ({unfinished} unfinished: not in final and best return)" if unfinished else ""
    print(f"{len(runs)} runs{note}; wrote {md}, {md.with_suffix('.json')} and {png}")
    return 0
