"""``spikerl compare RUN_DIR... [--out DIR]``: table and learning curves over seeds and variants."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare run directories: markdown table and learning-curve plot",
        description="Group runs by env and variant (preset), and write comparison.md (mean ± std over seeds of "
        "final and best evaluation return, steps/s, firing rate, energy per decision) and curves.png "
        "(mean with a shaded std band, one panel per env). A directory without config.yaml is searched "
        "for run directories below it.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or folders that contain them")
    p.add_argument("--out", default="comparison", help="output folder (default ./comparison)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markdown import Markdown

    from spikerl.cli import CLIError
    from spikerl.compare import compare_runs, markdown_table

    try:
        md, png, runs = compare_runs(args.runs, args.out)
    except FileNotFoundError as err:
        raise CLIError(str(err)) from None
    console = Console()
    console.print(Markdown(markdown_table(runs)))
    console.print(f"{len(runs)} runs; wrote {md} and {png}")
    return 0
