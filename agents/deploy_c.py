"""C exports on the SB3 side: export a run or a bundle as C, calibrated on the policy's own env, and evaluate it.

- :func:`export_c` takes a run directory (``spikerl train`` / ``spikerl convert``) or a bundle, writes the
  float32 or int8 C export (:func:`spikerl.export.c_export.write_c`) and, for int8, records calibration
  observations by running the float runtime on the run's evaluation env (seeds run seed + 100 + 1000 and up,
  so that the evaluation's own seeds stay held out; at least 3 episodes and 2000 observations), then measures
  the int8 C policy against the float runtime over the evaluation episodes (seed + 100) and stores that in
  ``spikerl_policy.json``.
- :func:`evaluate_c_export` compiles an export and evaluates it exactly as :func:`spikerl.agents.deploy.
  evaluate_bundle` evaluates a bundle (same env, seeds, energy bookkeeping).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from spikerl.agents.deploy import BundleAgent, evaluate_bundle, export_run
from spikerl.agents.episodes import EVAL_SEED_OFFSET, make_policy_env, run_policy_episodes, snn_evaluation_record

from spikerl.run_layout import EVALUATION_FILE
from spikerl.runtime.c_policy import META_FILE, load_c_policy

#: calibration episodes start at the run's seed + EVAL_SEED_OFFSET + CALIB_SEED_OFFSET
CALIB_SEED_OFFSET = 1000
MAX_CALIB_OBSERVATIONS = 20000
MIN_CALIB_OBSERVATIONS = 2000
MAX_CALIB_EPISODES = 50


def _env_of(manifest: dict[str, Any], where: Path) -> tuple[str, dict[str, Any], int]:
    env = manifest.get("env") or {}
    if not env.get("id"):
        raise ValueError(f"{where}: the policy names no env (exported without one); pass --calib FILE.npy")
    return str(env["id"]), dict(env.get("kwargs") or {}), int(env.get("seed", 0))


def record_observations(bundle: str | os.PathLike[str], episodes: int = 3,
                        min_observations: int = MIN_CALIB_OBSERVATIONS) -> np.ndarray:
    """Observations ``[N, obs_dim]`` the float runtime acts on in its run's env: ``episodes`` episodes, more
    (up to 50) while fewer than ``min_observations`` were seen; seeds run seed + 1100, 1101, ...; N <= 20000."""
    from spikerl.runtime import load_policy

    policy = load_policy(bundle, dtype=np.float32)
    env_id, kwargs, seed = _env_of(policy.manifest, Path(bundle))
    seen: list[np.ndarray] = []
    for k in range(MAX_CALIB_EPISODES):
        if k >= episodes and sum(len(o) for o in seen) >= min_observations:
            break
        episode_seed = seed + EVAL_SEED_OFFSET + CALIB_SEED_OFFSET + k
        env = make_policy_env(env_id, episode_seed, kwargs, None)
        policy.reset()
        run_policy_episodes(BundleAgent(policy), env, episode_seed, 1, None, seen, MAX_CALIB_OBSERVATIONS)
    return np.concatenate(seen).astype(np.float32)[:MAX_CALIB_OBSERVATIONS]


def evaluate_c_export(path: str | os.PathLike[str], episodes: int = 10, seed: int | None = None,
                      energy_model: str = "paper", write: bool = True,
                      out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Compile and evaluate a C export for ``episodes`` episodes; the keys of ``evaluate_bundle``'s result.

    The env and the default seed (run seed + 100) come from ``spikerl_policy.json``; ``write`` stores the
    result as ``evaluation.json`` in ``out`` (default: ``PATH``)."""
    path = Path(path)
    policy = load_c_policy(path)
    env_id, kwargs, run_seed = _env_of(policy.meta, path)
    seed = run_seed + EVAL_SEED_OFFSET if seed is None else int(seed)
    env = make_policy_env(env_id, seed, kwargs, None)
    agent = BundleAgent(policy)
    t0 = time.perf_counter()
    returns, lengths = run_policy_episodes(agent, env, seed, episodes)
    report = policy.energy(agent.mean_counts(), energy_model)
    result = snn_evaluation_record(env_id, path, f"C export ({policy.precision}, via ctypes)", seed, returns, lengths,
                                   time.perf_counter() - t0, [], report, energy_model, agent.decisions)
    if write:
        ((path if out is None else Path(out)) / EVALUATION_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def export_c(source: str | os.PathLike[str], precision: str = "float32", out: str | os.PathLike[str] | None = None,
             calib: np.ndarray | None = None, calib_episodes: int = 3, check_episodes: int = 10) -> Path:
    """Write the C export of a run directory or a bundle; returns the export directory.

    ``out`` defaults to ``c-<precision>`` next to the bundle (in the run directory). int8: ``calib`` (else
    :func:`record_observations` over ``calib_episodes``) calibrates; with ``check_episodes`` > 0 the int8 C
    policy and the float runtime are evaluated on the run's evaluation episodes and the returns are stored."""
    from spikerl.export.c_export import write_c
    from spikerl.runtime import read_bundle

    source = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        if (source / "manifest.json").is_file():
            bundle, home = source, source.parent
        else:
            bundle, home = export_run(source, "bundle", Path(tmp) / "bundle"), source
        spec, manifest = read_bundle(bundle)
        out = Path(out) if out is not None else home / f"c-{precision}"
        if precision == "int8" and calib is None:
            calib = record_observations(bundle, calib_episodes)
        path = write_c(spec, out, precision, manifest=manifest, calib=calib,
                       source=str((manifest.get("env") or {}).get("run") or source))
        if precision == "int8" and check_episodes > 0 and (manifest.get("env") or {}).get("id"):
            _check_int8(path, bundle, check_episodes)
    return path


def _check_int8(path: Path, bundle: Path, episodes: int) -> None:
    """Evaluate the int8 C export and the float runtime on the same episodes; store the returns in the metadata
    (or why the check was skipped)."""
    from spikerl.runtime.c_policy import find_compiler

    meta = json.loads((path / META_FILE).read_text())
    if find_compiler() is None:
        meta["quantization"]["closed_loop"] = {"skipped": "no C compiler (cc, gcc, clang or $CC) to build the export"}
    else:
        ref = evaluate_bundle(bundle, episodes=episodes, write=False)
        got = evaluate_c_export(path, episodes=episodes, write=False)
        meta["quantization"]["closed_loop"] = {
            "episodes": episodes, "seed": got["seed"],
            "float_runtime": {"mean_return": ref["mean_return"], "std_return": ref["std_return"]},
            "int8_c": {"mean_return": got["mean_return"], "std_return": got["std_return"]},
            "return_ratio": got["mean_return"] / ref["mean_return"] if ref["mean_return"] else None}
    (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
