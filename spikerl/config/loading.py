"""Loading configs: presets and YAML files, dotted ``key=value`` overrides, and one-line errors.

:func:`resolve` applies the overrides, checks every key against the models of :mod:`spikerl.config.schema`, drops the
keys a file holds for another variant (so ``target=soft`` works on a proxy preset), and validates the rest; any
problem is a :class:`ConfigError` whose message is one line naming the key and what it accepts.
"""

from __future__ import annotations

import copy
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from spikerl.config.schema import (
    KEY_ERROR,
    MODES,
    REMOVED_KEYS,
    Config,
    Keys,
    Variant,
    active_keys,
    all_keys,
    block_model,
    config_model,
)
from spikerl.config.values import expected

PRESET_PACKAGE = "spikerl.configs"


class ConfigError(ValueError):
    """A bad config: the message is one line naming the key and what is allowed."""


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
    data = yaml_file(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping of keys to values, got {type(data).__name__}")
    return data, name


def yaml_file(path: Path) -> Any:
    """The YAML document in ``path``; a file that is not UTF-8 text or not valid YAML is a one-line
    :class:`ConfigError` naming the file and the line or byte."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a YAML text file (byte 0x{err.object[err.start]:02x} at offset {err.start} "
                          "is not UTF-8)") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or type(err).__name__})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


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


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(model: type[BaseModel], data: Any, error: dict[str, Any]) -> str:
    """A pydantic error as one line: the dotted key, what it accepts and the value it got."""
    path: list[str] = []
    field, value, block = None, data, model
    for part in error["loc"]:
        if block is None or part not in block.model_fields:
            break
        field = block.model_fields[part]
        path.append(part)
        value = value.get(part) if isinstance(value, Mapping) else None
        block = block_model(field)
    key = ".".join(path)
    if error["type"] == KEY_ERROR:
        return f"{key}.{error['msg']}" if key else error["msg"]
    if field is None:
        return f"{key or 'config'}: {error['msg']}"
    if block is not None and not isinstance(value, Mapping):
        return f"{key}: expected a block (mapping) with keys {', '.join(block.model_fields)}, got {_fmt(value)}"
    return f"{key}: expected {expected(field) or error['msg']}, got {_fmt(value)}"


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(model, data, err.errors()[0])) from None


def _is_active(key: str, active: Keys) -> bool:
    head, _, rest = key.partition(".")
    sub = rest.split(".")[0]
    if head not in active:
        return False
    block_keys = active[head]
    return not (sub and block_keys is not None and sub in (all_keys()[head] or ()) and sub not in block_keys)


def _why_inactive(key: str, variant: Variant) -> str:
    """Which mode (algo, target, policy) a key needs, e.g. "proxy.lr: only used with target proxy (...)"."""
    for mode, options in MODES.items():
        for option in options:
            other = {m: getattr(variant, m) for m in MODES} | {mode: option}
            if _is_active(key, active_keys(**other)):
                return f"{key}: only used with {mode} {option} (this config has {mode} {getattr(variant, mode)})"
    return f"{key}: not used by this config"


def _check_block_keys(data: Mapping[str, Any], keys: Keys) -> None:
    """Unknown keys inside the blocks this variant uses are errors that list the block's keys."""
    known = all_keys()
    for key, value in data.items():
        if keys.get(key) is not None and isinstance(value, Mapping):
            unknown = [k for k in value if k not in known[key]]
            if unknown:
                raise ConfigError(f"unknown key '{key}.{unknown[0]}'; known keys of '{key}': {', '.join(known[key])}")


def _only_active(data: Mapping[str, Any], keys: Keys) -> dict[str, Any]:
    """``data`` without the keys this variant does not use (a file may hold them for another variant)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in keys:
            sub = keys[key]
            out[key] = {k: v for k, v in value.items() if k in sub} if sub and isinstance(value, Mapping) else value
    return out


def resolve(raw: Mapping[str, Any] | Config, overrides: Iterable[str] = (), name: str | None = None) -> Config:
    """Validate ``raw`` (after applying ``key=value`` overrides), fill defaults, return the resolved config.

    Keys that the chosen ``algo``/``target``/``policy`` do not use are dropped when they come from the
    file (so one can switch ``target=soft`` on a proxy preset) and are an error when given as an override.
    """
    data = raw.as_dict() if isinstance(raw, Config) else copy.deepcopy(dict(raw))
    explicit: list[str] = []
    for text in overrides:
        path, value = parse_override(text)
        _set_path(data, path, value)
        explicit.append(".".join(path))
    unknown = [k for k in data if k not in all_keys() and k not in REMOVED_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; known top-level keys: {', '.join(all_keys())}")
    if data.get("name") is None:
        data["name"] = name
    variant = _validated(Variant, {k: v for k, v in data.items() if k in Variant.model_fields})
    keys = active_keys(variant.algo, variant.target, variant.policy)
    for key in explicit:
        if key not in REMOVED_KEYS and not _is_active(key, keys):
            raise ConfigError(_why_inactive(key, variant))
    _check_block_keys(data, keys)
    removed = {k: v for k, v in data.items() if k in REMOVED_KEYS}  # for the model to accept or refuse
    return _validated(config_model(variant.algo, variant.policy), {**_only_active(data, keys), **removed})


def load_config(source: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Load a preset name or YAML path, apply ``key=value`` overrides and return the resolved config."""
    raw, name = load_raw(source)
    return resolve(raw, overrides, name=name)


def dump_config(cfg: Config, path: str | Path | None = None) -> str:
    """The resolved config as YAML text (in file order); also written to ``path`` when given."""
    text = yaml.safe_dump(cfg.as_dict(), sort_keys=False, default_flow_style=None)
    if path is not None:
        Path(path).write_text(text)
    return text
