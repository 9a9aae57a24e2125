"""Operation counts and energy estimates per decision: SNN synaptic operations vs ANN MACs.

For a spiking layer l with input spikes s^{l-1}_t and fan-out n_l, every input spike triggers n_l
accumulates, so per decision  SOP_l = n_l * sum_{t, j} s^{l-1}_{t, j}  (counted from real spikes).
Analog parts are multiply-accumulates: a direct-encoded first layer costs T * n_in * n_1 MACs, the
population decoder act_dim * pop_dim MACs. An ANN layer costs n_in * n_out MACs.

Energy = MACs * E_MAC + SOPs * E_AC, with the figures the Proxy Target paper uses (Table 2:
3.97 pJ/MAC, 77 fJ/SOP) or Horowitz's 45 nm figures (32-bit float: 4.6 pJ per MAC, 0.9 pJ per add;
ISSCC 2014), which SNN papers often quote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily: the torch-free runtime uses count_energy
    import torch
    from torch import nn

#: (joules per MAC, joules per synaptic accumulate)
ENERGY_MODELS: dict[str, tuple[float, float]] = {
    "paper": (3.97e-12, 77e-15),
    "45nm": (4.6e-12, 0.9e-12),
}


@dataclass
class EnergyReport:
    """Per-decision operation counts and energy (averaged over the observations given)."""

    sops: float
    macs: float
    energy_j: float
    model: str
    per_layer_sops: dict[str, float] = field(default_factory=dict)
    firing_rate: float | None = None

    @property
    def energy_nj(self) -> float:
        return self.energy_j * 1e9

    def to_dict(self) -> dict:
        return {**asdict(self), "energy_nj": self.energy_nj}


def energy_of(macs: float, sops: float, model: str = "paper") -> float:
    """Joules for ``macs`` multiply-accumulates and ``sops`` synaptic accumulates."""
    if model not in ENERGY_MODELS:
        raise ValueError(f"unknown energy model {model!r}; known models: {', '.join(ENERGY_MODELS)}")
    e_mac, e_ac = ENERGY_MODELS[model]
    return macs * e_mac + sops * e_ac


def ann_macs(module: nn.Module) -> int:
    """MACs of one forward pass of an MLP (sum of in*out over its nn.Linear layers)."""
    from torch import nn

    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("ann_macs: the module has no nn.Linear layers to count")
    return sum(m.in_features * m.out_features for m in linears)


def ann_energy(module: nn.Module, model: str = "paper") -> EnergyReport:
    macs = float(ann_macs(module))
    return EnergyReport(sops=0.0, macs=macs, energy_j=energy_of(macs, 0.0, model), model=model)


def snn_energy(actor: nn.Module, obs: torch.Tensor, model: str = "paper") -> EnergyReport:
    """Synaptic operations of a spiking actor from its real spike counts on ``obs[B, obs_dim]``.

    ``actor`` is a ``SpikingActor`` / ``SpikingGaussianActor`` (anything with ``spike_counts``,
    ``snn.linears``, ``encoder_kind``, ``decoder`` and ``T``). The log-std head of a Gaussian actor is
    not counted (it is not used for the deterministic deployed action).
    """
    counts = actor.spike_counts(obs)
    linears = list(actor.snn.linears)
    names = list(counts)
    macs = float(actor.decoder.act_dim * actor.decoder.pop_dim)
    if actor.encoder_kind == "direct":
        first = linears[0]
        macs += actor.T * first.in_features * first.out_features
        targets = linears[1:]  # hidden0 drives linears[1], ...
    else:
        targets = linears  # the encoder drives linears[0], ...
    return count_energy({n: c.detach().cpu().numpy() for n, c in counts.items()}, names[:-1],
                        [lin.out_features for lin in targets], actor.T, macs, model)


def count_energy(counts: Mapping[str, Any], drivers: Sequence[str], fan_outs: Sequence[int], T: int,
                 macs: float, model: str = "paper") -> EnergyReport:
    """Energy per decision from spike counts ``{name: [B, n]}`` (spikes per neuron summed over T).

    ``drivers[i]``'s spikes feed a layer of ``fan_outs[i]`` neurons: SOP_i = fan_outs[i] * mean_B sum_j counts.
    ``macs``: the analog multiply-accumulates per decision (direct-encoded first layer, readout). The
    firing rate is over every population except ``"encoder"``. NumPy only (used by the torch-free runtime).
    """
    if len(drivers) != len(fan_outs):
        raise ValueError(f"count_energy: {len(drivers)} driving populations but {len(fan_outs)} fan-outs")
    per_layer = {name: float(counts[name].sum(1).mean()) * int(n) for name, n in zip(drivers, fan_outs, strict=True)}
    sops = sum(per_layer.values())
    spiking = [c for n, c in counts.items() if n != "encoder"]
    spikes = sum(float(c.sum(1).mean()) for c in spiking)
    neurons = sum(int(c.shape[1]) for c in spiking)
    rate = spikes / (neurons * T) if neurons else None
    return EnergyReport(sops=sops, macs=float(macs), energy_j=energy_of(macs, sops, model), model=model,
                        per_layer_sops=per_layer, firing_rate=rate)
