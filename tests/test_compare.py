"""``spikerl compare``: grouping, mean ± std over seeds, curves on the common step grid, CLI output."""

import json

import numpy as np
import pytest
import yaml
from spikerl.agents.callbacks import EvalRecord, write_evaluations

from spikerl.cli import main
from spikerl.compare import compare_runs, load_run, mean_curve, summary_rows, variant_name


def make_run(root, name, env, cfg, evals, steps_per_s=None, evaluation=None):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"env": env, **cfg}))
    # written by the trainer's own writer, so the columns are the ones a real run has
    write_evaluations(d / "evaluations.csv", [EvalRecord(s, float(m), 0.0, 1.0 + i) for i, (s, m) in enumerate(evals)])
    if steps_per_s is not None:
        (d / "metrics.json").write_text(json.dumps({"steps_per_second": steps_per_s}))
    if evaluation is not None:
        (d / "evaluation.json").write_text(json.dumps(evaluation))
    return d


PROXY = {"algo": "td3", "target": "proxy", "policy": "SNNPolicy", "actor": {"neuron": "lif"}}
ANN = {"algo": "td3", "target": "soft", "policy": "MlpPolicy"}


def test_variant_names_follow_presets():
    assert variant_name(PROXY) == "td3-proxy-lif"
    assert variant_name(ANN) == "td3-ann"
    assert variant_name({"algo": "sac", "target": "soft", "actor": {"neuron": "clif"}}) == "sac-clif"
    assert variant_name({"preset": "custom", **ANN}) == "custom"


def test_summary_mean_std_over_seeds(tmp_path):
    make_run(tmp_path, "a0", "Hopper-v5", {**PROXY, "seed": 0}, [(0, 10), (5000, 300), (10000, 200)], 20.0,
             {"firing_rate": 0.3, "energy_nj": 7.0})
    make_run(tmp_path, "a1", "Hopper-v5", {**PROXY, "seed": 1}, [(0, 20), (5000, 100), (10000, 400)], 30.0,
             {"firing_rate": 0.5, "energy_nj": 9.0})
    make_run(tmp_path, "b0", "Hopper-v5", {**ANN, "seed": 0}, [(0, 5), (5000, 50)], 80.0)
    rows = {r["variant"]: r for r in summary_rows([load_run(p) for p in sorted(tmp_path.iterdir())])}
    proxy = rows["td3-proxy-lif"]
    assert proxy["seeds"] == 2
    assert proxy["final"] == pytest.approx((300.0, 100.0, 2))  # finals 200, 400
    assert proxy["best"] == pytest.approx((350.0, 50.0, 2))  # bests 300, 400
    assert proxy["steps_per_s"] == pytest.approx((25.0, 5.0, 2))
    assert proxy["energy_nj"] == pytest.approx((8.0, 1.0, 2))
    assert rows["td3-ann"]["final"] == pytest.approx((50.0, 0.0, 1))
    assert rows["td3-ann"]["firing_rate"][2] == 0


def test_mean_curve_uses_steps_all_runs_reached(tmp_path):
    r0 = load_run(make_run(tmp_path, "r0", "E", PROXY, [(0, 0), (10, 10), (20, 20)]))
    r1 = load_run(make_run(tmp_path, "r1", "E", PROXY, [(0, 2), (15, 17)]))
    x, m, s = mean_curve([r0, r1])
    assert x.tolist() == [0, 10, 15]
    # r1 interpolated at 10: 2 + (17-2)*10/15 = 12; r0 at 15: 15
    assert m.tolist() == pytest.approx([1.0, 11.0, 16.0])
    assert s.tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_compare_writes_table_and_plot_and_cli(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed in range(3):
        make_run(runs, f"p{seed}", "Hopper-v5", {**PROXY, "seed": seed}, [(0, 1), (5000, 100 + seed)])
        make_run(runs, f"q{seed}", "Walker2d-v5", {**ANN, "seed": seed}, [(0, 1), (5000, 50 + seed)])
    md, png, recs = compare_runs([runs], tmp_path / "out")
    text = md.read_text()
    assert "| Hopper-v5 | td3-proxy-lif | 3 | 101.0 ± 0.8 |" in text
    assert "| Walker2d-v5 | td3-ann | 3 |" in text
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["compare", str(runs / "p0"), str(runs / "p1"), "--out", str(tmp_path / "o2")]) == 0
    assert "td3-proxy-lif" in (tmp_path / "o2" / "comparison.md").read_text()
    assert main(["compare", str(tmp_path / "nothing-here")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert np.isnan(load_run(make_run(tmp_path, "empty", "E", PROXY, [])).final)
