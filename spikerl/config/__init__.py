"""Experiment configs: typed pydantic models, YAML presets, dotted ``key=value`` overrides, one-line errors.

A config is a flat-ish mapping in the style of RL Baselines3 Zoo: Stable-Baselines3 constructor arguments are
top-level keys under SB3's own names (``learning_rate``, ``batch_size``, ``learning_starts``, ...); spikerl's own
settings live in named blocks (``actor``, ``critic``, ``proxy``, ``eval``, ``checkpoint``, ``action_noise``).
Presets ship as package data of ``spikerl.configs`` (one YAML overlay of the defaults per preset) and are loaded by
name; any other YAML file is loaded by path. :func:`resolve` validates every key against the models, fills the
defaults, and returns the resolved :class:`Config` (read as ``cfg.actor.hidden``) that a run saves as
``config.yaml``.

- :mod:`spikerl.config.values`: the value types of keys and the words that describe them;
- :mod:`spikerl.config.schema`: one model per block, :class:`TD3Config` and :class:`SACConfig`;
- :mod:`spikerl.config.loading`: presets, YAML files, overrides, :class:`ConfigError`;
- :mod:`spikerl.config.device`: whether a config's ``device`` exists on this machine (checked before training);
- :mod:`spikerl.config.reference`: the key reference of the docs, rendered from the models.

This package is part of the core: it imports neither Stable-Baselines3 nor Gymnasium.
"""

from spikerl.config.device import check_device_available
from spikerl.config.loading import (
    ConfigError,
    dump_config,
    list_presets,
    load_config,
    load_raw,
    parse_override,
    preset_path,
    resolve,
)
from spikerl.config.reference import reference_markdown
from spikerl.config.schema import (
    ActionNoiseSettings,
    AnnActorSettings,
    CheckpointSettings,
    Config,
    CriticSettings,
    EvalSettings,
    ProxySettings,
    SACConfig,
    SnnActorSettings,
    TD3Config,
    Variant,
    config_model,
)

__all__ = ["ActionNoiseSettings", "AnnActorSettings", "CheckpointSettings", "Config", "ConfigError", "CriticSettings",
           "EvalSettings", "ProxySettings", "SACConfig", "SnnActorSettings", "TD3Config", "Variant",
           "check_device_available", "config_model", "dump_config", "list_presets", "load_config", "load_raw",
           "parse_override", "preset_path", "reference_markdown", "resolve"]
