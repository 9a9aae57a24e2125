"""The config-key reference of the docs, rendered from the models so that it cannot drift from them."""

from __future__ import annotations

import inspect
from itertools import product
from typing import Any

import yaml

from spikerl.config.schema import MODES, SB3_ARGUMENT, Variant, active_keys, all_keys, block_model, config_model
from spikerl.config.values import expected

Modes = tuple[str, str, str]
VARIANTS: list[Modes] = list(product(*MODES.values()))

INTRO = """\
# Config keys

A config is a YAML file (or a preset name, listed by `spikerl train --help`) whose keys are listed below; every key
has a default, so a file holds only what differs. Stable-Baselines3 arguments are top-level keys under SB3's own
names (marked "SB3 argument"), spikerl's own settings are blocks. Override any key from the command line with a
dotted path and a YAML value: `spikerl train td3-proxy-lif --set actor.T=8 proxy.lr=3e-3 actor.hidden=[64,64]`.

`algo`, `target` and `policy` decide which other keys a config has ("used with"). A key that the chosen variant does
not use is dropped when it comes from a file and is an error when given with `--set`.

This page is generated from the models in `spikerl.config.schema`.
"""


def _cell(text: str) -> str:
    """Text for a markdown table cell (MkDocs would read ``<initial value>`` as an HTML tag)."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def _yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return "`" + text.removesuffix("...").strip() + "`"


def _used_with(variants: set[Modes]) -> str:
    """The modes under which a key exists, as text: "all", "algo td3", "target proxy", ..."""
    if len(variants) == len(VARIANTS):
        return "all"
    conditions = [f"{mode} {value}" for i, (mode, values) in enumerate(MODES.items()) for value in values
                  if variants == {v for v in VARIANTS if v[i] == value}]
    return ", ".join(conditions) or "; ".join("/".join(v) for v in sorted(variants))


def _field(variant: Modes, head: str, sub: str | None) -> Any:
    if head in Variant.model_fields:  # the algorithm models narrow algo to their own name
        return Variant.model_fields[head]
    fields = config_model(variant[0], variant[2]).model_fields
    return fields[head] if sub is None else block_model(fields[head]).model_fields[sub]


def _default(head: str, sub: str | None, variants: set[Modes]) -> str:
    """The default; where it differs between algorithms, each algorithm's."""
    by_algo = {v[0]: _field(v, head, sub).get_default(call_default_factory=True) for v in sorted(variants)}
    values = list(by_algo.values())
    if all(value == values[0] for value in values):
        return _yaml(values[0])
    return ", ".join(f"{algo}: {_yaml(value)}" for algo, value in by_algo.items())


def _row(head: str, sub: str | None) -> str:
    variants = {v for v in VARIANTS if head in active_keys(*v) and (sub is None or sub in active_keys(*v)[head])}
    field = _field(next(iter(sorted(variants))), head, sub)
    key = head if sub is None else f"{head}.{sub}"
    meaning = (field.description or "") + (" (SB3 argument)" if SB3_ARGUMENT in field.metadata else "")
    cells = [f"`{key}`", _cell(expected(field) or ""), _default(head, sub, variants), _used_with(variants),
             _cell(meaning)]
    return "| " + " | ".join(cells) + " |"


def _block_intro(head: str) -> list[str]:
    """The docstring of the block's model; where variants use different models, each with its variants."""
    models: dict[type, set[Modes]] = {}
    for v in VARIANTS:
        if head in active_keys(*v):
            models.setdefault(block_model(_field(v, head, None)), set()).add(v)
    lines = []
    for model, variants in models.items():
        used = _used_with(variants)
        doc = inspect.cleandoc(model.__doc__ or "").replace("\n", " ")
        if len(models) > 1:
            lines.append(f"- {used}: {doc}")
        else:
            lines.append(doc if used == "all" else f"{doc} Used with {used}.")
    return lines


HEADER = "| key | accepts | default | used with | meaning |\n|---|---|---|---|---|"


def reference_markdown() -> str:
    """Every config key as markdown: what it accepts, its default, which variants use it, what it means."""
    keys = all_keys()
    plain = [k for k, sub in keys.items() if sub is None]
    parts = [INTRO, "## Top-level keys\n", HEADER, *(_row(k, None) for k in plain), ""]
    for head, subs in keys.items():
        if subs is not None:
            parts += [f"## `{head}`\n", *_block_intro(head), "", HEADER, *(_row(head, sub) for sub in subs), ""]
    return "\n".join(parts)
