"""Training throughput: gradient steps per second of Proxy Target TD3 (LIF, T=5) against SB3's ANN TD3.

Measured in ONE process on Hopper-v5, after learning starts (one gradient step per env step, so
steps/s = env steps/s = gradient steps/s, including acting and the env):

  (a) ProxyTD3("SNNPolicy", target="proxy"): LIF T=5, pop 10/10, hidden 256-256, proxy 512-512, K=3
  (b) stable_baselines3.TD3("MlpPolicy"): net_arch [256, 256] (actor and critics), batch 256
  (c) ProxyTD3("SNNPolicy", target="soft"): vanilla SNN TD3 (Polyak target actor)

All three fill their buffers to ``learning_starts``, then run ``--rounds`` round-robin chunks of
``--chunk`` steps each (a, b, c, a, b, c, ...), so a change of machine load hits all alike. Reports
steps/s, the share of time inside ``train()``, the GEMM FLOPs per gradient step (counted from the
layer shapes) and the GFLOP/s achieved. Writes ``benchmarks/train.json`` and ``benchmarks/train.md``.

    python scripts/bench_train.py                     # defaults: 1000 start steps, 10 x 100 measured
    python scripts/bench_train.py --profile           # + torch.profiler table of (a)'s train step
    python scripts/bench_train.py --reference DIR     # side by side with the authors' code, one process each
                                                      # (scripts/bench_train_reference.py says how to get DIR)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3
import torch
from benchlib import cpu_name  # noqa: E402  (scripts/ is on sys.path)
from spikerl.agents import ProxyTD3, snn_or_none
from spikerl.agents.cpu import flush_denormals, keep_freed_memory
from spikerl.envs import make_env
from stable_baselines3 import TD3
from torch import nn

from spikerl.kernels import fused as fused_kernels

ROOT = Path(__file__).resolve().parents[1]


def linear_flops(module: nn.Module) -> int:
    """Forward FLOPs per input row of all nn.Linear layers in ``module`` (2 * in * out each)."""
    return sum(2 * m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def actor_flops(model: Any) -> int:
    """Forward GEMM FLOPs per row of the actor: T * (spiking layers) + decoder for an SNN, else the MLP."""
    net = snn_or_none(model.actor)
    if net is None:
        return linear_flops(model.actor)
    return net.T * linear_flops(net.snn) + 2 * net.decoder.in_features


def flops_per_step(model: Any) -> dict[str, float]:
    """GEMM FLOPs of one gradient step (backward = 2 x forward: input and weight gradients).

    proxy: (K - 1/d)*B label rows (SNN forward; actor steps reuse their own pass for minibatch K), K
    proxy updates (fwd + bwd); target: B rows of the proxy or
    target actor + both target critics; critic: fwd + bwd of both critics; actor every d-th step:
    fwd + bwd of the actor and of Q1.
    """
    b, d = model.batch_size, model.policy_delay
    q = linear_flops(model.critic.qf0)
    n_q = len(model.critic.q_networks)
    a = actor_flops(model)
    parts: dict[str, float] = {}
    if getattr(model, "target", "soft") == "proxy":
        k, p = model.proxy_iters, linear_flops(model.proxy)
        parts["labels"] = (k - 1 / d) * b * a  # on actor steps minibatch K's labels reuse the actor pass
        parts["proxy_updates"] = 3 * k * b * p
        parts["target"] = b * p + n_q * b * q
    else:
        parts["target"] = b * a + n_q * b * q
    parts["critic"] = 3 * n_q * b * q
    parts["actor"] = 3 * b * (a + q) / d
    parts["total"] = sum(parts.values())
    return parts


def build(kind: str, args: argparse.Namespace) -> Any:
    env = make_env(args.env, seed=args.seed)
    common = dict(learning_rate=3e-4, buffer_size=args.learning_starts + args.warmup + args.rounds * args.chunk + 10,
                  learning_starts=args.learning_starts, batch_size=256, seed=args.seed, verbose=0)
    if kind == "td3_ann_sb3":
        return TD3("MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256]), **common)
    target = "proxy" if kind == "pt_lif" else "soft"
    return ProxyTD3("SNNPolicy", env, target=target, proxy_hidden=(512, 512), proxy_lr=1e-3, proxy_iters=3,
                    policy_kwargs=dict(net_arch=[256, 256], neuron="lif", T=5), **common)


def timed_train(model: Any, bucket: dict[str, float]) -> None:
    """Wrap ``model.train`` to add its wall time to ``bucket["train"]``."""
    inner = model.train

    def train(*a: Any, **kw: Any) -> None:
        start = time.perf_counter()
        inner(*a, **kw)
        bucket["train"] += time.perf_counter() - start

    model.train = train


PROFILE_GROUPS = (("GEMM (addmm, mm)", ("aten::addmm", "aten::mm")),
                  ("spiking neuron kernel (fwd + bwd)", ("_LeakyMultiStep",)),
                  ("Adam", ("adam",)), ("copies (bias broadcast, dtype)", ("aten::copy_", "aten::_to_copy")))


def gemm_shapes(prof: Any, steps: int) -> list[dict[str, Any]]:
    """Per GEMM shape (M, K, N) of addmm/mm: calls and ms per train step and the GFLOP/s achieved."""
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in ("aten::addmm", "aten::mm") or not e.self_cpu_time_total:
            continue
        a, b = (e.input_shapes[1], e.input_shapes[2]) if e.key == "aten::addmm" else e.input_shapes[:2]
        (m, k), n = a, b[1]
        seconds = e.self_cpu_time_total / 1e6
        rows.append({"op": e.key.removeprefix("aten::"), "mkn": [m, k, n], "calls_per_step": e.count / steps,
                     "ms_per_step": round(seconds * 1e3 / steps, 3),
                     "gflops": round(2 * m * k * n * e.count / seconds / 1e9, 1)})
    return sorted(rows, key=lambda r: -r["ms_per_step"])


def profile_train(model: Any, steps: int, out: Path) -> tuple[str, dict[str, float], list[dict[str, Any]]]:
    """torch.profiler over ``steps`` train steps: the op table, self-CPU shares per group, GEMMs by shape."""
    from torch.profiler import ProfilerActivity, profile

    model.train(gradient_steps=2, batch_size=model.batch_size)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        model.train(gradient_steps=steps, batch_size=model.batch_size)
    averages = prof.key_averages()
    table = averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=40)
    out.write_text(table)
    total = sum(e.self_cpu_time_total for e in averages)
    shares = dict.fromkeys([name for name, _ in PROFILE_GROUPS] + ["other (elementwise, autograd, Python)"], 0.0)
    for event in averages:
        group = next((name for name, keys in PROFILE_GROUPS
                      if any(k in event.key or k in event.key.lower() for k in keys)), None)
        shares[group or "other (elementwise, autograd, Python)"] += event.self_cpu_time_total / total
    return table, {k: round(v, 3) for k, v in shares.items()}, gemm_shapes(prof, steps)


NOTES_HEADING = "## Notes"  # train.md keeps everything from this heading on when it is re-written

KINDS = {"pt_lif": "(a) ProxyTD3 SNNPolicy LIF T=5, proxy 512-512, K=3",
         "td3_ann_sb3": "(b) SB3 TD3 MlpPolicy [256, 256]",
         "soft_lif": "(c) ProxyTD3 SNNPolicy LIF T=5, soft (Polyak) target"}


def measure(models: dict[str, Any], buckets: dict[str, dict[str, float]], args: argparse.Namespace,
            threads: int) -> dict[str, Any]:
    """Round-robin timing of all models with ``threads`` torch threads; one result block."""
    torch.set_num_threads(threads)
    for bucket in buckets.values():
        bucket.update(train=0.0, total=0.0)
    load_before = os.getloadavg()
    round_ratios = []
    for _ in range(args.rounds):
        seconds = {}
        for kind, model in models.items():
            start = time.perf_counter()
            model.learn(args.chunk, reset_num_timesteps=False)
            seconds[kind] = time.perf_counter() - start
            buckets[kind]["total"] += seconds[kind]
        round_ratios.append(seconds["td3_ann_sb3"] / seconds["pt_lif"])
    load_after = os.getloadavg()
    steps = args.rounds * args.chunk
    results: dict[str, Any] = {}
    for kind, label in KINDS.items():
        total, train = buckets[kind]["total"], buckets[kind]["train"]
        flops = flops_per_step(models[kind])
        results[kind] = {
            "label": label, "steps": steps, "seconds": round(total, 3), "steps_per_s": round(steps / total, 2),
            "train_share": round(train / total, 3), "train_steps_per_s": round(steps / train, 2),
            "gflop_per_step": {k: round(v / 1e9, 4) for k, v in flops.items()},
            "gflops_achieved": round(flops["total"] * steps / total / 1e9, 2),
            "gflops_in_train": round(flops["total"] * steps / train / 1e9, 2),
        }
    base = results["td3_ann_sb3"]["steps_per_s"]
    return {"torch_threads": threads, "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after], "results": results,
            "ratio_pt_lif_over_sb3_td3": round(results["pt_lif"]["steps_per_s"] / base, 3),
            "round_ratios_pt_lif_over_sb3_td3": [round(r, 3) for r in round_ratios],
            "ratio_soft_lif_over_sb3_td3": round(results["soft_lif"]["steps_per_s"] / base, 3)}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Training throughput ({report['env']}, one process)", "",
             f"{report['measured_steps_per_model']} steps per model after {report['learning_starts']} start steps "
             f"(one gradient step per env step), round-robin chunks of {report['chunk']}; glibc malloc "
             f"keep-freed {'on' if report['malloc_keep_freed_memory'] else 'off'}; subnormals flushed to zero: "
             f"{'yes' if report.get('denormals_flushed') else 'no'} (all three models); neuron kernel CPU backend "
             f"{report['neuron_kernel_cpu_backend']}; OMP_WAIT_POLICY {report['env_vars']['OMP_WAIT_POLICY']}; "
             f"{report['machine']['cores']} cores; torch {report['versions']['torch']}, "
             f"SB3 {report['versions']['stable_baselines3']}.", ""]
    for block in report["runs"]:
        lines += [f"## {block['torch_threads']} torch thread(s), load average {block['loadavg_before'][0]:.2f} "
                  f"before, {block['loadavg_after'][0]:.2f} after", "",
                  "| model | steps/s | time in train() | GFLOP/step | GFLOP/s (overall) | GFLOP/s (in train) |",
                  "|---|---|---|---|---|---|"]
        for r in block["results"].values():
            lines.append(f"| {r['label']} | {r['steps_per_s']} | {100 * r['train_share']:.0f}% | "
                         f"{r['gflop_per_step']['total']:.3f} | {r['gflops_achieved']} | {r['gflops_in_train']} |")
        rr = block.get("round_ratios_pt_lif_over_sb3_td3") or [block["ratio_pt_lif_over_sb3_td3"]]
        spread = f"median {float(np.median(rr)):.3f}, range {min(rr):.3f}-{max(rr):.3f}"
        lines += ["", f"Ratio (a)/(b): **{block['ratio_pt_lif_over_sb3_td3']}x** (target >= 0.35x; per round of "
                      f"{report['chunk']} steps: {spread}); "
                      f"(c)/(b): {block['ratio_soft_lif_over_sb3_td3']}x.", ""]
    if "profile" in report:
        prof = report["profile"]
        lines += [f"## Where (a)'s train() time goes (torch.profiler, {prof['train_steps']} steps, "
                  f"{prof['torch_threads']} thread(s), self CPU time)", "", "| part | share |", "|---|---|"]
        lines += [f"| {k} | {100 * v:.1f}% |" for k, v in prof["self_cpu_share"].items()]
        gemms = prof.get("gemm_shapes", [])
        if gemms:
            total_ms = sum(g["ms_per_step"] for g in gemms)
            lines += ["", f"GEMMs by shape (M x K -> N; {total_ms:.1f} ms per train step in all):", ""]
            sb3 = next((b for b in report["runs"] if b["torch_threads"] == prof["torch_threads"]), None)
            if sb3 is not None:
                sb3_ms = 1e3 / sb3["results"]["td3_ann_sb3"]["steps_per_s"]
                lines += [f"Ceiling: (b) takes {sb3_ms:.1f} ms per env step (everything) at this thread count; (a)'s "
                          f"GEMMs alone take {total_ms:.1f} ms per step in place, so even with zero time outside "
                          f"its GEMMs (a) would run at {sb3_ms / total_ms:.3f}x (b); at 0.35x, (a) has "
                          f"{sb3_ms / 0.35 - total_ms:.1f} ms per step for everything else (acting, env, replay "
                          f"sampling, neuron kernels, Adam, elementwise ops, Python).", ""]
            lines += [
                      "| op | M, K, N | calls/step | ms/step | GFLOP/s |", "|---|---|---|---|---|"]
            lines += [f"| {g['op']} | {', '.join(map(str, g['mkn']))} | {g['calls_per_step']:g} | "
                      f"{g['ms_per_step']:.2f} | {g['gflops']:.0f} |" for g in gemms[:15]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default=None, help="default Hopper-v5; Hopper-v4 with --reference")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50, help="training steps per model before timing")
    parser.add_argument("--chunk", type=int, default=100, help="steps per model per round")
    parser.add_argument("--rounds", type=int, default=None, help="default 10; 3 with --reference")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch thread counts to measure, one after the other (default: all cores; 1 and 2 "
                        "with --reference)")
    side = parser.add_argument_group("side by side with the reference code (scripts/bench_train_reference.py)")
    side.add_argument("--reference", type=Path, metavar="DIR",
                      help="a checkout of the authors' Proxy Target code at the pinned commit; writes "
                      "benchmarks/train_reference.json and .md instead of train.*")
    side.add_argument("--budgets", type=int, nargs=2, default=[200, 1200], metavar=("N1", "N2"),
                      help="the two training-step budgets whose time difference gives each rate")
    side.add_argument("--scratch", type=Path, help="folder for the runs' outputs and logs (default: a temporary "
                      "folder, deleted afterwards)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also profile 40 train steps of (a)")
    parser.add_argument("--no-keep-freed-memory", dest="keep_freed", action="store_false",
                        help="leave glibc's malloc thresholds alone (default: spikerl.agents.cpu.keep_freed_memory)")
    parser.add_argument("--no-flush-denormals", dest="flush_denormals", action="store_false",
                        help="keep subnormal floats (default: flushed to zero, as spikerl train does; "
                             "spikerl.agents.cpu.flush_denormals)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    denormals_flushed = flush_denormals() if args.flush_denormals else False  # before torch's worker threads
    reference_mode = args.reference is not None
    args.env = args.env or ("Hopper-v4" if reference_mode else "Hopper-v5")
    args.rounds = args.rounds or (3 if reference_mode else 10)
    args.threads = args.threads or ([1, 2] if reference_mode else [torch.get_num_threads()])
    if reference_mode:
        import bench_train_reference

        bench_train_reference.run(args)
        return
    malloc_tuned = keep_freed_memory() if args.keep_freed else False

    models, buckets = {}, {}
    for kind in KINDS:
        model = build(kind, args)
        model.learn(args.learning_starts + args.warmup)
        buckets[kind] = {"train": 0.0, "total": 0.0}
        timed_train(model, buckets[kind])
        models[kind] = model
    runs = [measure(models, buckets, args, threads) for threads in args.threads]
    report = {
        "env": args.env, "learning_starts": args.learning_starts,
        "measured_steps_per_model": args.rounds * args.chunk, "chunk": args.chunk, "rounds": args.rounds,
        "malloc_keep_freed_memory": malloc_tuned, "denormals_flushed": denormals_flushed,
        "neuron_kernel_cpu_backend": getattr(fused_kernels, "CPU_BACKEND", "torch"),
        "env_vars": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "versions": {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
                     "numpy": np.__version__},
        "runs": runs, "target_ratio": 0.35,
        "best_ratio_pt_lif_over_sb3_td3": max(r["ratio_pt_lif_over_sb3_td3"] for r in runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        torch.set_num_threads(max(args.threads))
        table, shares, gemms = profile_train(models["pt_lif"], 40, args.out / "train_profile.txt")
        report["profile"] = {"file": "benchmarks/train_profile.txt", "model": "pt_lif", "train_steps": 40,
                             "torch_threads": torch.get_num_threads(), "self_cpu_share": shares,
                             "gemm_shapes": gemms}
        print(table)
    (args.out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    print(text)
    md = args.out / "train.md"
    notes = md.read_text().partition(NOTES_HEADING)[1:] if md.exists() else ("", "")
    md.write_text(text + ("\n" + "".join(notes) if notes[0] else ""))  # hand-written notes are kept


if __name__ == "__main__":
    main()
