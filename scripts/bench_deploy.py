"""Batch-1 decision latency of a deployed SNN policy: runtime bundle vs onnxruntime vs torch eager, and the ANN.

All four take one NumPy observation and return a NumPy action, in one process on one thread
(torch.set_num_threads(1), onnxruntime intra/inter-op 1 thread, Numba without parallel):

- ``runtime``: ``spikerl.runtime.load_policy(bundle)`` (NumPy + Numba event-driven kernel, float32)
- ``onnxruntime``: the ONNX export (T unrolled, float32), CPUExecutionProvider
- ``torch_snn``: ``spikerl.SpikingActor(17, 6)``, T=5, 256-256, LIF, eager under ``torch.inference_mode``
- ``torch_ann``: ``spikerl.mlp_actor(17, 6)`` (17-256-256-6), eager under ``torch.inference_mode``

The implementations are timed in interleaved rounds (so that machine load hits all alike); the median and
90th percentile per decision are reported, with the ratios the targets are stated in (runtime <= torch ANN,
torch SNN >= 10x runtime). Writes ``benchmarks/deploy.json`` and ``benchmarks/deploy.md``.

    OMP_NUM_THREADS=1 python scripts/bench_deploy.py [--rounds 7] [--calls 1000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
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
from spikerl.runtime import load_policy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBS_DIM, ACT_DIM, T, HIDDEN = 17, 6, 5, (256, 256)
WEIGHT_SCALE = 3.0  # untrained weights x3: every layer fires at a trained-policy-like rate (reported)




def build(tmp: Path) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict]:
    torch.manual_seed(0)
    snn = spikerl.SpikingActor(OBS_DIM, ACT_DIM, hidden=HIDDEN, T=T).eval()
    with torch.no_grad():
        for lin in snn.snn.linears:
            lin.weight.mul_(WEIGHT_SCALE)
    ann = spikerl.mlp_actor(OBS_DIM, ACT_DIM, HIDDEN).eval()
    policy = load_policy(export_policy(snn, tmp / "bundle", "bundle"))
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

    fns = {"runtime": policy.act, "onnxruntime": onnx_rt, "torch_snn": torch_snn, "torch_ann": torch_ann}
    obs = np.random.default_rng(0).normal(size=(256, OBS_DIM)).astype(np.float32)
    with torch.no_grad():
        ref = snn(torch.from_numpy(obs)).numpy()
        rates = snn.firing_rates(torch.from_numpy(obs))
    parity = {name: float(np.abs(np.stack([fn(o) for o in obs]) - ref).max())
              for name, fn in fns.items() if name != "torch_ann"}
    info = {"firing_rates": {k: round(v, 4) for k, v in rates.items()}, "max_abs_action_diff_vs_torch_snn": parity}
    return fns, info


def time_calls(fn: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, calls: int) -> np.ndarray:
    out = np.empty(calls)
    n = len(obs)
    for i in range(calls):
        o = obs[i % n]
        t0 = time.perf_counter_ns()
        fn(o)
        out[i] = time.perf_counter_ns() - t0
    return out / 1e3  # µs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=1000, help="decisions per implementation per round")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        fns, info = build(Path(tmp))
        obs = np.random.default_rng(1).normal(size=(512, OBS_DIM)).astype(np.float32)
        for fn in fns.values():  # warm-up (compile, caches, allocator)
            time_calls(fn, obs, 300)
        samples: dict[str, list[np.ndarray]] = {name: [] for name in fns}
        for r in range(args.rounds):
            order = list(fns) if r % 2 == 0 else list(reversed(fns))
            for name in order:
                samples[name].append(time_calls(fns[name], obs, args.calls))
    results = {}
    for name, parts in samples.items():
        s = np.concatenate(parts)
        per_round = [float(np.median(p)) for p in parts]
        results[name] = {"median_us": float(np.median(s)), "p90_us": float(np.percentile(s, 90)),
                         "min_round_median_us": min(per_round), "max_round_median_us": max(per_round)}
    rt, ann, snn, onnx = (results[k]["median_us"] for k in ("runtime", "torch_ann", "torch_snn", "onnxruntime"))
    ratios = {"runtime_over_torch_ann": rt / ann, "torch_snn_over_runtime": snn / rt,
              "onnxruntime_over_runtime": onnx / rt, "torch_snn_over_torch_ann": snn / ann}
    targets = {"runtime <= torch_ann": rt <= ann, "torch_snn >= 10x runtime": snn >= 10 * rt}
    report = {
        "what": "batch-1 decision latency, one observation in, one action out (NumPy), single thread",
        "policy": {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "T": T, "hidden": list(HIDDEN), "neuron": "lif",
                   "encoder": "pop (10 per obs dim)", "decoder_pop_dim": 10, "dtype": "float32",
                   "weight_scale": WEIGHT_SCALE, "ann": "17-256-256-6 ReLU/tanh"},
        "results_us": results, "ratios": ratios, "targets_met": targets, **info,
        "protocol": {"rounds": args.rounds, "calls_per_round": args.calls, "interleaved": True,
                     "torch_threads": torch.get_num_threads(), "onnxruntime_threads": 1, "numba_parallel": False},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"spikerl": spikerl.__version__, "torch": torch.__version__, "onnxruntime": ort.__version__,
                     "numpy": np.__version__, "numba": __import__("numba").__version__,
                     "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy.json").write_text(json.dumps(report, indent=2) + "\n")
    names = {"runtime": "spikerl.runtime bundle (NumPy + Numba)", "onnxruntime": "ONNX Runtime (T unrolled)",
             "torch_snn": "torch eager SNN", "torch_ann": "torch eager ANN actor (17-256-256-6)"}
    lines = [
        "# Deployment latency (batch 1)", "",
        f"SNN: `SpikingActor(17, 6)`, T = {T}, hidden 256-256, LIF, population coding; float32; one observation in, "
        "one action out (NumPy), one thread. Interleaved rounds "
        f"({args.rounds} x {args.calls} decisions each); {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, load average {load_start[0]:.2f} at the start "
        f"({report['date']}).", "",
        "| implementation | median µs | p90 µs | round medians µs |", "|---|---:|---:|---:|",
    ]
    for key, label in names.items():
        r = results[key]
        lines.append(f"| {label} | {r['median_us']:.1f} | {r['p90_us']:.1f} | "
                     f"{r['min_round_median_us']:.1f}-{r['max_round_median_us']:.1f} |")
    lines += ["", "| ratio | value | target |", "|---|---:|---|",
              f"| runtime / torch ANN | {ratios['runtime_over_torch_ann']:.2f} | <= 1 "
              f"({'met' if targets['runtime <= torch_ann'] else 'not met'}) |",
              f"| torch SNN / runtime | {ratios['torch_snn_over_runtime']:.1f} | >= 10 "
              f"({'met' if targets['torch_snn >= 10x runtime'] else 'not met'}) |",
              f"| ONNX Runtime / runtime | {ratios['onnxruntime_over_runtime']:.2f} | |",
              f"| torch SNN / torch ANN | {ratios['torch_snn_over_torch_ann']:.1f} | |", "",
              "Firing rates (spikes per neuron per step): "
              + ", ".join(f"{k} {v:.3f}" for k, v in info["firing_rates"].items()) + ". Max |action - torch SNN|: "
              + ", ".join(f"{k} {v:.1e}" for k, v in info["max_abs_action_diff_vs_torch_snn"].items()) + ".", "",
              "Reproduce: `OMP_NUM_THREADS=1 python scripts/bench_deploy.py`.", ""]
    (args.out / "deploy.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
