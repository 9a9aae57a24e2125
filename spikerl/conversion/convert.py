"""``ConversionSpec`` and ``convert(ann, spec, calib_data) -> SpikingModel``.

Methods (presets; any field can be overridden):

=============== ============================ ============ ===================================================
method          thresholds                   neuron       notes
=============== ============================ ============ ===================================================
max             calibrated max               if           threshold balancing (Diehl 2015 / Rueckauer 2017)
percentile:<p>  calibrated p-th percentile   if           e.g. ``percentile:99.9`` (Rueckauer 2017)
qcfs            learned QCFS lambda          if           Bu et al. ICLR 2022; exact with L = T at layer 1
opi             learned ClipReLU lambda      if           Bu et al. AAAI 2022; v0 = theta/2
srp             learned                      if           Hao et al. AAAI 2023; presim tau steps, mask v(tau)<=0
cos             learned                      if           Hao et al. ICLR 2023; presim rho steps, shift v0
parallel        learned                      parallel     Hao et al. ICML 2025; equals QCFS(L = T) exactly
dcgs            calibrated 99.9th percentile mth-diff     Huang et al. ICML 2025; differential coding
=============== ============================ ============ ===================================================

"learned" reads lambda from QCFS/ClipReLU sites; a plain ReLU site then falls back to the calibrated max
(and needs ``calib_data``). All IF-family neurons start from v0 = ``v0`` * theta (default 1/2, OPI).
``carry="crpi"`` (Xu et al., ICML 2026) carries c = clip(alpha max(R, -theta N), -theta/2, theta/2) of the
residual R = v_T - v_0 to the next call: v_0 = theta/2 + c.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from spikerl.conversion.activations import QCFS, ClipReLU
from spikerl.conversion.calibrate import GRANULARITIES, ActivationStats, fix_dead, iter_batches, parse_threshold
from spikerl.conversion.graph import prepare
from spikerl.conversion.model import SpikingModel
from spikerl.conversion.neurons import FIRE_MODES

METHODS = ("max", "percentile:<p>", "qcfs", "opi", "srp", "cos", "parallel", "dcgs")
NEURONS = ("if", "parallel", "if-diff", "mth-diff")
CRPI_NEURONS = ("if", "if-diff", "mth-diff")
_PRESETS: dict[str, dict[str, Any]] = {
    "max": {"threshold": "max", "neuron": "if"},
    "percentile": {"neuron": "if"},
    "qcfs": {"threshold": "learned", "neuron": "if"},
    "opi": {"threshold": "learned", "neuron": "if"},
    "srp": {"threshold": "learned", "neuron": "if", "presim": "srp"},
    "cos": {"threshold": "learned", "neuron": "if", "presim": "cos"},
    "parallel": {"threshold": "learned", "neuron": "parallel"},
    "dcgs": {"threshold": "percentile:99.9", "neuron": "mth-diff"},
}


@dataclass
class ConversionSpec:
    """How to convert an ANN into an SNN.

    Args:
        T: time steps per input (per RL decision), read out over these T steps.
        method: preset, one of ``max``, ``percentile:<p>``, ``qcfs``, ``opi``, ``srp``, ``cos``, ``parallel``,
            ``dcgs`` (table in the module docstring).
        threshold: override the preset's threshold source: ``max``, ``percentile:<p>``, ``gauss_iter`` (DCGS
            threshold iteration on Gaussian pre-activation statistics) or ``learned``.
        granularity: ``layer`` (one threshold per activation layer), ``channel`` or ``neuron``.
        neuron: override the preset's neuron: ``if``, ``parallel``, ``if-diff`` or ``mth-diff``.
        v0: initial potential as a fraction of theta (default 0.5; 0 for ``mth-diff``).
        fire: ``ge`` (spike when m >= theta) or ``gt`` (m > theta, as the CRPI code).
        readout: ``mean`` (time-average the input of the readout layers).
        carry: None, or ``crpi`` to carry the residual potential across calls (sequential ``if``, or the
            differential-coding ``if-diff`` / ``mth-diff``: spikerl's extension of CRPI, with the output
            emitted in units of theta as N).
        alpha: CRPI scale in [0, 1]; 0 equals plain conversion.
        presim_steps: SRP tau / COS rho pre-simulation steps (added to the latency).
        levels: thresholds theta/2^i of the multi-threshold neuron (``mth-diff``).
        signed: allow negative spikes in the differential-coding neurons.
        ecm: run other nonlinear layers between spiking layers (tanh, LayerNorm, GELU, ...) as
            expectation-compensation units (analog, non-spiking outputs) instead of raising.
        calib_batch_size: batch size for calibration forward passes.
    """

    T: int = 32
    method: str = "max"
    threshold: str | None = None
    granularity: str = "layer"
    neuron: str | None = None
    v0: float | None = None
    fire: str = "ge"
    readout: str = "mean"
    carry: str | None = None
    alpha: float = 0.5
    presim_steps: int = 4
    levels: int = 4
    signed: bool = True
    ecm: bool = False
    calib_batch_size: int = 1024

    def __post_init__(self) -> None:
        if int(self.T) != self.T or self.T < 1:
            raise ValueError(f"ConversionSpec: T must be a positive integer, got {self.T!r}")
        base = self.method.split(":", 1)[0]
        if base not in _PRESETS or (base == "percentile") != (":" in self.method):
            raise ValueError(f"ConversionSpec: unknown method {self.method!r}; choose one of {METHODS}")
        if base == "percentile":
            parse_threshold(self.method)
        if self.threshold is not None:
            parse_threshold(self.threshold)
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"ConversionSpec: granularity must be one of {GRANULARITIES}, got {self.granularity!r}")
        if self.neuron is not None and self.neuron not in NEURONS:
            raise ValueError(f"ConversionSpec: neuron must be one of {NEURONS}, got {self.neuron!r}")
        if self.fire not in FIRE_MODES:
            raise ValueError(f"ConversionSpec: fire must be one of {FIRE_MODES}, got {self.fire!r}")
        if self.readout != "mean":
            raise ValueError(f"ConversionSpec: readout must be 'mean', got {self.readout!r}")
        if self.carry not in (None, "crpi"):
            raise ValueError(f"ConversionSpec: carry must be None or 'crpi', got {self.carry!r}")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"ConversionSpec: alpha must lie in [0, 1], got {self.alpha!r}")
        if int(self.presim_steps) != self.presim_steps or self.presim_steps < 1:
            raise ValueError(f"ConversionSpec: presim_steps must be a positive integer, got {self.presim_steps!r}")
        if int(self.levels) != self.levels or self.levels < 1:
            raise ValueError(f"ConversionSpec: levels must be a positive integer, got {self.levels!r}")
        r = self.resolved()
        if self.carry == "crpi" and (r["neuron"] not in CRPI_NEURONS or r["presim"] is not None):
            raise ValueError("ConversionSpec: carry='crpi' needs the sequential 'if' neuron without pre-simulation "
                             "(method max/percentile/qcfs/opi) or a differential-coding neuron (method dcgs, neuron "
                             f"if-diff/mth-diff), got method {self.method!r}, neuron {r['neuron']!r}")
        if r["presim"] is not None and r["neuron"] != "if":
            raise ValueError(f"ConversionSpec: method {self.method!r} needs neuron 'if', got {r['neuron']!r}")

    def resolved(self) -> dict[str, Any]:
        """The effective settings after applying the method preset and overrides."""
        base = self.method.split(":", 1)[0]
        preset = dict(_PRESETS[base])
        if base == "percentile":
            preset["threshold"] = self.method
        neuron = self.neuron or preset["neuron"]
        coding = "diff" if neuron.endswith("-diff") else "rate"
        v0 = self.v0 if self.v0 is not None else (0.0 if neuron == "mth-diff" else 0.5)
        return {
            "T": int(self.T), "method": self.method, "threshold": self.threshold or preset["threshold"],
            "granularity": self.granularity, "neuron": neuron, "coding": coding, "v0": float(v0),
            "fire": self.fire, "readout": self.readout, "carry": self.carry, "alpha": float(self.alpha),
            "presim": preset.get("presim"), "presim_steps": int(self.presim_steps),
            "levels": int(self.levels) if neuron == "mth-diff" else 1, "signed": bool(self.signed),
            "ecm": bool(self.ecm),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _learned_threshold(module: nn.Module | None) -> torch.Tensor | None:
    if isinstance(module, (QCFS, ClipReLU)):
        return module.lam.detach().clone()
    return None


def convert(ann: nn.Module, spec: ConversionSpec | None = None, calib_data: Any = None,
            thresholds: dict[str, torch.Tensor] | None = None) -> SpikingModel:
    """Convert ``ann`` into a :class:`SpikingModel` following ``spec``.

    ``calib_data``: calibration inputs (Tensor/ndarray ``[N, ...]`` or an iterable of batches), needed by
    calibrated thresholds (``max``, ``percentile``) and by plain-ReLU sites under ``learned``.
    ``thresholds``: site -> theta from an earlier conversion (``snn.thresholds``); rebuilds that SNN without
    calibration data (e.g. when loading a saved converted policy).
    """
    spec = spec or ConversionSpec()
    if not isinstance(spec, ConversionSpec):
        raise ValueError(f"spec must be a ConversionSpec, got {type(spec).__name__}")
    settings = spec.resolved()
    prepared = prepare(ann, ecm=spec.ecm)
    gm = prepared.gm
    kind, _ = parse_threshold(settings["threshold"])
    if thresholds is not None:
        missing = sorted(set(prepared.sites) - set(thresholds))
        if missing:
            raise ValueError(f"convert(): thresholds lack activation sites {missing}; this network has sites "
                             f"{list(prepared.sites)}")
        snn = SpikingModel(prepared, {k: torch.as_tensor(v) for k, v in thresholds.items()}, settings)
        snn.spec = spec
        return snn
    thresholds = {}
    need_calib = []
    for name, node in prepared.sites.items():
        module = gm.get_submodule(node.target) if node.op == "call_module" else None
        lam = _learned_threshold(module) if kind == "learned" else None
        if lam is not None:
            thresholds[name] = lam
        else:
            need_calib.append(name)
    if need_calib:
        if calib_data is None:
            why = ("its threshold method is " + repr(settings["threshold"])) if kind != "learned" else \
                "they are plain ReLUs without a learned QCFS/ClipReLU lambda"
            raise ValueError(f"convert(): activation sites {need_calib} need calib_data because {why}; pass "
                             "calib_data=<Tensor [N, ...] of typical inputs> (e.g. states from rollouts)")
        stat_method = settings["threshold"] if kind != "learned" else "max"
        n_levels = settings["T"] * (2 ** settings["levels"] if settings["neuron"] == "mth-diff" else 1)
        stats = ActivationStats(stat_method, settings["granularity"], n_levels)
        _collect(gm, prepared, need_calib, calib_data, stats, spec.calib_batch_size)
        for name in need_calib:
            dtype = next(gm.parameters()).dtype if any(True for _ in gm.parameters()) else torch.float32
            thresholds[name] = fix_dead(stats.threshold(name).to(dtype))
    snn = SpikingModel(prepared, thresholds, settings)
    snn.spec = spec
    return snn


@torch.no_grad()
def _collect(gm, prepared, names, calib_data, stats: ActivationStats, batch_size: int) -> None:
    """Run the (BN-folded) ANN on the calibration data and record the outputs of the named sites."""
    import torch.fx as fx

    wanted = {prepared.sites[n]: n for n in names}
    param = next(iter(gm.parameters()), None)

    class _Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n in wanted:
                stats.update(wanted[n], self.env[n.args[0]] if stats.wants_input else out)
            return out

    rec = _Recorder(gm)
    for batch in iter_batches(calib_data, batch_size):
        if param is not None and batch.is_floating_point():
            batch = batch.to(param.dtype)
        rec.run(batch)
