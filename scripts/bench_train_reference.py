"""Training throughput side by side with the reference code: the authors' Proxy Target ``main.py`` (PT-LIF, T=5,
proxy 512-512, K=3), ``spikerl train td3-proxy-lif`` and SB3's TD3 (MlpPolicy 256-256), each in its own process.

All three train on the same env (Hopper-v4 by default) with the same protocol: ``--learning-starts`` uniform-random
steps, then one gradient step of batch 256 per env step. Each is run at two budgets of training steps
(``--budgets N1 N2``) and its rate is (N2 - N1) / (t(N2) - t(N1)), so start-up, imports, the start steps, the
initial evaluation and the final save cancel. The runs of a round are interleaved (every kind at N1, then every kind
at N2, the order of the kinds rotated each round), so a change of machine load hits all alike; the ratios are taken
per round and reported as median and range. Every process gets the round's thread count (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and spikerl's ``--threads``).

The GEMM-only ceiling: the matrix products of one spikerl training step, found with ``torch.profiler`` on an
in-process model built from the same config and replayed alone at each thread count; the reference's time per step
divided by that time is the speed-up spikerl would reach if it did nothing but its GEMMs.

The reference is not part of this repository. Get it at the pinned commit into a scratch folder:

    git clone https://github.com/madao2333/Proxy-Target-with-PLIF /tmp/pt-ref
    git -C /tmp/pt-ref checkout 553f52fd40bb288d97570274217d9fdf9c191280
    python scripts/bench_train.py --reference /tmp/pt-ref                 # writes benchmarks/train_reference.*

It runs unmodified with this environment's Python (gymnasium 1.x still has the v4 MuJoCo envs); its outputs
(``results/``, ``models/``) go to a scratch folder (``--scratch``), not into the checkout.

This file is also the SB3 side's worker: ``python scripts/bench_train_reference.py sb3 --steps N ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_URL = "https://github.com/madao2333/Proxy-Target-with-PLIF"
REFERENCE_COMMIT = "553f52fd40bb288d97570274217d9fdf9c191280"
NO_EVALUATION = 10**9  # an evaluation interval longer than any budget: only the runs' fixed evaluations remain
KINDS = ("reference", "spikerl", "sb3")
KIND_LABELS = {"reference": "reference main.py (PT-LIF, proxy 512-512, K=3)",
               "spikerl": "spikerl train td3-proxy-lif", "sb3": "SB3 TD3 MlpPolicy [256, 256]"}


# -- the three commands --------------------------------------------------------------------------------------------
def reference_commit(reference: Path) -> str | None:
    """The checked-out commit of the reference folder (None when it is not a git checkout)."""
    try:
        out = subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def spikerl_overrides(args: argparse.Namespace) -> list[str]:
    """The config keys that make ``spikerl train td3-proxy-lif`` follow the shared protocol."""
    return [f"env={args.env}", f"seed={args.seed}", f"learning_starts={args.learning_starts}", "batch_size=256",
            "train_freq=1", "gradient_steps=1", f"eval.freq={NO_EVALUATION}", "eval.episodes=1",
            f"checkpoint.every={NO_EVALUATION}"]


def command(kind: str, train_steps: int, threads: int, args: argparse.Namespace, scratch: Path
            ) -> tuple[list[str], Path]:
    """(argv, working folder) of one timed run of ``kind`` with ``train_steps`` gradient steps."""
    py = sys.executable
    if kind == "reference":
        cwd = scratch / "reference"
        argv = [py, str(args.reference / "main.py"), "--env", args.env, "--spiking_neurons", "LIF", "--proxy", "Yes",
                "--proxy_hidden_sizes", "512", "512", "--proxy_lr", "1e-3", "--proxy_iters", "3",
                "--start_timesteps", str(args.learning_starts), "--max_trainsteps", str(train_steps),
                "--eval_freq", str(NO_EVALUATION), "--batch_size", "256", "--seed", str(args.seed)]
    elif kind == "sb3":
        cwd = scratch / "sb3"
        argv = [py, str(Path(__file__).resolve()), "sb3", "--env", args.env, "--seed", str(args.seed),
                "--learning-starts", str(args.learning_starts), "--steps", str(args.learning_starts + train_steps),
                "--threads", str(threads)]
    else:
        cwd = scratch / kind
        argv = [py, "-m", "spikerl", "train", "td3-proxy-lif", "--steps", str(args.learning_starts + train_steps),
                "--threads", str(threads), "--quiet", "--overwrite", "--run-dir", str(cwd / "run"),
                "--set", *spikerl_overrides(args)]
    cwd.mkdir(parents=True, exist_ok=True)
    return argv, cwd


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               SPIKERL_NUM_THREADS=str(threads), MUJOCO_GL=env.get("MUJOCO_GL", "egl"), PYTHONUNBUFFERED="1")
    return env


def timed_run(argv: list[str], cwd: Path, threads: int, log: Path) -> float:
    """Wall seconds of one process; its output goes to ``log``; a failure raises with the log's last lines."""
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(argv, cwd=cwd, env=thread_env(threads), stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"{' '.join(argv)} exited with {code} (log {log}):\n{tail}")
    return seconds


# -- the GEMM-only ceiling -----------------------------------------------------------------------------------------
def build_spikerl_model(args: argparse.Namespace) -> Any:
    """The model ``spikerl train td3-proxy-lif`` builds with this benchmark's overrides, filled past the start steps."""
    from spikerl.agents.training import build_model, make_envs

    from spikerl.config import load_config

    cfg = load_config("td3-proxy-lif", [*spikerl_overrides(args), "total_timesteps=1000000"])
    env, _ = make_envs(cfg, cfg.seed)
    model = build_model(cfg, env)
    model.learn(args.learning_starts + 4)
    return model


def gemm_census(model: Any, steps: int = 8) -> list[dict[str, Any]]:
    """The matrix products of ``steps`` train steps, grouped by (op, shapes, strides, dtypes), with calls per step."""
    from torch.profiler import ProfilerActivity, profile

    model.train(gradient_steps=2, batch_size=model.batch_size)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        model.train(gradient_steps=steps, batch_size=model.batch_size)
    counts: dict[tuple, int] = {}
    for event in prof.events():
        if event.name not in ("aten::mm", "aten::addmm"):
            continue
        n_mat = 2 if event.name == "aten::mm" else 3
        shapes = tuple(tuple(s) for s in event.input_shapes[:n_mat])
        strides = tuple(tuple(s) for s in event.structured_input_strides[:n_mat])
        dtypes = tuple(event.input_dtypes[:n_mat])
        key = (event.name.removeprefix("aten::"), shapes, strides, dtypes)
        counts[key] = counts.get(key, 0) + 1
    return [{"op": op, "shapes": [list(s) for s in shapes], "strides": [list(s) for s in strides],
             "dtypes": list(dtypes), "calls_per_step": n / steps}
            for (op, shapes, strides, dtypes), n in sorted(counts.items(), key=lambda kv: -kv[1])]


def _operand(shape: list[int], stride: list[int]) -> Any:
    """A random float32 tensor with this shape and the same layout (row-major, or a transposed row-major matrix)."""
    import torch

    if len(shape) == 2 and len(stride) == 2 and stride[0] == 1 and shape[1] > 1:
        return torch.randn(shape[1], shape[0]).t()
    return torch.randn(*shape)


def gemm_ms_per_step(census: list[dict[str, Any]], threads: int, repeats: int = 7) -> float:
    """Milliseconds per train step of the census' GEMMs replayed alone (median over ``repeats``)."""
    import torch

    torch.set_num_threads(threads)
    calls = []
    for g in census:
        operands = [_operand(s, st) for s, st in zip(g["shapes"], g["strides"], strict=True)]
        fn = torch.mm if g["op"] == "mm" else torch.addmm
        calls.append((fn, operands, g["calls_per_step"]))
    times = []
    for _ in range(repeats):
        total = 0.0
        for fn, operands, per_step in calls:
            fn(*operands)
            n = max(3, int(round(per_step * 4)))
            start = time.perf_counter()
            for _ in range(n):
                fn(*operands)
            total += (time.perf_counter() - start) / n * per_step
        times.append(total * 1e3)
    return float(np.median(times))


# -- measuring and reporting ---------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, Any]:
    """Median and range of the finite values (a round whose time difference was not positive has none)."""
    finite = [v for v in values if np.isfinite(v)]
    stats = {"median": round(float(np.median(finite)), 3), "min": round(min(finite), 3),
             "max": round(max(finite), 3)} if finite else {"median": None, "min": None, "max": None}
    return {**stats, "per_round": [round(v, 3) if np.isfinite(v) else None for v in values]}


def _fmt(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def measure(kinds: list[str], threads: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """All rounds at one thread count: per kind and round the rate; per round the ratios."""
    n1, n2 = args.budgets
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    seconds: dict[str, list[list[float]]] = {k: [] for k in kinds}
    load_before = os.getloadavg()
    for r in range(args.rounds):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        walls: dict[str, list[float]] = {k: [] for k in kinds}
        for steps in (n1, n2):
            for kind in order:
                argv, cwd = command(kind, steps, threads, args, scratch)
                wall = timed_run(argv, cwd, threads, scratch / f"{kind}-t{threads}-r{r}-{steps}.log")
                walls[kind].append(wall)
                print(f"threads {threads} round {r + 1}/{args.rounds}: {kind} {steps} steps {wall:.1f} s", flush=True)
        for kind in kinds:
            seconds[kind].append([round(w, 2) for w in walls[kind]])
            dt = walls[kind][1] - walls[kind][0]
            rates[kind].append((n2 - n1) / dt if dt > 0 else float("nan"))
    block: dict[str, Any] = {"torch_threads": threads, "loadavg_before": [round(x, 2) for x in load_before],
                             "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                             "steps_per_s": {k: spread(v) for k, v in rates.items()},
                             "wall_seconds_n1_n2": seconds, "ratios": {}}
    for base in ("reference", "sb3"):
        per_round = [a / b for a, b in zip(rates["spikerl"], rates[base], strict=True)]
        block["ratios"][f"spikerl/{base}"] = spread(per_round)
    return block


def add_ceiling(block: dict[str, Any], census: list[dict[str, Any]]) -> None:
    """spikerl's GEMM-only ceiling at this block's thread count."""
    ms = gemm_ms_per_step(census, block["torch_threads"])
    block["gemm_ceiling"] = {"gemm_ms_per_step": round(ms, 3)}
    for base in ("reference", "sb3"):
        rate = block["steps_per_s"][base]["median"]
        block["gemm_ceiling"][f"over_{base}"] = None if not rate else round(1e3 / rate / ms, 3)


def markdown(report: dict[str, Any]) -> str:
    ref = report["reference"]
    n1, n2 = report["budgets"]
    lines = [f"# Training throughput side by side with the reference code ({report['env']})", "",
             f"Each process trains {report['learning_starts']} uniform-random start steps, then one gradient step "
             f"(batch 256) per env step; rates are (N2 - N1) / (t(N2) - t(N1)) with N1 = {n1} and N2 = {n2} training "
             f"steps, {report['rounds']} interleaved round(s); ratios are per round (median, range). Reference: "
             f"{ref['url']} at {ref['commit'] or 'an unknown commit'}"
             f"{'' if ref['commit'] == ref['pinned_commit'] else ' (NOT the pinned ' + ref['pinned_commit'] + ')'}. "
             f"{report['machine']['cores']} cores ({report['machine']['cpu']}); torch {report['versions']['torch']}, "
             f"SB3 {report['versions']['stable_baselines3']}.", ""]
    for block in report["runs"]:
        rates = block["steps_per_s"]
        lines += [f"## {block['torch_threads']} thread(s), load average {block['loadavg_before'][0]:.2f} before, "
                  f"{block['loadavg_after'][0]:.2f} after", "", "| run | env steps/s (median, range) |", "|---|---|"]
        lines += [f"| {KIND_LABELS[k]} | {_fmt(v['median'])} ({_fmt(v['min'])}-{_fmt(v['max'])}) |"
                  for k, v in rates.items()]
        lines += ["", "| ratio | median | range |", "|---|---|---|"]
        lines += [f"| {k} | **{_fmt(v['median'], 'x')}** | {_fmt(v['min'])}-{_fmt(v['max'])} |"
                  for k, v in block["ratios"].items()]
        ceiling = block.get("gemm_ceiling")
        if ceiling:
            lines += ["", "GEMM-only ceiling (spikerl's GEMMs of one step replayed alone):", "",
                      "| GEMM ms/step | ceiling over reference | ceiling over SB3 |", "|---|---|---|",
                      f"| {ceiling['gemm_ms_per_step']} | {_fmt(ceiling['over_reference'], 'x')} | "
                      f"{_fmt(ceiling['over_sb3'], 'x')} |"]
        if rates["spikerl"]["median"]:
            lines += ["", f"1M training steps at this rate (no evaluations): {KIND_LABELS['spikerl']} "
                      f"{1e6 / rates['spikerl']['median'] / 3600:.1f} h."]
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    """The side-by-side benchmark (``scripts/bench_train.py --reference DIR``)."""
    import stable_baselines3
    import torch
    from benchlib import cpu_name  # scripts/ is on sys.path

    args.reference = Path(args.reference).resolve()
    if not (args.reference / "main.py").is_file():
        raise SystemExit(f"--reference {args.reference}: no main.py there; get the reference with: git clone "
                         f"{REFERENCE_URL} DIR && git -C DIR checkout {REFERENCE_COMMIT}")
    if len(args.budgets) != 2 or not 0 <= args.budgets[0] < args.budgets[1]:
        raise SystemExit(f"--budgets: expected two training-step counts N1 < N2, got {args.budgets}")
    scratch = Path(args.scratch) if args.scratch else Path(tempfile.mkdtemp(prefix="spikerl-bench-ref-"))
    scratch.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(args.threads))
    census = gemm_census(build_spikerl_model(args))
    runs = []
    for threads in args.threads:
        block = measure(list(KINDS), threads, args, scratch)
        add_ceiling(block, census)
        runs.append(block)
    commit = reference_commit(args.reference)
    report = {
        "env": args.env, "learning_starts": args.learning_starts, "budgets": list(args.budgets),
        "rounds": args.rounds, "seed": args.seed,
        "reference": {"url": REFERENCE_URL, "pinned_commit": REFERENCE_COMMIT, "commit": commit},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "versions": {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
                     "python": sys.version.split()[0]},
        "gemm_census": census, "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_reference.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (args.out / "train_reference.md").write_text(text)
    print(text)
    if not args.scratch:
        shutil.rmtree(scratch, ignore_errors=True)


# -- the SB3 worker ------------------------------------------------------------------------------------------------
def sb3_worker(argv: list[str]) -> None:
    """SB3 TD3 (MlpPolicy [256, 256], lr 3e-4, Gaussian exploration 0.1) for ``--steps`` env steps."""
    parser = argparse.ArgumentParser(description=sb3_worker.__doc__)
    parser.add_argument("--env", default="Hopper-v4")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import gymnasium as gym
    import torch
    from stable_baselines3 import TD3
    from stable_baselines3.common.noise import NormalActionNoise

    torch.set_num_threads(args.threads)
    env = gym.make(args.env)
    act_dim = env.action_space.shape[0]
    model = TD3("MlpPolicy", env, learning_rate=3e-4, learning_starts=args.learning_starts, batch_size=256,
                train_freq=1, gradient_steps=1, policy_kwargs=dict(net_arch=[256, 256]), seed=args.seed,
                action_noise=NormalActionNoise(np.zeros(act_dim), 0.1 * np.ones(act_dim)), verbose=0)
    model.learn(args.steps)


if __name__ == "__main__":
    if sys.argv[1:2] != ["sb3"]:
        raise SystemExit("usage: python scripts/bench_train_reference.py sb3 --steps N [...] "
                         "(the side-by-side benchmark itself: python scripts/bench_train.py --reference DIR)")
    sb3_worker(sys.argv[2:])
