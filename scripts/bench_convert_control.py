"""Benchmark: returns of trained ANN actors vs their ANN-to-SNN conversions, without and with CRPI.

For each ANN run directory (td3-ann / sac-ann; an unfinished run is loaded from its newest checkpoint):
calibration states from deterministic rollouts of the ANN itself (10000 steps, env seed + 200), per-neuron
max thresholds, IF neurons with v0 = theta/2 and soft reset; for T in {8, 16, 32, 64} the converted SNN
without carry and with the CRPI carry for each alpha (reset at every episode start). Every policy, the ANN
included, is evaluated on the same N deterministic episodes (env seed = run seed + 100, as the CRPI paper's
evaluation: 10 episodes at seed + 100). Writes benchmarks/convert_control.{json,md}.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_convert_control.py RUN_DIR_OR_FOLDER ... \\
        [--actor STATE_DICT=ENV[,ENV...]] [--T 8 16 32 64] [--alphas 0.25 0.5 0.75 1.0] [--episodes 10]

``--actor`` takes an actor saved as a plain PyTorch state_dict (Linear layers in order, tanh head), e.g. the
3M-step TD3 actors that the CRPI paper ships in ``xuzijie32/ANN2SNN-CRPI`` (``MuJoCo/models/TD3_<env>-v4_actor``;
not redistributed here: no license file), with env seed 0 (calibration seed 200, evaluation seed 100).

``--backend numba`` (default) runs the converted SNNs with the torch-free runtime kernel (float32; the same
policy as the torch ``SpikingModel``, tests/conversion/test_control_runtime.py and test_control_runtime_diff.py
check the round trip, rate-coded IF and differential coding dcgs), which compiles the whole decision instead of
stepping torch ops from Python; ``torch`` runs ``SpikingModel`` itself (needed for srp, cos, parallel).
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
from spikerl.conversion.saved import converted_policy_spec, mlp_from_actor, runtime_layer_params

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


class MLPAgent:
    """SB3-style ``predict`` for a plain MLP actor whose output is the action in [-1, 1] (tanh head)."""

    def __init__(self, mlp: torch.nn.Module, low: np.ndarray, high: np.ndarray) -> None:
        self.mlp, self.low, self.high = mlp, low.astype(np.float32), high.astype(np.float32)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        with torch.no_grad():
            a = self.mlp(torch.as_tensor(np.asarray(observation, dtype=np.float32))).numpy()
        return self.low + (0.5 * (a + 1.0)) * (self.high - self.low), None


def mlp_from_state_dict(path: Path) -> torch.nn.Sequential:
    """A ``Linear-ReLU-...-Linear-Tanh`` MLP from a state_dict of Linear layers in order (e.g. the CRPI /
    Fujimoto TD3 ``Actor``: l1, l2, l3 with action = max_action * tanh(l3(...)); other entries such as the
    CRPI file's ``neuron*.thre`` calibration buffers are ignored: thresholds are calibrated here)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    prefixes = [k[: -len(".weight")] for k, v in sd.items() if k.endswith(".weight") and v.dim() == 2]
    if not prefixes:
        raise SystemExit(f"{path}: no Linear weights (2-D '<name>.weight' entries) in the state_dict")
    layers: list[torch.nn.Module] = []
    for i, name in enumerate(prefixes):
        w = sd[f"{name}.weight"].float()
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w, "bias": sd[f"{name}.bias"].float()})
        layers += [lin, torch.nn.ReLU() if i < len(prefixes) - 1 else torch.nn.Tanh()]
    return torch.nn.Sequential(*layers).eval()


def bench_run(run: Path, ts, alphas, episodes: int, calib_steps: int, backend: str, log,
              conv: dict[str, Any]) -> dict[str, Any] | None:
    """A spikerl ANN run directory (td3-ann / sac-ann)."""
    from spikerl.agents.policies import snn_or_none

    try:
        model, cfg, source = load_run_model(run)
    except RunError as err:
        log(f"skip {run}: {err}")
        return None
    if snn_or_none(model.actor) is not None:
        log(f"skip {run}: spiking actor")
        return None
    info = {"run": str(run), "env": cfg.env, "algo": cfg.algo, "seed": int(cfg.seed), "model": source,
            "train_steps": int(getattr(model, "num_timesteps", 0))}
    low, high = np.asarray(model.action_space.low), np.asarray(model.action_space.high)
    return bench_actor(info, model, mlp_from_actor(model.actor).eval(), dict(cfg.env_kwargs), low,
                       high, ts, alphas, episodes, calib_steps, backend, log, conv)


def bench_state_dict(path: Path, env_id: str, ts, alphas, episodes: int, calib_steps: int, backend: str, log,
                     conv: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """An actor saved as a PyTorch state_dict (no spikerl classes), evaluated on ``env_id``."""
    from spikerl.envs import make_single_env

    mlp = mlp_from_state_dict(path)
    env = make_single_env(env_id, seed=seed)
    low, high = np.asarray(env.action_space.low), np.asarray(env.action_space.high)
    env.close()
    info = {"run": str(path), "env": env_id, "algo": "td3", "seed": seed, "model": f"state_dict {path.name}",
            "train_steps": None}
    return bench_actor(info, MLPAgent(mlp, low, high), mlp, {}, low, high, ts, alphas, episodes, calib_steps,
                       backend, log, conv)


def bench_actor(info: dict[str, Any], ann_agent: Any, mlp: torch.nn.Module, kwargs: dict[str, Any],
                low: np.ndarray, high: np.ndarray, ts, alphas, episodes: int, calib_steps: int, backend: str, log,
                conv: dict[str, Any]) -> dict[str, Any]:
    """ANN vs converted SNN (every T, without carry and with CRPI for every alpha) on the same episodes."""
    env_id, seed = info["env"], int(info["seed"])
    eval_seed = seed + EVAL_SEED_OFFSET
    t0 = time.perf_counter()
    ann_ret, ann_len = evaluate_agent(ann_agent, env_id, kwargs, eval_seed, episodes)
    log(f"{info['run']} ({env_id}, {info['model']}): ANN {np.mean(ann_ret):.1f} ± {np.std(ann_ret):.1f}")
    states = torch.from_numpy(collect_states(ann_agent, env_id, kwargs, calib_steps, seed + CALIB_SEED_OFFSET))
    rows = []
    for T in ts:
        for alpha in (None, *alphas):
            spec = ConversionSpec(T=T, granularity="neuron", carry=None if alpha is None else "crpi",
                                  alpha=0.5 if alpha is None else alpha, **conv)
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
    return {**info, "eval_seed": eval_seed, "calib_steps": calib_steps,
            "ann": {"mean_return": float(np.mean(ann_ret)), "std_return": float(np.std(ann_ret)),
                    "returns": ann_ret, "lengths": ann_len},
            "snn": rows, "wall_time_s": time.perf_counter() - t0}


def _conversion_line(cfg: dict[str, Any]) -> str:
    method = cfg.get("method", "max")
    calib = (f"per-neuron thresholds from {cfg['calib_steps']} steps of deterministic rollouts of the ANN itself "
             "(env seed + 200)")
    crpi = ("CRPI: carry c = clip(alpha max(R, -theta N), -theta/2, theta/2) of the residual R, reset at every "
            "episode start")
    if method == "dcgs":
        return (f"Conversion: method dcgs (DCGS differential coding, {cfg.get('neuron', 'mth-diff')} neurons), "
                f"{calib}; the observation is sent once (differential coding), the decoded rate enters the float "
                f"tanh head. {crpi}; N = the output emitted in units of theta (spikerl's extension of CRPI to "
                "differential coding).")
    return (f"Conversion: method {method}, {calib}, IF neurons (fire {cfg.get('fire', 'gt')}) with v0 = theta/2 and "
            f"soft reset, analog input current, mean-over-T readout into the float tanh head. {crpi}.")


def write_md(path: Path, data: dict[str, Any]) -> None:
    cfg = data["config"]
    lines = ["# ANN-to-SNN conversion of control actors: ANN vs converted SNN returns", "",
             f"Produced by `scripts/bench_convert_control.py` on {data['created']} ({data['machine']}).",
             _conversion_line(cfg),
             f"Evaluation: {cfg['episodes']} deterministic episodes per policy, env seed = run seed + 100, the same "
             f"episodes for the ANN and every SNN; SNN backend: {cfg['backend']}.", ""]
    if cfg.get("note"):
        lines += [cfg["note"], ""]
    for r in data["results"]:
        alphas = sorted({row["alpha"] for row in r["snn"] if row["alpha"] is not None})
        steps = "" if r.get("train_steps") is None else f", {r['train_steps']} training steps"
        lines += [f"## {r['env']} ({r['algo']}-ann, seed {r['seed']}{steps}, {r['model']})", "",
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
    ap.add_argument("paths", nargs="*", help="ANN run directories or folders to search for them")
    ap.add_argument("--actor", action="append", default=[], metavar="STATE_DICT=ENV[,ENV...]",
                    help="an actor saved as a PyTorch state_dict of Linear layers (tanh head, e.g. the CRPI "
                    "paper's MuJoCo/models/TD3_Hopper-v4_actor), evaluated on each env (repeatable)")
    ap.add_argument("--T", nargs="+", type=int, default=list(TS))
    ap.add_argument("--alphas", nargs="+", type=float, default=list(ALPHAS))
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--calib-steps", type=int, default=10000)
    ap.add_argument("--backend", choices=("numba", "torch"), default="numba")
    ap.add_argument("--fire", choices=("ge", "gt"), default="gt", help="spike on m > theta (gt, the CRPI code) "
                    "or m >= theta (ge)")
    ap.add_argument("--method", default="max", help="conversion method (a ConversionSpec method: max, "
                    "percentile:<p>, dcgs, ...); CRPI applies to max/percentile/qcfs/opi (IF) and dcgs")
    ap.add_argument("--note", default="", help="a line added to the markdown (e.g. about short training)")
    ap.add_argument("--out", default="benchmarks")
    ap.add_argument("--name", default="convert_control", help="file stem: OUT/NAME.json and OUT/NAME.md")
    ap.add_argument("--merge", action="store_true", help="keep the results already in OUT/NAME.json for other "
                    "(run, env) pairs and add these (the header records this invocation's settings)")
    args = ap.parse_args()
    conv = {"method": args.method, "fire": args.fire}
    try:
        spec = ConversionSpec(T=8, granularity="neuron", **conv)
    except ValueError as err:
        raise SystemExit(f"--method {args.method!r}: {err}") from None
    if args.backend == "numba":
        try:  # the runtime's refusal (methods srp, cos, parallel) before any rollout
            runtime_layer_params(spec.resolved())
        except ValueError as err:
            raise SystemExit(f"--method {args.method}: {err}; use --backend torch") from None
    torch.set_num_threads(1)
    runs = find_runs(args.paths)
    if not runs and not args.actor:
        raise SystemExit(f"no ANN run directories found under {args.paths} and no --actor given")
    log = lambda m: print(m, flush=True)  # noqa: E731
    results = []
    for item in args.actor:
        path, sep, envs = item.partition("=")
        if not sep or not envs or not Path(path).is_file():
            raise SystemExit(f"--actor {item!r}: expected STATE_DICT=ENV[,ENV...] with an existing file, "
                             "e.g. --actor TD3_Hopper-v4_actor=Hopper-v4,Hopper-v5")
        for env_id in envs.split(","):
            results.append(bench_state_dict(Path(path), env_id, args.T, args.alphas, args.episodes,
                                            args.calib_steps, args.backend, log, conv))
    for run in runs:
        r = bench_run(run, args.T, args.alphas, args.episodes, args.calib_steps, args.backend, log, conv)
        if r is not None:
            results.append(r)
    data = {"created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {platform.python_version()}, torch {torch.__version__}",
            "config": {"T": args.T, "alphas": args.alphas, "episodes": args.episodes,
                       "calib_steps": args.calib_steps, "backend": args.backend, "method": args.method,
                       "neuron": spec.resolved()["neuron"], "fire": args.fire,
                       "granularity": "neuron", "note": args.note},
            "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge and (out / f"{args.name}.json").is_file():
        new_keys = {(r["run"], r["env"]) for r in results}
        old = json.loads((out / f"{args.name}.json").read_text())["results"]
        data["results"] = [r for r in old if (r["run"], r["env"]) not in new_keys] + results
    (out / f"{args.name}.json").write_text(json.dumps(data, indent=2) + "\n")
    write_md(out / f"{args.name}.md", data)
    print(f"wrote {out / (args.name + '.json')} and {out / (args.name + '.md')}")


if __name__ == "__main__":
    main()
