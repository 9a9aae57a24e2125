"""Evaluation episodes of a deployed policy (a bundle, a C export) without Stable-Baselines3 or torch.

:func:`run_policy_episodes` plays episodes in one Gymnasium env the way SB3's ``evaluate_policy`` plays them
in the one-env ``DummyVecEnv`` that :func:`spikerl.agents.training.evaluate_run` uses: the env is reset with
the seed once, every later episode starts from an unseeded reset, an episode ends when the env terminates
or truncates, and its return is the sum of its rewards. A bundle's evaluation therefore plays the same
episodes as its run's, while ``spikerl evaluate BUNDLE`` needs only NumPy, Numba and Gymnasium.

The evaluation conventions that run and bundle evaluation share live here too: the seed offset and the video
file names (the result file and the video folder are named in :mod:`spikerl.run_layout`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: the eval env uses seed + EVAL_SEED_OFFSET (the Proxy Target code evaluates with seed + 100)
EVAL_SEED_OFFSET = 100
#: ``spikerl evaluate --video`` records every episode as ``eval-episode-<n>.mp4``
VIDEO_PREFIX = "eval"


def clear_videos(video_dir: Path) -> None:
    """Remove a previous evaluation's ``eval-episode-*.mp4`` files (the recorder reuses the names)."""
    for old in video_dir.glob(f"{VIDEO_PREFIX}-episode-*.mp4"):
        old.unlink()


def finish_videos(video_dir: Path | None, episodes: int, root: Path) -> list[str]:
    """The evaluation's videos relative to ``root``, after dropping any recording of an episode past the last
    (a VecEnv's auto-reset starts one)."""
    if video_dir is None:
        return []
    for extra in video_dir.glob(f"{VIDEO_PREFIX}-episode-*.mp4"):
        if int(extra.stem.rsplit("-", 1)[1]) >= episodes:
            extra.unlink()
    return sorted(str(p.relative_to(root)) for p in video_dir.glob("*.mp4"))


def make_policy_env(env_id: str, seed: int, env_kwargs: dict[str, Any], video_dir: Path | None) -> Any:
    """One Gymnasium evaluation env for :func:`run_policy_episodes`; with ``video_dir`` every episode is recorded
    there (headless ``rgb_array`` rendering, needs moviepy)."""
    from spikerl.envs import make_single_env, record_episodes

    env = make_single_env(env_id, seed=seed, render_mode="rgb_array" if video_dir is not None else None,
                          **(env_kwargs or {}))
    if video_dir is None:
        return env
    clear_videos(video_dir)
    with warnings.catch_warnings():  # RecordVideo warns when the folder exists; we own that folder
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
        return record_episodes(env, video_dir, VIDEO_PREFIX)


def run_policy_episodes(agent: Any, env: Any, seed: int, episodes: int,
                        on_episode: Callable[[int, float], None] | None = None,
                        observations: list[np.ndarray] | None = None, max_observations: int = 0
                        ) -> tuple[list[float], list[int]]:
    """(returns, lengths) of ``episodes`` episodes of ``agent`` in the Gymnasium env ``env``, which is closed
    afterwards.

    ``agent`` has SB3's ``predict(observation[1, obs_dim], episode_start=bool[1]) -> (action[1, act_dim], _)``
    (:class:`spikerl.agents.deploy.BundleAgent`); ``episode_start`` is true on each episode's first decision.
    ``on_episode(n, return)`` reports each finished episode; a list ``observations`` receives the observations
    the agent acted on, ``[1, obs_dim]`` float32 each, up to ``max_observations``.
    """
    returns: list[float] = []
    lengths: list[int] = []
    try:
        obs, _ = env.reset(seed=int(seed))
        while len(returns) < episodes:
            total, steps, done = 0.0, 0, False
            while not done:
                batch = np.asarray(obs)[None]
                if observations is not None and sum(len(o) for o in observations) < max_observations:
                    observations.append(np.array(batch, dtype=np.float32, copy=True))
                actions, _ = agent.predict(batch, episode_start=np.array([steps == 0]))
                obs, reward, terminated, truncated, _ = env.step(np.asarray(actions)[0])
                total += float(reward)
                steps += 1
                done = bool(terminated or truncated)
            returns.append(total)
            lengths.append(steps)
            if on_episode is not None:
                on_episode(len(returns), total)
            if len(returns) < episodes:
                obs, _ = env.reset()
    finally:
        env.close()
    return returns, lengths


def snn_evaluation_record(env_id: str, model: Path, runtime: str, seed: int, returns: list[float],
                          lengths: list[int], wall_time_s: float, videos: list[str], report: Any,
                          energy_model: str, decisions: int) -> dict[str, Any]:
    """The ``evaluation.json`` of a spiking policy run outside torch (a bundle or a C export): the returns of
    its deterministic episodes and the energy per decision from the spike counts of every decision."""
    return {
        "env": env_id, "model": str(model), "runtime": runtime, "episodes": len(returns),
        "deterministic": True, "seed": int(seed),
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
        "returns": returns, "lengths": lengths, "wall_time_s": wall_time_s, "videos": videos,
        "energy_nj": report.energy_nj, "firing_rate": report.firing_rate,
        "energy": {"kind": "snn", "sops": report.sops, "macs": report.macs, "energy_nj": report.energy_nj,
                   "firing_rate": report.firing_rate, "energy_model": energy_model, "decisions": decisions},
    }
