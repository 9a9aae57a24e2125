"""The config models: one pydantic model per block, and the top-level config of each algorithm.

A config is flat in the style of RL Baselines3 Zoo: Stable-Baselines3 constructor arguments are top-level keys under
SB3's own names; spikerl's own settings live in blocks (``action_noise``, ``actor``, ``critic``, ``proxy``, ``eval``,
``checkpoint``). Three keys choose the shape of the rest (:class:`Variant`):

- ``algo`` picks :class:`TD3Config` or :class:`SACConfig`, which add their algorithm's SB3 keys;
- ``policy`` picks the actor block: :class:`SnnActorSettings` (spiking actor) or :class:`AnnActorSettings` (MLP);
- ``target`` decides whether the ``proxy`` block exists (``proxy``: the ANN proxy target actor of the Proxy Target
  method, Xu et al. NeurIPS 2025; ``soft``: SB3's own target).

:func:`config_model` returns the model of a variant; :func:`active_keys` the keys it has.
"""

from __future__ import annotations

from functools import cache
from itertools import product
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from spikerl.coding import PREPROCESS
from spikerl.config.values import (
    MAX_TIMESTEPS,
    Device,
    EntropyCoefficient,
    Flag,
    GradientSteps,
    Kwargs,
    LayerSizes,
    TargetEntropy,
    Text,
    choice,
    integer,
    number,
    optional,
)
from spikerl.neurons import NEURONS, make_neuron

#: marks a top-level key that is passed unchanged, under its own name, to the Stable-Baselines3 constructor
SB3_ARGUMENT = "sb3-argument"
#: the error type of a check that needs more than one value; its message starts with the key it blames
KEY_ERROR = "config_key"
#: top-level keys that configs no longer have: key -> (the one value still accepted, and ignored: it means what a
#: config without the key means, and the ``config.yaml`` of earlier runs holds it; why any other value is refused)
REMOVED_KEYS: dict[str, tuple[str, str]] = {
    "precision": ("float32", "training runs in float32 only (bf16 was removed: its bfloat16 GEMMs gained at most "
                  "1.15x on a train step)")}


def key_error(message: str) -> PydanticCustomError:
    """A validation error whose one-line message names the key (relative to the model that raises it)."""
    return PydanticCustomError(KEY_ERROR, "{message}", {"message": message})


class Block(BaseModel):
    """A group of config keys: unknown keys are errors, a resolved value does not change, null means all defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data


NoiseType = choice("normal", "ornstein-uhlenbeck", "none")


class ActionNoiseSettings(Block):
    """Exploration noise added to the actor's action while collecting experience."""

    type: NoiseType = Field("normal", description="exploration noise process")
    sigma: number(ge=0.0) = Field(0.1, description="noise std, in units of half the action range")


class SACActionNoiseSettings(ActionNoiseSettings):
    """SAC explores through its stochastic policy: no added noise unless a type is given."""

    type: NoiseType = Field("none", description="exploration noise process")
    sigma: number(ge=0.0) = Field(0.0, description="noise std, in units of half the action range")


class AnnActorSettings(Block):
    """The ANN (MLP) actor of the baselines: obs - hidden - act, tanh output."""

    hidden: LayerSizes = Field([256, 256], description="hidden layer sizes")


class SnnActorSettings(AnnActorSettings):
    """The spiking actor: population encoder, spiking hidden layers run for T steps, population decoder."""

    neuron: choice(*NEURONS) = Field("lif", description="spiking neuron model")
    T: integer(1) = Field(5, description="simulation steps per decision")
    neuron_kwargs: Kwargs = Field({}, description="neuron parameters (threshold, decay, ...)")
    encoder: choice("pop", "pop-stochastic", "direct") = Field("pop", description="observation encoder")
    pop_dim: integer(1) = Field(10, description="encoder neurons per observation dimension")
    decoder_pop_dim: integer(1) = Field(10, description="output neurons per action dimension")
    preprocess: choice(*PREPROCESS) = Field("tanh", description="observation squashing before the encoder")
    plif_lr: optional(number(gt=0.0)) = Field(
        None, description="learning rate of PLIF decay parameters (null: proxy lr x 0.1 under PT, else 1e-4)")

    @model_validator(mode="after")
    def _neuron_accepts_kwargs(self) -> SnnActorSettings:
        try:
            make_neuron(self.neuron, **self.neuron_kwargs)
        except (TypeError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise key_error(f"neuron_kwargs: not valid for neuron {self.neuron!r}: {reason}") from None
        return self


class CriticSettings(Block):
    """The twin Q networks."""

    hidden: LayerSizes = Field([256, 256], description="hidden layer sizes of each twin critic")


class ProxySettings(Block):
    """The ANN proxy actor of the Proxy Target method: it regresses the spiking actor's actions with K Adam steps
    per training step, and stands in for the target actor in the critic's target."""

    hidden: LayerSizes = Field([512, 512], description="hidden sizes of the ANN proxy actor")
    lr: number(gt=0.0) = Field(1e-3, description="Adam learning rate of the proxy")
    iters: integer(1) = Field(3, description="proxy regression steps K per training step")


class EvalSettings(Block):
    """Periodic evaluation during training."""

    freq: integer(1) = Field(5000, description="environment steps between evaluations")
    episodes: integer(1) = Field(10, description="episodes per evaluation")
    deterministic: Flag = Field(True, description="evaluate the deterministic policy")
    stop_at: optional(number()) = Field(
        None, description="stop training once an evaluation's mean return is >= this; that policy is the one saved "
        "(null: train the whole budget)")


class CheckpointSettings(Block):
    """Periodic checkpoints (model and replay buffer) that ``spikerl train --resume`` continues from."""

    every: integer(1) = Field(50_000, description="environment steps between checkpoints (model + replay buffer)")
    keep: integer(1) = Field(2, description="checkpoints kept on disk (oldest deleted)")


class Variant(Block):
    """What is trained: the run's name, and the three keys that decide which other keys a config has."""

    name: optional(Text) = Field(None, description="run name prefix (defaults to the preset's name)")
    algo: choice("td3", "sac") = Field("td3", description="RL algorithm")
    target: choice("proxy", "soft") = Field(
        "proxy", description="proxy: ANN proxy target actor (Proxy Target); soft: Polyak-averaged target (TD3) / "
        "none (SAC)")
    policy: choice("SNNPolicy", "MlpPolicy") = Field("SNNPolicy", description="spiking actor or ANN (MLP) actor")


#: the modes of a variant and the values each may take
MODES: dict[str, tuple[str, ...]] = {mode: get_args(Variant.model_fields[mode].annotation)
                                     for mode in ("algo", "target", "policy")}

ActorT = TypeVar("ActorT", AnnActorSettings, SnnActorSettings)


class Config(Variant, Generic[ActorT]):
    """A resolved config: every key of its variant with its value. Build one with ``resolve`` or ``load_config``.

    The defaults are the Proxy Target paper's protocol: TD3 hyper-parameters of its Table 7 (Fujimoto et al. 2018)
    with 25k uniform-random start steps, the spiking actor of Table 6, the LIF proxy of Table 5, and an evaluation
    of 10 deterministic episodes every 5000 steps.
    """

    env: Text = Field("Hopper-v5", description="Gymnasium environment id")
    env_kwargs: Kwargs = Field({}, description="keyword arguments for gymnasium.make")
    total_timesteps: integer(1, MAX_TIMESTEPS) = Field(1_000_000, description="environment steps to train for")
    seed: integer(0) = Field(0, description="random seed (torch, numpy, env)")
    device: Device = Field("auto", description="torch device")
    learning_rate: Annotated[number(gt=0.0), SB3_ARGUMENT] = Field(
        3e-4, description="Adam learning rate (actor and critic)")
    buffer_size: Annotated[integer(1), SB3_ARGUMENT] = Field(1_000_000, description="replay buffer capacity")
    learning_starts: Annotated[integer(0), SB3_ARGUMENT] = Field(
        25_000, description="uniform-random steps before learning starts")
    batch_size: Annotated[integer(1), SB3_ARGUMENT] = Field(256, description="minibatch size")
    tau: Annotated[number(ge=0.0, le=1.0), SB3_ARGUMENT] = Field(
        0.005, description="Polyak coefficient of the target critics")
    gamma: Annotated[number(ge=0.0, le=1.0), SB3_ARGUMENT] = Field(0.99, description="discount factor")
    train_freq: Annotated[integer(1), SB3_ARGUMENT] = Field(1, description="environment steps between updates")
    gradient_steps: Annotated[GradientSteps, SB3_ARGUMENT] = Field(
        1, description="gradient steps per update (-1: as many as env steps)")
    action_noise: ActionNoiseSettings = Field(ActionNoiseSettings(), description=ActionNoiseSettings.__doc__)
    actor: ActorT = Field(default_factory=dict, validate_default=True, description="the actor network")
    critic: CriticSettings = Field(CriticSettings(), description=CriticSettings.__doc__)
    proxy: ProxySettings | None = Field(None, description="the ANN proxy target actor (only with target proxy)")
    eval: EvalSettings = Field(EvalSettings(), description=EvalSettings.__doc__)
    checkpoint: CheckpointSettings = Field(CheckpointSettings(), description=CheckpointSettings.__doc__)

    @model_validator(mode="before")
    @classmethod
    def _proxy_block_with_proxy_target(cls, data: Any) -> Any:
        """Under target proxy a missing (or null) proxy block means the default proxy."""
        target = data.get("target", cls.model_fields["target"].default) if isinstance(data, dict) else None
        if target == "proxy" and data.get("proxy") is None:
            data = {**data, "proxy": {}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _drop_removed_keys(cls, data: Any) -> Any:
        """A ``REMOVED_KEYS`` key with its accepted value is dropped; any other value is refused in one line."""
        if not isinstance(data, dict) or not REMOVED_KEYS.keys() & data.keys():
            return data
        for key, (accepted, why) in REMOVED_KEYS.items():
            if key in data and data[key] != accepted:
                raise key_error(f"{key}: {why}; remove the key or set {accepted}, got {data[key]!r}")
        return {k: v for k, v in data.items() if k not in REMOVED_KEYS}

    @model_validator(mode="after")
    def _keys_agree(self) -> Config:
        if self.target == "soft" and self.proxy is not None:
            raise key_error("proxy: only used with target proxy (this config has target soft)")
        if isinstance(self.actor, SnnActorSettings) != (self.policy == "SNNPolicy"):
            raise key_error(f"actor: policy {self.policy} takes the actor block of config_model(algo, policy)")
        if self.batch_size > self.buffer_size:
            raise key_error(f"batch_size: expected at most buffer_size ({self.buffer_size}), got {self.batch_size}")
        return self

    def sb3_kwargs(self) -> dict[str, Any]:
        """The keys passed unchanged to the Stable-Baselines3 constructor, with their values."""
        fields = type(self).model_fields
        return {key: getattr(self, key) for key, field in fields.items() if SB3_ARGUMENT in field.metadata}

    def as_dict(self) -> dict[str, Any]:
        """The config as ``config.yaml`` holds it: the plain keys first, then one mapping per block."""
        data = self.model_dump()
        if self.proxy is None:
            del data["proxy"]
        return in_file_order(data, type(self).model_fields)


class TD3Config(Config[ActorT], Generic[ActorT]):
    """TD3 (Fujimoto et al. 2018): twin critics, delayed actor updates, target policy smoothing."""

    algo: Literal["td3"] = Field("td3", description="RL algorithm")
    policy_delay: Annotated[integer(1), SB3_ARGUMENT] = Field(2, description="critic updates per actor update")
    target_policy_noise: Annotated[number(ge=0.0), SB3_ARGUMENT] = Field(
        0.2, description="std of the target policy smoothing noise")
    target_noise_clip: Annotated[number(ge=0.0), SB3_ARGUMENT] = Field(
        0.5, description="clip of the target policy smoothing noise")


class SACConfig(Config[ActorT], Generic[ActorT]):
    """SAC (Haarnoja et al. 2018): a stochastic actor with an entropy bonus whose coefficient is learned."""

    algo: Literal["sac"] = Field("sac", description="RL algorithm")
    ent_coef: Annotated[EntropyCoefficient, SB3_ARGUMENT] = Field("auto", description="entropy coefficient")
    target_entropy: Annotated[TargetEntropy, SB3_ARGUMENT] = Field(
        "auto", description="entropy target for the automatic coefficient")
    target_update_interval: Annotated[integer(1), SB3_ARGUMENT] = Field(
        1, description="gradient steps between target critic updates")
    action_noise: SACActionNoiseSettings = Field(SACActionNoiseSettings(), description=ActionNoiseSettings.__doc__)


# the four concrete models, named at module level so that a resolved config pickles (multiprocessing, Ray)
class SnnTD3Config(TD3Config[SnnActorSettings]):
    """TD3 with a spiking actor."""


class AnnTD3Config(TD3Config[AnnActorSettings]):
    """TD3 with an MLP actor."""


class SnnSACConfig(SACConfig[SnnActorSettings]):
    """SAC with a spiking actor."""


class AnnSACConfig(SACConfig[AnnActorSettings]):
    """SAC with an MLP actor."""


CONFIG_MODELS: dict[tuple[str, str], type[Config]] = {
    ("td3", "SNNPolicy"): SnnTD3Config, ("td3", "MlpPolicy"): AnnTD3Config,
    ("sac", "SNNPolicy"): SnnSACConfig, ("sac", "MlpPolicy"): AnnSACConfig}


def config_model(algo: str, policy: str) -> type[Config]:
    """The model of a config with this algorithm and policy, e.g. ``SnnTD3Config``."""
    return CONFIG_MODELS[algo, policy]


def block_model(field: FieldInfo) -> type[Block] | None:
    """The model of a block key (``actor``, ``proxy``, ...), or None for a plain key."""
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Block):
            return candidate
    return None


def in_file_order(data: dict[str, Any], fields: dict[str, FieldInfo]) -> dict[str, Any]:
    """``data`` with the plain keys first and the blocks after them, each group in declaration order."""
    plain = {k: v for k, v in data.items() if block_model(fields[k]) is None}
    return {**plain, **{k: v for k, v in data.items() if k not in plain}}


Keys = dict[str, tuple[str, ...] | None]


def active_keys(algo: str, target: str, policy: str) -> Keys:
    """The keys a config of this variant has, in file order: key -> the keys of its block (None: a plain key)."""
    fields = config_model(algo, policy).model_fields
    keys: Keys = {}
    for key, field in fields.items():
        block = block_model(field)
        if key != "proxy" or target == "proxy":
            keys[key] = None if block is None else tuple(block.model_fields)
    return in_file_order(keys, fields)


@cache
def all_keys() -> Keys:
    """Every key any variant has (a block with the keys of its widest variant), in file order (do not modify)."""
    merged: Keys = {}
    fields: dict[str, FieldInfo] = {}
    for algo, target, policy in product(*MODES.values()):
        fields.update(config_model(algo, policy).model_fields)
        for key, sub in active_keys(algo, target, policy).items():
            if key not in merged or len(sub or ()) > len(merged[key] or ()):
                merged[key] = sub
    return in_file_order(merged, fields)
