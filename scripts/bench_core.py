"""Core benchmark: batch-1 policy latency (Numba vs torch) and fused-kernel training cost.

    python scripts/bench_core.py [--threads 1] [--rounds 15] [--out benchmarks]

(a) Batch-1 decision latency, median over many calls (microseconds), of ``SpikingActor(17, 6)`` (T = 5,
    hidden 256-256, LIF, population coding; weights scaled x3 so every layer fires 15-30% of steps, as
    a trained actor does) through ``compile_policy`` (Numba, float32), the same actor in torch eager
    (``no_grad``), and the ANN MLP 17-256-256-6 in torch (``no_grad``). Every variant starts from a
    NumPy observation and returns a NumPy action.
(b) Forward + backward at batch 256, T = 5 of the network 110-256-256-30 (Hopper-sized, 10-neuron
    populations), input spikes [T, 256, 110] Bernoulli(0.2), LIF with hard reset: (i) the fused kernel,
    (ii) the reference loop (``fused=False``), (iii) the same linear layers alone on T*B rows (the GEMM
    floor), (iv) the ANN MLP 110-256-256-30 with ReLU at batch 256.

All variants run in one process with the same ``torch.set_num_threads``; repeats of the variants are
interleaved (round robin) so that a change of machine load hits all of them alike, and each number is
the median over all repeats. Minor page faults per call are reported too: on glibc, large temporaries
are fresh pages that fault in on first touch, which is a visible share of CPU training time.
Writes ``<out>/<name>.json`` and ``<out>/<name>.md`` (default ``benchmarks/core.*``) and prints a table.
The glibc allocator can be tuned from the environment for comparison, e.g.
``MALLOC_TRIM_THRESHOLD_=1000000000 MALLOC_MMAP_THRESHOLD_=1000000000 ... --name core_malloc_tuned``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchlib import cpu_name  # noqa: E402  (scripts/ is on sys.path)
from spikerl.agents.cpu import keep_freed_memory  # noqa: E402
from torch import nn

import spikerl
from spikerl import make_neuron
from spikerl.kernels import compile_policy


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def interleaved(variants: dict[str, Callable[[], object]], rounds: int, per_round: int,
                warmup: int) -> dict[str, dict[str, float]]:
    """Median seconds per call and page faults per call of each variant, measured round robin."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    faults: dict[str, int] = dict.fromkeys(variants, 0)
    for _ in range(rounds):
        for name, fn in variants.items():
            f0, c0 = _faults(), time.thread_time()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
            cpu[name].append((time.thread_time() - c0) / per_round)
            faults[name] += _faults() - f0
    return {k: {"median_s": statistics.median(v), "p10_s": float(np.percentile(v, 10)),
                "p90_s": float(np.percentile(v, 90)), "n": len(v),
                "cpu_median_s": statistics.median(cpu[k]),
                "page_faults_per_call": faults[k] / len(v)} for k, v in samples.items()}


def bench_latency(rounds: int) -> dict:
    torch.manual_seed(0)
    actor = spikerl.SpikingActor(17, 6)  # T = 5, hidden (256, 256), LIF, pop coding
    with torch.no_grad():
        for lin in actor.snn.linears:
            lin.weight.mul_(3.0)
    actor.eval()
    mlp = spikerl.mlp_actor(17, 6).eval()
    obs = np.random.default_rng(0).normal(size=(256, 17)).astype(np.float32)
    rates = actor.firing_rates(torch.from_numpy(obs))
    t0 = time.perf_counter()
    policy = compile_policy(actor)  # compiles, or loads the on-disk cache, and warms up
    compile_s = time.perf_counter() - t0
    with torch.no_grad():
        ref = actor(torch.from_numpy(obs)).numpy()
    max_diff = float(np.abs(policy(obs) - ref).max())

    counter = {"numba": 0, "torch_snn": 0, "torch_mlp": 0}

    def numba_call() -> object:
        counter["numba"] += 1
        return policy(obs[counter["numba"] % 256])

    def snn_call() -> object:
        counter["torch_snn"] += 1
        with torch.no_grad():
            return actor(torch.from_numpy(obs[counter["torch_snn"] % 256])).numpy()

    def mlp_call() -> object:
        counter["torch_mlp"] += 1
        with torch.no_grad():
            return mlp(torch.from_numpy(obs[counter["torch_mlp"] % 256])).numpy()

    res = interleaved({"numba": numba_call, "torch_snn": snn_call, "torch_mlp": mlp_call},
                      rounds=rounds, per_round=100, warmup=50)
    us = {k: v["median_s"] * 1e6 for k, v in res.items()}
    return {
        "network": "SpikingActor(17, 6): pop 17x10 -> 256 -> 256 -> 6x10, LIF hard reset, T=5, float32",
        "firing_rates": rates, "compile_or_cache_load_s": compile_s, "max_abs_action_diff_vs_torch": max_diff,
        "median_us": us, "detail": res,
        "ratios": {"torch_snn_over_numba": us["torch_snn"] / us["numba"],
                   "torch_mlp_over_numba": us["torch_mlp"] / us["numba"]},
        "targets": {"numba_10x_faster_than_torch_snn": us["torch_snn"] / us["numba"] >= 10,
                    "numba_not_slower_than_torch_mlp": us["numba"] <= us["torch_mlp"]},
    }


def bench_training(rounds: int) -> dict:
    torch.manual_seed(0)
    T, B, dims = 5, 256, [110, 256, 256, 30]
    lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
    fused = [make_neuron("lif", reset="hard", fused=True) for _ in range(3)]
    loop = [make_neuron("lif", reset="hard", fused=False) for _ in range(3)]
    x = (torch.rand(T, B, dims[0]) < 0.2).float()
    g_out = torch.randn(T, B, dims[-1])
    ann = nn.Sequential(nn.Linear(110, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 30))
    x_ann = torch.randn(B, 110)
    g_ann = torch.randn(B, 30)
    params = list(lins.parameters())

    def snn(neurons: list) -> Callable[[], object]:
        def step() -> object:
            for p in params:
                p.grad = None
            h = x
            for lin, neuron in zip(lins, neurons, strict=True):
                h = neuron(lin(h))
            (h * g_out).sum().backward()
            return h
        return step

    def floor() -> object:
        for p in params:
            p.grad = None
        h = x.reshape(T * B, dims[0])
        for lin in lins:
            h = lin(h)
        (h * g_out.reshape(T * B, -1)).sum().backward()
        return h

    def ann_step() -> object:
        ann.zero_grad(set_to_none=True)
        out = ann(x_ann)
        (out * g_ann).sum().backward()
        return out

    assert fused[0].has_fused_kernel and fused[0].fused and not loop[0].fused
    with torch.no_grad():
        rates = [float(s.mean()) for s in _layer_spikes(lins, fused, x)]
    res = interleaved({"fused": snn(fused), "loop": snn(loop), "linear_floor": floor, "ann_mlp": ann_step},
                      rounds=rounds, per_round=3, warmup=3)
    ms = {k: v["median_s"] * 1e3 for k, v in res.items()}
    return {
        "network": "110-256-256-30, LIF hard reset, rectangular surrogate, T=5, batch 256, input rate 0.2, float32",
        "firing_rates": rates, "median_ms": ms, "detail": res,
        "ratios": {"fused_over_floor": ms["fused"] / ms["linear_floor"], "loop_over_fused": ms["loop"] / ms["fused"],
                   "fused_over_ann": ms["fused"] / ms["ann_mlp"]},
        "targets": {"fused_within_1.3x_floor": ms["fused"] / ms["linear_floor"] <= 1.3,
                    "fused_1.5x_faster_than_loop": ms["loop"] / ms["fused"] >= 1.5},
    }


def _layer_spikes(lins: nn.ModuleList, neurons: list, x: torch.Tensor) -> list[torch.Tensor]:
    out, h = [], x
    for lin, neuron in zip(lins, neurons, strict=True):
        h = neuron(lin(h))
        out.append(h)
    return out


def environment(threads: int) -> dict:
    import numba

    return {
        "torch": torch.__version__, "numba": numba.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
        "torch_num_threads": threads, "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
    }






def to_markdown(result: dict) -> str:
    lat, tr, env = result["latency"], result["training"], result["environment"]
    lines = [
        "# Core benchmark",
        "",
        f"{env['cpu']}, {env['cpu_count']} cores; torch {env['torch']} with torch.set_num_threads"
        f"({env['torch_num_threads']}) for every variant; numba {env['numba']}; glibc malloc "
        f"{'tuned (no heap trimming, no mmap for large blocks)' if env.get('mallopt_tuned') else 'defaults'}. "
        "Load average before / after: "
        f"{result['loadavg_before']} / {result['loadavg_after']}. Medians over interleaved repeats (wall clock); "
        "CPU time is the calling thread's CPU time per call (median over rounds), less sensitive to other "
        "processes on the machine. Ratios (wall clock) are within this one run.",
        "",
        f"## (a) Batch-1 decision latency: {lat['network']}",
        "",
        "| variant | median (us) | p10-p90 (us) | CPU time (us) | ratio to Numba |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"numba": "Numba `compile_policy` (float32)", "torch_snn": "torch eager SNN (no_grad)",
             "torch_mlp": "torch ANN MLP 17-256-256-6 (no_grad)"}
    for key, label in names.items():
        d = lat["detail"][key]
        lines.append(f"| {label} | {d['median_s'] * 1e6:.1f} | {d['p10_s'] * 1e6:.1f}-{d['p90_s'] * 1e6:.1f} | "
                     f"{d['cpu_median_s'] * 1e6:.1f} | {d['median_s'] / lat['detail']['numba']['median_s']:.2f} |")
    rates = ", ".join(f"{k} {v:.2f}" for k, v in lat["firing_rates"].items())
    lines += [
        "",
        f"Firing rates (spikes per neuron per step): {rates}. Max |action difference| Numba vs torch: "
        f"{lat['max_abs_action_diff_vs_torch']:.1e}. compile_policy (cache load + warm-up): "
        f"{lat['compile_or_cache_load_s']:.2f} s.",
        "",
        f"## (b) Forward + backward: {tr['network']}",
        "",
        "| variant | median (ms) | p10-p90 (ms) | CPU time (ms) | page faults / call | ratio to floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"fused": "fused kernel (`fused=True`)", "loop": "reference loop (`fused=False`)",
             "linear_floor": "linear layers only on T*B rows (GEMM floor)",
             "ann_mlp": "ANN MLP 110-256-256-30, batch 256"}
    for key, label in names.items():
        d = tr["detail"][key]
        floor_s = tr["detail"]["linear_floor"]["median_s"]
        lines.append(f"| {label} | {d['median_s'] * 1e3:.2f} | {d['p10_s'] * 1e3:.2f}-{d['p90_s'] * 1e3:.2f} | "
                     f"{d['cpu_median_s'] * 1e3:.2f} | {d['page_faults_per_call']:.0f} | "
                     f"{d['median_s'] / floor_s:.2f} |")
    lines += [
        "",
        f"fused / floor = {tr['ratios']['fused_over_floor']:.2f} (target <= 1.3); loop / fused = "
        f"{tr['ratios']['loop_over_fused']:.2f} (target >= 1.5). Layer firing rates: "
        + ", ".join(f"{r:.2f}" for r in tr["firing_rates"]) + ".",
        "",
        "Targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}"
                                for k, v in {**lat["targets"], **tr["targets"]}.items()),
        "",
    ]
    return "\n".join(lines)


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    lat, tr = result["latency"], result["training"]
    table = Table(title=f"spikerl core benchmark (torch threads = {result['environment']['torch_num_threads']})")
    for col in ("part", "variant", "median", "ratio"):
        table.add_column(col, justify="right" if col in ("median", "ratio") else "left")
    for key in ("numba", "torch_snn", "torch_mlp"):
        v = lat["median_us"][key]
        table.add_row("(a) batch-1", key, f"{v:.1f} us", f"{v / lat['median_us']['numba']:.2f}x numba")
    for key in ("fused", "loop", "linear_floor", "ann_mlp"):
        v = tr["median_ms"][key]
        table.add_row("(b) fwd+bwd", key, f"{v:.2f} ms", f"{v / tr['median_ms']['linear_floor']:.2f}x floor")
    console = Console()
    console.print(table)
    for k, v in {**lat["targets"], **tr["targets"]}.items():
        console.print(f"  {k}: {'[green]met[/green]' if v else '[red]MISSED[/red]'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for every variant")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per part")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "benchmarks")
    parser.add_argument("--name", default="core", help="output file stem: <out>/<name>.json and .md")
    parser.add_argument("--tune-malloc", action="store_true",
                        help="glibc mallopt: never trim the heap nor mmap large blocks (no page-fault churn)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        parser.error("--threads and --rounds must be >= 1")
    torch.set_num_threads(args.threads)
    tuned = keep_freed_memory() if args.tune_malloc else False
    result = {"environment": {**environment(torch.get_num_threads()), "mallopt_tuned": tuned},
              "loadavg_before": [round(v, 2) for v in os.getloadavg()],
              "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    result["latency"] = bench_latency(args.rounds)
    result["training"] = bench_training(args.rounds)
    result["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(to_markdown(result))
    print_table(result)
    print(f"wrote {args.out / (args.name + '.json')} and {args.out / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
