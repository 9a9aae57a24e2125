"""A/B: the Proxy Target TD3 train step with subnormal floats flushed to zero (as ``spikerl train`` runs) and
without, one fresh process per measurement, alternating A B A B.

FTZ/DAZ is a per-thread CPU setting that torch's worker threads inherit when they start, so it cannot be
switched off and on inside one process: each round starts two child processes of this script, one with it and
one without. Each child builds the bench_train model (a) (ProxyTD3, LIF T=5, 256-256, proxy 512-512, K=3,
Hopper-v5), fills ``--learning-starts`` random steps, trains ``--warmup`` steps (long enough for Adam moments of
zero-gradient weights to decay into the subnormal range) and then times ``--steps`` gradient steps of
``train()`` alone. Reports per-round ratios t(kept)/t(flushed), their median and range, the proxy's fraction
of subnormal Adam state, and the proxy optimizer's step time. Writes benchmarks/flush_denormals.{json,md}.

    python scripts/bench_flush_denormals.py                 # 4 rounds, 2 threads
    python scripts/bench_flush_denormals.py --rounds 6 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process; ``args.flush`` decides FTZ/DAZ before torch starts its threads."""
    import torch
    from spikerl.agents.cpu import flush_denormals, keep_freed_memory

    flushed = flush_denormals() if args.flush else False
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    import bench_train

    build_args = argparse.Namespace(env=args.env, seed=args.seed, learning_starts=args.learning_starts,
                                    warmup=args.warmup, rounds=1, chunk=args.steps)
    model = bench_train.build("pt_lif", build_args)
    model.learn(args.learning_starts + args.warmup)
    start = time.perf_counter()
    model.train(gradient_steps=args.steps, batch_size=model.batch_size)
    train_ms = (time.perf_counter() - start) / args.steps * 1e3
    optimizer = model.proxy.optimizer
    tiny = torch.finfo(torch.float32).tiny
    moments = [state[k] for state in optimizer.state.values() for k in ("exp_avg", "exp_avg_sq")]
    subnormal = sum(int(((m != 0) & (m.abs() < tiny)).sum()) for m in moments) / sum(m.numel() for m in moments)
    start = time.perf_counter()
    for _ in range(20):
        optimizer.step()  # the grads of the last train step again: the optimizer's own cost on this state
    proxy_step_ms = (time.perf_counter() - start) / 20 * 1e3
    return {"flushed": flushed, "train_ms_per_step": train_ms, "proxy_subnormal_fraction": subnormal,
            "proxy_adam_step_ms": proxy_step_ms}


def run_child(args: argparse.Namespace, flush: bool) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", "--threads", str(args.threads), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--learning-starts", str(args.learning_starts), "--seed", str(args.seed),
            "--env", args.env, *([] if flush else ["--keep-denormals"])]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the measuring child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(report: dict[str, Any]) -> str:
    r = report["ratio_kept_over_flushed"]
    lines = ["# Subnormal floats flushed to zero: Proxy Target TD3 train step", "",
             f"{report['env']}, model (a) of bench_train (PT-LIF T=5, 256-256, proxy 512-512, K=3), "
             f"{report['learning_starts']} random start steps, {report['warmup']} warm-up gradient steps, then "
             f"{report['steps']} timed gradient steps of train() per process; {report['threads']} torch thread(s); "
             f"{report['rounds']} rounds, each one process with FTZ/DAZ and one without, alternating; "
             f"{report['machine']['cores']} cores; torch {report['torch']}; load average "
             f"{report['loadavg_before'][0]:.2f} before, {report['loadavg_after'][0]:.2f} after.", "",
             "| round | train ms/step, kept | train ms/step, flushed | ratio kept/flushed | proxy Adam step ms, kept "
             "| flushed | proxy Adam state subnormal, kept |", "|---|---|---|---|---|---|---|"]
    for i, (kept, flushed) in enumerate(zip(report["kept"], report["flushed"], strict=True)):
        lines.append(f"| {i + 1} | {kept['train_ms_per_step']:.1f} | {flushed['train_ms_per_step']:.1f} | "
                     f"{kept['train_ms_per_step'] / flushed['train_ms_per_step']:.3f} | "
                     f"{kept['proxy_adam_step_ms']:.2f} | {flushed['proxy_adam_step_ms']:.2f} | "
                     f"{kept['proxy_subnormal_fraction']:.1%} |")
    lines += ["", f"Whole train step, t(kept)/t(flushed): median **{r['median']:.3f}** "
              f"(range {r['min']:.3f}-{r['max']:.3f}).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=400, help="gradient steps before timing")
    parser.add_argument("--steps", type=int, default=200, help="timed gradient steps per process")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep-denormals", dest="flush", action="store_false", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    import torch

    load_before = os.getloadavg()
    kept, flushed = [], []
    for i in range(args.rounds):
        order = (False, True) if i % 2 == 0 else (True, False)  # alternate which runs first
        for flush in order:
            (flushed if flush else kept).append(run_child(args, flush))
            print(f"round {i + 1}: {'flushed' if flush else 'kept'} "
                  f"{(flushed if flush else kept)[-1]['train_ms_per_step']:.1f} ms/step", flush=True)
    ratios = [k["train_ms_per_step"] / f["train_ms_per_step"] for k, f in zip(kept, flushed, strict=True)]
    report = {"env": args.env, "threads": args.threads, "learning_starts": args.learning_starts,
              "warmup": args.warmup, "steps": args.steps, "rounds": args.rounds, "seed": args.seed,
              "torch": torch.__version__, "machine": {"cores": os.cpu_count()},
              "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
              "kept": kept, "flushed": flushed,
              "ratio_kept_over_flushed": {"median": float(np.median(ratios)), "min": min(ratios), "max": max(ratios),
                                          "per_round": ratios}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "flush_denormals.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "flush_denormals.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
