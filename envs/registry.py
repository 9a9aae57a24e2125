"""Gymnasium MuJoCo task names: which ids spikerl accepts and how a bare name resolves.

v5 is the default (``"Hopper"`` -> ``"Hopper-v5"``); v4 ids are accepted for reproducing the Proxy
Target paper (its results use v4; v4 and v5 returns are not comparable, Ant most of all). v2/v3 need
the retired ``mujoco-py`` and are rejected with a pointer to v4/v5.
"""

from __future__ import annotations

import difflib

MUJOCO_TASKS: tuple[str, ...] = (
    "Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup", "InvertedDoublePendulum",
    "InvertedPendulum", "Pusher", "Reacher", "Swimmer", "Walker2d",
)
SUPPORTED_VERSIONS: tuple[str, ...] = ("v5", "v4")
DEFAULT_VERSION = "v5"
MUJOCO_ENV_IDS: tuple[str, ...] = tuple(f"{t}-{v}" for t in MUJOCO_TASKS for v in SUPPORTED_VERSIONS)


def resolve_env_id(env_id: str) -> str:
    """Return the full Gymnasium id for ``env_id``; a bare task name gets the default version (v5).

    Raises ValueError naming the valid ids for anything else.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"env_id must be a non-empty string such as 'Hopper-v5', got {env_id!r}")
    name = env_id.strip()
    if name in MUJOCO_TASKS:
        return f"{name}-{DEFAULT_VERSION}"
    if name in MUJOCO_ENV_IDS:
        return name
    task, _, version = name.rpartition("-")
    if task in MUJOCO_TASKS and version in ("v2", "v3"):
        raise ValueError(
            f"{name!r} needs the retired mujoco-py package and is not supported; use {task}-v5 (default) "
            f"or {task}-v4 (the Proxy Target paper's version)"
        )
    close = difflib.get_close_matches(name, [*MUJOCO_TASKS, *MUJOCO_ENV_IDS], n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown MuJoCo environment {name!r}.{hint} Valid ids: {', '.join(MUJOCO_ENV_IDS)} "
        f"(a bare task name such as 'Hopper' means {'Hopper'}-{DEFAULT_VERSION})"
    )
