"""Which networks bfloat16 GEMMs pay on: Proxy Target TD3's train step with ``precision="bf16"`` on each part alone
(proxy, labels, actor, critics) and on all of them, against float32, in one process.

Every variant is a ProxyTD3 (LIF T=5, hidden 256-256, proxy 512-512, K=3, batch 256) on Hopper-v5 whose replay
buffer holds ``--learning-starts`` random steps. Rounds are interleaved: each round times ``--steps`` train steps
of every variant, in an order rotated per round; a variant's ratio is float32's time over its own in the same round
(above 1 = faster), reported as median and range. Writes ``benchmarks/precision.json`` and ``.md``.

    python scripts/bench_precision.py --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from benchlib import cpu_name  # scripts/ is on sys.path
from spikerl.agents import ProxyTD3
from spikerl.agents.common import BF16_PARTS
from spikerl.agents.cpu import flush_denormals, keep_freed_memory
from spikerl.envs import make_env

from spikerl.precision import native_bf16

ROOT = Path(__file__).resolve().parents[1]


def variants() -> dict[str, dict[str, Any]]:
    """name -> the precision arguments of ProxyTD3."""
    out: dict[str, dict[str, Any]] = {"float32": {"precision": "float32"}}
    out.update({f"bf16 {part}": {"precision": "bf16", "bf16_parts": [part]} for part in BF16_PARTS})
    out["bf16 all"] = {"precision": "bf16", "bf16_parts": list(BF16_PARTS)}
    return out


def build(args: argparse.Namespace, precision: dict[str, Any]) -> ProxyTD3:
    model = ProxyTD3("SNNPolicy", make_env(args.env, seed=args.seed), target="proxy", proxy_hidden=(512, 512),
                     proxy_iters=3, learning_rate=3e-4, learning_starts=args.learning_starts, batch_size=256,
                     buffer_size=args.learning_starts + 100, seed=args.seed, verbose=0,
                     policy_kwargs=dict(net_arch=[256, 256], neuron="lif", T=5), **precision)
    model.learn(args.learning_starts + 2)
    return model


def measure(models: dict[str, ProxyTD3], args: argparse.Namespace, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    names = list(models)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for model in models.values():
        model.train(gradient_steps=4, batch_size=256)
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            models[name].train(gradient_steps=args.steps, batch_size=256)
            seconds[name].append(time.perf_counter() - start)
    base = seconds["float32"]
    result: dict[str, Any] = {"torch_threads": threads, "loadavg_before": [round(x, 2) for x in load_before],
                              "loadavg_after": [round(x, 2) for x in os.getloadavg()], "variants": {}}
    for name in names:
        ratios = [b / s for b, s in zip(base, seconds[name], strict=True)]
        result["variants"][name] = {
            "ms_per_step_median": round(float(np.median(seconds[name])) * 1e3 / args.steps, 2),
            "speedup_median": round(float(np.median(ratios)), 3), "speedup_min": round(min(ratios), 3),
            "speedup_max": round(max(ratios), 3)}
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = ["# bfloat16 GEMMs per network (Proxy Target TD3 train step)", "",
             f"{report['env']}, {report['rounds']} interleaved rounds of {report['steps']} train steps per variant; "
             f"speed-up = float32's time / the variant's, per round (median, range). {report['machine']['cpu']}, "
             f"{report['machine']['cores']} cores; torch {report['torch']}.", ""]
    for block in report["runs"]:
        lines += [f"## {block['torch_threads']} thread(s), load average {block['loadavg_before'][0]:.2f} before, "
                  f"{block['loadavg_after'][0]:.2f} after", "",
                  "| variant | ms per train step | speed-up (median) | range |", "|---|---|---|---|"]
        lines += [f"| {name} | {v['ms_per_step_median']} | {v['speedup_median']}x | {v['speedup_min']}-"
                  f"{v['speedup_max']} |" for name, v in block["variants"].items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=20, help="train steps per variant per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    if not native_bf16():
        raise SystemExit("this CPU has no native bfloat16 GEMMs (AVX512-BF16 or AMX): nothing to compare")
    flush_denormals()  # as spikerl train runs, before torch starts its threads
    keep_freed_memory()
    models = {name: build(args, precision) for name, precision in variants().items()}
    report = {"env": args.env, "steps": args.steps, "rounds": args.rounds,
              "machine": {"cpu": cpu_name(), "cores": os.cpu_count()}, "torch": torch.__version__,
              "runs": [measure(models, args, t) for t in args.threads]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "precision.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
