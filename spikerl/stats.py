"""Few-seed statistics for RL comparisons (Agarwal et al., "Deep RL at the Edge of the Statistical Precipice",
NeurIPS 2021): the interquartile mean, percentile-bootstrap confidence intervals and the probability of
improvement.

- IQM: the mean of the middle 50% of the runs, ``scipy.stats.trim_mean(x, 0.25)`` (robust to one
  collapsed seed, less noisy than the median).
- Confidence interval: the 95% percentile bootstrap over runs. Runs are resampled with replacement
  within their own group (one group per (env, variant); for a two-variant statistic each variant is
  resampled on its own), which is the stratified bootstrap of Agarwal et al. applied per task.
- Probability of improvement: P(X > Y) = 1/(n m) sum_i sum_j S(x_i, y_j) with S = 1 if x_i > y_j,
  1/2 on ties, 0 otherwise (the Mann-Whitney U statistic over n m), with the same bootstrap interval.

Built on ``scipy.stats.bootstrap`` rather than ``rliable``: scipy is already installed with the
project's dependencies, its bootstrap takes several independent samples (the stratification needed
here), and rliable would add arch, seaborn and pandas for three functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = ["Interval", "iqm", "iqm_interval", "probability_of_improvement", "improvement_interval"]

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def format(self, digits: int = 1) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _sample(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} needs a non-empty sample of finite returns, got {list(values)!r}")
    return x


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: the mean after cutting 25% of the values from each end (``trim_mean(x, 0.25)``)."""
    return sps.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)


def probability_of_improvement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                               axis: int = -1) -> np.ndarray | float:
    """P(X > Y) over all pairs of runs, ties counted 1/2. Vectorised over a leading batch axis (for the bootstrap)."""
    a = np.moveaxis(np.asarray(x, dtype=float), axis, -1)[..., :, None]
    b = np.moveaxis(np.asarray(y, dtype=float), axis, -1)[..., None, :]
    return ((a > b) + 0.5 * (a == b)).mean(axis=(-2, -1))


def _interval(samples: tuple[np.ndarray, ...], statistic, seed: int, resamples: int) -> tuple[float, float]:
    if all(len(s) == 1 for s in samples):  # nothing to resample: the interval is the point
        value = float(statistic(*[s[None, :] for s in samples], axis=-1)[0])
        return value, value
    # a sample of one run resamples to itself: hold it fixed and resample the others (scipy needs two or more)
    varied = [i for i, s in enumerate(samples) if len(s) > 1]

    def with_fixed(*drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        full = list(samples)
        for i, d in zip(varied, drawn, strict=True):
            full[i] = d
        return statistic(*full, axis=axis)

    res = sps.bootstrap([samples[i] for i in varied], with_fixed, n_resamples=resamples,
                        confidence_level=CONFIDENCE, method="percentile", vectorized=True, paired=False,
                        random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm_interval(values: Sequence[float], seed: int = 0, resamples: int = RESAMPLES) -> Interval:
    """IQM of the runs' returns with its 95% percentile-bootstrap interval (runs resampled with replacement)."""
    x = _sample(values, "iqm_interval")
    low, high = _interval((x,), iqm, seed, resamples)
    return Interval(float(iqm(x)), low, high)


def improvement_interval(x: Sequence[float], y: Sequence[float], seed: int = 0,
                         resamples: int = RESAMPLES) -> Interval:
    """P(X > Y) with its 95% bootstrap interval, X's and Y's runs resampled independently (stratified)."""
    a, b = _sample(x, "improvement_interval (first variant)"), _sample(y, "improvement_interval (second variant)")
    low, high = _interval((a, b), probability_of_improvement, seed, resamples)
    return Interval(float(probability_of_improvement(a, b)), low, high)
