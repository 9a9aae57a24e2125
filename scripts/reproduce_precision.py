#!/usr/bin/env python
"""Learning A/B of ``precision: bf16`` against float32: Proxy Target TD3 (td3-proxy-lif) on InvertedDoublePendulum-v5
for 20k steps and Hopper-v5 for 40k steps, 4 seeds each, with the protocol of the short reproduce grids.

The two variants are the td3-proxy-lif preset with ``precision: float32`` and with ``precision: bf16`` (overlay files
written into ``--out``), run as one ``scripts/reproduce.py`` grid per env (published as
``benchmarks/precision_idp.*`` and ``benchmarks/precision_hopper.*``). Then ``benchmarks/precision_learning.json`` and
``.md`` put them side by side: final and best return (mean and std over seeds), whether bf16's mean final return lies
within the seeds' spread of float32's (|difference| <= the larger of the two stds), and the whole-run speed-up
(steps/s, including acting and evaluations).

    python scripts/reproduce_precision.py --max-parallel 2     # hours on 2 cores; re-running resumes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import reproduce  # scripts/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("float32", "bf16")
#: env -> (steps, protocol overrides, published name): the protocol of benchmarks/reproduce*.json
GRIDS = {
    "InvertedDoublePendulum-v5": (20_000, ["learning_starts=5000", "buffer_size=20000", "eval.freq=2500",
                                           "eval.episodes=5", "checkpoint.every=5000"], "precision_idp"),
    "Hopper-v5": (40_000, ["learning_starts=5000", "buffer_size=40000", "eval.freq=5000", "eval.episodes=5",
                           "checkpoint.every=10000"], "precision_hopper"),
}


def write_presets(folder: Path) -> list[Path]:
    """td3-proxy-lif with each precision, as config files whose names are the variants' names."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for precision in PRECISIONS:
        path = folder / f"td3-proxy-lif-{precision}.yaml"
        path.write_text(f"# td3-proxy-lif (Proxy Target TD3, LIF actor) with precision {precision}\n"
                        f"algo: td3\ntarget: proxy\npolicy: SNNPolicy\nprecision: {precision}\n")
        paths.append(path)
    return paths


def side_by_side(env: str, published: dict) -> dict:
    """float32 and bf16 of one env's grid: returns, spread check, speed-up."""
    groups = {g["variant"].rsplit("-", 1)[-1]: g for g in published["groups"]}
    f32, b16 = groups["float32"], groups["bf16"]
    diff = b16["final"]["mean"] - f32["final"]["mean"]
    spread = max(f32["final"]["std"] or 0.0, b16["final"]["std"] or 0.0)
    return {"env": env, "steps": published["steps"],
            "float32": {k: f32[k] for k in ("seeds", "final", "best", "steps_per_s")},
            "bf16": {k: b16[k] for k in ("seeds", "final", "best", "steps_per_s")},
            "final_difference": diff, "seed_spread": spread, "within_spread": abs(diff) <= spread,
            "speedup": b16["steps_per_s"]["mean"] / f32["steps_per_s"]["mean"]}


def markdown(rows: list[dict], command: str) -> str:
    lines = ["# Learning A/B: precision bf16 against float32 (td3-proxy-lif)", "", f"Command: `{command}`", "",
             "| env | steps | float32 final | bf16 final | difference | within the seeds' spread | float32 best | "
             "bf16 best | speed-up (steps/s, whole run) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f, b = r["float32"], r["bf16"]
        lines.append(f"| {r['env']} | {r['steps']} | {f['final']['mean']:.1f} ± {f['final']['std']:.1f} | "
                     f"{b['final']['mean']:.1f} ± {b['final']['std']:.1f} | {r['final_difference']:+.1f} | "
                     f"{'yes' if r['within_spread'] else 'NO'} | {f['best']['mean']:.1f} | {b['best']['mean']:.1f} | "
                     f"{r['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", default=",".join(GRIDS), help=f"a subset of {', '.join(GRIDS)}")
    p.add_argument("--seeds", default="0-3")
    p.add_argument("--out", type=Path, default=Path("runs/precision"))
    p.add_argument("--max-parallel", type=int, default=None)
    args = p.parse_args(argv)
    envs = [e for e in args.envs.split(",") if e]
    unknown = [e for e in envs if e not in GRIDS]
    if unknown:
        raise SystemExit(f"--envs: {unknown[0]} has no protocol here; choose from {', '.join(GRIDS)}")
    presets = ",".join(str(path) for path in write_presets(args.out / "presets"))
    failed = 0
    rows = []
    for env in envs:
        steps, protocol, name = GRIDS[env]
        grid = ["--envs", env, "--presets", presets, "--seeds", args.seeds, "--steps", str(steps),
                "--out", str(args.out / env), "--set", *protocol, "--publish", "--name", name]
        if args.max_parallel:
            grid += ["--max-parallel", str(args.max_parallel)]
        failed |= reproduce.main(grid)
        rows.append(side_by_side(env, json.loads((ROOT / "benchmarks" / f"{name}.json").read_text())))
    command = "python scripts/reproduce_precision.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "date": time.strftime("%Y-%m-%d"), "envs": rows}
    (ROOT / "benchmarks" / "precision_learning.json").write_text(json.dumps(report, indent=1) + "\n")
    text = markdown(rows, command)
    (ROOT / "benchmarks" / "precision_learning.md").write_text(text)
    print(text)
    return failed


if __name__ == "__main__":
    sys.exit(main())
