"""SB3 ``evaluate_policy`` episodes and its step callback, shared by run, bundle and converted-policy evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

StepHook = Callable[[dict[str, Any], dict[str, Any]], None]


def episode_hook(on_episode: Callable[[int, float], None] | None,
                 observations: list[np.ndarray] | None = None, max_observations: int = 0) -> StepHook:
    """A callback that reports each finished episode as ``on_episode(n, return)`` and, when
    ``observations`` is a list, appends the observations the policy acted on (up to ``max_observations``)."""
    counted = [0]

    def hook(local: dict[str, Any], _globals: dict[str, Any]) -> None:
        if observations is not None and sum(len(o) for o in observations) < max_observations:
            observations.append(np.array(local["observations"], dtype=np.float32, copy=True))
        episode = local["info"].get("episode") if local.get("done") else None
        if on_episode is not None and episode is not None:  # called before evaluate_policy counts it
            counted[0] += 1
            on_episode(counted[0], float(episode["r"]))

    return hook


def run_episodes(agent: Any, env: Any, episodes: int, deterministic: bool = True,
                 on_episode: Callable[[int, float], None] | None = None,
                 observations: list[np.ndarray] | None = None, max_observations: int = 0
                 ) -> tuple[list[float], list[int]]:
    """(returns, lengths) of ``episodes`` episodes of ``agent`` (anything with SB3's ``predict``) in the
    VecEnv ``env``, which is closed afterwards; ``on_episode`` / ``observations`` as in :func:`episode_hook`."""
    from stable_baselines3.common.evaluation import evaluate_policy

    hook = episode_hook(on_episode, observations, max_observations)
    try:
        returns, lengths = evaluate_policy(agent, env, n_eval_episodes=episodes, deterministic=deterministic,
                                           return_episode_rewards=True, warn=False, callback=hook)
    finally:
        env.close()
    return [float(r) for r in returns], [int(n) for n in lengths]
