"""The summary that ``scripts/quickstart.sh`` prints after it trained, exported and evaluated the quickstart run.

Reads ``RUN_DIR/metrics.json`` (the training run, whose last evaluation is the policy that was saved),
``RUN_DIR/evaluations.csv`` and ``RUN_DIR/bundle/evaluation.json`` (the exported bundle on the torch-free runtime),
prints what was reached and where the files are, and exits with 1 when either return is below ``--min-return``::

    python scripts/quickstart_summary.py RUN_DIR --wall-s SECONDS [--min-return 950]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLE_DIR = "bundle"


@dataclass
class Outcome:
    """What the quickstart reached: the training run's last evaluation and the bundle's evaluation."""

    env: str
    seed: int
    train_return: float
    train_std: float
    train_episodes: int
    step: int
    budget: int
    stop_at: float | None
    stopped_early: bool
    bundle_return: float
    bundle_std: float
    bundle_episodes: int
    eval_seed: int
    energy_nj: float | None
    firing_rate: float | None


class SummaryError(Exception):
    """A file the summary needs is missing or unreadable: one line naming it."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SummaryError(f"{path} is missing: the step that writes it did not finish") from None
    except (OSError, ValueError) as err:
        raise SummaryError(f"{path} is unreadable: {err}") from None
    if not isinstance(data, dict):
        raise SummaryError(f"{path} does not hold a JSON object")
    return data


def read_outcome(run_dir: Path) -> Outcome:
    """The :class:`Outcome` of the quickstart run in ``run_dir`` (``SummaryError`` when a file is missing)."""
    import yaml

    metrics = _read_json(run_dir / "metrics.json")
    bundle = _read_json(run_dir / BUNDLE_DIR / "evaluation.json")
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        episodes = int(config["eval"]["episodes"])
        stop_at = config["eval"].get("stop_at")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        raise SummaryError(f"{run_dir / 'config.yaml'} is missing or has no eval.episodes") from None
    if metrics.get("status") != "completed" or metrics.get("final_return") is None:
        raise SummaryError(f"{run_dir / 'metrics.json'}: training did not complete (status "
                           f"{metrics.get('status')!r}: {metrics.get('message', '')})")
    return Outcome(
        env=str(config.get("env")), seed=int(config.get("seed", 0)),
        train_return=float(metrics["final_return"]), train_std=float(metrics["final_return_std"]),
        train_episodes=episodes, step=int(metrics["total_timesteps"]), budget=int(metrics["budget"]),
        stop_at=None if stop_at is None else float(stop_at), stopped_early=bool(metrics.get("stopped_early", False)),
        bundle_return=float(bundle["mean_return"]), bundle_std=float(bundle["std_return"]),
        bundle_episodes=int(bundle["episodes"]), eval_seed=int(bundle["seed"]), energy_nj=bundle.get("energy_nj"),
        firing_rate=bundle.get("firing_rate"))


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def summary(outcome: Outcome, run_dir: Path, wall_s: float, min_return: float) -> tuple[list[str], bool]:
    """(lines to print, whether both returns reached ``min_return``)."""
    o = outcome
    why = (f"stopped at the first evaluation >= {o.stop_at:g}" if o.stopped_early and o.stop_at is not None
           else f"the {o.budget}-step cap came first")
    energy = "-" if o.energy_nj is None else f"{o.energy_nj:.2f} nJ per decision"
    if o.firing_rate is not None:
        energy += f" (firing rate {o.firing_rate:.3f} per neuron and time step)"
    bundle = run_dir / BUNDLE_DIR
    lines = [
        f"quickstart: a spiking actor (Proxy Target TD3, LIF) on {o.env}, seed {o.seed}",
        f"  training   return {o.train_return:.2f} ± {o.train_std:.2f} over {o.train_episodes} deterministic "
        f"episodes at step {o.step} ({why})",
        f"  bundle     return {o.bundle_return:.2f} ± {o.bundle_std:.2f} over {o.bundle_episodes} episodes from the "
        f"same start states (env seed {o.eval_seed}) on the torch-free runtime (NumPy + Numba)",
        f"  energy     {energy}",
        f"  wall time  {_minutes(wall_s)} (train, export, evaluate; after set-up)",
        f"  files      {run_dir}/: model.zip, config.yaml, evaluations.csv, metrics.json, tb/ (TensorBoard)",
        f"             {bundle}/: manifest.json, weights.npz, evaluation.json (load with "
        "spikerl.runtime.load_policy)",
    ]
    low = [f"{name} return {value:.2f} < {min_return:g}" for name, value in
           (("training", o.train_return), ("bundle", o.bundle_return)) if value < min_return]
    if low:
        lines.append(f"FAILED: {' and '.join(low)}" + ("" if o.stopped_early else f" ({why})"))
    else:
        lines.append(f"passed: both returns >= {min_return:g}")
    return lines, not low


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--wall-s", type=float, required=True, help="wall time of train + export + evaluate, seconds")
    p.add_argument("--min-return", type=float, default=950.0, help="the return both evaluations must reach")
    args = p.parse_args(argv)
    try:
        outcome = read_outcome(args.run_dir)
    except SummaryError as err:
        print(f"quickstart: error: {err}", file=sys.stderr)
        return 1
    lines, ok = summary(outcome, args.run_dir, args.wall_s, args.min_return)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
