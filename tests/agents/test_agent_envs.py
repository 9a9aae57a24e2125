"""spikerl.envs: id resolution, errors, seeding, Monitor/TimeLimit wrapping, video recording."""

import builtins
import importlib.util

import numpy as np
import pytest
from spikerl.envs import MUJOCO_ENV_IDS, make_env, make_single_env, resolve_env_id
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv


def test_bare_name_means_v5_and_v4_is_accepted():
    assert resolve_env_id("Hopper") == "Hopper-v5"
    assert resolve_env_id("Hopper-v4") == "Hopper-v4"
    assert make_single_env("InvertedPendulum").spec.id == "InvertedPendulum-v5"
    assert make_single_env("InvertedDoublePendulum-v4").observation_space.shape == (11,)
    assert make_single_env("InvertedDoublePendulum").observation_space.shape == (9,)


def test_unknown_id_lists_valid_ids():
    with pytest.raises(ValueError) as err:
        make_env("Hoper-v5")
    msg = str(err.value)
    assert "'Hoper-v5'" in msg and "Hopper-v5" in msg and "Walker2d-v4" in msg
    assert all(env_id in msg for env_id in MUJOCO_ENV_IDS)
    with pytest.raises(ValueError, match="mujoco-py"):
        make_env("Hopper-v3")
    with pytest.raises(ValueError, match="n_envs"):
        make_env("Hopper", n_envs=0)
    with pytest.raises(ValueError, match="render_mode"):
        make_single_env("Hopper", render_mode="video")


def test_missing_mujoco_gives_install_hint(monkeypatch):
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "mujoco":
            raise ImportError("No module named 'mujoco'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(ImportError, match=r'pip install "gymnasium\[mujoco\]"'):
        make_env("Hopper-v5")


def test_vec_env_is_seeded_per_index_and_monitored():
    venv = make_env("Hopper", seed=7, n_envs=2)
    assert isinstance(venv, DummyVecEnv) and venv.num_envs == 2
    assert all(isinstance(e, Monitor) for e in venv.envs)
    obs = venv.reset()
    again = make_env("Hopper-v5", seed=7, n_envs=2).reset()
    np.testing.assert_array_equal(obs, again)  # same seed -> same start states
    assert not np.array_equal(obs[0], obs[1])  # env i is seeded seed + i
    single = make_single_env("Hopper", seed=8)
    np.testing.assert_array_equal(single.reset(seed=8)[0], obs[1])
    assert venv.envs[0].spec.max_episode_steps == 1000  # Gymnasium's TimeLimit is kept


def test_env_kwargs_reach_gym_make():
    venv = make_env("InvertedPendulum", seed=0, max_episode_steps=3)
    venv.reset()
    for _ in range(3):
        _, _, dones, infos = venv.step(np.zeros((1, 1), dtype=np.float32))
    assert dones[0] and infos[0]["TimeLimit.truncated"]


@pytest.mark.skipif(importlib.util.find_spec("moviepy") is None, reason="moviepy (spikerl[video]) not installed")
def test_video_recording_headless(tmp_path):
    venv = make_env("InvertedPendulum", seed=0, video_folder=tmp_path, max_episode_steps=5)
    venv.reset()
    for _ in range(5):
        venv.step(np.zeros((1, 1), dtype=np.float32))
    venv.close()
    videos = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert videos and videos[0] == "eval-episode-0.mp4"
    assert (tmp_path / videos[0]).stat().st_size > 0
