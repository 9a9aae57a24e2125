"""Deployment helpers on the SB3 side: export a run's actor, evaluate a bundle exactly as a run is evaluated.

- :func:`export_run` loads ``RUN_DIR/model.zip`` (``spikerl.agents.training.load_run_model``) and exports its
  spiking actor with :func:`spikerl.export.export_policy`; the bundle records the run's env id, env
  kwargs and seed so that it can be evaluated on its own.
- :func:`evaluate_bundle` runs a bundle through the Numba runtime in SB3's ``evaluate_policy`` on the same
  env and seeds as :func:`~spikerl.agents.training.evaluate_run` (seed + 100 by default), so the two
  give the same returns up to float32 summation-order effects.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from spikerl.agents.evaluation_hooks import episode_hook
from spikerl.agents.training import EVAL_SEED_OFFSET, RunError, load_run_model

DEFAULT_OUT = {"bundle": "bundle", "nir": "policy.nir", "onnx": "policy.onnx"}


def export_run(run_dir: str | os.PathLike[str], format: str = "bundle", out: str | os.PathLike[str] | None = None
               ) -> Path:
    """Export the spiking actor of a run directory; ``out`` defaults to ``RUN_DIR/bundle`` (or policy.nir/.onnx)."""
    from spikerl.agents.policies import spiking_network

    from spikerl.export import FORMATS, export_policy

    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    if (run_dir / "converted.json").is_file():  # a converted ANN policy (spikerl convert)
        from spikerl.agents.conversion import export_converted

        return export_converted(run_dir, format, out)
    model, cfg, _source = load_run_model(run_dir)
    net = spiking_network(model.actor)
    if net is None:
        raise RunError(f"{run_dir} trained an ANN actor ({cfg['policy']}); spikerl export writes spiking policies "
                       "only (train with an SNN preset, e.g. td3-proxy-lif)")
    path = Path(out) if out is not None else run_dir / DEFAULT_OUT[format]
    env = {"id": cfg["env"], "kwargs": dict(cfg.get("env_kwargs") or {}), "seed": int(cfg["seed"]),
           "algo": cfg["algo"], "run": str(run_dir)}
    return export_policy(net, path, format, observation_space=model.observation_space,
                         action_space=model.action_space, env=env)


class BundleAgent:
    """Duck-typed SB3 model for ``evaluate_policy``: ``predict`` runs the bundle (batch of env observations)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        if episode_start is not None and self.policy.stateful and np.any(episode_start):
            self.policy.reset(np.asarray(episode_start, dtype=bool))  # only the envs that start an episode
        return self.policy.act(np.asarray(observation)), None


def evaluate_bundle(path: str | os.PathLike[str], episodes: int = 10, seed: int | None = None,
                    env_id: str | None = None, video_folder: str | os.PathLike[str] | None = None,
                    on_episode: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Evaluate a bundle for ``episodes`` deterministic episodes; returns the same keys as ``evaluate_run``.

    The env is the manifest's (``env_id`` overrides it); ``seed`` defaults to the run's seed + 100.
    """
    from spikerl.envs import make_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from spikerl.runtime import load_policy

    policy = load_policy(path)
    env_info = policy.manifest.get("env") or {}
    env_id = env_id or env_info.get("id")
    if not env_id:
        raise ValueError(f"{path}: the bundle names no env (exported without one); pass an env id")
    if seed is None:
        seed = int(env_info.get("seed", 0)) + EVAL_SEED_OFFSET
    env = make_env(env_id, seed=int(seed), n_envs=1, video_folder=video_folder, **(env_info.get("kwargs") or {}))
    step_hook = episode_hook(on_episode)

    t0 = time.perf_counter()
    try:
        returns, lengths = evaluate_policy(BundleAgent(policy), env, n_eval_episodes=episodes, deterministic=True,
                                           return_episode_rewards=True, warn=False, callback=step_hook)
    finally:
        env.close()
    return {
        "env": env_id, "model": str(path), "episodes": int(episodes), "deterministic": True, "seed": int(seed),
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
        "returns": [float(r) for r in returns], "lengths": [int(n) for n in lengths],
        "wall_time_s": time.perf_counter() - t0,
    }
