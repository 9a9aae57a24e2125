"""Batch-1 decision latency of a deployed SNN policy: runtime bundle, C export, onnxruntime, torch eager, the ANN.

The policy is the Hopper-v5 PT-LIF actor's shape (obs 11, act 3; ``--obs-dim``/``--act-dim`` change it):
population encoder (10 per observation dimension), 256-256 LIF, T = 5, 10 output neurons per action, untrained
weights scaled so that every layer fires at a trained-policy-like rate (reported). All implementations take one
NumPy observation and return a NumPy action, in one process on one thread (torch.set_num_threads(1),
onnxruntime intra/inter-op 1 thread, Numba without parallel):

- ``runtime``: ``spikerl.runtime.load_policy(bundle)`` (NumPy + Numba event-driven kernel, float32)
- ``c_float32`` / ``c_int8``: the C export (``spikerl export --format c``) built with ``cc -std=c99 -O2`` and
  called through ctypes (``spikerl.runtime.c_policy``); int8 calibrated on 512 observations of the benchmark's
  own distribution
- ``onnxruntime``: the ONNX export (T unrolled, float32), CPUExecutionProvider
- ``torch_snn``: ``spikerl.SpikingActor``, eager under ``torch.inference_mode``
- ``torch_ann``: ``spikerl.mlp_actor`` (obs-256-256-act), eager under ``torch.inference_mode``

The implementations are timed in interleaved rounds (so that machine load hits all alike); the median and
90th percentile per decision are reported, with the ratios the targets are stated in (runtime <= torch ANN,
torch SNN >= 10x runtime, C float32 <= runtime). The per-call figures include each API's Python overhead
(argument checks, ctypes); the kernel figures time one call on 512 observations (a loop inside Numba or C)
per decision, in thread CPU time (robust to a loaded machine). The C export's sizes are reported too: flash
bytes of the weights (and of all constants), RAM bytes of the state struct, synaptic operations per decision
(int8 target: weights under 100 kB).
Writes ``OUT/deploy.json`` and ``OUT/deploy.md`` (default ``benchmarks/``).

    OMP_NUM_THREADS=1 python scripts/bench_deploy.py [--rounds 7] [--calls 1000] [--out DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from benchlib import cpu_name  # noqa: E402  (scripts/ is on sys.path)

import spikerl  # noqa: E402
from spikerl.export import export_policy  # noqa: E402
from spikerl.export.c_export import write_c  # noqa: E402
from spikerl.runtime import load_policy, read_bundle  # noqa: E402
from spikerl.runtime.c_policy import DEFAULT_FLAGS, CPolicy, find_compiler, load_c_policy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T, HIDDEN = 5, (256, 256)
HOPPER_OBS, HOPPER_ACT = 11, 3
WEIGHT_SCALE = 3.0  # untrained weights x3: every layer fires at a trained-policy-like rate (reported)
KERNEL_BATCH = 512
INT8_WEIGHT_TARGET = 100_000  # bytes; flash sizes are quoted in KiB, so the KiB reading is reported as well


def build_c(bundle: Path, tmp: Path, calib: np.ndarray) -> dict[str, CPolicy]:
    """The float32 and int8 C exports of ``bundle``, compiled at -O2."""
    spec, manifest = read_bundle(bundle)
    return {f"c_{p}": load_c_policy(write_c(spec, tmp / f"c-{p}", p, manifest=manifest, calib=calib))
            for p in ("float32", "int8")}


def build(tmp: Path, obs_dim: int, act_dim: int) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict,
                                                          dict[str, Callable[[np.ndarray], np.ndarray]]]:
    torch.manual_seed(0)
    snn = spikerl.SpikingActor(obs_dim, act_dim, hidden=HIDDEN, T=T).eval()
    with torch.no_grad():
        for lin in snn.snn.linears:
            lin.weight.mul_(WEIGHT_SCALE)
    ann = spikerl.mlp_actor(obs_dim, act_dim, HIDDEN).eval()
    bundle = export_policy(snn, tmp / "bundle", "bundle")
    policy = load_policy(bundle)
    calib = np.random.default_rng(2).normal(size=(512, obs_dim)).astype(np.float32)
    c_policies = build_c(bundle, tmp, calib)
    onnx_path = export_policy(snn, tmp / "policy.onnx", "onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def torch_snn(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return snn(torch.from_numpy(obs)).numpy()

    def torch_ann(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return ann(torch.from_numpy(obs)).numpy()

    def onnx_rt(obs: np.ndarray) -> np.ndarray:
        return sess.run(None, {"obs": obs[None]})[0][0]

    fns = {"runtime": policy.act, **{k: c.act for k, c in c_policies.items()}, "onnxruntime": onnx_rt,
           "torch_snn": torch_snn, "torch_ann": torch_ann}
    kernels = {"runtime": policy.act, **{k: c.act for k, c in c_policies.items()}}  # batch: loop inside
    obs = np.random.default_rng(0).normal(size=(256, obs_dim)).astype(np.float32)
    with torch.no_grad():
        ref = snn(torch.from_numpy(obs)).numpy()
        rates = snn.firing_rates(torch.from_numpy(obs))
    parity = {name: float(np.abs(np.stack([fn(o) for o in obs]) - ref).max())
              for name, fn in fns.items() if name != "torch_ann"}
    info = {"firing_rates": {k: round(v, 4) for k, v in rates.items()}, "max_abs_action_diff_vs_torch_snn": parity,
            "c_export": c_sizes(c_policies, obs)}
    return fns, info, kernels


def c_sizes(c_policies: dict[str, CPolicy], obs: np.ndarray) -> dict[str, dict]:
    """Flash bytes (weights, all constants), state RAM bytes and synaptic operations per decision of each export."""
    out = {}
    for name, c in c_policies.items():
        _, counts = c.act_and_count(obs)
        energy = c.energy(counts)
        out[name] = {"flash_weights_bytes": c.meta["flash_bytes"]["weights"],
                     "flash_total_bytes": c.meta["flash_bytes"]["total"], "ram_state_bytes": c.ram_bytes,
                     "sops_per_decision": energy.sops, "macs_per_decision": energy.macs,
                     "frac_bits": (c.meta.get("quantization") or {}).get("frac_bits"),
                     "action_error_vs_float": (c.meta.get("quantization") or {}).get("action_error_vs_float")}
    return out


def time_calls(fn: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, calls: int) -> np.ndarray:
    out = np.empty(calls)
    n = len(obs)
    for i in range(calls):
        o = obs[i % n]
        t0 = time.perf_counter_ns()
        fn(o)
        out[i] = time.perf_counter_ns() - t0
    return out / 1e3  # µs


def compiler_version() -> str:
    cc = find_compiler()
    if cc is None:
        raise SystemExit("bench_deploy: no C compiler (cc, gcc, clang or $CC); the C export rows need one")
    return subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def time_kernel(fn: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> float:
    """CPU µs per decision of one call on the whole batch (the loop runs inside Numba or C); thread CPU time,
    so that time the scheduler gives to other processes does not count."""
    t0 = time.thread_time_ns()
    fn(batch)
    return (time.thread_time_ns() - t0) / 1e3 / len(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=1000, help="decisions per implementation per round")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    ap.add_argument("--obs-dim", type=int, default=HOPPER_OBS, help="default: Hopper-v5's 11")
    ap.add_argument("--act-dim", type=int, default=HOPPER_ACT, help="default: Hopper-v5's 3")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        fns, info, kernels = build(Path(tmp), args.obs_dim, args.act_dim)
        obs = np.random.default_rng(1).normal(size=(KERNEL_BATCH, args.obs_dim)).astype(np.float32)
        for fn in fns.values():  # warm-up (compile, caches, allocator)
            time_calls(fn, obs, 300)
        samples: dict[str, list[np.ndarray]] = {name: [] for name in fns}
        kernel_samples: dict[str, list[float]] = {name: [] for name in kernels}
        for r in range(args.rounds):
            order = list(fns) if r % 2 == 0 else list(reversed(fns))
            for name in order:
                samples[name].append(time_calls(fns[name], obs, args.calls))
            for name in (list(kernels) if r % 2 == 0 else list(reversed(kernels))):
                kernel_samples[name] += [time_kernel(kernels[name], obs) for _ in range(5)]
    results = {}
    for name, parts in samples.items():
        s = np.concatenate(parts)
        per_round = [float(np.median(p)) for p in parts]
        results[name] = {"median_us": float(np.median(s)), "p90_us": float(np.percentile(s, 90)),
                         "min_round_median_us": min(per_round), "max_round_median_us": max(per_round)}
    kernel_us = {name: {"median_us": float(np.median(v)), "min_us": float(np.min(v)), "max_us": float(np.max(v))}
                 for name, v in kernel_samples.items()}
    rt, ann, snn, onnx = (results[k]["median_us"] for k in ("runtime", "torch_ann", "torch_snn", "onnxruntime"))
    cf, ci = results["c_float32"]["median_us"], results["c_int8"]["median_us"]
    ratios = {"runtime_over_torch_ann": rt / ann, "torch_snn_over_runtime": snn / rt,
              "onnxruntime_over_runtime": onnx / rt, "torch_snn_over_torch_ann": snn / ann,
              "c_float32_over_runtime": cf / rt, "c_int8_over_runtime": ci / rt, "c_float32_over_torch_ann": cf / ann,
              "c_float32_kernel_over_runtime_kernel": kernel_us["c_float32"]["median_us"]
              / kernel_us["runtime"]["median_us"]}
    int8_weights = info["c_export"]["c_int8"]["flash_weights_bytes"]
    targets = {"runtime <= torch_ann": rt <= ann, "torch_snn >= 10x runtime": snn >= 10 * rt,
               "c_float32 <= runtime": cf <= rt, "c_int8 weights < 100 000 B": int8_weights < INT8_WEIGHT_TARGET,
               "c_int8 weights < 100 KiB": int8_weights < 100 * 1024}
    shape = f"{args.obs_dim}-{'-'.join(map(str, HIDDEN))}-{args.act_dim}"
    report = {
        "what": "batch-1 decision latency, one observation in, one action out (NumPy), single thread",
        "policy": {"obs_dim": args.obs_dim, "act_dim": args.act_dim, "T": T, "hidden": list(HIDDEN), "neuron": "lif",
                   "encoder": "pop (10 per obs dim)", "decoder_pop_dim": 10, "dtype": "float32",
                   "weight_scale": WEIGHT_SCALE, "ann": f"{shape} ReLU/tanh"},
        "results_us": results, "kernel_us_per_decision": kernel_us, "ratios": ratios, "targets_met": targets, **info,
        "protocol": {"rounds": args.rounds, "calls_per_round": args.calls, "interleaved": True,
                     "torch_threads": torch.get_num_threads(), "onnxruntime_threads": 1, "numba_parallel": False,
                     "c_flags": " ".join(DEFAULT_FLAGS), "c_compiler": compiler_version(),
                     "kernel_batch": KERNEL_BATCH},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"spikerl": spikerl.__version__, "torch": torch.__version__, "onnxruntime": ort.__version__,
                     "numpy": np.__version__, "numba": __import__("numba").__version__,
                     "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy.json").write_text(json.dumps(report, indent=2) + "\n")
    names = {"runtime": "spikerl.runtime bundle (NumPy + Numba)",
             "c_float32": "C export float32 (cc -O2, ctypes)", "c_int8": "C export int8 (cc -O2, ctypes)",
             "onnxruntime": "ONNX Runtime (T unrolled)", "torch_snn": "torch eager SNN",
             "torch_ann": f"torch eager ANN actor ({shape})"}
    lines = [
        "# Deployment latency (batch 1) and C export sizes", "",
        f"SNN: `SpikingActor({args.obs_dim}, {args.act_dim})` (Hopper-v5's sizes by default), T = {T}, hidden "
        "256-256, LIF, population coding (10 per observation dimension, 10 output neurons per action); float32 "
        "(the C export also in int8); one observation in, one action out (NumPy), one thread. Interleaved rounds "
        f"({args.rounds} x {args.calls} decisions each); {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, load average {load_start[0]:.2f} at the start, "
        f"{report['machine']['loadavg_end'][0]:.2f} at the end ({report['date']}); C: "
        f"{report['protocol']['c_compiler']}, `{report['protocol']['c_flags']}`.", "",
        "| implementation | median µs | p90 µs | round medians µs |", "|---|---:|---:|---:|",
    ]
    for key, label in names.items():
        r = results[key]
        lines.append(f"| {label} | {r['median_us']:.1f} | {r['p90_us']:.1f} | "
                     f"{r['min_round_median_us']:.1f}-{r['max_round_median_us']:.1f} |")
    lines += ["", f"Kernel only (one call on {KERNEL_BATCH} observations, the loop inside Numba or C), thread CPU "
              "µs per decision: " + ", ".join(f"{names[k]} {v['median_us']:.1f} ({v['min_us']:.1f}-{v['max_us']:.1f})"
                                      for k, v in kernel_us.items()) + ".", ""]

    def target(key: str) -> str:
        return "met" if targets[key] else "not met"

    lines += ["| ratio | value | target |", "|---|---:|---|",
              f"| runtime / torch ANN | {ratios['runtime_over_torch_ann']:.2f} | <= 1 "
              f"({target('runtime <= torch_ann')}) |",
              f"| torch SNN / runtime | {ratios['torch_snn_over_runtime']:.1f} | >= 10 "
              f"({target('torch_snn >= 10x runtime')}) |",
              f"| C float32 / runtime | {ratios['c_float32_over_runtime']:.2f} | <= 1 "
              f"({target('c_float32 <= runtime')}) |",
              f"| C float32 / runtime, kernel only | {ratios['c_float32_kernel_over_runtime_kernel']:.2f} | |",
              f"| C int8 / runtime | {ratios['c_int8_over_runtime']:.2f} | |",
              f"| C float32 / torch ANN | {ratios['c_float32_over_torch_ann']:.2f} | |",
              f"| ONNX Runtime / runtime | {ratios['onnxruntime_over_runtime']:.2f} | |",
              f"| torch SNN / torch ANN | {ratios['torch_snn_over_torch_ann']:.1f} | |", "",
              "| C export | weights (flash) B | all constants (flash) B | state (RAM) B | SOPs / decision | "
              "MACs / decision |", "|---|---:|---:|---:|---:|---:|"]
    for key, c in info["c_export"].items():
        lines.append(f"| {key[2:]} | {c['flash_weights_bytes']:,} | {c['flash_total_bytes']:,} | "
                     f"{c['ram_state_bytes']:,} | {c['sops_per_decision']:,.0f} | {c['macs_per_decision']:,.0f} |")
    err = info["c_export"]["c_int8"]["action_error_vs_float"]
    lines += ["", f"int8 weights: {int8_weights:,} B = {int8_weights / 1024:.1f} KiB; under 100 000 B: "
              f"{target('c_int8 weights < 100 000 B')}, under 100 KiB: {target('c_int8 weights < 100 KiB')}; "
              "int8 action error vs the float runtime on its "
              f"calibration observations: max {err['max']:.4f}, mean {err['mean']:.4f} (actions in [-1, 1]); "
              f"fraction bits per layer {info['c_export']['c_int8']['frac_bits']}.", "",
              "Firing rates (spikes per neuron per step): "
              + ", ".join(f"{k} {v:.3f}" for k, v in info["firing_rates"].items()) + ". Max |action - torch SNN|: "
              + ", ".join(f"{k} {v:.1e}" for k, v in info["max_abs_action_diff_vs_torch_snn"].items()) + ".", "",
              "Reproduce: `OMP_NUM_THREADS=1 python scripts/bench_deploy.py`.", ""]
    (args.out / "deploy.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
