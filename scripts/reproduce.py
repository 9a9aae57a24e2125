#!/usr/bin/env python
"""Learning evidence: the Proxy Target protocol on a grid of envs x presets x seeds, via ``spikerl sweep``.

Runs every trial as an ordinary run directory under ``--out`` (re-running resumes and skips finished
trials), then writes the comparison table (mean ± std over seeds of the final and best evaluation
return, steps/s) and learning curves to ``--out`` and, with ``--publish``, copies them to
``benchmarks/NAME.md`` / ``benchmarks/NAME.png`` (``--name``, default ``reproduce``) together with
the exact command line, and the numbers behind them to ``benchmarks/NAME.json`` (per group: seeds and
mean/std/n of the final and best return, steps/s, firing rate, energy; per run: the evaluation curve).

Example (a short-budget grid of 100k steps per run; hours on 2 cores):

    python scripts/reproduce.py --envs InvertedDoublePendulum-v5,Hopper-v5 \
        --presets td3-ann,td3-lif,td3-proxy-lif --seeds 0-1 --steps 100000 --max-parallel 2 --publish
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def publication(command: str, steps: int, runs: list) -> dict:
    """The published numbers of a grid as JSON-ready data (NaN -> None)."""
    from spikerl.compare import summary_rows

    def stat(value: tuple[float, float, int]) -> dict:
        mean, std, n = value
        return {"mean": None if math.isnan(mean) else mean, "std": None if math.isnan(std) else std, "n": n}

    groups = [{k: stat(v) if isinstance(v, tuple) else v for k, v in row.items()} for row in summary_rows(runs)]
    curves = [{"env": r.env, "variant": r.variant, "seed": r.seed, "steps": [int(s) for s in r.steps],
               "mean_returns": [float(m) for m in r.means], "steps_per_s": r.steps_per_s} for r in runs]
    return {"command": command, "steps": steps, "date": time.strftime("%Y-%m-%d"), "groups": groups, "runs": curves}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default="InvertedDoublePendulum-v5,Hopper-v5")
    p.add_argument("--presets", default="td3-ann,td3-lif,td3-proxy-lif")
    p.add_argument("--seeds", default="0-1")
    p.add_argument("--steps", type=int, default=100_000, help="env steps per trial (paper: 1M after 25k random)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every trial")
    p.add_argument("--out", default="runs/reproduce")
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument("--max-parallel", type=int, default=None)
    p.add_argument("--publish", action="store_true", help="copy the table and plot into benchmarks/")
    p.add_argument("--name", default="reproduce",
                   help="file stem for --publish: benchmarks/NAME.md and NAME.png (default reproduce)")
    args = p.parse_args(argv)

    from spikerl.compare import compare_runs
    from spikerl.sweep import SweepInterrupted, expand_grid, run_sweep, summarize

    trials = expand_grid(args.presets, args.envs, args.seeds, args.out, steps=args.steps, overrides=args.set)
    t0 = time.time()
    try:
        results = run_sweep(trials, backend=args.backend, max_parallel=args.max_parallel, live=sys.stdout.isatty())
    except SweepInterrupted as stopped:
        name = signal.Signals(stopped.signum).name
        print(f"reproduce: stopped by {name}; the running trials keep their checkpoints: run the same command "
              f"again to resume them", file=sys.stderr)
        return 128 + stopped.signum
    summary = summarize(results)
    print(f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed "
          f"in {(time.time() - t0) / 60:.1f} min")
    for f in summary["failures"]:
        print(f"FAILED {f['trial']}: {f['error']}")
    md, png, runs = compare_runs([args.out], args.out)
    print(md.read_text())
    if args.publish:
        bench = ROOT / "benchmarks"
        bench.mkdir(exist_ok=True)
        cmd = "python scripts/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
        (bench / f"{args.name}.md").write_text(
            f"# Learning evidence (scripts/reproduce.py)\n\nCommand: `{cmd}`\n\n"
            f"{len(runs)} runs, {args.steps} env steps each, eval every `eval.freq` steps with the preset's "
            f"episodes (deterministic).\n\n" + md.read_text().split("\n", 2)[2]
        )
        shutil.copy(png, bench / f"{args.name}.png")
        (bench / f"{args.name}.json").write_text(json.dumps(publication(cmd, args.steps, runs), indent=1) + "\n")
        print(f"published to {bench / (args.name + '.md')}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
