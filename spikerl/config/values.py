"""Value types of config keys: pydantic constraints, each with the words an error and the key reference use for it.

A type is ``Annotated[python type, constraints..., Expect("an integer >= 1")]``: the constraint and its description
are built from the same arguments, so an error message ("batch_size: expected an integer >= 1, got 0") and the
generated reference cannot drift from what is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StringConstraints
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Expect:
    """What a key accepts, in words: the text after "expected" in an error and the type column of the reference."""

    text: str


def expected(field: FieldInfo) -> str | None:
    """The description of what ``field`` accepts (the outermost ``Expect`` of its type), if it has one."""
    texts = [m.text for m in field.metadata if isinstance(m, Expect)]
    return texts[-1] if texts else None


def _yaml_number(value: Any) -> Any:
    """PyYAML follows YAML 1.1, which reads ``1e6`` and ``3e-4`` as strings: numeric strings become numbers.

    Booleans are refused rather than read as 0 and 1.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: the most environment steps a run may train for (a bound that catches a typo such as ``1e100`` up front)
MAX_TIMESTEPS = 10**9


def integer(minimum: int, maximum: int | None = None) -> Any:
    """An integer >= ``minimum`` (and <= ``maximum`` when given); integral floats (``2e5``) are accepted."""
    text = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    return Annotated[int, BeforeValidator(_yaml_number), Field(ge=minimum, le=maximum), Expect(text)]


def step_count(value: str | int | float) -> int:
    """A step count written as ``20000``, ``2e4``, ``20_000``, ``20k`` or ``1.5M``: a whole number in
    [1, ``MAX_TIMESTEPS``] (``ValueError`` naming the value and the range otherwise)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole step count from 1 to {MAX_TIMESTEPS} (1e9), got {value!r}")
    text = str(value).strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        count = float(text[:-1] if scale != 1 else text) * scale
    except ValueError:
        raise ValueError(f"expected a step count such as 20000, 2e4 or 20k, got {value!r}") from None
    if not count.is_integer() or not 1 <= count <= MAX_TIMESTEPS:
        raise ValueError(f"expected a whole step count from 1 to {MAX_TIMESTEPS} (1e9), got {value!r}")
    return int(count)


def number(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Any:
    """A finite number with optional bounds: ``number(gt=0.0)``, ``number(ge=0.0, le=1.0)``."""
    low = gt if gt is not None else ge
    if low is not None and le is not None:
        text = f"a number in {'(' if gt is not None else '['}{low}, {le}]"
    elif low is not None:
        text = f"a number {'>' if gt is not None else '>='} {low}"
    elif le is not None:
        text = f"a number <= {le}"
    else:
        text = "a number"
    return Annotated[float, BeforeValidator(_yaml_number), Field(gt=gt, ge=ge, le=le, allow_inf_nan=False),
                     Expect(text)]


def choice(*options: str) -> Any:
    """One of the given strings."""
    return Annotated[Literal[options], Expect("one of " + ", ".join(options))]


def optional(value_type: Any) -> Any:
    """``value_type`` or null."""
    inner = next((m.text for m in get_args(value_type)[1:] if isinstance(m, Expect)), "a value")
    return Annotated[value_type | None, Expect(f"null or {inner}")]


def _auto_with_initial_value(text: str) -> str:
    """SAC's ``"auto_0.1"``: learn the entropy coefficient, starting from 0.1 (which must be > 0)."""
    try:
        initial = float(text[len("auto_"):])
    except ValueError:
        raise ValueError("the initial value after auto_ is not a number") from None
    if not initial > 0:
        raise ValueError("the initial value after auto_ must be > 0")
    return text


Flag = Annotated[StrictBool, Expect("true or false")]
Text = Annotated[str, StringConstraints(strict=True, pattern=r"\S"), Expect("a non-empty string")]
Device = Annotated[str, StringConstraints(strict=True, pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$"),
                   Expect("one of auto, cpu, cuda, cuda:N, mps")]
LayerSizes = Annotated[list[integer(1)], Field(min_length=1), Expect("a list of positive integers such as [256, 256]")]
Kwargs = Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v),
                   Expect("a mapping such as {name: value}")]
#: SB3's ``gradient_steps``: -1 means as many gradient steps as environment steps were collected
GradientSteps = Annotated[Literal[-1] | integer(1), Expect("an integer >= 1 or -1")]
#: SAC's ``ent_coef``: learned ("auto", or "auto_<initial value>") or fixed
EntropyCoefficient = Annotated[
    Literal["auto"] | Annotated[str, StringConstraints(strict=True, pattern=r"^auto_"),
                                AfterValidator(_auto_with_initial_value)] | number(gt=0),
    Expect('"auto", "auto_<initial value>" or a number > 0')]
#: SAC's ``target_entropy``: "auto" (minus the action dimension) or a number
TargetEntropy = Annotated[Literal["auto"] | number(), Expect('"auto" or a number')]
