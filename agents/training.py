"""Train and evaluate from a resolved spikerl config, in a run directory that survives SIGKILL.

The run directory's files and checkpoint names are those of :mod:`spikerl.run_layout` (its docstring shows
the tree).

:func:`train_run` starts a run; :func:`resume_run` continues one from its newest usable checkpoint to the
step budget in its ``config.yaml``; :func:`evaluate_run` evaluates the saved model. Training and resuming hold
the run directory's lock, so a second writer is refused; they end on a full disk or read-only folder with
``metrics.json`` status ``io_error`` (where it can be written), keeping the last committed checkpoint, and on
SIGINT (or SIGTERM, which ``spikerl train`` turns into one) with status ``interrupted``, after a checkpoint of the
step where it stopped (held until the step's update is done: :mod:`spikerl.interrupts`; a second signal stops at
once, with the last committed checkpoint).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from spikerl.agents.callbacks import (
    CheckpointError,
    CsvEvalCallback,
    EvalRecord,
    ProgressFileCallback,
    ResumableCheckpointCallback,
    RichProgressCallback,
    RunClock,
    StopTraining,
    atomic_write,
    read_evaluations,
    verify_checkpoint,
    write_evaluations,
)
from spikerl.agents.episodes import EVAL_SEED_OFFSET, clear_videos, finish_videos
from spikerl.agents.replay_io import load_replay_buffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecEnv

from spikerl.config import ActionNoiseSettings, Config, SnnActorSettings, dump_config, resolve
from spikerl.interrupts import HeldInterrupts
from spikerl.run_layout import CHECKPOINT_DIR, CONFIG_FILE, MODEL_FILE, RunLayout, checkpoint_files
from spikerl.run_lock import FolderLock, FolderLockedError, FolderLockError


class RunError(Exception):
    """A run directory problem (missing/corrupt checkpoint, finished run, ...): one line for the user."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT (or SIGTERM turned into one); ``metrics.json`` was written with status
    ``interrupted`` and the last committed checkpoint is kept, so the run resumes. ``result`` is what was written
    into ``run_dir``."""

    def __init__(self, result: TrainResult, run_dir: Path) -> None:
        super().__init__(result.message)
        self.result, self.run_dir = result, run_dir


@dataclass
class TrainResult:
    """What :func:`train_run` / :func:`resume_run` report (also saved as ``metrics.json``)."""

    status: str  # "completed" | "non_finite_loss" | "io_error" | "interrupted"
    total_timesteps: int
    budget: int
    final_return: float | None
    final_return_std: float | None
    best_return: float | None
    best_step: int | None
    evaluations: int
    wall_time_s: float
    steps_per_second: float
    n_updates: int
    resumed_from: int | None
    message: str = ""
    #: an evaluation reached ``eval.stop_at`` before the budget: training ended there, with that policy
    stopped_early: bool = False


# ---------------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------------
def make_action_noise(spec: ActionNoiseSettings, act_dim: int) -> Any:
    """SB3 action noise from the ``action_noise`` block (sigma in units of the [-1, 1] scaled action)."""
    if spec.type == "none" or spec.sigma == 0:
        return None
    mean, sigma = np.zeros(act_dim), spec.sigma * np.ones(act_dim)
    if spec.type == "normal":
        return NormalActionNoise(mean, sigma)
    return OrnsteinUhlenbeckActionNoise(mean, sigma)


def model_kwargs(cfg: Config, act_dim: int) -> dict[str, Any]:
    """Constructor arguments of ``spikerl.agents.ALGORITHMS[cfg.algo]`` for a resolved config."""
    actor = cfg.actor
    policy_kwargs: dict[str, Any] = {"net_arch": {"pi": list(actor.hidden), "qf": list(cfg.critic.hidden)}}
    if isinstance(actor, SnnActorSettings):
        for key in ("neuron", "T", "neuron_kwargs", "encoder", "pop_dim", "decoder_pop_dim", "preprocess"):
            policy_kwargs[key] = getattr(actor, key)
    kwargs: dict[str, Any] = cfg.sb3_kwargs()
    kwargs.update(policy=cfg.policy, policy_kwargs=policy_kwargs, seed=cfg.seed, device=cfg.device,
                  action_noise=make_action_noise(cfg.action_noise, act_dim), target=cfg.target, verbose=0)
    if cfg.proxy is not None:
        proxy = cfg.proxy
        kwargs.update(proxy_hidden=tuple(proxy.hidden), proxy_lr=proxy.lr, proxy_iters=proxy.iters)
    if isinstance(actor, SnnActorSettings) and actor.plif_lr is not None:
        kwargs["plif_lr"] = actor.plif_lr
    return kwargs


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    from spikerl.agents import ALGORITHMS

    return ALGORITHMS[algo]


def non_finite_error() -> type[Exception]:
    from spikerl.agents import NonFiniteLossError

    return NonFiniteLossError


def make_envs(cfg: Config, seed: int) -> tuple[VecEnv, VecEnv]:
    """(training env seeded ``seed``, evaluation env seeded ``cfg.seed + 100``)."""
    from spikerl.envs import make_env

    try:
        env = make_env(cfg.env, seed=seed, n_envs=1, **cfg.env_kwargs)
    except TypeError as err:  # gymnasium.make passes env_kwargs to the env's constructor
        raise RunError(f"env_kwargs {cfg.env_kwargs} not accepted by {cfg.env}: {_first_line(err)}"
                       ) from None
    eval_env = make_env(cfg.env, seed=cfg.seed + EVAL_SEED_OFFSET, n_envs=1, **cfg.env_kwargs)
    return env, eval_env


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def build_model(cfg: Config, env: VecEnv) -> BaseAlgorithm:
    """A fresh ``ProxyTD3`` / ``ProxySAC`` for a resolved config."""
    cls = algorithm_class(cfg.algo)
    kwargs = model_kwargs(cfg, int(np.prod(env.action_space.shape)))
    policy = kwargs.pop("policy")
    try:
        return cls(policy, env, **kwargs)
    except (TypeError, ValueError) as err:
        raise RunError(f"cannot build {cls.__name__}({policy}) for {cfg.env}: {_first_line(err)}") from None


# ---------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------
class _Session:
    """Callbacks, clock and metrics of one training session (a fresh start or a resume)."""

    def __init__(self, run_dir: Path, cfg: Config, eval_env: VecEnv, clock: RunClock,
                 history: list[EvalRecord], progress: bool, console: Any,
                 on_eval: Callable[[EvalRecord], None] | None) -> None:
        ev, ck = cfg.eval, cfg.checkpoint
        self.run_dir, self.cfg, self.clock = run_dir, cfg, clock
        self.layout = layout = RunLayout(run_dir)
        self.eval_cb = CsvEvalCallback(eval_env, layout.evaluations, ev.freq, ev.episodes, ev.deterministic,
                                       cfg.seed + EVAL_SEED_OFFSET, clock, history, on_eval, ev.stop_at)
        self.ckpt_cb = ResumableCheckpointCallback(layout.checkpoints, ck.every, ck.keep, self.state)
        self.callbacks: list[BaseCallback] = [
            self.eval_cb, self.ckpt_cb,
            ProgressFileCallback(layout.progress, cfg.total_timesteps, lambda: self.eval_cb.last, clock)]
        self.progress_cb: RichProgressCallback | None = None
        if progress:
            self.progress_cb = RichProgressCallback(cfg.total_timesteps, cfg.name or "train",
                                                    lambda: self.eval_cb.last, console)
            self.callbacks.append(self.progress_cb)

    def state(self) -> dict[str, Any]:
        return {"wall_time_s": self.clock.elapsed(), "evaluations": len(self.eval_cb.history),
                "budget": self.cfg.total_timesteps}

    def learn(self, model: BaseAlgorithm, resumed_from: int | None) -> TrainResult:
        budget = self.cfg.total_timesteps
        start = int(model.num_timesteps)
        status, message, stopped_early = "completed", "", False
        err_cls = non_finite_error()
        callback = CallbackList(self.callbacks)
        try:
            try:
                with HeldInterrupts() as interrupts:  # SIGINT/SIGTERM: a checkpoint at the next step, then stop
                    self.ckpt_cb.interrupts = self.eval_cb.interrupts = interrupts
                    model.learn(total_timesteps=budget - start, callback=callback,
                                reset_num_timesteps=(resumed_from is None), log_interval=4)
            except StopTraining as reached:
                message, stopped_early = str(reached), True
                callback.on_training_end()  # what learn() calls after its last rollout
            except err_cls as err:
                status, message = "non_finite_loss", str(err).splitlines()[0] if str(err) else type(err).__name__
            if status == "completed":
                atomic_write(self.layout.model, model.save)
        except OSError as err:  # a full disk, a read-only folder: the last committed checkpoint stays
            status, message = "io_error", io_error_text(err)
        except KeyboardInterrupt as err:  # SIGINT, or SIGTERM turned into one by `spikerl train`
            status, message = "interrupted", f"stopped by {str(err) or 'SIGINT'}"
        finally:
            if self.progress_cb is not None:
                self.progress_cb.close()
        last, best = self.eval_cb.last, self.eval_cb.best
        wall = self.clock.elapsed()
        steps = int(model.num_timesteps)
        result = TrainResult(
            status=status, total_timesteps=steps, budget=budget,
            final_return=None if last is None else last.mean, final_return_std=None if last is None else last.std,
            best_return=None if best is None else best.mean, best_step=None if best is None else best.step,
            evaluations=len(self.eval_cb.history), wall_time_s=wall, steps_per_second=steps / max(wall, 1e-9),
            n_updates=int(getattr(model, "_n_updates", 0)), resumed_from=resumed_from, message=message,
            stopped_early=stopped_early)
        try:
            _write_json(self.layout.metrics, asdict(result))
        except OSError as err:
            if result.status != "io_error":
                result = replace(result, status="io_error", message=io_error_text(err))
        if result.status == "interrupted":
            raise TrainingInterrupted(result, self.run_dir)
        return result


def io_error_text(err: OSError) -> str:
    """One line naming the path and the cause of an ``OSError`` (``I/O error on PATH: No space left on device``)."""
    cause = err.strerror or str(err) or type(err).__name__
    return f"I/O error on {err.filename}: {cause}" if err.filename else f"I/O error: {cause}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: fh.write((json.dumps(data, indent=2) + "\n").encode()))


def _set_logger(model: BaseAlgorithm, run_dir: Path) -> None:
    model.set_logger(configure(str(RunLayout(run_dir).tensorboard), ["tensorboard"]))


def train_run(cfg: Config, run_dir: str | Path, *, progress: bool = False, console: Any = None,
              on_eval: Callable[[EvalRecord], None] | None = None, overwrite: bool = False) -> TrainResult:
    """Train a fresh model for ``cfg.total_timesteps`` steps into ``run_dir``.

    ``run_dir`` must not hold a run (a ``config.yaml``) unless ``overwrite``, which deletes that run.
    The env and model are built before anything is written or deleted, so a bad env id or model
    argument leaves the directory as it was.
    """
    cfg = resolve(cfg)
    run_dir = Path(run_dir)
    layout = RunLayout(run_dir)
    with lock_run_dir(run_dir):
        if layout.config.exists() and not overwrite:
            raise RunError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, replace it with "
                           "--overwrite, or pick another --run-dir")
        env, eval_env = make_envs(cfg, cfg.seed)
        try:
            model = build_model(cfg, env)
            if layout.config.exists():
                _clear_run_dir(run_dir)
            dump_config(cfg, layout.config)
            _set_logger(model, run_dir)
            session = _Session(run_dir, cfg, eval_env, RunClock(), [], progress, console, on_eval)
            return session.learn(model, resumed_from=None)
        finally:
            env.close()
            eval_env.close()


def lock_run_dir(run_dir: Path) -> FolderLock:
    """Take the run directory's writer lock (creating the directory); ``RunError`` naming the process that holds it,
    or saying why it cannot be taken (a read-only filesystem). Release it with ``with`` or ``release()``."""
    try:
        return FolderLock(run_dir, "run directory").acquire()
    except (FolderLockedError, FolderLockError) as err:
        raise RunError(str(err)) from None


def _clear_run_dir(run_dir: Path) -> None:
    """Delete everything in ``run_dir`` but its lock file (held by this process)."""
    lock = RunLayout(run_dir).lock
    for entry in run_dir.iterdir():
        if entry == lock:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _checkpoint_steps(run_dir: Path) -> tuple[Path, list[int]]:
    """(checkpoint folder, steps of its committed checkpoints, newest first); ``RunError`` when there is none."""
    layout = RunLayout(run_dir)
    ckpt_dir, steps = layout.checkpoints, layout.checkpoint_steps()
    if not steps:
        raise RunError(f"no checkpoint in {ckpt_dir} (the run stopped before its first checkpoint); "
                       "start it again: spikerl train <config> --run-dir <dir> --overwrite")
    return ckpt_dir, steps[::-1]


def _verified_checkpoint(ckpt_dir: Path, step: int) -> dict[str, Any]:
    """The marker of the checkpoint at ``step`` with ``model_path`` and ``replay_path`` added, once its files match
    it (:class:`CheckpointError` otherwise)."""
    meta = verify_checkpoint(ckpt_dir, step)
    zip_path, buf_path, _ = checkpoint_files(ckpt_dir, step)
    meta.update(model_path=str(zip_path), replay_path=str(buf_path))
    return meta


def _no_usable_checkpoint(run_dir: Path, ckpt_dir: Path, problems: list[str]) -> RunError:
    return RunError(f"no usable checkpoint in {ckpt_dir}: {'; '.join(problems)}; start it again: "
                    f"spikerl train <config> --run-dir {run_dir} --overwrite")


def _fallback_notice(ckpt_dir: Path, problems: list[str], step: int) -> str:
    return f"skipped unusable checkpoint(s) in {ckpt_dir}: {'; '.join(problems)}; using the one at step {step}"


def latest_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The JSON marker of the newest checkpoint whose files match it (sizes and SHA-256s), with ``model_path`` and
    ``replay_path`` added, and ``skipped``: one line on the newer checkpoints that did not match (empty when the
    newest did). ``RunError`` when there is no checkpoint, or none matches."""
    ckpt_dir, steps = _checkpoint_steps(run_dir)
    problems: list[str] = []
    for step in steps:
        try:
            meta = _verified_checkpoint(ckpt_dir, step)
        except CheckpointError as err:
            problems.append(f"step {step}: {err}")
            continue
        meta["skipped"] = _fallback_notice(ckpt_dir, problems, step) if problems else ""
        return meta
    raise _no_usable_checkpoint(run_dir, ckpt_dir, problems)


def _load_checkpoint(cfg: Config, meta: dict[str, Any]) -> tuple[BaseAlgorithm, VecEnv, VecEnv]:
    """(model with its replay buffer, training env, evaluation env) of a verified checkpoint, the training env
    seeded ``seed + step``; :class:`CheckpointError` when the files do not load as the checkpoint they claim."""
    step = int(meta["step"])
    env, eval_env = make_envs(cfg, cfg.seed + step)
    try:
        try:
            model = algorithm_class(cfg.algo).load(meta["model_path"], env=env, device=cfg.device)
            load_replay_buffer(model, meta["replay_path"])
        except Exception as err:  # noqa: BLE001 - any unpickling/zip failure means a corrupt checkpoint
            raise CheckpointError(f"{Path(meta['model_path']).name} does not load: {type(err).__name__}: "
                                  f"{_first_line(err)}") from None
        if int(model.num_timesteps) != step:
            raise CheckpointError(f"{Path(meta['model_path']).name} holds step {model.num_timesteps}, its marker "
                                  f"says {step}")
    except BaseException:
        env.close()
        eval_env.close()
        raise
    return model, env, eval_env


def resumable_checkpoint(run_dir: Path, cfg: Config, on_notice: Callable[[str], None]
                         ) -> tuple[dict[str, Any], BaseAlgorithm, VecEnv, VecEnv]:
    """(marker, model, training env, evaluation env) of the newest checkpoint whose files match its marker and load.

    When newer checkpoints are skipped, ``on_notice`` gets one line naming them and why. ``RunError`` when no
    checkpoint is usable. Markers without SHA-256s (written by older versions) are checked by size only."""
    ckpt_dir, steps = _checkpoint_steps(run_dir)
    problems: list[str] = []
    for step in steps:
        try:
            meta = _verified_checkpoint(ckpt_dir, step)
            model, env, eval_env = _load_checkpoint(cfg, meta)
        except CheckpointError as err:
            problems.append(f"step {step}: {err}")
            continue
        if problems:
            on_notice(_fallback_notice(ckpt_dir, problems, step))
        return meta, model, env, eval_env
    raise _no_usable_checkpoint(run_dir, ckpt_dir, problems)


def load_run_config(run_dir: str | Path) -> Config:
    """The resolved ``config.yaml`` of a run (``RunError`` when it is not a run directory)."""
    from spikerl.config import ConfigError, load_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} does not exist")
    path = RunLayout(run_dir).config
    if not path.is_file():
        raise RunError(f"{run_dir} is not a spikerl run directory (no {CONFIG_FILE})")
    try:
        return load_config(path)
    except ConfigError as err:
        # an error about the file itself (not YAML, not UTF-8) already starts with its path
        raise RunError(str(err) if str(err).startswith(f"{path}:") else f"{path}: {err}") from None


def resume_run(run_dir: str | Path, *, progress: bool = False, console: Any = None,
               on_eval: Callable[[EvalRecord], None] | None = None,
               on_notice: Callable[[str], None] | None = None) -> TrainResult:
    """Continue a run from its newest usable checkpoint to the step budget saved in its ``config.yaml``.

    Evaluations logged after the checkpoint are dropped (those steps are trained again). The training
    env is seeded ``seed + checkpoint step`` and the global RNGs likewise, so a resume is reproducible.
    A newest checkpoint that does not match its marker (size, SHA-256) or does not load is skipped for the one
    before it, said in one line through ``on_notice`` (default: a warning).
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    with lock_run_dir(run_dir):
        return _resume_locked(run_dir, cfg, progress, console, on_eval, on_notice or _warn)


def _warn(text: str) -> None:
    warnings.warn(text, stacklevel=3)


def _resume_locked(run_dir: Path, cfg: Config, progress: bool, console: Any,
                   on_eval: Callable[[EvalRecord], None] | None, on_notice: Callable[[str], None]) -> TrainResult:
    layout = RunLayout(run_dir)
    metrics_path = layout.metrics
    if metrics_path.is_file():
        try:
            done = json.loads(metrics_path.read_text())
        except ValueError:
            done = {}
        done = done if isinstance(done, dict) else {}
        if done.get("status") == "completed" and done.get("stopped_early"):
            raise RunError(f"{run_dir} already stopped at step {done.get('total_timesteps')} "
                           f"({done.get('message')}); nothing to resume")
        if done.get("status") == "completed" and done.get("total_timesteps", 0) >= cfg.total_timesteps:
            raise RunError(f"{run_dir} already finished its {cfg.total_timesteps} steps; nothing to resume")
    meta, model, env, eval_env = resumable_checkpoint(run_dir, cfg, on_notice)
    step = int(meta["step"])
    try:
        model.set_random_seed(cfg.seed + step)
        history = read_evaluations(layout.evaluations, up_to_step=step)
        write_evaluations(layout.evaluations, history)
        _set_logger(model, run_dir)
        clock = RunClock(banked=float(meta.get("wall_time_s", 0.0)))
        session = _Session(run_dir, cfg, eval_env, clock, history, progress, console, on_eval)
        return session.learn(model, resumed_from=step)
    finally:
        env.close()
        eval_env.close()


# ---------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------
def load_run_model(run_dir: str | Path, device: str = "cpu") -> tuple[BaseAlgorithm, Config, str]:
    """(model, config, source): ``model.zip``, or the newest checkpoint of an unfinished run."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    path = RunLayout(run_dir).model
    source = MODEL_FILE
    if not path.is_file():
        meta = latest_checkpoint(run_dir)
        path = Path(meta["model_path"])
        skipped = f"; {meta['skipped']}" if meta["skipped"] else ""
        source = f"{CHECKPOINT_DIR}/{path.name} (no {MODEL_FILE}: the run is unfinished{skipped})"
    try:
        model = algorithm_class(cfg.algo).load(path, device=device)
    except Exception as err:  # noqa: BLE001
        raise RunError(f"cannot load {path}: {type(err).__name__}: {_first_line(err)}") from None
    return model, cfg, source


def make_eval_env(env_id: str, seed: int, env_kwargs: dict[str, Any], video_dir: Path | None) -> VecEnv:
    """One evaluation env; with ``video_dir`` every episode is recorded there (a previous evaluation's
    ``eval-episode-*.mp4`` files are removed first: RecordVideo reuses the names)."""
    from spikerl.envs import make_env

    if video_dir is not None:
        clear_videos(video_dir)
    with warnings.catch_warnings():  # RecordVideo warns when the folder exists; we own that folder
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
        return make_env(env_id, seed=seed, n_envs=1, video_folder=video_dir, **(env_kwargs or {}))


def evaluate_run(run_dir: str | Path, episodes: int = 10, deterministic: bool = True, video: bool = False,
                 seed: int | None = None, on_episode: Callable[[int, float], None] | None = None,
                 out: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run's model for ``episodes`` episodes; writes and returns ``evaluation.json``'s content.

    ``seed`` defaults to the run's seed + 100 (the seed of its periodic evaluations). ``video`` records
    every episode to ``videos/`` (headless EGL rendering). Both go into ``out`` (default: ``run_dir``).
    """
    from spikerl.agents.energy import MAX_OBSERVATIONS, actor_energy
    from spikerl.agents.evaluation_hooks import run_episodes

    run_dir = Path(run_dir)
    model, cfg, source = load_run_model(run_dir)
    seed = cfg.seed + EVAL_SEED_OFFSET if seed is None else int(seed)
    layout = RunLayout(run_dir if out is None else Path(out))  # where evaluation.json and videos/ go
    video_dir = layout.videos if video else None
    env = make_eval_env(cfg.env, seed, cfg.env_kwargs, video_dir)
    seen: list[np.ndarray] = []  # observations the actor decided on, for its energy per decision
    t0 = time.perf_counter()
    returns, lengths = run_episodes(model, env, episodes, deterministic, on_episode, seen, MAX_OBSERVATIONS)
    result = {
        "env": cfg.env, "model": source, "episodes": int(episodes), "deterministic": bool(deterministic),
        "seed": seed, "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
        "returns": returns, "lengths": lengths, "wall_time_s": time.perf_counter() - t0,
        "videos": finish_videos(video_dir, episodes, layout.root),
    }
    if seen:
        energy = actor_energy(model, np.concatenate(seen))
        result.update(energy_nj=energy["energy_nj"], firing_rate=energy["firing_rate"], energy=energy)
    _write_json(layout.evaluation, result)
    return result
