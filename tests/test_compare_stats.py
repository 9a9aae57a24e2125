"""spikerl.compare_stats and ``spikerl compare``'s statistics: the budget, returns read at it, IQM intervals and
probabilities of improvement (checked against spikerl.stats and by hand), and the curves' bootstrap bands (checked
against an exhaustive bootstrap)."""

import itertools
import json

import numpy as np
import pytest
from test_compare import ANN, PROXY, make_run

from spikerl.cli import main
from spikerl.compare import load_run
from spikerl.compare_stats import (
    budget_steps,
    group_stats,
    improvements,
    mean_band,
    return_at,
    seed_curves,
    stats_json,
    stats_markdown,
)
from spikerl.stats import improvement_interval, iqm_interval, probability_of_improvement

LIF = {"algo": "td3", "target": "soft", "policy": "SNNPolicy", "actor": {"neuron": "lif"}}
# four seeds' curves per variant, evaluated every 10k steps; proxy seed 3 is still training (reached 20k)
PROXY_CURVES = [[(0, 10), (10000, 400), (20000, 900), (30000, 1500)],
                [(0, 12), (10000, 300), (20000, 700), (30000, 1100)],
                [(0, 9), (10000, 500), (20000, 1300), (30000, 3020)],
                [(0, 11), (10000, 350), (20000, 600)]]
ANN_CURVES = [[(0, 10), (10000, 450), (20000, 800), (30000, 900)],
              [(0, 8), (10000, 200), (20000, 500), (30000, 700)],
              [(0, 13), (10000, 250), (20000, 650), (30000, 600)]]


def _runs(tmp_path, curves=(("p", PROXY, PROXY_CURVES), ("a", ANN, ANN_CURVES)), env="Hopper-v5"):
    runs = []
    for prefix, cfg, group in curves:
        for seed, evals in enumerate(group):
            runs.append(load_run(make_run(tmp_path, f"{env}-{prefix}{seed}", env, {**cfg, "seed": seed}, evals)))
    return runs


def test_return_at_interpolates_between_evaluations_and_never_extrapolates(tmp_path):
    run = load_run(make_run(tmp_path, "r", "E", PROXY, [(0, 10), (10000, 400), (20000, 900)]))
    assert return_at(run, 10000) == 400.0
    assert return_at(run, 12500) == 400.0 + (900 - 400) * 0.25
    assert return_at(run, 20000) == 900.0
    assert return_at(run, 20001) is None
    assert return_at(load_run(make_run(tmp_path, "empty", "E", PROXY, [])), 0) is None


def test_the_budget_is_the_largest_step_every_run_of_the_env_reached(tmp_path):
    runs = _runs(tmp_path) + _runs(tmp_path, (("w", ANN, [[(0, 1), (50000, 2)]]),), env="Walker2d-v5")
    assert budget_steps(runs) == {"Hopper-v5": 20000.0, "Walker2d-v5": 50000.0}
    assert budget_steps(runs, at=15000) == {"Hopper-v5": 15000.0, "Walker2d-v5": 15000.0}


def test_group_statistics_at_the_budget_are_those_of_spikerl_stats(tmp_path):
    groups = {g.variant: g for g in group_stats(_runs(tmp_path))}
    proxy, ann = groups["td3-proxy-lif"], groups["td3-ann"]
    # at 20k (the step the still-training seed reached), never at the finished seeds' 30k
    assert proxy.step == ann.step == 20000.0
    assert proxy.returns == [900.0, 700.0, 1300.0, 600.0] and ann.returns == [800.0, 500.0, 650.0]
    assert (proxy.mean, proxy.std) == pytest.approx((875.0, np.std([900, 700, 1300, 600])))
    assert proxy.iqm == iqm_interval([900.0, 700.0, 1300.0, 600.0])
    assert proxy.iqm.value == pytest.approx((700 + 900) / 2)  # 4 runs: the middle two
    assert ann.iqm == iqm_interval([800.0, 500.0, 650.0])
    assert not proxy.left_out and not ann.left_out


def test_a_given_step_leaves_out_the_runs_that_did_not_reach_it(tmp_path):
    groups = {g.variant: g for g in group_stats(_runs(tmp_path), at=25000)}
    proxy = groups["td3-proxy-lif"]
    assert [r.seed for r in proxy.runs] == [0, 1, 2] and [r.seed for r in proxy.left_out] == [3]
    assert proxy.returns == [1200.0, 900.0, 2160.0]  # halfway between the 20k and 30k evaluations
    assert groups["td3-ann"].returns == [850.0, 600.0, 625.0]


def test_probability_of_improvement_per_pair_with_its_interval(tmp_path):
    runs = _runs(tmp_path, (("p", PROXY, PROXY_CURVES), ("a", ANN, ANN_CURVES), ("l", LIF, ANN_CURVES[:2])))
    groups = group_stats(runs)
    pairs = improvements(groups)
    # every pair once, X the variant with the higher IQM: proxy 800 > ann 650 = lif 650 (ties in name order)
    assert [(p.x, p.y) for p in pairs] == [("td3-proxy-lif", "td3-ann"), ("td3-proxy-lif", "td3-lif"),
                                           ("td3-ann", "td3-lif")]
    first = pairs[0]
    # proxy [900, 700, 1300, 600] vs ann [800, 500, 650]: wins 900>all 3, 700>500,650, 1300>all 3, 600>500 = 9 of 12
    assert first.probability.value == pytest.approx(9 / 12)
    assert first.probability == improvement_interval([900.0, 700.0, 1300.0, 600.0], [800.0, 500.0, 650.0])
    assert (first.n_x, first.n_y, first.step) == (4, 3, 20000.0)
    chosen = improvements(groups, pairs=[("td3-ann", "td3-proxy-lif"), ("td3-proxy-lif", "td3-sac")])
    assert [(p.x, p.y) for p in chosen] == [("td3-ann", "td3-proxy-lif")]  # an absent variant is skipped
    assert chosen[0].probability.value == pytest.approx(probability_of_improvement([800, 500, 650],
                                                                                   [900, 700, 1300, 600]))


def _exact_band(rows):
    """The bootstrap distribution of the mean over rows, enumerated: all n^n resamples of whole rows."""
    rows = np.asarray(rows, dtype=float)
    n = len(rows)
    return np.sort([rows[list(idx)].mean(axis=0) for idx in itertools.product(range(n), repeat=n)], axis=0)


def test_mean_band_matches_the_exhaustive_bootstrap_and_resamples_whole_curves():
    curves = np.array([[100.0, 200.0, 50.0], [400.0, 800.0, 60.0], [250.0, 500.0, 900.0], [1000.0, 2000.0, 70.0]])
    mean, low, high = mean_band(curves, seed=5, resamples=20_000)
    np.testing.assert_array_equal(mean, curves.mean(axis=0))
    exact = _exact_band(curves)  # 256 resamples
    # Monte-Carlo 2.5% / 97.5% quantiles of 20k draws within +-0.75 points of the exact ones (as tests/test_stats.py)
    assert np.all(np.quantile(exact, 0.0175, axis=0) <= low) and np.all(low <= np.quantile(exact, 0.0325, axis=0))
    assert np.all(np.quantile(exact, 0.9675, axis=0) <= high) and np.all(high <= np.quantile(exact, 0.9825, axis=0))
    # the second step is twice the first in every curve; one resample of whole curves keeps that in the band
    np.testing.assert_allclose(low[1], 2 * low[0], rtol=1e-12)
    np.testing.assert_allclose(high[1], 2 * high[0], rtol=1e-12)
    one = mean_band(curves[:1])
    assert all(np.array_equal(part, curves[0]) for part in one)


def test_seed_curves_share_the_steps_every_run_reached(tmp_path):
    steps, curves = seed_curves(_runs(tmp_path, (("p", PROXY, PROXY_CURVES),)))
    assert steps.tolist() == [0, 10000, 20000]
    np.testing.assert_array_equal(curves[:, -1], [900, 700, 1300, 600])


def test_json_and_markdown_hold_every_figure(tmp_path):
    groups = group_stats(_runs(tmp_path), at=25000)
    pairs = improvements(groups)
    data = json.loads(json.dumps(stats_json(groups, pairs, 25000, root=tmp_path)))
    proxy = next(g for g in data["groups"] if g["variant"] == "td3-proxy-lif")
    iv = iqm_interval([1200.0, 900.0, 2160.0])
    assert proxy["iqm"] == {"value": iv.value, "low": iv.low, "high": iv.high}
    assert [r["return"] for r in proxy["runs"]] == [1200.0, 900.0, 2160.0]
    assert proxy["left_out"] == [{"path": "Hopper-v5-p3", "seed": 3, "reached": 20000.0}]
    assert data["steps"] == {"Hopper-v5": 25000.0} and data["at"] == 25000
    text = stats_markdown(groups, pairs)
    assert f"| Hopper-v5 | td3-proxy-lif | 25000 | 3 | 1420.0 ± {np.std([1200, 900, 2160]):.1f} | {iv.format(1)} | "\
           "seed 3 (20000) |" in text
    pi = improvement_interval([1200.0, 900.0, 2160.0], [850.0, 600.0, 625.0])
    assert f"| Hopper-v5 | 25000 | td3-proxy-lif | td3-ann | {pi.format(2)} | 3, 3 |" in text


def test_compare_cli_writes_the_statistics_and_takes_a_budget(tmp_path, capsys):
    runs = tmp_path / "runs"
    _runs(runs)
    assert main(["compare", str(runs), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert data["at"] is None and data["steps"] == {"Hopper-v5": 20000.0}
    ann = next(g for g in data["groups"] if g["variant"] == "td3-ann")
    assert ann["iqm"]["value"] == iqm_interval([800.0, 500.0, 650.0]).value
    text = (tmp_path / "out" / "comparison.md").read_text()
    assert "## Returns at the largest step every run of the env reached" in text and "P(X > Y)" in text
    printed = capsys.readouterr().out  # rich wraps the table cells to the terminal width
    assert "IQM" in printed and "Returns at the largest step" in printed

    assert main(["compare", str(runs), "--out", str(tmp_path / "at"), "--at", "25000"]) == 0
    data = json.loads((tmp_path / "at" / "comparison.json").read_text())
    assert data["at"] == 25000 and [g["seeds"] for g in data["groups"]] == [3, 3]
    assert "## Returns at step 25000 (runs that did not reach it are left out)" in (
        tmp_path / "at" / "comparison.md").read_text()

    capsys.readouterr()
    assert main(["compare", str(runs), "--out", str(tmp_path / "far"), "--at", "40000"]) == 2
    assert capsys.readouterr().err.strip() == ("spikerl compare: error: --at 40000: no run reached that step (the "
                                               "furthest evaluation of any run is at 30000); choose a smaller step")
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(runs), "--at", "0"])
    assert exc.value.code == 2 and "--at: expected a positive integer, got '0'" in capsys.readouterr().err
