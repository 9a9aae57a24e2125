"""Gymnasium MuJoCo environments for spikerl: ``make_env`` (SB3 VecEnv) and ``make_single_env``."""

from spikerl.envs.factory import MUJOCO_INSTALL_HINT, make_env, make_single_env, record_episodes
from spikerl.envs.registry import DEFAULT_VERSION, MUJOCO_ENV_IDS, MUJOCO_TASKS, resolve_env_id

__all__ = [
    "make_env", "make_single_env", "resolve_env_id", "MUJOCO_ENV_IDS", "MUJOCO_TASKS", "DEFAULT_VERSION",
    "MUJOCO_INSTALL_HINT", "record_episodes",
]
