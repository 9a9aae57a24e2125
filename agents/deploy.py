"""Deployment helpers on the SB3 side: export a run's actor, evaluate a bundle exactly as a run is evaluated.

- :func:`export_run` loads ``RUN_DIR/model.zip`` (``spikerl.agents.training.load_run_model``) and exports its
  spiking actor with :func:`spikerl.export.export_policy`; the bundle records the run's env id, env
  kwargs and seed so that it can be evaluated on its own.
- :func:`evaluate_bundle` runs a bundle through the Numba runtime on the same env and seeds as
  :func:`~spikerl.agents.training.evaluate_run` (seed + 100 by default; episodes as SB3's ``evaluate_policy``
  plays them, :mod:`spikerl.agents.episodes`), so the two give the same returns up to float32
  summation-order effects. It imports neither torch nor Stable-Baselines3: a bundle evaluates where
  neither is installed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from spikerl.agents.episodes import (
    EVAL_SEED_OFFSET,
    finish_videos,
    make_policy_env,
    run_policy_episodes,
    snn_evaluation_record,
)

from spikerl.run_layout import EVALUATION_FILE, VIDEO_DIR

DEFAULT_OUT = {"bundle": "bundle", "nir": "policy.nir", "onnx": "policy.onnx"}


def export_run(run_dir: str | os.PathLike[str], format: str = "bundle", out: str | os.PathLike[str] | None = None
               ) -> Path:
    """Export the spiking actor of a run directory; ``out`` defaults to ``RUN_DIR/bundle`` (or policy.nir/.onnx)."""
    from spikerl.agents.policies import snn_or_none
    from spikerl.agents.training import RunError, load_run_model

    from spikerl.export import FORMATS, export_policy

    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    if (run_dir / "converted.json").is_file():  # a converted ANN policy (spikerl convert)
        from spikerl.agents.conversion import export_converted

        return export_converted(run_dir, format, out)
    model, cfg, _source = load_run_model(run_dir)
    net = snn_or_none(model.actor)
    if net is None:
        raise RunError(f"{run_dir} trained an ANN actor ({cfg.policy}); spikerl export writes spiking policies "
                       "only (train with an SNN preset, e.g. td3-proxy-lif)")
    path = Path(out) if out is not None else run_dir / DEFAULT_OUT[format]
    env = {"id": cfg.env, "kwargs": dict(cfg.env_kwargs), "seed": int(cfg.seed),
           "algo": cfg.algo, "run": str(run_dir)}
    return export_policy(net, path, format, observation_space=model.observation_space,
                         action_space=model.action_space, env=env)


class BundleAgent:
    """Duck-typed SB3 model for ``evaluate_policy``: ``predict`` runs the bundle (batch of env observations)
    and sums the spike counts of every decision (``mean_counts`` for the energy estimate)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.count_sums: dict[str, np.ndarray] = {}
        self.decisions = 0

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        if episode_start is not None and self.policy.stateful and np.any(episode_start):
            self.policy.reset(np.asarray(episode_start, dtype=bool))  # only the envs that start an episode
        actions, counts = self.policy.act_and_count(np.asarray(observation))
        for name, c in counts.items():
            total = c.sum(0, dtype=np.float64)
            self.count_sums[name] = self.count_sums[name] + total if name in self.count_sums else total
        self.decisions += int(actions.shape[0]) if actions.ndim == 2 else 1
        return actions, None

    def mean_counts(self) -> dict[str, np.ndarray]:
        """Spikes per neuron per decision, ``{name: [1, n]}``, over every decision so far."""
        return {name: (total / max(self.decisions, 1))[None] for name, total in self.count_sums.items()}


def evaluate_bundle(path: str | os.PathLike[str], episodes: int = 10, seed: int | None = None,
                    env_id: str | None = None, video: bool = False,
                    on_episode: Callable[[int, float], None] | None = None, energy_model: str = "paper",
                    write: bool = True, out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Evaluate a bundle for ``episodes`` deterministic episodes; returns the same keys as ``evaluate_run``.

    The env is the manifest's (``env_id`` overrides it); ``seed`` defaults to the run's seed + 100.
    ``energy``: energy per decision from the spike counts of every decision of the evaluation
    (for a CRPI policy, with its carried state, as deployed). ``video`` records every episode to
    ``videos/``; ``write`` stores the result as ``evaluation.json``; both in ``out`` (default: the bundle).
    """
    from spikerl.runtime import load_policy

    path = Path(path)
    policy = load_policy(path)
    env_info = policy.manifest.get("env") or {}
    env_id = env_id or env_info.get("id")
    if not env_id:
        raise ValueError(f"{path}: the bundle names no env (exported without one); pass an env id")
    if seed is None:
        seed = int(env_info.get("seed", 0)) + EVAL_SEED_OFFSET
    out = path if out is None else Path(out)
    video_dir = out / VIDEO_DIR if video else None
    env = make_policy_env(env_id, int(seed), env_info.get("kwargs") or {}, video_dir)
    agent = BundleAgent(policy)
    t0 = time.perf_counter()
    returns, lengths = run_policy_episodes(agent, env, int(seed), episodes, on_episode)
    report = policy.energy(agent.mean_counts(), energy_model)
    videos = finish_videos(video_dir, episodes, out)
    result = snn_evaluation_record(env_id, path, "spikerl.runtime", int(seed), returns, lengths,
                                   time.perf_counter() - t0, videos, report, energy_model, agent.decisions)
    if write:
        (out / EVALUATION_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result
