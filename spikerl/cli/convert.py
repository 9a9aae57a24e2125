"""``spikerl convert``: convert a trained ANN run's actor into a spiking policy (ANN-to-SNN conversion)."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from spikerl.cli import CLIError
from spikerl.cli.args import default_threads, existing_dir, os_error_line
from spikerl.cli.args import positive_int as _positive
from spikerl.cli.args import seed as _seed
from spikerl.cli.threads import set_torch_threads

EPILOG = """examples:
  spikerl convert runs/hopper --method max --T 32
  spikerl convert runs/hopper --method max --T 32 --carry crpi --alpha 0.5
  spikerl convert runs/hopper --method percentile:99.9 --T 16 --granularity layer --set fire=gt v0=0.5
  spikerl convert runs/hopper --method dcgs --T 32 --carry crpi --alpha 0.5   (differential coding, mth-diff)
then:
  spikerl evaluate runs/hopper/converted/max-T32-crpi0.5            (CRPI carry reset per env at episode start)
  spikerl export runs/hopper/converted/max-T32-crpi0.5 --format bundle   (torch-free spikerl.runtime)
"""

#: ConversionSpec fields that --set may change (T, method, carry, alpha have their own options)
SETTABLE = ("threshold", "granularity", "neuron", "v0", "fire", "readout", "presim_steps", "levels", "signed",
            "ecm", "calib_batch_size")



def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a trained ANN run's actor into an SNN policy",
                       description="Load RUN_DIR/model.zip (or the newest checkpoint) of an ANN run (td3-ann: the "
                       "deterministic actor; sac-ann: tanh(mean)), calibrate thresholds on states from deterministic "
                       "rollouts of the ANN itself, convert it (spikerl.conversion) and write a converted-policy "
                       "directory that spikerl evaluate and spikerl export --format bundle accept.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by spikerl train with an ANN preset")
    p.add_argument("--method", default="max", help="conversion method: max, percentile:<p>, qcfs, opi, srp, cos, "
                   "parallel, dcgs (default: max; the CRPI carry needs max, percentile, qcfs, opi or dcgs; "
                   "spikerl export --format bundle runs all but srp, cos and parallel)")
    p.add_argument("--T", "-T", dest="T", type=_positive, default=32, metavar="N",
                   help="time steps per decision (default 32)")
    p.add_argument("--carry", choices=("none", "crpi"), default="none",
                   help="crpi: carry the clipped, alpha-scaled residual potential to the next decision, reset at "
                   "episode start (default: none)")
    p.add_argument("--alpha", type=float, default=0.5, metavar="A", help="CRPI scale in [0, 1] (default 0.5)")
    p.add_argument("--calib-steps", type=_positive, default=10000, metavar="N",
                   help="env steps of deterministic ANN rollouts for threshold calibration (default 10000)")
    p.add_argument("--calib-seed", type=_seed, metavar="S",
                   help="calibration env seed, 0 to 2**32 - 1 (default: the run's seed + 200)")
    p.add_argument("--granularity", choices=("layer", "channel", "neuron"), default="neuron",
                   help="one threshold per layer or per neuron (default: neuron, as CRPI)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: RUN_DIR/converted/<method>-T<T>"
                   "[-crpi<alpha>])")
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", dest="overrides",
                   help=f"other ConversionSpec fields: {', '.join(SETTABLE)}")
    p.add_argument("--threads", type=int, default=default_threads(), metavar="N",
                   help="torch CPU threads (default: $SPIKERL_NUM_THREADS or 1)")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["fire=gt", "v0=0.5"]`` -> ``{"fire": "gt", "v0": 0.5}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"--set expects FIELD=VALUE, got {item!r}")
        if key not in SETTABLE:
            own = {"T": "--T", "method": "--method", "carry": "--carry", "alpha": "--alpha"}
            hint = f"; use {own[key]}" if key in own else f"; settable fields: {', '.join(SETTABLE)}"
            raise CLIError(f"--set: {key!r} is not a settable ConversionSpec field{hint}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            out[key] = text
    return out


def build_spec(args: argparse.Namespace):
    from spikerl.conversion import ConversionSpec

    fields = {"T": args.T, "method": args.method, "carry": None if args.carry == "none" else "crpi",
              "alpha": args.alpha, "granularity": args.granularity}
    fields.update(parse_overrides(args.overrides))
    try:
        return ConversionSpec(**fields)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    run_dir = existing_dir(args.run_dir)
    spec = build_spec(args)

    from spikerl.agents.conversion import convert_run
    from spikerl.agents.training import RunError

    set_torch_threads(args.threads)
    try:
        with warnings.catch_warnings():  # e.g. converting the newest checkpoint of an unfinished run: one line each
            warnings.showwarning = _warning_line
            path, snn = convert_run(run_dir, spec, calib_steps=args.calib_steps, out=args.out,
                                    calib_seed=args.calib_seed)
    except RunError as err:
        raise CLIError(str(err)) from None
    except (ValueError, ImportError) as err:
        raise CLIError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    except OSError as err:  # --out (or RUN_DIR) a folder that cannot be written
        raise CLIError(os_error_line(err)) from None
    carry = f", CRPI carry alpha={spec.alpha:g}" if spec.carry else ""
    print(f"converted {run_dir} ({spec.method}, T={spec.T}{carry}, {len(snn.site_names)} spiking layers, "
          f"thresholds per {spec.granularity}, calibrated on {args.calib_steps} ANN steps) -> {path}")
    return 0


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    print(f"spikerl convert: warning: {str(message).splitlines()[0]}", file=sys.stderr)
