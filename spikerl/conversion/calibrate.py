"""Threshold calibration: activation statistics of the ANN's activation sites over calibration data.

Statistics are global over all calibration samples (no EMA): ``max`` is the largest activation and
``percentile:<p>`` the p-th percentile (linear interpolation, as ``numpy.quantile``/``torch.quantile``) of
the concatenated activations, at one of three granularities:

    layer    one scalar per site
    channel  one value per channel (dim 1): shape [C, 1, ..., 1]  (for [B, N] sites: per feature)
    neuron   one value per unit: shape [C, *rest]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

GRANULARITIES = ("layer", "channel", "neuron")


def parse_threshold(method: str) -> tuple[str, float | None]:
    """'max' -> ('max', None); 'percentile:99.9' -> ('percentile', 99.9); 'learned' -> ('learned', None)."""
    if method in ("max", "learned"):
        return method, None
    if method.startswith("percentile:"):
        try:
            p = float(method.split(":", 1)[1])
        except ValueError:
            p = float("nan")
        if not 0 < p <= 100:
            raise ValueError(f"threshold {method!r}: the percentile must be a number in (0, 100], "
                             "e.g. 'percentile:99.9'")
        return "percentile", p
    raise ValueError(f"unknown threshold method {method!r}; use 'max', 'percentile:<p>' (e.g. "
                     "'percentile:99.9') or 'learned' (QCFS / ClipReLU lambda)")


def iter_batches(data, batch_size: int = 1024) -> Iterable[torch.Tensor]:
    """Calibration batches from a Tensor / ndarray ``[N, ...]`` or an iterable of batches (or tuples)."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise ValueError(f"calib_data must be a non-empty batch [N, ...], got shape {tuple(data.shape)}")
        yield from data.split(batch_size)
        return
    n = 0
    for item in data:
        if isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        if not isinstance(item, torch.Tensor):
            raise ValueError(f"calib_data batches must be tensors or arrays, got {type(item).__name__}")
        n += 1
        yield item
    if n == 0:
        raise ValueError("calib_data is empty; pass states/images [N, ...] or an iterable of batches")


def _reduce_dims(x: torch.Tensor, granularity: str) -> tuple[int, ...]:
    if granularity == "layer":
        return tuple(range(x.dim()))
    if granularity == "neuron" or x.dim() == 2:
        return (0,)
    return (0, *range(2, x.dim()))


def _stat_shape(x: torch.Tensor, granularity: str) -> tuple[int, ...]:
    if granularity == "layer":
        return ()
    if granularity == "neuron":
        return tuple(x.shape[1:])
    return (x.shape[1], *([1] * (x.dim() - 2)))


class ActivationStats:
    """Accumulates max or the values needed for a percentile, per site, at a granularity."""

    def __init__(self, method: str, granularity: str) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        self.kind, self.p = parse_threshold(method)
        if self.kind == "learned":
            self.kind = "max"
        self.granularity = granularity
        self._max: dict[str, torch.Tensor] = {}
        self._values: dict[str, list[torch.Tensor]] = {}
        self._shape: dict[str, tuple[int, ...]] = {}

    def update(self, site: str, act: torch.Tensor) -> None:
        act = act.detach()
        self._shape[site] = _stat_shape(act, self.granularity)
        if self.kind == "max":
            m = act.amax(dim=_reduce_dims(act, self.granularity))
            self._max[site] = m if site not in self._max else torch.maximum(self._max[site], m)
        else:
            # move the granularity axes first, flatten the reduced ones: [units, samples]
            if self.granularity == "layer":
                vals = act.reshape(1, -1)
            elif self.granularity == "neuron" or act.dim() == 2:
                vals = act.reshape(act.shape[0], -1).T
            else:
                vals = act.transpose(0, 1).reshape(act.shape[1], -1)
            self._values.setdefault(site, []).append(vals.cpu())

    def threshold(self, site: str) -> torch.Tensor:
        if site not in self._shape:
            raise KeyError(f"no calibration statistics for activation site {site!r}")
        if self.kind == "max":
            stat = self._max[site]
        else:
            vals = torch.cat(self._values[site], dim=1).double().numpy()
            stat = torch.from_numpy(np.quantile(vals, self.p / 100.0, axis=1))
        return stat.reshape(self._shape[site])

    def sites(self) -> list[str]:
        return list(self._shape)


def fix_dead(theta: torch.Tensor) -> torch.Tensor:
    """Thresholds of units that never activated (<= 0) get the site's largest threshold (1.0 if none)."""
    if bool((theta > 0).all()):
        return theta
    top = theta.max()
    fill = top if bool(top > 0) else torch.ones_like(top)
    return torch.where(theta > 0, theta, fill)
