"""``spikerl evaluate BUNDLE`` and ``spikerl evaluate C_EXPORT_DIR`` run where torch and Stable-Baselines3 cannot be
imported, and play the same episodes as the SB3 evaluation loop; a folder that is recognisably a bundle gets the
bundle's errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from blocked_imports import import_guard, run_blocked
from cli_helpers import run_cli, subprocess_env
from spikerl.agents.deploy import BundleAgent
from spikerl.agents.episodes import make_policy_env, run_policy_episodes
from spikerl.agents.evaluation_hooks import run_episodes
from spikerl.agents.training import make_eval_env

import spikerl
from spikerl.export import export_policy
from spikerl.export.c_export import write_c
from spikerl.runtime import load_policy, read_bundle
from spikerl.runtime.c_policy import find_compiler

from .bundle_edits import edit_manifest

ENV = "InvertedPendulum-v5"  # 4 observations, 1 action in [-3, 3]

CHILD = import_guard("torch", "stable_baselines3") + textwrap.dedent("""
    import json, sys
    from spikerl.cli import main
    code = main(["evaluate", sys.argv[1], "--episodes", "3"])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "stable_baselines3"))
    print(json.dumps({"code": code, "heavy_modules": heavy}))
""")


def _export(folder, env_id: str, obs_dim: int, act_dim: int, bound: float):
    """An untrained spiking actor for ``env_id``, exported with its env, seed 4 and action space."""
    torch.manual_seed(0)
    actor = spikerl.SpikingActor(obs_dim, act_dim, hidden=(16, 16), neuron="lif").double()
    return export_policy(actor, folder / "bundle", "bundle", env={"id": env_id, "kwargs": {}, "seed": 4},
                         action_space={"shape": [act_dim], "low": [-bound] * act_dim, "high": [bound] * act_dim})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("b"), ENV, 4, 1, 3.0)


def _run_without_torch(tmp_path, folder) -> tuple[subprocess.CompletedProcess, dict]:
    return run_blocked(tmp_path, CHILD, folder, blocked=("torch", "stable_baselines3"))


def test_evaluate_bundle_runs_where_torch_and_sb3_cannot_be_imported(tmp_path, bundle):
    res, out = _run_without_torch(tmp_path, bundle)
    assert out == {"code": 0, "heavy_modules": []}
    assert f"{ENV}: mean return" in res.stdout and "over 3 deterministic episodes" in res.stdout
    result = json.loads((bundle / "evaluation.json").read_text())
    assert result["seed"] == 4 + 100 and result["runtime"] == "spikerl.runtime" and len(result["returns"]) == 3
    assert result["energy"]["decisions"] == sum(result["lengths"])


@pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc, gcc, clang or $CC) to build the C export")
def test_evaluate_c_export_runs_where_torch_and_sb3_cannot_be_imported(tmp_path, bundle):
    spec, manifest = read_bundle(bundle)
    c_dir = write_c(spec, tmp_path / "c-float32", manifest=manifest)
    res, out = _run_without_torch(tmp_path, c_dir)
    assert out == {"code": 0, "heavy_modules": []}
    result = json.loads((c_dir / "evaluation.json").read_text())
    assert result["seed"] == 104 and len(result["returns"]) == 3 and f"{ENV}: mean return" in res.stdout


@pytest.mark.parametrize("env_id, obs_dim, act_dim, bound", [(ENV, 4, 1, 3.0), ("Hopper-v5", 11, 3, 1.0)])
def test_the_torch_free_episodes_are_those_of_sb3_evaluate_policy(tmp_path, env_id, obs_dim, act_dim, bound):
    """Same seeds, same episode boundaries, same decisions: returns, lengths and spike counts agree with SB3's
    evaluate_policy on the one-env DummyVecEnv the run evaluation uses."""
    policy = load_policy(_export(tmp_path, env_id, obs_dim, act_dim, bound))
    sb3_agent, free_agent = BundleAgent(policy), BundleAgent(policy)
    sb3_obs: list[np.ndarray] = []
    free_obs: list[np.ndarray] = []
    ref_returns, ref_lengths = run_episodes(sb3_agent, make_eval_env(env_id, 7, {}, None), 4, True, None, sb3_obs,
                                            10**6)
    returns, lengths = run_policy_episodes(free_agent, make_policy_env(env_id, 7, {}, None), 7, 4, None, free_obs,
                                           10**6)
    assert lengths == ref_lengths
    assert len(set(zip(lengths, returns, strict=True))) > 1  # the seeds give different episodes, the same in both
    # SB3's Monitor reports round(sum(rewards), 6); the torch-free loop adds the same rewards in the same order
    assert [round(r, 6) for r in returns] == ref_returns
    np.testing.assert_array_equal(np.concatenate(free_obs), np.concatenate(sb3_obs))
    assert free_agent.decisions == sb3_agent.decisions == sum(lengths)
    for name, total in sb3_agent.count_sums.items():
        np.testing.assert_array_equal(free_agent.count_sums[name], total)


def test_a_bundle_without_its_manifest_is_reported_as_such(tmp_path, bundle, capsys):
    folder = tmp_path / "weights-only"
    folder.mkdir()
    (folder / "weights.npz").write_bytes((bundle / "weights.npz").read_bytes())
    code, _, err = run_cli(capsys, "evaluate", str(folder))
    assert code == 2
    assert err.strip() == (f"spikerl evaluate: error: {folder}: manifest.json is missing; not a spikerl bundle "
                           "(export the run again with spikerl export --format bundle)")


def test_an_old_bundle_evaluates_with_one_warning_line(tmp_path, bundle):
    old = tmp_path / "old"
    old.mkdir()
    for name in ("manifest.json", "weights.npz"):
        (old / name).write_bytes((bundle / name).read_bytes())
    edit_manifest(old, lambda m: m.pop("bundle_sha256"))
    env = {**subprocess_env(), "MUJOCO_GL": "egl"}
    res = subprocess.run([sys.executable, "-m", "spikerl", "evaluate", str(old), "--episodes", "1", "--quiet"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.splitlines() == [
        f"spikerl evaluate: warning: {old / 'manifest.json'}: no bundle_sha256 (a bundle from an older spikerl): "
        "weights.npz is checksummed but the manifest is not; export the policy again to cover both"]


def test_a_c_export_without_its_metadata_is_reported_as_such(tmp_path, bundle, capsys):
    spec, manifest = read_bundle(bundle)
    c_dir = write_c(spec, tmp_path / "c-float32", manifest=manifest)
    (c_dir / "spikerl_policy.json").unlink()
    code, _, err = run_cli(capsys, "evaluate", str(c_dir))
    assert code == 2
    assert err.strip() == (f"spikerl evaluate: error: {c_dir} is not a spikerl C export (spikerl_policy.json "
                           "missing); write one with spikerl export RUN_DIR --format c")
