"""One step of a fused ``torch.optim.Adam`` without ``Optimizer.step``'s per-call Python.

``Optimizer.step`` runs hooks, profiling wrappers, argument checks and tensor grouping on every call
(about 0.08 ms here, as long as the fused kernel itself for the proxy's 270k parameters). A training
step calls it 4-5 times, so ``adam_step`` calls the same fused kernel directly, with the optimizer's
own state tensors and hyper-parameters: the update is Adam's (Kingma & Ba 2015) bit for bit,

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

and ``state_dict`` / ``load_state_dict`` / SB3's save and load are unchanged. Whenever the direct
call does not apply (not a fused Adam, amsgrad, maximize, lr or betas as tensors, hooks registered,
state not yet created, mixed devices or dtypes, the private kernel missing or taking other arguments) it
calls ``optimizer.step()``.
"""

from __future__ import annotations

import torch

_KERNEL = getattr(torch, "_fused_adam_", None)


def _direct_ok(optimizer: torch.optim.Optimizer) -> bool:
    if _KERNEL is None or type(optimizer) is not torch.optim.Adam:
        return False
    from torch.optim import optimizer as optim_module

    hooks = (getattr(optimizer, "_optimizer_step_pre_hooks", None),
             getattr(optimizer, "_optimizer_step_post_hooks", None),
             getattr(optim_module, "_global_optimizer_pre_hooks", None),
             getattr(optim_module, "_global_optimizer_post_hooks", None))
    if any(h is None or len(h) for h in hooks):  # hooks registered, or a torch whose internals differ
        return False
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("amsgrad") or group.get("maximize") or group.get("differentiable"):
            return False
        if group.get("decoupled_weight_decay") or group.get("capturable"):
            return False
        if isinstance(group["lr"], torch.Tensor) or any(isinstance(b, torch.Tensor) for b in group["betas"]):
            return False
    return True


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()`` for a fused CPU Adam through the kernel directly (same result); else ``step()``."""
    if not _direct_ok(optimizer):
        optimizer.step()
        return
    calls = []
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        states = [optimizer.state.get(p) for p in params]
        if any(not s or not isinstance(s.get("step"), torch.Tensor) for s in states):
            optimizer.step()  # first step: Adam creates its state
            return
        kinds = {(p.device, p.dtype) for p in params} | {(p.grad.device, p.grad.dtype) for p in params}
        if len(kinds) != 1 or next(iter(kinds))[0].type != "cpu" or any(p.grad.is_sparse for p in params):
            optimizer.step()
            return
        calls.append((group, params, states))
    global _KERNEL
    with torch.no_grad():
        for i, (group, params, states) in enumerate(calls):
            steps = [s["step"] for s in states]
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            try:
                _KERNEL(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                        [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=float(group["lr"]),
                        beta1=float(beta1), beta2=float(beta2), weight_decay=float(group["weight_decay"]),
                        eps=float(group["eps"]), maximize=False, grad_scale=None, found_inf=None)
            except (TypeError, RuntimeError):
                if i > 0:  # an earlier group was already updated: nothing consistent to fall back to
                    raise
                # a torch whose private kernel takes other arguments: undo the count, use step() from now on
                torch._foreach_sub_(steps, 1)
                _KERNEL = None
                optimizer.step()
                return
