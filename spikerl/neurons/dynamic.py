"""The dynamic second-order neuron (DN) of MDC-SAN (Zhang et al., AAAI 2022), as used by Proxy Target.

Per step (Proxy Target eq. 18-20):
    C_t = alpha C_{t-1} + I_t
    V   = V (1 - S_{t-1}) + theta_r S_{t-1}
    U   = U + theta_s S_{t-1}
    dV  = V^2 - V - U + C
    dU  = theta_v V - theta_u U          (u_sign="-": paper and MDC-SAN; "+" reproduces the upstream code)
    V   = V + dV;  U = U + dU;  S_t = [V > V_th]
Defaults: alpha 0.5, theta_v -0.172, theta_u 0.529, theta_r 0.021, theta_s 0.132, V_th 0.5.

The default ``u_sign="-"`` is the equation of the Proxy Target paper and of MDC-SAN. The authors'
reference code, which produced the paper's published PT-DN numbers, uses "+" (dU = theta_v V + theta_u U,
so U grows by the factor 1 + theta_u per step besides the V term); ``u_sign="+"`` reproduces those
numbers (on the command line: ``--set actor.neuron_kwargs.u_sign=+``).
"""

from __future__ import annotations

from typing import Any

import torch

from spikerl.neurons.base import SpikingNeuron, State, check_unit_interval


class DNNeuron(SpikingNeuron):
    """MDC-SAN dynamic neuron; state (V, U, C, S_prev). Runs the reference loop (no fused kernel)."""

    name = "dn"
    n_state = 4

    def __init__(
        self,
        threshold: float = 0.5,
        current_decay: float = 0.5,
        theta_v: float = -0.172,
        theta_u: float = 0.529,
        theta_r: float = 0.021,
        theta_s: float = 0.132,
        u_sign: str = "-",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("reset", "hard") != "hard":
            raise ValueError("neuron 'dn' has its own reset (V <- theta_r after a spike); leave reset='hard'")
        super().__init__(threshold=threshold, **kwargs)
        self.current_decay = check_unit_interval(self.name, "current_decay", current_decay, allow_zero=True)
        if u_sign not in ("-", "+"):
            raise ValueError(f"neuron 'dn': u_sign must be '-' (paper) or '+' (upstream code), got {u_sign!r}")
        self.theta_v, self.theta_u = float(theta_v), float(theta_u)
        self.theta_r, self.theta_s = float(theta_r), float(theta_s)
        self.u_sign = u_sign

    def step(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.init_state(x.shape, dtype=x.dtype, device=x.device)
        v, u, c, s_prev = state
        if self.detach_reset:
            s_prev = s_prev.detach()
        c = c * self.current_decay + x
        v = v * (1.0 - s_prev) + self.theta_r * s_prev
        u = u + self.theta_s * s_prev
        dv = v * v - v - u + c
        du = self.theta_v * v + (self.theta_u * u if self.u_sign == "+" else -self.theta_u * u)
        v = v + dv
        u = u + du
        s = self.fire(v)
        return s, (v, u, c, s)

    def hparams(self) -> dict[str, Any]:
        params = super().hparams()
        params.pop("reset")
        params.update(current_decay=self.current_decay, theta_v=self.theta_v, theta_u=self.theta_u,
                      theta_r=self.theta_r, theta_s=self.theta_s, u_sign=self.u_sign)
        return params
