"""scripts/campaign_report.py on a fake campaign folder: every trial and its curve in campaign.json, the variants at
the budgets their trials reached (figures of spikerl.stats), the same files twice, and a gone or smaller folder
leaving the published files alone."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from script_loader import load_script
from spikerl.agents.callbacks import EvalRecord, write_evaluations

from spikerl.run_layout import RunLayout
from spikerl.stats import improvement_interval, iqm_interval

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"td3-proxy-lif": 3.0, "td3-ann": 2.0, "td3-lif": 1.0}  # slope of each variant's synthetic curve


report_script = load_script("campaign_report")


def _return(preset: str, seed: int, step: int) -> float:
    """A distinct, exactly representable return for each trial and step."""
    return PRESETS[preset] * step / 1000 + 37.0 * seed


def make_trial(campaign: Path, env: str, preset: str, seed: int, reached: int, budget: int = 300_000) -> Path:
    """A trial folder as the campaign writes it; evaluated every 25k steps up to ``reached``."""
    d = campaign / "lanes" / env / env / preset / f"s{seed}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": preset, "env": env, "seed": seed,
                                                   "total_timesteps": budget}))
    steps = range(0, reached + 1, 25_000)
    write_evaluations(d / "evaluations.csv", [EvalRecord(s, _return(preset, seed, s), 5.0, 1.0) for s in steps])
    if reached >= budget:
        (d / "metrics.json").write_text(json.dumps({"status": "completed", "total_timesteps": budget,
                                                    "steps_per_second": 20.0}))
    else:
        (d / "progress.json").write_text(json.dumps({"steps": reached + 1234, "total_timesteps": budget}))
    return d


@pytest.fixture()
def campaign(tmp_path) -> Path:
    root = tmp_path / "campaign"
    for preset in PRESETS:
        for seed in (0, 1):
            make_trial(root, "Hopper-v5", preset, seed, 300_000)
    make_trial(root, "Hopper-v5", "td3-proxy-lif", 2, 125_000)  # a later seed, still training
    make_trial(root, "HalfCheetah-v5", "td3-proxy-lif", 0, 300_000)
    make_trial(root, "HalfCheetah-v5", "td3-ann", 0, 75_000)
    return root


def _budget(report: dict, env: str, step: int) -> dict:
    return next(b for b in report["envs"][env]["budgets"] if b["step"] == step)


def test_report_holds_every_trial_and_the_variants_at_common_budgets(tmp_path, campaign):
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    report = json.loads((out / "campaign.json").read_text())

    assert len(report["trials"]) == 9
    late = next(t for t in report["trials"] if t["env"] == "Hopper-v5" and t["seed"] == 2)
    assert late == {"env": "Hopper-v5", "preset": "td3-proxy-lif", "seed": 2,
                    "path": "lanes/Hopper-v5/Hopper-v5/td3-proxy-lif/s2", "status": "unfinished",
                    "steps": 126_234, "budget": 300_000, "steps_per_s": None,
                    "curve": {"step": list(range(0, 125_001, 25_000)),
                              "mean_return": [_return("td3-proxy-lif", 2, s) for s in range(0, 125_001, 25_000)],
                              "std_return": [5.0] * 6},
                    "diagnostics": None, "source": "folder"}  # no TensorBoard log
    done = next(t for t in report["trials"] if t["env"] == "Hopper-v5" and t["preset"] == "td3-ann")
    assert (done["status"], done["steps"], len(done["curve"]["step"])) == ("completed", 300_000, 13)

    hopper = report["envs"]["Hopper-v5"]
    assert hopper["common_budget"] == 100_000  # the still-training seed reached 125k
    assert [b["step"] for b in hopper["budgets"]] == list(report_script.BUDGETS)
    at_300k = _budget(report, "Hopper-v5", 300_000)
    proxy = at_300k["groups"][0]
    assert proxy["variant"] == "td3-proxy-lif" and proxy["seeds"] == 2
    assert [r["return"] for r in proxy["runs"]] == [900.0, 937.0]
    assert proxy["left_out"] == [{"path": "lanes/Hopper-v5/Hopper-v5/td3-proxy-lif/s2", "seed": 2,
                                  "reached": 125_000.0}]
    iv = iqm_interval([900.0, 937.0])
    assert proxy["iqm"] == {"value": iv.value, "low": iv.low, "high": iv.high}
    assert proxy["return"] == {"mean": 918.5, "std": 18.5}
    # at 50k every Hopper trial is in, the still-training seed too
    at_50k = _budget(report, "Hopper-v5", 50_000)
    assert [r["return"] for r in at_50k["groups"][0]["runs"]] == [150.0, 187.0, 224.0]
    pairs = {(p["x"], p["y"]): p for p in at_50k["improvement"]}
    assert sorted(pairs) == [("td3-proxy-lif", "td3-ann"), ("td3-proxy-lif", "td3-lif")]
    pi = improvement_interval([150.0, 187.0, 224.0], [100.0, 137.0])
    assert pairs[("td3-proxy-lif", "td3-ann")]["probability"] == {"value": pi.value, "low": pi.low, "high": pi.high}

    cheetah = report["envs"]["HalfCheetah-v5"]
    assert cheetah["common_budget"] == 50_000 and [b["step"] for b in cheetah["budgets"]] == list(
        report_script.BUDGETS)
    assert _budget(report, "HalfCheetah-v5", 100_000)["improvement"] == []  # td3-ann has no trial there

    text = (out / "campaign.md").read_text()
    assert "| Hopper-v5 | td3-proxy-lif | 2 | unfinished | 126234 | 224 | 374 | – | – | – | – | 449 | 449 |" in text
    assert f"| 300k | td3-proxy-lif | 2 | 918 ± 18 | {iv.value:.0f} [{iv.low:.0f}, {iv.high:.0f}] | s2 (125000) |" \
        in text
    assert "| 100k (headline) | td3-proxy-lif | 3 |" in text and "![campaign learning curves](campaign.png)" in text
    assert (out / "campaign.png").read_bytes()[:4] == b"\x89PNG"


def test_a_stopped_trial_counts_the_steps_of_its_newest_checkpoint(tmp_path, campaign):
    """A stop writes a checkpoint of the step it reached after the last progress line: the trial got that far."""
    trial = campaign / "lanes/Hopper-v5/Hopper-v5/td3-proxy-lif/s2"  # progress.json says 126,234
    checkpoints = RunLayout(trial).checkpoints
    checkpoints.mkdir()
    for step in (120_000, 126_871):
        (checkpoints / f"step_{step:010d}.json").write_text(json.dumps({"step": step}))
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    trials = json.loads((out / "campaign.json").read_text())["trials"]
    assert next(t["steps"] for t in trials if t["env"] == "Hopper-v5" and t["seed"] == 2) == 126_871


def test_the_same_folder_gives_the_same_files(tmp_path, campaign):
    first, second = tmp_path / "a", tmp_path / "b"
    assert report_script.main(["--campaign", str(campaign), "--out", str(first)]) == 0
    assert report_script.main(["--campaign", str(campaign), "--out", str(second)]) == 0
    for name in ("campaign.json", "campaign.md", "campaign.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_gone_folder_leaves_the_published_files_alone(tmp_path, campaign, capsys):
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(tmp_path / "gone"), "--out", str(out)]) == 1
    assert "holds no trials and there is no" in capsys.readouterr().err
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert report_script.main(["--campaign", str(tmp_path / "gone"), "--out", str(out)]) == 0
    assert "left as they are" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_smaller_folder_than_the_published_report_needs_replace(tmp_path, campaign, capsys):
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    before = (out / "campaign.json").read_bytes()
    restarted = tmp_path / "restarted"
    make_trial(restarted, "Hopper-v5", "td3-proxy-lif", 0, 50_000)
    capsys.readouterr()
    assert report_script.main(["--campaign", str(restarted), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Hopper-v5/td3-proxy-lif/0: 300000 recorded, 51234 in the folder" in err
    assert "HalfCheetah-v5/td3-ann/0: 76234 recorded, absent in the folder" in err
    assert (out / "campaign.json").read_bytes() == before
    assert report_script.main(["--campaign", str(restarted), "--out", str(out), "--replace"]) == 0
    report = json.loads((out / "campaign.json").read_text())
    # the folder's trial replaces the recorded one; the unfinished trial it lost is gone; completed ones carry over
    restarted_trial = next(t for t in report["trials"] if t["source"] == "folder")
    assert (restarted_trial["env"], restarted_trial["preset"], restarted_trial["seed"], restarted_trial["steps"]) == (
        "Hopper-v5", "td3-proxy-lif", 0, 51_234)
    assert not any(t["preset"] == "td3-ann" and t["env"] == "HalfCheetah-v5" for t in report["trials"])
    assert len(report["trials"]) == 7
    assert np.isfinite(report["envs"]["Hopper-v5"]["budgets"][0]["groups"][0]["return"]["mean"])


def test_completed_trials_of_a_lost_folder_carry_over_and_are_not_trained_again(tmp_path, campaign, capsys):
    """A folder lost and started again: the completed trials campaign.json records stay in the report (curves as
    published, marked recorded) and --todo leaves them out of the campaign's plan; unfinished ones are redone."""
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    published = json.loads((out / "campaign.json").read_text())
    capsys.readouterr()

    assert report_script.main(["--out", str(out), "--todo", "Hopper-v5", "td3-proxy-lif,td3-ann,td3-lif", "0-2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2 td3-proxy-lif,td3-ann,td3-lif"]
    assert report_script.main(["--out", str(out), "--todo", "HalfCheetah-v5", "td3-proxy-lif,td3-ann", "0"]) == 0
    assert capsys.readouterr().out.splitlines() == ["0 td3-ann"]

    lost = tmp_path / "new-folder"  # the campaign started again: HalfCheetah td3-ann s0 from scratch
    make_trial(lost, "HalfCheetah-v5", "td3-ann", 0, 25_000)
    assert report_script.main(["--campaign", str(lost), "--out", str(out), "--replace"]) == 0
    report = json.loads((out / "campaign.json").read_text())
    sources = {(t["env"], t["preset"], t["seed"]): t["source"] for t in report["trials"]}
    assert sources[("HalfCheetah-v5", "td3-ann", 0)] == "folder"
    assert ("Hopper-v5", "td3-proxy-lif", 2) not in sources  # unfinished when published: not carried
    carried = [t for t in report["trials"] if t["source"] == "recorded"]
    assert len(carried) == 7
    old = {(t["env"], t["preset"], t["seed"]): t for t in published["trials"]}
    for t in carried:
        assert t == old[(t["env"], t["preset"], t["seed"])] | {"source": "recorded"}
    # the carried curves still enter the statistics: Hopper at 300k compares 2 seeds per variant
    hopper = _budget(report, "Hopper-v5", 300_000)
    assert {g["variant"]: g["seeds"] for g in hopper["groups"]} == {"td3-proxy-lif": 2, "td3-ann": 2, "td3-lif": 2}
    hc = _budget(report, "HalfCheetah-v5", 300_000)["groups"][0]
    assert (hc["variant"], hc["return"]["mean"]) == ("td3-proxy-lif", _return("td3-proxy-lif", 0, 300_000))
    assert "| Hopper-v5 | td3-lif | 1 | completed (recorded) |" in (out / "campaign.md").read_text()
    # and the same inputs give the same files (the report is its own record now)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert report_script.main(["--campaign", str(lost), "--out", str(out)]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_block_shows_each_env_at_its_headline_budget(tmp_path, campaign):
    gen_docs = _gen_docs()
    block = "<!-- bench:campaign:start -->\n<!-- bench:campaign:end -->\n"
    assert "Not published yet" in gen_docs.fill_blocks(block, tmp_path)  # no benchmarks/campaign.json there
    assert report_script.main(["--campaign", str(campaign), "--out", str(tmp_path / "benchmarks")]) == 0
    text = gen_docs.fill_blocks(block, tmp_path)
    report = json.loads((tmp_path / "benchmarks" / "campaign.json").read_text())
    ann = _budget(report, "Hopper-v5", 100_000)["groups"][1]
    assert ann["variant"] == "td3-ann" and [r["return"] for r in ann["runs"]] == [200.0, 237.0]
    iv = iqm_interval([200.0, 237.0])
    assert "**Hopper-v5** at 100k steps (every trial reached it):" in text
    assert f"| td3-ann | 2 | 218 ± 18 | {iv.value:.0f} [{iv.low:.0f}, {iv.high:.0f}] |" in text
    # the longest trials' returns follow the headline: Hopper's seed 2 stopped at 125k, seeds 0-1 reached 300k
    at_300k = [_return("td3-proxy-lif", s, 300_000) for s in (0, 1)]
    assert (f"At 300k steps, the largest budget (only the trials that reached it): td3-proxy-lif "
            f"{np.mean(at_300k):.0f} ± {np.std(at_300k):.0f} (2 trials), td3-ann ") in text
    # HalfCheetah's td3-ann trial stopped at 75k: its 50k budget is the headline; only td3-proxy-lif reached 300k
    assert "**HalfCheetah-v5** at 50k steps (every trial reached it):" in text
    assert (f"At 300k steps, the largest budget (only the trials that reached it): td3-proxy-lif "
            f"{_return('td3-proxy-lif', 0, 300_000):.0f} (1 trial).") in text


def _log_scalars(tb: Path, start: int, points: dict[str, list[tuple[int, float]]]) -> None:
    """One TensorBoard event file as one start of a run writes it, named by its start time ``start``."""
    from torch.utils.tensorboard import SummaryWriter

    scratch = tb / f"writing-{start}"
    with SummaryWriter(log_dir=str(scratch)) as writer:
        for tag, series in points.items():
            for step, value in series:
                writer.add_scalar(tag, value, step)
    (written,) = scratch.glob("events.out.tfevents.*")
    written.rename(tb / f"events.out.tfevents.{start}.host.{start % 1000}.0")
    scratch.rmdir()


def test_diagnostics_follow_the_run_across_its_resumes(tmp_path, campaign):
    """A run resumed from its 50k checkpoint logs 50k..120k again: those values replace the first start's."""
    tb = campaign / "lanes" / "Hopper-v5" / "Hopper-v5" / "td3-proxy-lif" / "s2" / "tb"
    tb.mkdir()
    _log_scalars(tb, 1796000000, {"snn/rate_hidden0": [(10_000, 0.5), (50_000, 0.4), (60_000, 0.9)],
                                  "train/proxy_loss": [(10_000, 0.2), (60_000, 7.0)]})
    _log_scalars(tb, 1796100000, {"snn/rate_hidden0": [(50_000, 0.3), (100_000, 0.2), (120_000, 0.1)],
                                  "train/proxy_loss": [(55_000, 0.05), (120_000, 0.04)],
                                  "rollout/ep_rew_mean": [(120_000, 1.0)]})  # not a diagnostic
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    trial = next(t for t in json.loads((out / "campaign.json").read_text())["trials"]
                 if t["env"] == "Hopper-v5" and t["seed"] == 2)
    d = trial["diagnostics"]
    assert d["step"] == 120_000
    assert d["last"] == pytest.approx({"snn/rate_hidden0": 0.1, "train/proxy_loss": 0.04})
    # at 50k: the resumed start's value (logged again at 50k); the first start's 60k values are gone
    assert d["at"]["50000"] == pytest.approx({"snn/rate_hidden0": 0.3, "train/proxy_loss": 0.2})
    assert d["at"]["100000"] == pytest.approx({"snn/rate_hidden0": 0.2, "train/proxy_loss": 0.05})
    assert set(d["at"]) == {"50000", "100000"}
    row = "| Hopper-v5 | td3-proxy-lif | 2 | 120000 | 0.100 | – | – | – | – | – | 0.040 | – | – |"
    assert row in (out / "campaign.md").read_text()


def test_targets_compare_the_iqms_at_the_headline_and_largest_budgets_and_quote_the_fork(tmp_path, campaign):
    out = tmp_path / "bench"
    assert report_script.main(["--campaign", str(campaign), "--out", str(out)]) == 0
    report = json.loads((out / "campaign.json").read_text())
    t = report["targets"]
    got = {(c["env"], c["step"], c["y"]): (c["headline"], c["n_x"], c["n_y"], c["met"]) for c in t["comparisons"]}
    # Hopper: headline 100k (seed 2 stopped at 125k), largest 300k; HalfCheetah: headline 50k, and at 300k only
    # td3-proxy-lif, so nothing to compare there; no td3-lif trial on HalfCheetah
    assert got == {("Hopper-v5", 100_000, "td3-ann"): (True, 3, 2, True),
                   ("Hopper-v5", 100_000, "td3-lif"): (True, 3, 2, True),
                   ("Hopper-v5", 300_000, "td3-ann"): (False, 2, 2, True),
                   ("Hopper-v5", 300_000, "td3-lif"): (False, 2, 2, True),
                   ("HalfCheetah-v5", 50_000, "td3-ann"): (True, 1, 1, True)}
    hop = next(c for c in t["comparisons"] if (c["env"], c["step"], c["y"]) == ("Hopper-v5", 100_000, "td3-ann"))
    assert hop["iqm_x"] == pytest.approx(iqm_interval([_return("td3-proxy-lif", s, 100_000) for s in (0, 1, 2)]).value)
    fork = {(f["env"], f["variant"], f["step"]): f for f in t["fork"]}
    assert len(fork) == 8
    row = fork[("Hopper-v5", "td3-proxy-lif", 100_000)]
    assert (row["fork_mean"], row["fork_std"], row["n"]) == (408.0, 95.0, 3)
    assert row["mean"] == pytest.approx(np.mean([_return("td3-proxy-lif", s, 100_000) for s in (0, 1, 2)]))
    assert fork[("HalfCheetah-v5", "td3-ann", 300_000)]["n"] == 0  # its only trial stopped at 75k
    at_300k = np.mean([_return("td3-proxy-lif", s, 300_000) for s in (0, 1)])
    assert t["stretch"] == {"env": "Hopper-v5", "variant": "td3-proxy-lif", "step": 300_000, "target": 1786.0,
                            "n": 2, "mean": pytest.approx(at_300k), "met": False}
    md = (out / "campaign.md").read_text()
    assert "| Hopper-v5 | 100k (headline) | td3-proxy-lif 337 ≥ td3-ann 218 | 3, 2 | yes |" in md
    assert "| HalfCheetah-v5 | td3-ann | 300k | – | 0 | 7243 ± 406 |" in md
    assert f"reaches the fork's mean of 1786 at 300k steps: {at_300k:.0f} over 2 trials: not met." in md


def test_a_target_falls_short_when_the_proxy_iqm_is_lower():
    def group(variant, value, n=2):
        return {"variant": variant, "seeds": n, "iqm": {"value": value}, "return": {"mean": value, "std": 1.0}}

    groups = [group("td3-proxy-lif", 300.0), group("td3-ann", 301.0), group("td3-lif", 300.0)]
    envs = {"Hopper-v5": {"common_budget": 100_000, "budgets": [{"step": 100_000, "groups": groups}]}}
    t = report_script.targets(envs)
    assert [(c["y"], c["met"]) for c in t["comparisons"]] == [("td3-ann", False), ("td3-lif", True)]
    assert t["stretch"] == {"env": "Hopper-v5", "variant": "td3-proxy-lif", "step": 300_000, "target": 1786.0, "n": 0,
                            "mean": None, "met": None}
