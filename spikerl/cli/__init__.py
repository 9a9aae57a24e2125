"""The ``spikerl`` console command.

Each subcommand lives in its own module ``spikerl.cli.<name>`` exposing ``add_parser(subparsers)``
(registering its arguments) and ``run(args) -> int``. Heavy imports (SB3, Gymnasium, Numba) happen
inside ``run`` so that ``spikerl --help`` stays fast. This package is the only part of ``spikerl/``
that may import the RL layers (``spikerl.agents``, ``spikerl.envs``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from spikerl import __version__

#: subcommand modules, in the order ``--help`` lists them
COMMANDS: tuple[str, ...] = ("demo", "train", "evaluate", "export", "compare", "sweep", "convert")


class CLIError(Exception):
    """A user error: printed as one line ``spikerl: error: ...`` with exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikerl",
        description="Reinforcement learning with spiking neural networks (SNN actors, Proxy Target, "
        "ANN-to-SNN conversion, fast CPU inference).",
    )
    parser.add_argument("--version", action="version", version=f"spikerl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"spikerl.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    module = importlib.import_module(f"spikerl.cli.{args.command.replace('-', '_')}")
    try:
        return int(module.run(args) or 0)
    except CLIError as err:
        print(f"spikerl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spikerl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
