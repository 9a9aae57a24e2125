"""spikerl.stats against statistics written out here: an exhaustive bootstrap and pairwise counts."""

import itertools

import numpy as np
import pytest

from spikerl.stats import improvement_interval, iqm, iqm_interval, probability_of_improvement

SAMPLE = [120.0, 480.0, 910.0, 1530.0, 3020.0]  # five seeds' final returns, one of them far off


def _iqm_by_hand(values):
    """Sort, drop floor(n/4) from each end, average the rest."""
    x = sorted(values)
    cut = len(x) // 4
    return float(np.mean(x[cut:len(x) - cut]))


def test_iqm_drops_a_quarter_from_each_end():
    assert iqm(SAMPLE) == pytest.approx(_iqm_by_hand(SAMPLE))
    eight = [1, 2, 3, 4, 5, 6, 7, 100]
    assert iqm(eight) == pytest.approx(np.mean([3, 4, 5, 6]))


def _exact_bootstrap_iqm(values):
    """The bootstrap distribution of the IQM, enumerated: all n^n resamples, equally likely."""
    return np.sort([_iqm_by_hand(r) for r in itertools.product(values, repeat=len(values))])


def test_iqm_interval_matches_the_exhaustive_bootstrap():
    exact = _exact_bootstrap_iqm(SAMPLE)  # 3125 resamples
    got = iqm_interval(SAMPLE, seed=3, resamples=20_000)
    assert got.value == pytest.approx(_iqm_by_hand(SAMPLE))
    # the Monte-Carlo 2.5% / 97.5% quantiles of 20k draws fall within +-0.75 percentage points of the exact ones
    # (the standard error of a 2.5% quantile of 20k draws is 0.11 points, so this is a >6-sigma band)
    assert np.quantile(exact, 0.0175) <= got.low <= np.quantile(exact, 0.0325)
    assert np.quantile(exact, 0.9675) <= got.high <= np.quantile(exact, 0.9825)
    assert got.low < got.value < got.high


def test_probability_of_improvement_counts_pairs_and_ties():
    x, y = [3.0, 5.0, 7.0], [1.0, 5.0, 9.0]
    # pairs x > y: 3>1, 5>1, 7>1, 7>5 = 4; ties: 5=5 -> 0.5; total 9 pairs
    assert probability_of_improvement(x, y) == pytest.approx(4.5 / 9)
    assert probability_of_improvement(y, x) == pytest.approx(1 - 4.5 / 9)


def test_improvement_interval_resamples_each_variant_on_its_own():
    x, y = [300.0, 900.0, 1500.0], [100.0, 200.0, 1000.0]
    exact = np.sort([probability_of_improvement(a, b) for a in itertools.product(x, repeat=3)
                     for b in itertools.product(y, repeat=3)])  # 729 equally likely resample pairs
    got = improvement_interval(x, y, seed=1, resamples=20_000)
    assert got.value == pytest.approx(probability_of_improvement(x, y))
    assert np.quantile(exact, 0.0175) <= got.low <= np.quantile(exact, 0.0325)
    assert np.quantile(exact, 0.9675) <= got.high <= np.quantile(exact, 0.9825)


def test_single_run_gives_a_point_interval_and_bad_input_is_refused():
    one = iqm_interval([42.0])
    assert (one.value, one.low, one.high) == (42.0, 42.0, 42.0)
    with pytest.raises(ValueError, match="finite"):
        iqm_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        improvement_interval([], [1.0])


def test_a_single_run_is_held_fixed_while_the_other_variant_is_resampled():
    """One seed against several (a variant still short of its later seeds): the single run resamples to itself,
    so the interval is the bootstrap of the other variant's runs alone against that fixed value."""
    from scipy.stats import bootstrap

    one, many = 500.0, [100.0, 500.0, 600.0, 1000.0]

    def beats_one(b, axis=-1):  # P(many > one), ties 1/2
        return ((b > one) + 0.5 * (b == one)).mean(axis=axis)

    ref = bootstrap((np.array(many),), beats_one, n_resamples=5000, confidence_level=0.95, method="percentile",
                    vectorized=True, random_state=np.random.default_rng(4)).confidence_interval
    got = improvement_interval(many, [one], seed=4, resamples=5000)
    assert got.value == pytest.approx(0.625)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high))
    flipped = improvement_interval([one], many, seed=4, resamples=5000)
    assert flipped.value == pytest.approx(1 - 0.625)
    assert (flipped.low, flipped.high) == pytest.approx((1 - ref.high, 1 - ref.low))
