"""Environment factories: seeded, Monitor-wrapped Gymnasium MuJoCo envs in an SB3 ``DummyVecEnv``.

Stable-Baselines3 (and with it torch) is imported only by :func:`make_env`: :func:`make_single_env` and
:func:`record_episodes` serve torch-free evaluation of deployed policies (bundles, C exports).

Rendering: ``render_mode="rgb_array"`` works headless through EGL; ``MUJOCO_GL=egl`` is set when the
variable is unset and there is no display. ``video_folder`` records every episode of env index 0
with Gymnasium's ``RecordVideo`` (needs ``moviepy``: ``pip install "spikerl[video]"``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
from spikerl.envs.registry import resolve_env_id

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

MUJOCO_INSTALL_HINT = 'pip install "gymnasium[mujoco]"  (or: pip install mujoco)'
_RENDER_MODES = (None, "human", "rgb_array", "depth_array", "rgbd_tuple")


def _default_gl_backend() -> None:
    """Headless rendering: choose EGL unless the user picked a backend or a display exists."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"


def _require_mujoco() -> None:
    _default_gl_backend()
    try:
        import mujoco  # noqa: F401
    except Exception as exc:  # ImportError, or an OSError from a broken shared library
        raise ImportError(
            f"MuJoCo could not be imported ({type(exc).__name__}: {exc}). "
            f"Install it with: {MUJOCO_INSTALL_HINT}"
        ) from exc


def _require_moviepy() -> None:
    if importlib.util.find_spec("moviepy") is None:
        raise ImportError('video recording needs moviepy; install it with: pip install "spikerl[video]" '
                          "(or: pip install moviepy)")


def make_single_env(env_id: str, seed: int | None = None, render_mode: str | None = None,
                    **env_kwargs: Any) -> gym.Env:
    """One Gymnasium MuJoCo env (with Gymnasium's TimeLimit), reset once with ``seed`` if given.

    ``env_id``: ``"Hopper"`` (= Hopper-v5), ``"Hopper-v5"`` or ``"Hopper-v4"``; ``env_kwargs`` go to
    ``gym.make`` (e.g. ``max_episode_steps``, ``terminate_when_unhealthy``).
    """
    full_id = resolve_env_id(env_id)
    if render_mode not in _RENDER_MODES:
        raise ValueError(f"render_mode must be one of {_RENDER_MODES}, got {render_mode!r}")
    _require_mujoco()
    env = gym.make(full_id, render_mode=render_mode, **env_kwargs)
    if seed is not None:
        env.reset(seed=int(seed))
        env.action_space.seed(int(seed))
        env.observation_space.seed(int(seed))
    return env


def record_episodes(env: gym.Env, video_folder: str | os.PathLike[str], video_prefix: str = "eval") -> gym.Env:
    """``env`` recording every episode to ``video_folder/<prefix>-episode-<n>.mp4`` (``env`` must render
    ``rgb_array``; needs moviepy)."""
    _require_moviepy()
    return gym.wrappers.RecordVideo(env, os.fspath(video_folder), episode_trigger=lambda _ep: True,
                                   name_prefix=video_prefix, disable_logger=True)


def _env_fn(full_id: str, index: int, seed: int | None, render_mode: str | None, video_folder: str | None,
            video_prefix: str, env_kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        from stable_baselines3.common.monitor import Monitor

        mode = render_mode
        if video_folder is not None and index == 0 and mode is None:
            mode = "rgb_array"
        env = make_single_env(full_id, None if seed is None else seed + index, mode, **env_kwargs)
        if video_folder is not None and index == 0:
            env = record_episodes(env, video_folder, video_prefix)
        return Monitor(env)

    return thunk


def make_env(env_id: str, seed: int | None = None, n_envs: int = 1, render_mode: str | None = None,
             video_folder: str | os.PathLike[str] | None = None, *, video_prefix: str = "eval",
             **env_kwargs: Any) -> VecEnv:
    """``n_envs`` Monitor-wrapped MuJoCo envs in an SB3 ``DummyVecEnv``; env ``i`` is seeded ``seed + i``.

    ``video_folder``: record every episode of env 0 as mp4 (``render_mode`` becomes ``"rgb_array"``).
    The seeds apply at the first ``reset()`` of the VecEnv (SB3 semantics).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    full_id = resolve_env_id(env_id)
    if video_folder is not None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"video recording needs render_mode='rgb_array' (or None), got {render_mode!r}")
        _require_moviepy()
        video_folder = os.fspath(video_folder)
    _require_mujoco()
    seed = None if seed is None else int(seed)
    fns = [_env_fn(full_id, i, seed, render_mode, video_folder, video_prefix, env_kwargs)
           for i in range(n_envs)]
    venv = DummyVecEnv(fns)
    if seed is not None:
        venv.seed(seed)
        for i, env in enumerate(venv.envs):
            env.action_space.seed(seed + i)
    return venv
