"""Threshold calibration: activation statistics of the ANN's activation sites over calibration data.

Statistics are global over all calibration samples (no EMA): ``max`` is the largest activation and
``percentile:<p>`` the p-th percentile (linear interpolation, as ``numpy.quantile``/``torch.quantile``) of
the concatenated activations, at one of three granularities:

    layer    one scalar per site
    channel  one value per channel (dim 1): shape [C, 1, ..., 1]  (for [B, N] sites: per feature)
    neuron   one value per unit: shape [C, *rest]

``gauss_iter`` (DCGS threshold iteration, Huang et al. ICML 2025) instead records the mean mu and the biased
variance sigma^2 of the activation's *input* and iterates theta <- theta k1(mu, sigma, theta, n) to the fixed
point, the minimiser of E[(ReLU(x) - theta clip(floor(n x/theta + 1/2), 0, n)/n)^2] for x ~ N(mu, sigma^2):

    c_i = (2i-1) theta/(2n),  E_i = erf((c_i - mu)/(sqrt(2) sigma)),  i = 1..n
    k1 = [(mu/theta)(1 - sum E_i/n) + sigma/(sqrt(pi/2) theta) sum exp(-(c_i-mu)^2/(2 sigma^2))/n]
         / (1 - sum (2i-1) E_i / n^2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

GRANULARITIES = ("layer", "channel", "neuron")


def parse_threshold(method: str) -> tuple[str, float | None]:
    """'max' -> ('max', None); 'percentile:99.9' -> ('percentile', 99.9); 'learned' -> ('learned', None)."""
    if method in ("max", "learned", "gauss_iter"):
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
                     "'percentile:99.9'), 'gauss_iter' (DCGS) or 'learned' (QCFS / ClipReLU lambda)")


def gauss_k1(mu: torch.Tensor, sigma: torch.Tensor, theta: torch.Tensor, n: int) -> torch.Tensor:
    """The DCGS update factor k1(mu, sigma, theta, n) (module docstring); the fixed point has k1 = 1."""
    i = torch.arange(1, n + 1, dtype=torch.float64).view(n, *([1] * theta.dim()))
    c = (2 * i - 1) * theta / (2 * n)
    e = torch.erf((c - mu) / (math.sqrt(2.0) * sigma))
    g = torch.exp(-((c - mu) ** 2) / (2 * sigma ** 2))
    num = (mu / theta) * (1 - e.sum(0) / n) + sigma / (math.sqrt(math.pi / 2) * theta) * g.sum(0) / n
    return num / (1 - ((2 * i - 1) * e).sum(0) / n ** 2)


def gauss_iter_threshold(mu: torch.Tensor, sigma: torch.Tensor, n: int, tol: float = 1e-11,
                         max_iter: int = 2000) -> torch.Tensor:
    """Fixed point theta = theta k1(theta) of the DCGS threshold iteration, elementwise over units.

    The plain iteration converges linearly and slowly for large n (DCGS's fixed 100 steps may stop short);
    this uses Steffensen's acceleration of it (falling back to the plain steps where the acceleration is not
    usable) and stops when the relative change is below ``tol``. Units with sigma = 0 give NaN."""
    mu = torch.as_tensor(mu).double()
    sigma = torch.as_tensor(sigma).double()
    theta = torch.ones_like(mu)

    def step(t: torch.Tensor) -> torch.Tensor:
        return t * gauss_k1(mu, sigma, t, n)

    for _ in range(max_iter):
        t1 = step(theta)
        t2 = step(t1)
        denom = t2 - 2 * t1 + theta
        acc = theta - (t1 - theta) ** 2 / denom
        new = torch.where(torch.isfinite(acc) & (acc > 0) & (denom != 0), acc, t2)
        change = ((new - theta).abs() / theta.abs())
        theta = new
        if bool(((change < tol) | ~torch.isfinite(change)).all()):
            break
    return theta


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

    def __init__(self, method: str, granularity: str, n_levels: int = 1) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        self.kind, self.p = parse_threshold(method)
        self.n_levels = int(n_levels)
        self._moments: dict[str, list[torch.Tensor]] = {}
        if self.kind == "learned":
            self.kind = "max"
        self.granularity = granularity
        self._max: dict[str, torch.Tensor] = {}
        self._values: dict[str, list[torch.Tensor]] = {}
        self._shape: dict[str, tuple[int, ...]] = {}

    @property
    def wants_input(self) -> bool:
        """gauss_iter uses the pre-activation (the activation's input), the others its output."""
        return self.kind == "gauss_iter"

    def update(self, site: str, act: torch.Tensor) -> None:
        act = act.detach()
        if self.kind == "gauss_iter":
            self._shape[site] = _stat_shape(act, self.granularity)
            dims = _reduce_dims(act, self.granularity)
            a = act.double()
            s1 = a.sum(dim=dims)
            cnt = torch.tensor(float(a.numel() // s1.numel()), dtype=torch.float64)
            mom = [cnt, s1, (a * a).sum(dim=dims)]
            old = self._moments.get(site)
            self._moments[site] = mom if old is None else [o + m for o, m in zip(old, mom, strict=True)]
            return
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
        elif self.kind == "gauss_iter":
            cnt, s1, s2 = self._moments[site]
            mu = s1 / cnt
            sigma = torch.sqrt(torch.clamp(s2 / cnt - mu * mu, min=0.0))
            stat = gauss_iter_threshold(mu, sigma, self.n_levels)
            stat = torch.where(torch.isfinite(stat), stat, torch.zeros_like(stat))
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
