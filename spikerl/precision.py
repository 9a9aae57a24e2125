"""bfloat16 matrix products for training on CPUs that have them natively (AVX512-BF16 or AMX).

A linear layer y = x W^T + b in "bf16" mode runs its three GEMMs on bfloat16 operands; the products are summed in
float32 inside the GEMM and the result is rounded once to bfloat16:

    forward:   y    = fl32(bf16(x) bf16(W)^T) rounded to bf16, + b in float32
    backward:  dL/dx = bf16(g) bf16(W),    dL/dW = bf16(g)^T bf16(x),    dL/db = sum_rows g   (g = dL/dy, float32)

Everything else stays float32: the master weights W and b (what the optimizer updates and its state), the layer's
inputs and outputs, and so the membrane potentials of the spiking layers and every loss. Spikes are 0 or 1, which
bfloat16 holds exactly, so a spiking layer's input is not rounded at all.

bfloat16 keeps float32's 8-bit exponent and 8 significant bits (unit roundoff u = 2^-8): each element of a product
above differs from its float32 value by at most about 3 u sum_k |a_ik| |b_kj| (two rounded operands and the rounded
result), which the tests check.

The bfloat16 copy of W is made once per weight change, not on every call: ``Bf16Linear.refresh`` is called by an
optimizer step hook (``refresh_after_steps``), after a Polyak update, and when a state dict is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

PRECISIONS = ("float32", "bf16")
#: the CPU flags (``/proc/cpuinfo``) of native bfloat16 arithmetic: AVX512-BF16 and AMX-BF16
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
#: when a ``Bf16Linear`` uses bfloat16: in passes that build an autograd graph, in passes without one, or both
MODES = ("grad", "no_grad")


def default_precision() -> str:
    """The precision of a config that does not name one: float32 (bf16 is opt-in)."""
    return "float32"


def cpu_flags() -> set[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 GEMMs natively: a CPU with AVX512-BF16 or AMX, or a CUDA GPU that
    supports bfloat16 (``torch.cuda.is_bf16_supported``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def check_precision(precision: str, device: str | torch.device = "cpu") -> None:
    """Raise a one-line ``ValueError`` unless ``precision`` is known and, for "bf16", native on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and not native_bf16(device):
        where = "this CPU has neither avx512_bf16 nor amx_bf16" if torch.device(device).type == "cpu" else \
            f"device {device} has no native bfloat16"
        raise ValueError(f"precision 'bf16' needs native bfloat16 GEMMs (a CPU with AVX512-BF16 or AMX, or a "
                         f"bf16-capable GPU), but {where}; use precision 'float32'")


def _bf16_linear(x16: torch.Tensor, weight_bf16: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """float32 fl(x16 W16^T) + b for a 2-D bfloat16 ``x16`` (the GEMM's bf16 result widened, then the bias added
    in place: cheaper on CPU than one mixed-dtype add)."""
    out = torch.mm(x16, weight_bf16.t()).float()
    return out if bias is None else out.add_(bias)


class _Bf16Linear(torch.autograd.Function):
    """y = bf16(x) W16^T + b with float32 input, output and gradients (equations in the module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, bias, weight_bf16):  # type: ignore[override]
        x16 = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        out = _bf16_linear(x16, weight_bf16, bias)
        ctx.save_for_backward(x16 if ctx.needs_input_grad[1] else None, weight_bf16)
        ctx.x_shape = x.shape
        return out.reshape(*x.shape[:-1], weight_bf16.shape[0])

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x16, weight_bf16 = ctx.saved_tensors
        g = grad_out.reshape(-1, grad_out.shape[-1])
        g16 = g.to(torch.bfloat16)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(g16, weight_bf16).float().reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_w = torch.mm(g16.t(), x16).float()
        if ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b, None


class Bf16Linear(nn.Linear):
    """``nn.Linear`` whose GEMMs run in bfloat16 (float32 master weights, inputs and outputs) in the passes named
    by ``modes`` ("grad": passes that build an autograd graph, "no_grad": passes without one); float32 otherwise.

    Its state dict is ``nn.Linear``'s: the bfloat16 weight copy is not saved. Build one around an existing layer
    with :meth:`from_linear` (the two share their parameters, so an optimizer built before keeps working).
    """

    weight_bf16: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: torch.device | None = None,
                 dtype: torch.dtype | None = None, modes: Iterable[str] = MODES) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.modes = frozenset(modes)
        unknown = sorted(self.modes - set(MODES))
        if unknown:
            raise ValueError(f"Bf16Linear modes must be among {MODES}, got {unknown}")
        self.weight_bf16 = None
        self.register_load_state_dict_post_hook(_refresh_after_load)

    @classmethod
    def from_linear(cls, linear: nn.Linear, modes: Iterable[str] = MODES) -> Bf16Linear:
        """A ``Bf16Linear`` that shares ``linear``'s weight and bias Parameters (no random initialisation)."""
        new = torch.nn.utils.skip_init(cls, linear.in_features, linear.out_features, linear.bias is not None,
                                       device=linear.weight.device, dtype=linear.weight.dtype, modes=modes)
        new.weight = linear.weight
        new.bias = linear.bias
        new.train(linear.training)
        new.refresh()
        return new

    def refresh(self) -> None:
        """Copy the float32 master weight into the bfloat16 copy the GEMMs use (after every change of it)."""
        with torch.no_grad():
            if self.weight_bf16 is None or self.weight_bf16.device != self.weight.device:
                self.weight_bf16 = self.weight.detach().to(torch.bfloat16)
            else:
                self.weight_bf16.copy_(self.weight.detach())

    def uses_bf16(self) -> bool:
        """Whether the current call runs in bfloat16: the mode applies and the master weight is float32."""
        mode = "grad" if torch.is_grad_enabled() else "no_grad"
        return mode in self.modes and self.weight.dtype == torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_bf16() or x.dtype != torch.float32:
            return F.linear(x, self.weight, self.bias)
        if self.weight_bf16 is None or self.weight_bf16.device != self.weight.device:
            self.refresh()
        if not torch.is_grad_enabled():  # no graph to record: the forward alone
            y = _bf16_linear(x.reshape(-1, x.shape[-1]).to(torch.bfloat16), self.weight_bf16, self.bias)
            return y.reshape(*x.shape[:-1], self.out_features)
        return _Bf16Linear.apply(x, self.weight, self.bias, self.weight_bf16)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bf16 in {'/'.join(sorted(self.modes))} passes"


def _refresh_after_load(layer: Bf16Linear, _incompatible_keys: Any) -> None:
    layer.refresh()


def use_bf16(module: nn.Module, modes: Iterable[str] = MODES) -> list[Bf16Linear]:
    """Replace every ``nn.Linear`` inside ``module`` by a ``Bf16Linear`` sharing its parameters; returns them.

    Layers already converted get the new ``modes``. The state dict keys do not change.
    """
    modes = frozenset(modes)
    layers: list[Bf16Linear] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Bf16Linear):
                child.modes = modes
                layers.append(child)
            elif type(child) is nn.Linear:
                layer = Bf16Linear.from_linear(child, modes)
                setattr(parent, name, layer)
                layers.append(layer)
    return layers


def refresh_bf16(modules: Iterable[nn.Module]) -> None:
    """Refresh the bfloat16 weight copies of every ``Bf16Linear`` inside ``modules`` (after their weights changed)."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, Bf16Linear):
                layer.refresh()


def refresh_after_steps(optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
    """After every ``optimizer.step()``, refresh the bfloat16 weight copies inside ``module``."""
    optimizer.register_step_post_hook(partial(_refresh_after_step, module))


def _refresh_after_step(module: nn.Module, _optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
    refresh_bf16([module])
