"""The spiking actor's training pass against its GEMM floor: forward plus backward of the TD3 actor (obs 11 ->
population encoder 110 -> 256 -> 256 -> 30 -> decoder 3, LIF, T=5, batch 256) against the same GEMMs alone.

The floor is the nine matrix products of that pass replayed alone on tensors of the same shapes: per layer the
forward ``addmm`` over T*B rows, the weight gradient and the input gradient (the first layer's included: the
straight-through encoder needs it). Rounds interleave the two; the ratio pass / floor is taken per round and
reported as median and range, at each thread count. Writes ``benchmarks/actor_pass.json`` and ``.md``.

    python scripts/bench_actor_pass.py --threads 1 2
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
from spikerl.agents.cpu import flush_denormals, keep_freed_memory

from spikerl import SpikingActor
from spikerl.kernels import fused

ROOT = Path(__file__).resolve().parents[1]


def actor_pass(actor: SpikingActor, obs: torch.Tensor, dq_da: torch.Tensor) -> None:
    """Forward and backward as the actor update runs them (the loss' gradient dQ/da given)."""
    actor(obs).backward(dq_da)


def gemm_floor(actor: SpikingActor, batch: int) -> list[tuple[Any, tuple[torch.Tensor, ...]]]:
    """The pass' GEMMs as (function, operands): forward, weight gradient and input gradient of every layer."""
    rows = actor.T * batch
    calls = []
    for layer in actor.snn.linears:
        x = (torch.rand(rows, layer.in_features) < 0.2).float()  # spikes
        g = torch.randn(rows, layer.out_features)
        w = layer.weight.detach()
        calls += [(torch.addmm, (layer.bias.detach(), x, w.t())), (torch.mm, (g.t(), x)), (torch.mm, (g, w))]
    return calls


def run_calls(calls: list[tuple[Any, tuple[torch.Tensor, ...]]]) -> None:
    for fn, operands in calls:
        fn(*operands)


def timed(fn: Any, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def measure(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    actor = SpikingActor(11, 3, hidden=(256, 256), T=5)
    obs, dq_da = torch.randn(args.batch, 11), torch.randn(args.batch, 3)
    calls = gemm_floor(actor, args.batch)

    def pass_once() -> None:
        actor_pass(actor, obs, dq_da)

    def floor_once() -> None:
        run_calls(calls)

    for _ in range(5):
        pass_once()
        floor_once()
    load_before = os.getloadavg()
    full, floor = [], []
    for _ in range(args.rounds):
        full.append(timed(pass_once, args.reps))
        floor.append(timed(floor_once, args.reps))
    ratios = [a / b for a, b in zip(full, floor, strict=True)]
    return {"torch_threads": threads, "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "pass_ms_median": round(float(np.median(full)), 3), "floor_ms_median": round(float(np.median(floor)), 3),
            "ratio_median": round(float(np.median(ratios)), 3), "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=10, help="passes per round and side")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    flush_denormals()  # as spikerl train runs, before torch starts its threads
    keep_freed_memory()
    report = {"batch": args.batch, "rounds": args.rounds, "reps": args.reps, "machine": {"cpu": cpu_name(),
              "cores": os.cpu_count()}, "torch": torch.__version__, "neuron_kernel_cpu_backend": fused.CPU_BACKEND,
              "runs": [measure(args, t) for t in args.threads]}
    lines = ["# The spiking actor's training pass against its GEMM floor", "",
             f"SpikingActor 110-256-256-30 (LIF, T=5, population encoder and decoder), batch {args.batch}: forward + "
             f"backward against its nine GEMMs alone; {args.rounds} interleaved rounds of {args.reps} passes each; "
             f"{report['machine']['cpu']}, {report['machine']['cores']} cores; torch {report['torch']}.", "",
             "| threads | pass (ms) | GEMM floor (ms) | pass / floor (median) | range | load before, after |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['torch_threads']} | {r['pass_ms_median']} | {r['floor_ms_median']} | **{r['ratio_median']}x** | "
              f"{r['ratio_min']}-{r['ratio_max']} | {r['loadavg_before'][0]:.2f}, {r['loadavg_after'][0]:.2f} |"
              for r in report["runs"]]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "actor_pass.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "actor_pass.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
