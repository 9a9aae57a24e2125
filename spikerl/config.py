"""Experiment configs: YAML presets, dotted ``key=value`` overrides, a typed schema, one-line errors.

A config is a flat-ish mapping in the style of RL Baselines3 Zoo: Stable-Baselines3 constructor
arguments are top-level keys under SB3's own names (``learning_rate``, ``batch_size``,
``learning_starts``, ...); spikerl's own settings live in named blocks (``actor``, ``critic``,
``proxy``, ``eval``, ``checkpoint``, ``action_noise``). Presets ship as package data of
``spikerl.configs`` (one YAML file per preset) and are loaded by name; any other YAML file is loaded
by path. :func:`resolve` validates every key against :data:`SCHEMA`, fills the defaults, and returns
the fully resolved config that a run saves as ``config.yaml``.

This module is part of the core: it imports neither Stable-Baselines3 nor Gymnasium.
"""

from __future__ import annotations

import copy
import importlib.resources
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spikerl.coding import PREPROCESS
from spikerl.neurons import NEURONS, make_neuron

__all__ = ["ConfigError", "SCHEMA", "list_presets", "load_raw", "parse_override", "resolve", "load_config",
           "dump_config", "preset_path"]

PRESET_PACKAGE = "spikerl.configs"


class ConfigError(ValueError):
    """A bad config: the message is one line naming the key and what is allowed."""


class _Bad(Exception):
    """Raised by a field parser with the description of what was expected."""


# ---------------------------------------------------------------------------------------------------
# field parsers: value -> normalised value, or raise _Bad("expected ...")
# ---------------------------------------------------------------------------------------------------
Parser = Callable[[Any], Any]


def _number(v: Any) -> float | None:
    """YAML 1.1 reads ``1e6`` and ``3e-4`` as strings: accept numeric strings too."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _int(minimum: int | None = None, allow: tuple[int, ...] = ()) -> Parser:
    what = "an integer" if minimum is None else f"an integer >= {minimum}"
    if allow:
        what += " or " + " or ".join(map(str, allow))

    def parse(v: Any) -> int:
        x = _number(v)
        if x is None or not math.isfinite(x) or not x.is_integer():
            raise _Bad(what)
        i = int(x)
        if i in allow:
            return i
        if minimum is not None and i < minimum:
            raise _Bad(what)
        return i
    return parse


def _float(low: float | None = None, high: float | None = None, low_open: bool = False) -> Parser:
    if low is not None and high is not None:
        what = f"a number in {'(' if low_open else '['}{low}, {high}]"
    elif low is not None:
        what = f"a number {'>' if low_open else '>='} {low}"
    else:
        what = "a number"

    def parse(v: Any) -> float:
        x = _number(v)
        if x is None or not math.isfinite(x):
            raise _Bad(what)
        if low is not None and (x < low or (low_open and x == low)):
            raise _Bad(what)
        if high is not None and x > high:
            raise _Bad(what)
        return x
    return parse


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("true or false")
    return v


def _choice(*choices: str) -> Parser:
    def parse(v: Any) -> str:
        if v not in choices:
            raise _Bad("one of " + ", ".join(choices))
        return v
    return parse


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad("a non-empty string")
    return v


def _int_list(v: Any) -> list[int]:
    what = "a list of positive integers such as [256, 256]"
    if not isinstance(v, (list, tuple)) or not v:
        raise _Bad(what)
    out = []
    for item in v:
        x = _number(item)
        if x is None or not x.is_integer() or x < 1:
            raise _Bad(what)
        out.append(int(x))
    return out


def _mapping(v: Any) -> dict:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise _Bad("a mapping such as {threshold: 0.5}")
    return dict(v)


def _optional(parser: Parser) -> Parser:
    def parse(v: Any) -> Any:
        if v is None:
            return None
        try:
            return parser(v)
        except _Bad as err:
            raise _Bad(f"null or {err}") from None
    return parse


def _device(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
        raise _Bad("one of auto, cpu, cuda, cuda:N, mps")
    return v


def _auto_or_float(prefix_auto: bool) -> Parser:
    """SAC's ``ent_coef`` ("auto", "auto_0.1" or a positive float) and ``target_entropy``."""
    what = ('"auto", "auto_<initial value>" or a number > 0' if prefix_auto else '"auto" or a number')

    def parse(v: Any) -> Any:
        if v == "auto":
            return v
        if prefix_auto and isinstance(v, str) and v.startswith("auto_"):
            x = _number(v[5:])
            if x is not None and x > 0:
                return v
            raise _Bad(what)
        x = _number(v)
        if x is None or not math.isfinite(x) or (prefix_auto and x <= 0):
            raise _Bad(what)
        return x
    return parse


# ---------------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One config key: its parser (type and allowed values), default and a short description."""

    parse: Parser
    default: Any
    doc: str


Block = dict[str, Field]

TOP: dict[str, Field] = {
    "name": Field(_optional(_text), None, "run name prefix (defaults to the preset's name)"),
    "algo": Field(_choice("td3", "sac"), "td3", "RL algorithm"),
    "target": Field(_choice("proxy", "soft"), "proxy",
                    "proxy: ANN proxy target actor (Proxy Target); soft: Polyak-averaged target (TD3) / none (SAC)"),
    "policy": Field(_choice("SNNPolicy", "MlpPolicy"), "SNNPolicy", "spiking actor or ANN (MLP) actor"),
    "env": Field(_text, "Hopper-v5", "Gymnasium environment id"),
    "env_kwargs": Field(_mapping, {}, "keyword arguments for gymnasium.make"),
    "total_timesteps": Field(_int(1), 1_000_000, "environment steps to train for"),
    "seed": Field(_int(0), 0, "random seed (torch, numpy, env)"),
    "device": Field(_device, "auto", "torch device"),
    # Stable-Baselines3 constructor arguments, under SB3's names
    "learning_rate": Field(_float(0.0, low_open=True), 3e-4, "Adam learning rate (actor and critic)"),
    "buffer_size": Field(_int(1), 1_000_000, "replay buffer capacity"),
    "learning_starts": Field(_int(0), 25_000, "uniform-random steps before learning starts"),
    "batch_size": Field(_int(1), 256, "minibatch size"),
    "tau": Field(_float(0.0, 1.0), 0.005, "Polyak coefficient of the target critics"),
    "gamma": Field(_float(0.0, 1.0), 0.99, "discount factor"),
    "train_freq": Field(_int(1), 1, "environment steps between updates"),
    "gradient_steps": Field(_int(1, allow=(-1,)), 1, "gradient steps per update (-1: as many as env steps)"),
}
TD3_ONLY: dict[str, Field] = {
    "policy_delay": Field(_int(1), 2, "critic updates per actor update"),
    "target_policy_noise": Field(_float(0.0), 0.2, "std of the target policy smoothing noise"),
    "target_noise_clip": Field(_float(0.0), 0.5, "clip of the target policy smoothing noise"),
}
SAC_ONLY: dict[str, Field] = {
    "ent_coef": Field(_auto_or_float(True), "auto", "entropy coefficient"),
    "target_entropy": Field(_auto_or_float(False), "auto", "entropy target for the automatic coefficient"),
    "target_update_interval": Field(_int(1), 1, "gradient steps between target critic updates"),
}
ACTION_NOISE: Block = {
    "type": Field(_choice("normal", "ornstein-uhlenbeck", "none"), "normal", "exploration noise process"),
    "sigma": Field(_float(0.0), 0.1, "noise std, in units of half the action range"),
}
ACTOR_ANN: Block = {
    "hidden": Field(_int_list, [256, 256], "hidden layer sizes"),
}
ACTOR_SNN: Block = {
    **ACTOR_ANN,
    "neuron": Field(_choice(*NEURONS), "lif", "spiking neuron model"),
    "T": Field(_int(1), 5, "simulation steps per decision"),
    "neuron_kwargs": Field(_mapping, {}, "neuron parameters (threshold, decay, ...)"),
    "encoder": Field(_choice("pop", "pop-stochastic", "direct"), "pop", "observation encoder"),
    "pop_dim": Field(_int(1), 10, "encoder neurons per observation dimension"),
    "decoder_pop_dim": Field(_int(1), 10, "output neurons per action dimension"),
    "preprocess": Field(_choice(*PREPROCESS), "tanh", "observation squashing before the encoder"),
    "plif_lr": Field(_optional(_float(0.0, low_open=True)), None,
                     "learning rate of PLIF decay parameters (null: proxy lr x 0.1 under PT, else 1e-4)"),
}
CRITIC: Block = {
    "hidden": Field(_int_list, [256, 256], "hidden layer sizes of each twin critic"),
}
PROXY: Block = {
    "hidden": Field(_int_list, [512, 512], "hidden sizes of the ANN proxy actor"),
    "lr": Field(_float(0.0, low_open=True), 1e-3, "Adam learning rate of the proxy"),
    "iters": Field(_int(1), 3, "proxy regression steps K per training step"),
}
EVAL: Block = {
    "freq": Field(_int(1), 5000, "environment steps between evaluations"),
    "episodes": Field(_int(1), 10, "episodes per evaluation"),
    "deterministic": Field(_bool, True, "evaluate the deterministic policy"),
}
CHECKPOINT: Block = {
    "every": Field(_int(1), 50_000, "environment steps between checkpoints (model + replay buffer)"),
    "keep": Field(_int(1), 2, "checkpoints kept on disk (oldest deleted)"),
}
BLOCKS: tuple[str, ...] = ("action_noise", "actor", "critic", "proxy", "eval", "checkpoint")

#: every key any config may hold, for documentation (``README``) and error messages
SCHEMA: dict[str, Any] = {
    **TOP, **TD3_ONLY, **SAC_ONLY, "action_noise": ACTION_NOISE, "actor": ACTOR_SNN, "critic": CRITIC,
    "proxy": PROXY, "eval": EVAL, "checkpoint": CHECKPOINT,
}


def _active_schema(algo: str, target: str, policy: str) -> dict[str, Any]:
    """The keys that the chosen algorithm, target strategy and policy use, in resolved-config order."""
    schema: dict[str, Any] = dict(TOP)
    schema.update(TD3_ONLY if algo == "td3" else SAC_ONLY)
    noise = dict(ACTION_NOISE)
    if algo == "sac":
        noise["type"] = Field(noise["type"].parse, "none", noise["type"].doc)
    schema["action_noise"] = noise
    schema["actor"] = ACTOR_SNN if policy == "SNNPolicy" else ACTOR_ANN
    schema["critic"] = CRITIC
    if target == "proxy":
        schema["proxy"] = PROXY
    schema["eval"] = EVAL
    schema["checkpoint"] = CHECKPOINT
    return schema


def _why_inactive(key: str, algo: str, target: str, policy: str) -> str:
    head = key.split(".")[0]
    if head in TD3_ONLY:
        return f"{key}: only used with algo td3 (this config has algo {algo})"
    if head in SAC_ONLY:
        return f"{key}: only used with algo sac (this config has algo {algo})"
    if head == "proxy":
        return f"{key}: only used with target proxy (this config has target {target})"
    if head == "actor":
        return (f"{key}: only used with policy SNNPolicy (policy {policy} takes only actor.hidden)")
    return f"{key}: not used by this config"


# ---------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------
def list_presets() -> list[str]:
    """Names of the presets shipped in ``spikerl.configs``."""
    root = importlib.resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """Filesystem path of a shipped preset (``ConfigError`` if there is none of that name)."""
    res = importlib.resources.files(PRESET_PACKAGE) / f"{name}.yaml"
    if not res.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(list_presets())} "
                          "(or give the path of a .yaml file)")
    return Path(str(res))


def load_raw(source: str | Path) -> tuple[dict[str, Any], str]:
    """Read a preset (by name) or a YAML file (by path): returns (unvalidated mapping, config name)."""
    path = Path(source)
    looks_like_path = path.suffix in (".yaml", ".yml") or path.parent != Path(".") or path.is_file()
    if looks_like_path:
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; presets: {', '.join(list_presets())}")
        name = path.stem if path.name != "config.yaml" else path.parent.name
    else:
        name = str(source)
        path = preset_path(name)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping of keys to values, got {type(data).__name__}")
    return data, name


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"actor.T=8"`` -> (("actor", "T"), 8). The value is parsed as a YAML scalar/flow value."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in key.split(".")):
        raise ConfigError(f"override {text!r}: expected key=value with a dotted key, e.g. actor.T=8")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: the value is not a valid YAML value") from None
    return tuple(key.split(".")), parsed


def _set_path(cfg: dict, path: tuple[str, ...], value: Any) -> None:
    node = cfg
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: {'.'.join(path[:i + 1])} is a value, not a block")
        node = child
    node[path[-1]] = value


def _fmt(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_field(key: str, field: Field, value: Any) -> Any:
    try:
        return field.parse(value)
    except _Bad as err:
        raise ConfigError(f"{key}: expected {err}, got {_fmt(value)}") from None


def resolve(raw: Mapping[str, Any], overrides: Iterable[str] = (), name: str | None = None) -> dict[str, Any]:
    """Validate ``raw`` (after applying ``key=value`` overrides), fill defaults, return the resolved config.

    Keys that the chosen ``algo``/``target``/``policy`` do not use are dropped when they come from the
    file (so one can switch ``target=soft`` on a proxy preset) and are an error when given as an override.
    """
    cfg = copy.deepcopy(dict(raw))
    explicit: list[str] = []
    for text in overrides:
        path, value = parse_override(text)
        _set_path(cfg, path, value)
        explicit.append(".".join(path))

    unknown = [k for k in cfg if k not in SCHEMA]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; known top-level keys: {', '.join(SCHEMA)}")
    modes = {k: _check_field(k, TOP[k], cfg.get(k, TOP[k].default)) for k in ("algo", "target", "policy")}
    schema = _active_schema(modes["algo"], modes["target"], modes["policy"])

    for key in explicit:
        head, _, sub = key.partition(".")
        if head not in schema:
            raise ConfigError(_why_inactive(key, **modes))
        first = sub.split(".")[0]
        if sub and isinstance(SCHEMA[head], dict) and first in SCHEMA[head] and first not in schema[head]:
            raise ConfigError(_why_inactive(key, **modes))

    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if isinstance(spec, Field):
            value = _check_field(key, spec, cfg.get(key, spec.default))
            if key == "name" and value is None:
                value = name
            out[key] = value
            continue
        given = cfg.get(key, {})
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"{key}: expected a block (mapping) with keys {', '.join(spec)}, got {_fmt(given)}")
        full = SCHEMA[key]
        bad = [k for k in given if k not in full]
        if bad:
            raise ConfigError(f"unknown key '{key}.{bad[0]}'; known keys of '{key}': {', '.join(full)}")
        out[key] = {k: _check_field(f"{key}.{k}", f, given.get(k, copy.deepcopy(f.default))) for k, f in spec.items()}
    _check_consistency(out)
    return out


def _check_consistency(cfg: dict[str, Any]) -> None:
    """Cross-key checks that need more than one value."""
    actor = cfg["actor"]
    if "neuron" in actor:
        try:
            make_neuron(actor["neuron"], **actor["neuron_kwargs"])
        except (TypeError, ValueError) as err:
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"actor.neuron_kwargs: not valid for neuron {actor['neuron']!r}: {msg}") from None
    if cfg["batch_size"] > cfg["buffer_size"]:
        raise ConfigError(f"batch_size: expected at most buffer_size ({cfg['buffer_size']}), got {cfg['batch_size']}")


def load_config(source: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Load a preset name or YAML path, apply ``key=value`` overrides and return the resolved config."""
    raw, name = load_raw(source)
    return resolve(raw, overrides, name=name)


def dump_config(cfg: Mapping[str, Any], path: str | Path | None = None) -> str:
    """The resolved config as YAML text (key order kept); also written to ``path`` when given."""
    text = yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None)
    if path is not None:
        Path(path).write_text(text)
    return text
