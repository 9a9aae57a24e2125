"""``spikerl compare``: grouping, mean ± std over seeds, curves on the common step grid, CLI output; unfinished
runs are marked and left out of final and best return; unreadable runs are skipped with one warning line each."""

import json

import numpy as np
import pytest
import yaml
from spikerl.agents.callbacks import EvalRecord, write_evaluations

from spikerl.cli import main
from spikerl.compare import compare_runs, load_run, markdown_table, mean_curve, summary_rows, variant_name


def make_run(root, name, env, cfg, evals, steps_per_s=None, evaluation=None, status="completed"):
    """A run directory; ``status=None`` leaves out metrics.json (a run still training, or killed)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"env": env, **cfg}))
    # written by the trainer's own writer, so the columns are the ones a real run has
    write_evaluations(d / "evaluations.csv", [EvalRecord(s, float(m), 0.0, 1.0 + i) for i, (s, m) in enumerate(evals)])
    if status is not None:
        metrics = {"status": status, **({} if steps_per_s is None else {"steps_per_second": steps_per_s})}
        (d / "metrics.json").write_text(json.dumps(metrics))
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


def test_unfinished_runs_are_marked_and_not_in_final_return(tmp_path, capsys):
    runs = tmp_path / "runs"
    make_run(runs, "p0", "Hopper-v5", {**PROXY, "seed": 0}, [(0, 1), (5000, 100)])
    make_run(runs, "p1", "Hopper-v5", {**PROXY, "seed": 1}, [(0, 1), (5000, 300)])
    live = make_run(runs, "p2", "Hopper-v5", {**PROXY, "seed": 2}, [(0, 1), (2000, 900)], status=None)  # training
    make_run(runs, "p3", "Hopper-v5", {**PROXY, "seed": 3}, [(0, 1), (1000, 700)], status="interrupted")
    table = markdown_table([load_run(p) for p in sorted(runs.iterdir())])
    assert "| Hopper-v5 | td3-proxy-lif | 4 (2 unfinished) | 200.0 ± 100.0 | 200.0 ± 100.0 |" in table
    assert f"- `{live}`: no metrics.json (still training, or stopped before the end); last evaluation at step 2000" \
        in table
    assert f"- `{runs / 'p3'}`: metrics.json status interrupted; last evaluation at step 1000" in table
    assert main(["compare", str(runs), "--out", str(tmp_path / "out")]) == 0
    assert "4 runs (2 unfinished: not in final and best return); wrote" in capsys.readouterr().out


BROKEN = {
    "config-yaml-syntax": ("config.yaml", b"env: [Hopper\n", "config.yaml: not readable YAML"),
    "config-binary": ("config.yaml", b"\x89PNG\r\n\x1a\n\x00", "config.yaml: not a YAML text file (not UTF-8)"),
    "config-a-list": ("config.yaml", b"- env\n", "config.yaml: expected a YAML mapping of config keys, got a list"),
    "evaluations-not-numbers": ("evaluations.csv", b"step,mean_return,std_return,wall_time_s\n100,abc,0,1\n",
                                "evaluations.csv: line 2: expected numbers in step and mean_return, got '100' and "
                                "'abc'"),
    "evaluations-no-columns": ("evaluations.csv", b"x,y\n1,2\n", "evaluations.csv: no step or mean_return column"),
    "metrics-a-list": ("metrics.json", b"[1, 2]", "metrics.json: expected a JSON object, got a list"),
    "metrics-not-json": ("metrics.json", b"{status", "metrics.json: not readable JSON"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_run_is_skipped_with_one_warning_line(name, tmp_path, capsys):
    file, content, needle = BROKEN[name]
    runs = tmp_path / "runs"
    for seed in range(2):
        make_run(runs, f"good{seed}", "Hopper-v5", {**PROXY, "seed": seed}, [(0, 1), (5000, 100 + seed)])
    bad = make_run(runs, "bad", "Hopper-v5", {**ANN, "seed": 0}, [(0, 1), (5000, 50)])
    (bad / file).write_bytes(content)
    assert main(["compare", str(runs), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"spikerl compare: warning: skipped {bad}: {bad / needle}")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "2 runs; wrote" in captured.out
    text = (tmp_path / "out" / "comparison.md").read_text()
    assert "| Hopper-v5 | td3-proxy-lif | 2 | 100.5 ± 0.5 |" in text and "td3-ann" not in text
    with pytest.warns(UserWarning, match="compare skipped"):  # the library warns when no on_skip is given
        compare_runs([runs], tmp_path / "out2")


def test_compare_errors_are_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    bad = make_run(runs, "bad", "Hopper-v5", PROXY, [(0, 1)])
    (bad / "metrics.json").write_text("[]")
    assert main(["compare", str(runs), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"spikerl compare: error: no readable run under {runs}: all 1 run directories were skipped\n")
    good = make_run(runs, "good", "Hopper-v5", PROXY, [(0, 1)])
    (tmp_path / "taken").write_text("a file")
    assert main(["compare", str(good), "--out", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err == (f"spikerl compare: error: --out {tmp_path / 'taken'} is a file; give a folder "
                                       "for comparison.md, comparison.json and curves.png\n")
    assert (tmp_path / "taken").read_text() == "a file"
