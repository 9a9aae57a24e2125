"""Converting a trained ANN run's actor into an SNN policy, and evaluating converted policies (SB3 side).

- :func:`collect_states` rolls out the ANN actor itself (deterministic, seeded) and returns the visited
  observations: the calibration data of threshold balancing (CRPI: per-neuron max over the ANN's rollouts).
- :func:`convert_run` loads ``RUN_DIR/model.zip`` (or the newest checkpoint), takes the deterministic action
  network (TD3: the actor; SAC: tanh(mean)), converts it with :func:`spikerl.conversion.convert_actor` and
  writes a converted-policy directory (:mod:`spikerl.conversion.saved`).
- :class:`ConvertedAgent` is a duck-typed SB3 model for ``evaluate_policy``: its ``predict`` resets the CRPI
  carry of the environments whose ``episode_start`` is true (per env index) before acting.
- :func:`evaluate_converted` evaluates a converted-policy directory on its run's env and evaluation seed
  (seed + 100) and writes ``evaluation.json`` there.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikerl.agents.evaluation_hooks import run_episodes
from spikerl.agents.training import EVAL_SEED_OFFSET, RunError, _write_json, load_run_model
from torch import nn

from spikerl.conversion import ConversionSpec, SpikingModel, convert_actor
from spikerl.conversion.saved import load_converted, mlp_from_actor, save_converted
from spikerl.energy import EnergyReport, count_energy
from spikerl.run_layout import EVALUATION_FILE, MODEL_FILE, RunLayout

#: calibration rollouts use the run's seed + CALIB_SEED_OFFSET (evaluation uses seed + 100)
CALIB_SEED_OFFSET = 200


def default_name(spec: ConversionSpec) -> str:
    """``<method>-T<T>[-crpi<alpha>]`` (e.g. ``max-T32-crpi0.5``; ``percentile:99.9`` -> ``percentile99.9``)."""
    name = f"{re.sub(r'[^A-Za-z0-9.]+', '', spec.method)}-T{spec.T}"
    if spec.carry == "crpi":
        name += f"-crpi{spec.alpha:g}"
    return name


def collect_states(model: Any, env_id: str, env_kwargs: dict[str, Any], steps: int, seed: int) -> np.ndarray:
    """``steps`` observations visited by ``model.predict(obs, deterministic=True)`` in ``env_id`` seeded ``seed``."""
    from spikerl.envs import make_env

    if steps < 1:
        raise ValueError(f"calibration steps must be >= 1, got {steps}")
    env = make_env(env_id, seed=seed, n_envs=1, **env_kwargs)
    states = np.empty((steps, *env.observation_space.shape), dtype=np.float32)
    try:
        obs = env.reset()
        for i in range(steps):
            states[i] = obs[0]
            action, _ = model.predict(obs, deterministic=True)
            obs, _r, _done, _info = env.step(action)  # the VecEnv resets finished episodes itself
    finally:
        env.close()
    return states


def convert_run(run_dir: str | os.PathLike[str], spec: ConversionSpec, calib_steps: int = 10000,
                out: str | os.PathLike[str] | None = None, calib_seed: int | None = None) -> tuple[Path, SpikingModel]:
    """Convert a trained ANN run's actor; returns (converted-policy directory, SpikingModel).

    ``out`` defaults to ``RUN_DIR/converted/<method>-T<T>[-crpi<alpha>]``; ``calib_seed`` to the run's
    seed + 200. RunError for a spiking run or an unloadable model; a warning when the run has no final model and
    its newest checkpoint is converted."""
    from spikerl.agents.policies import snn_or_none

    run_dir = Path(run_dir)
    model, cfg, source = load_run_model(run_dir)
    if source != MODEL_FILE:
        warnings.warn(f"{run_dir}: converting {source}", stacklevel=2)
    if snn_or_none(model.actor) is not None:
        raise RunError(f"{run_dir} trained a spiking actor ({cfg.policy}, neuron {getattr(cfg.actor, 'neuron', '?')}); "
                       "spikerl convert converts ANN actors (presets td3-ann, sac-ann); export a spiking run with "
                       "spikerl export instead")
    mlp = mlp_from_actor(model.actor).eval()
    seed = int(cfg.seed) + CALIB_SEED_OFFSET if calib_seed is None else int(calib_seed)
    states = collect_states(model, cfg.env, dict(cfg.env_kwargs), calib_steps, seed)
    snn = convert_actor(mlp, torch.from_numpy(states), spec)
    path = Path(out) if out is not None else RunLayout(run_dir).converted / default_name(spec)
    space = model.action_space
    meta = {
        "env": {"id": cfg.env, "kwargs": dict(cfg.env_kwargs), "seed": int(cfg.seed),
                "algo": cfg.algo, "run": str(run_dir), "model": source},
        "output": "tanh(mean)" if cfg.algo == "sac" else "action",
        "observation_space": {"shape": list(model.observation_space.shape),
                              "low": np.asarray(model.observation_space.low, dtype=np.float64).tolist(),
                              "high": np.asarray(model.observation_space.high, dtype=np.float64).tolist()},
        "action_space": {"shape": list(space.shape), "low": np.asarray(space.low, dtype=np.float64).tolist(),
                         "high": np.asarray(space.high, dtype=np.float64).tolist()},
        "calibration": {"steps": int(calib_steps), "seed": seed, "source": "deterministic rollouts of the ANN"},
    }
    save_converted(path, mlp, snn, meta)
    return path, snn


class ConvertedAgent:
    """SB3-style ``predict`` for a converted :class:`SpikingModel` (actions scaled onto the action space).

    ``evaluate_policy`` passes ``episode_start`` (true for every env at the first call and after each
    ``done``); the CRPI carry of exactly those env indices is reset before acting."""

    def __init__(self, snn: SpikingModel, low: np.ndarray, high: np.ndarray, count: bool = False) -> None:
        self.snn = snn
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        #: with ``count``: per site, the spike counts ``[B, n]`` of every decision taken
        self.counts: dict[str, list[np.ndarray]] | None = {} if count else None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        if episode_start is not None and self.snn.settings["carry"] is not None:
            self.snn.reset(mask=np.asarray(episode_start, dtype=bool))
        obs = torch.as_tensor(np.asarray(observation))
        if self.counts is None:
            a = self.snn(obs)
        else:
            trace = self.snn.run(obs, anytime=False)
            a = trace.output
            for site, c in trace.spike_counts.items():
                self.counts.setdefault(site, []).append(c.reshape(c.shape[0], -1).cpu().numpy())
        a = a.cpu().numpy().astype(np.float32)
        return self.low + (0.5 * (a + 1.0)) * (self.high - self.low), None

    def energy(self, model: str = "paper") -> EnergyReport:
        """Energy per decision (``spikerl.energy.count_energy``) from the spike counts of the decisions taken.

        SOPs: every spike (event) of hidden site l reaches the n_{l+1} neurons of the next spiking layer;
        MACs: the analog observation into the first layer (every step for rate coding, once for differential
        coding, which sends the input once) and the floating-point readout head."""
        if not self.counts:
            raise ValueError("energy(): no decisions were counted; build the agent with count=True and act first")
        linears = [m for m in self.snn.gm.modules() if isinstance(m, nn.Linear)]
        sites = self.snn.site_names
        if len(linears) != len(sites) + 1:
            raise ValueError(f"energy(): expected an MLP with {len(sites) + 1} Linear layers for {len(sites)} "
                             f"spiking sites, found {len(linears)} (only MLP actors are counted)")
        counts = {s: np.concatenate(self.counts[s]) for s in sites}
        steps_in = 1 if self.snn.settings["coding"] == "diff" else self.snn.T
        macs = steps_in * linears[0].in_features * linears[0].out_features + linears[-1].weight.numel()
        return count_energy(counts, sites[:-1], [lin.out_features for lin in linears[1:-1]], self.snn.T, macs, model)


def evaluate_agent(agent: Any, env_id: str, env_kwargs: dict[str, Any], seed: int, episodes: int,
                   on_episode: Callable[[int, float], None] | None = None) -> tuple[list[float], list[int]]:
    """(returns, lengths) of ``episodes`` deterministic episodes of ``agent`` (SB3 ``evaluate_policy``)."""
    from spikerl.envs import make_env

    return run_episodes(agent, make_env(env_id, seed=int(seed), n_envs=1, **env_kwargs), episodes, True, on_episode)


def load_agent(path: str | os.PathLike[str], count: bool = False) -> tuple[ConvertedAgent, dict[str, Any]]:
    snn, _mlp, meta = load_converted(path)
    space = meta["action_space"]
    return ConvertedAgent(snn, np.array(space["low"]), np.array(space["high"]), count=count), meta


def evaluate_converted(path: str | os.PathLike[str], episodes: int = 10, seed: int | None = None,
                       on_episode: Callable[[int, float], None] | None = None, write: bool = True,
                       out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Evaluate a converted-policy directory (seed defaults to the run's seed + 100); writes
    ``evaluation.json`` into ``out`` (default: that directory) when ``write``."""
    path = Path(path)
    agent, meta = load_agent(path, count=True)
    env = meta["env"]
    seed = int(env["seed"]) + EVAL_SEED_OFFSET if seed is None else int(seed)
    t0 = time.perf_counter()
    returns, lengths = evaluate_agent(agent, env["id"], env.get("kwargs") or {}, seed, episodes, on_episode)
    try:
        energy = {"energy_model": "paper", **agent.energy().to_dict()}
    except ValueError:  # not an MLP actor: no energy figure
        energy = None
    result = {
        "env": env["id"], "model": f"converted {meta['spec']['method']} T={meta['spec']['T']} "
        f"carry={meta['spec']['carry']} alpha={meta['spec']['alpha']}", "episodes": int(episodes),
        "deterministic": True, "seed": seed, "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)), "returns": returns, "lengths": lengths,
        "wall_time_s": time.perf_counter() - t0,
    }
    if energy is not None:
        result["energy"] = energy
    if write:
        _write_json((path if out is None else Path(out)) / EVALUATION_FILE, result)
    return result


def export_converted(path: str | os.PathLike[str], format: str = "bundle",
                     out: str | os.PathLike[str] | None = None) -> Path:
    """Export a converted-policy directory as a bundle (``out`` defaults to ``DIR/bundle``) or, for a policy
    without carried state and with rate-coded IF layers (not dcgs), as ONNX (``DIR/policy.onnx``)."""
    from spikerl.conversion.saved import converted_policy_spec
    from spikerl.export import export_policy

    path = Path(path)
    if format not in ("bundle", "onnx"):
        raise ValueError(f"converted policies export as format 'bundle' or 'onnx' (got {format!r}): NIR neurons "
                         "reset to v_reset (no soft reset, no initial potential v0 = theta/2) and hold no state "
                         "across decisions (no CRPI carry)")
    snn, mlp, meta = load_converted(path)
    spec = converted_policy_spec(snn, mlp, extra={"output": meta.get("output", "action"),
                                                   "actor_config": {"conversion": meta["spec"],
                                                                    "layers": meta["layers"]}})
    env = dict(meta["env"])
    target = Path(out) if out is not None else path / ("bundle" if format == "bundle" else "policy.onnx")
    return export_policy(spec, target, format, observation_space=meta["observation_space"],
                         action_space=meta["action_space"], env=env)
