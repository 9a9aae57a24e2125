"""Benchmark: returns of trained ANN actors vs their ANN-to-SNN conversions, without and with CRPI.

For each ANN run directory (td3-ann / sac-ann; an unfinished run is loaded from its newest checkpoint):
calibration states from deterministic rollouts of the ANN itself (10000 steps, env seed + 200), per-neuron
max thresholds, IF neurons with v0 = theta/2 and soft reset; for T in {8, 16, 32, 64} the converted SNN
without carry and with the CRPI carry for each alpha (reset at every episode start). Every policy, the ANN
included, is evaluated on the same N deterministic episodes (env seed = run seed + 100, as the CRPI paper's
evaluation: 10 episodes at seed + 100). Writes benchmarks/convert_control.{json,md}.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_convert_control.py RUN_DIR_OR_FOLDER ... \\
        [--T 8 16 32 64] [--alphas 0.25 0.5 0.75 1.0] [--episodes 10] [--backend numba|torch]

``--backend numba`` (default) runs the converted SNNs with the torch-free runtime kernel (float32; the same
policy as the torch ``SpikingModel``, tests/conversion/test_control_runtime.py checks the round trip), which
is ~50x faster per decision; ``torch`` runs ``SpikingModel`` itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikerl.agents.conversion import CALIB_SEED_OFFSET, ConvertedAgent, collect_states, evaluate_agent
from spikerl.agents.training import EVAL_SEED_OFFSET, RunError, load_run_model

from spikerl.conversion import ConversionSpec, convert_actor
from spikerl.conversion.saved import converted_policy_spec, mlp_from_actor

TS = (8, 16, 32, 64)
ALPHAS = (0.25, 0.5, 0.75, 1.0)


class NumbaAgent:
    """SB3-style predict over the Numba kernel of a converted policy; resets the carry per env index."""

    def __init__(self, snn, mlp, low: np.ndarray, high: np.ndarray) -> None:
        from spikerl.kernels.numba_policy import pack_policy

        self.kernel = pack_policy(converted_policy_spec(snn, mlp), np.float32)
        self.low, self.high = low.astype(np.float32), high.astype(np.float32)

    def act(self, observation, episode_start):
        if episode_start is not None and self.kernel.stateful:
            self.kernel.reset(np.asarray(episode_start, dtype=bool))
        return self.kernel(np.asarray(observation, dtype=np.float32))

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        a = self.act(observation, episode_start)
        return self.low + (0.5 * (a + 1.0)) * (self.high - self.low), None


class TorchAgent(ConvertedAgent):
    def act(self, observation, episode_start):
        if episode_start is not None and self.snn.settings["carry"] is not None:
            self.snn.reset(mask=np.asarray(episode_start, dtype=bool))
        with torch.no_grad():
            return self.snn(torch.as_tensor(np.asarray(observation))).numpy()


class ErrorProbe:
    """Wraps an agent; records e_k = a_SNN - a_ANN (normalised actions in [-1, 1]) on the SNN's own trajectory.

    ``error()``: mean |e_k| (per decision); ``window_error(w)``: mean |(1/w) sum of w consecutive e_k| within
    an episode, the temporally correlated part of the error that CRPI is meant to cancel."""

    def __init__(self, agent, mlp) -> None:
        self.agent, self.mlp = agent, mlp
        self.episodes: list[list[np.ndarray]] = []

    def error(self) -> float:
        return float(np.mean([np.abs(e).mean() for ep in self.episodes for e in ep]))

    def window_error(self, w: int = 8) -> float:
        vals = []
        for ep in self.episodes:
            if len(ep) >= w:
                e = np.stack(ep)
                c = np.cumsum(np.concatenate([np.zeros((1, *e.shape[1:])), e]), axis=0)
                vals.append(np.abs((c[w:] - c[:-w]) / w).mean())
        return float(np.mean(vals)) if vals else float("nan")

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        if episode_start is None or bool(np.asarray(episode_start).any()) or not self.episodes:
            self.episodes.append([])
        a = self.agent.act(observation, episode_start)
        with torch.no_grad():
            ref = self.mlp(torch.as_tensor(np.asarray(observation, dtype=np.float32))).numpy()
        self.episodes[-1].append((a - ref)[0])
        low, high = self.agent.low, self.agent.high
        return low + (0.5 * (a + 1.0)) * (high - low), None


def find_runs(paths: list[str]) -> list[Path]:
    """Run directories (with config.yaml and a model.zip or checkpoint) given or found below the paths."""
    runs: list[Path] = []
    for p in map(Path, paths):
        cands = [p] if (p / "config.yaml").is_file() else sorted(c.parent for c in p.rglob("config.yaml"))
        for c in cands:
            if "converted" in c.parts:
                continue
            if (c / "model.zip").is_file() or any((c / "checkpoints").glob("*.json")):
                runs.append(c)
    return runs


def bench_run(run: Path, ts, alphas, episodes: int, calib_steps: int, backend: str, log,
              fire: str = "gt") -> dict[str, Any] | None:
    from spikerl.agents.policies import spiking_network

    try:
        model, cfg, source = load_run_model(run)
    except RunError as err:
        log(f"skip {run}: {err}")
        return None
    if spiking_network(model.actor) is not None:
        log(f"skip {run}: spiking actor")
        return None
    env_id, kwargs, seed = cfg["env"], dict(cfg.get("env_kwargs") or {}), int(cfg["seed"])
    eval_seed = seed + EVAL_SEED_OFFSET
    t0 = time.perf_counter()
    ann_ret, ann_len = evaluate_agent(model, env_id, kwargs, eval_seed, episodes)
    log(f"{run} ({env_id}, {source}): ANN {np.mean(ann_ret):.1f} ± {np.std(ann_ret):.1f}")
    mlp = mlp_from_actor(model.actor).eval()
    states = torch.from_numpy(collect_states(model, env_id, kwargs, calib_steps, seed + CALIB_SEED_OFFSET))
    low, high = np.asarray(model.action_space.low), np.asarray(model.action_space.high)
    rows = []
    for T in ts:
        for alpha in (None, *alphas):
            spec = ConversionSpec(T=T, method="max", granularity="neuron", fire=fire,
                                  carry=None if alpha is None else "crpi", alpha=0.5 if alpha is None else alpha)
            snn = convert_actor(mlp, states, spec)
            agent = NumbaAgent(snn, mlp, low, high) if backend == "numba" else TorchAgent(snn, low, high)
            probe = ErrorProbe(agent, mlp)
            ret, lens = evaluate_agent(probe, env_id, kwargs, eval_seed, episodes)
            err, werr = probe.error(), probe.window_error(8)
            pct = 100.0 * float(np.mean(ret)) / float(np.mean(ann_ret)) if np.mean(ann_ret) != 0 else float("nan")
            rows.append({"T": T, "carry": "none" if alpha is None else "crpi", "alpha": alpha,
                         "mean_return": float(np.mean(ret)), "std_return": float(np.std(ret)),
                         "pct_of_ann": pct, "action_error": err, "action_error_w8": werr,
                         "returns": ret, "lengths": lens})
            log(f"  T={T:3d} {'no carry' if alpha is None else f'CRPI a={alpha:g}':12s} "
                f"{np.mean(ret):8.1f} ± {np.std(ret):6.1f}  ({pct:5.1f}% of ANN)  |e| {err:.4f}  |e|w8 {werr:.4f}")
    return {"run": str(run), "env": env_id, "algo": cfg["algo"], "seed": seed, "model": source,
            "train_steps": int(getattr(model, "num_timesteps", 0)), "eval_seed": eval_seed,
            "calib_steps": calib_steps, "ann": {"mean_return": float(np.mean(ann_ret)),
                                                "std_return": float(np.std(ann_ret)), "returns": ann_ret,
                                                "lengths": ann_len},
            "snn": rows, "wall_time_s": time.perf_counter() - t0}


def write_md(path: Path, data: dict[str, Any]) -> None:
    cfg = data["config"]
    lines = ["# ANN-to-SNN conversion of control actors: ANN vs converted SNN returns", "",
             f"Produced by `scripts/bench_convert_control.py` on {data['created']} ({data['machine']}).",
             f"Conversion: method max, per-neuron thresholds from {cfg['calib_steps']} steps of deterministic "
             f"rollouts of the ANN itself (env seed + 200), IF neurons (fire {cfg.get('fire', 'gt')}) with v0 = "
             "theta/2 and soft reset, "
             "analog input current, mean-over-T readout into the float tanh head. CRPI: carry "
             "c = clip(alpha max(R, -theta N), -theta/2, theta/2) of the residual R, reset at every episode start.",
             f"Evaluation: {cfg['episodes']} deterministic episodes per policy, env seed = run seed + 100, the same "
             f"episodes for the ANN and every SNN; SNN backend: {cfg['backend']}.", ""]
    if cfg.get("note"):
        lines += [cfg["note"], ""]
    for r in data["results"]:
        alphas = sorted({row["alpha"] for row in r["snn"] if row["alpha"] is not None})
        lines += [f"## {r['env']} ({r['algo']}-ann, seed {r['seed']}, {r['train_steps']} training steps, "
                  f"{r['model']})", "",
                  f"ANN return: **{r['ann']['mean_return']:.1f} ± {r['ann']['std_return']:.1f}**", "",
                  "Mean return ± std (% of the ANN return):", "",
                  "| T | no carry | " + " | ".join(f"CRPI α={a:g}" for a in alphas) + " |",
                  "|---:|---:|" + "---:|" * len(alphas)]
        ts = sorted({row["T"] for row in r["snn"]})

        def row_of(T, alpha, r=r):
            return next(x for x in r["snn"] if x["T"] == T and x["alpha"] == alpha)

        for T in ts:
            cells = [f"{x['mean_return']:.1f} ± {x['std_return']:.1f} ({x['pct_of_ann']:.1f}%)"
                     for x in (row_of(T, a) for a in (None, *alphas))]
            lines.append(f"| {T} | " + " | ".join(cells) + " |")
        lines += ["", "Mean |a_SNN − a_ANN| per action dimension (actions in [-1, 1]) along the SNN's own evaluation "
                  "trajectories:", "",
                  "| T | no carry | " + " | ".join(f"CRPI α={a:g}" for a in alphas) + " |",
                  "|---:|---:|" + "---:|" * len(alphas)]
        for T in ts:
            lines.append(f"| {T} | " + " | ".join(f"{row_of(T, a)['action_error']:.4f}" for a in (None, *alphas))
                         + " |")
        lines += ["", "Mean |average of e over 8 consecutive decisions| (e = a_SNN − a_ANN; the temporally "
                  "correlated error that CRPI targets):", "",
                  "| T | no carry | " + " | ".join(f"CRPI α={a:g}" for a in alphas) + " |",
                  "|---:|---:|" + "---:|" * len(alphas)]
        for T in ts:
            lines.append(f"| {T} | " + " | ".join(f"{row_of(T, a)['action_error_w8']:.4f}"
                                                   for a in (None, *alphas)) + " |")
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="ANN run directories or folders to search for them")
    ap.add_argument("--T", nargs="+", type=int, default=list(TS))
    ap.add_argument("--alphas", nargs="+", type=float, default=list(ALPHAS))
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--calib-steps", type=int, default=10000)
    ap.add_argument("--backend", choices=("numba", "torch"), default="numba")
    ap.add_argument("--fire", choices=("ge", "gt"), default="gt", help="spike on m > theta (gt, the CRPI code) "
                    "or m >= theta (ge)")
    ap.add_argument("--note", default="", help="a line added to the markdown (e.g. about short training)")
    ap.add_argument("--out", default="benchmarks")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = find_runs(args.paths)
    if not runs:
        raise SystemExit(f"no ANN run directories found under {args.paths}")
    results = []
    for run in runs:
        r = bench_run(run, args.T, args.alphas, args.episodes, args.calib_steps, args.backend,
                      lambda m: print(m, flush=True), args.fire)
        if r is not None:
            results.append(r)
    data = {"created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {platform.python_version()}, torch {torch.__version__}",
            "config": {"T": args.T, "alphas": args.alphas, "episodes": args.episodes,
                       "calib_steps": args.calib_steps, "backend": args.backend, "method": "max",
                       "fire": args.fire,
                       "granularity": "neuron", "note": args.note},
            "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "convert_control.json").write_text(json.dumps(data, indent=2) + "\n")
    write_md(out / "convert_control.md", data)
    print(f"wrote {out / 'convert_control.json'} and {out / 'convert_control.md'}")


if __name__ == "__main__":
    main()
