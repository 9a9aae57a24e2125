"""``spikerl export``: export a trained run's spiking actor as a bundle, a NIR graph or an ONNX model."""

from __future__ import annotations

import argparse
from pathlib import Path

from spikerl.cli import CLIError

EPILOG = """formats:
  bundle  RUN_DIR/bundle: weights.npz + manifest.json, run with spikerl.runtime.load_policy (NumPy + Numba,
          no torch) or spikerl evaluate RUN_DIR/bundle
  nir     RUN_DIR/policy.nir: Affine + LIF/CubaLIF/IF graph (hard reset only; encoder/decoder run on the host)
  onnx    RUN_DIR/policy.onnx: T unrolled, input obs[B, obs_dim], output action[B, act_dim] in [-1, 1]
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's spiking actor (bundle, NIR or ONNX)",
                       description="Load RUN_DIR/model.zip and export its spiking actor (TD3: the action; SAC: "
                       "the deterministic action tanh(mean)).", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by spikerl train, or a converted "
                   "policy written by spikerl convert (bundle: methods max, percentile, qcfs, opi, dcgs; onnx: "
                   "rate-coded, without a CRPI carry)")
    p.add_argument("--format", choices=("bundle", "nir", "onnx"), default="bundle", help="default: bundle")
    p.add_argument("--out", metavar="PATH", help="output path (default: RUN_DIR/bundle, RUN_DIR/policy.nir or "
                   "RUN_DIR/policy.onnx)")


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CLIError(f"run directory {run_dir} does not exist")
    from spikerl.agents.deploy import export_run
    from spikerl.agents.training import RunError

    try:
        path = export_run(run_dir, args.format, args.out)
    except (RunError, ValueError, ImportError) as err:
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    print(f"exported {args.format} -> {path}")
    return 0
