"""``spikerl export``: export a trained run's spiking actor as a bundle, a NIR graph, an ONNX model or C code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spikerl.cli import CLIError
from spikerl.cli.args import existing_dir, os_error_line

EPILOG = """formats:
  bundle  RUN_DIR/bundle: weights.npz + manifest.json, run with spikerl.runtime.load_policy (NumPy + Numba,
          no torch) or spikerl evaluate RUN_DIR/bundle
  nir     RUN_DIR/policy.nir: Affine + LIF/CubaLIF/IF graph (hard reset only; encoder/decoder run on the host)
  onnx    RUN_DIR/policy.onnx: T unrolled, input obs[B, obs_dim], output action[B, act_dim] in [-1, 1]
  c       RUN_DIR/c-float32 (or c-int8): spikerl_policy.h/.c, dependency-free C99 for microcontrollers
          (spikerl_act(obs, action, &state)); RUN_DIR may also be a bundle. int8: calibrated on observations
          the float policy sees in its run's env (or --calib), then checked against it over 10 episodes;
          spikerl evaluate RUN_DIR/c-int8 compiles and evaluates it
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run's spiking actor (bundle, NIR, ONNX or C)",
                       description="Load RUN_DIR/model.zip and export its spiking actor (TD3: the action; SAC: "
                       "the deterministic action tanh(mean)).", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by spikerl train, or a converted "
                   "policy written by spikerl convert (bundle: methods max, percentile, qcfs, opi, dcgs; onnx: "
                   "rate-coded, without a CRPI carry)")
    p.add_argument("--format", choices=("bundle", "nir", "onnx", "c"), default="bundle", help="default: bundle")
    p.add_argument("--out", metavar="PATH", help="output path (default: RUN_DIR/bundle, RUN_DIR/policy.nir, "
                   "RUN_DIR/policy.onnx or RUN_DIR/c-PRECISION)")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32",
                   help="--format c: float32 (default; the runtime's arithmetic) or int8 fixed point")
    p.add_argument("--calib", metavar="FILE.npy", help="--format c --precision int8: calibration observations "
                   "[N, obs_dim] (default: recorded from 3 episodes of the float policy in its run's env)")
    p.add_argument("--check-episodes", type=int, default=10, metavar="N", help="--precision int8: episodes of "
                   "the int8 C policy vs the float runtime after export (default 10; 0 skips the check)")


def run(args: argparse.Namespace) -> int:
    run_dir = existing_dir(args.run_dir)
    if args.format == "c":
        return _run_c(args, run_dir)
    if args.precision != "float32" or args.calib:
        raise CLIError("--precision and --calib apply to --format c only")
    from spikerl.agents.deploy import export_run
    from spikerl.agents.training import RunError

    try:
        path = export_run(run_dir, args.format, args.out)
    except (RunError, ValueError, ImportError) as err:
        raise CLIError(_first_line(err)) from None
    except OSError as err:  # --out (or RUN_DIR) a folder that cannot be written
        raise CLIError(os_error_line(err)) from None
    print(f"exported {args.format} -> {path}")
    return 0


def _run_c(args: argparse.Namespace, source: Path) -> int:
    """``--format c``: write the C export of a run or a bundle; int8 prints its action error and returns."""
    import numpy as np

    from spikerl.agents.deploy_c import export_c
    from spikerl.agents.training import RunError
    from spikerl.runtime.c_policy import META_FILE

    calib = None
    if args.calib:
        if args.precision != "int8":
            raise CLIError("--calib calibrates the int8 export; add --precision int8")
        try:
            calib = np.load(args.calib, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise CLIError(f"--calib {args.calib}: not a readable .npy array ({err})") from None
    try:
        path = export_c(source, args.precision, args.out, calib=calib, check_episodes=max(args.check_episodes, 0))
    except (RunError, ValueError, ImportError) as err:
        raise CLIError(_first_line(err)) from None
    except OSError as err:  # --out (or RUN_DIR) a folder that cannot be written
        raise CLIError(os_error_line(err)) from None
    meta = json.loads((path / META_FILE).read_text())
    flash = meta["flash_bytes"]
    print(f"exported c ({args.precision}) -> {path} (spikerl_policy.h, spikerl_policy.c; weights {flash['weights']} "
          f"bytes, all constants {flash['total']} bytes)")
    q = meta.get("quantization")
    if q:
        err = q["action_error_vs_float"]
        print(f"int8 vs float runtime, {q['calibration_observations']} calibration observations: action error max "
              f"{err['max']:.4f}, mean {err['mean']:.4f} (network action in [-1, 1])")
        loop = q.get("closed_loop")
        if loop and "skipped" in loop:
            print(f"closed-loop check skipped: {loop['skipped']}")
        elif loop:
            ratio = f", ratio {loop['return_ratio']:.3f}" if loop["return_ratio"] is not None else ""
            print(f"closed loop over {loop['episodes']} episodes (seed {loop['seed']}): float runtime "
                  f"{loop['float_runtime']['mean_return']:.2f} ± {loop['float_runtime']['std_return']:.2f}, int8 C "
                  f"{loop['int8_c']['mean_return']:.2f} ± {loop['int8_c']['std_return']:.2f}{ratio}")
    return 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
