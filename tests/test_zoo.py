"""The policy zoo: scripts/build_zoo.py end to end on tiny trained runs, and every committed zoo bundle loading
without torch and replaying its recorded returns."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from blocked_imports import import_guard, run_blocked
from cli_helpers import ENV, run_cli, subprocess_env, tiny
from script_loader import load_script
from spikerl.agents.training import evaluate_run

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(p.parent for p in (ROOT / "zoo").glob("*/*/manifest.json"))
STEPS = "300"

#: runs in a process where torch and Stable-Baselines3 cannot be imported; argv: MODE BUNDLE EPISODES
CHILD = import_guard("torch", "stable_baselines3") + textwrap.dedent("""
    import json, sys
    mode, bundle, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "replay":
        from spikerl.agents.deploy import evaluate_bundle
        r = evaluate_bundle(bundle, episodes=episodes, write=False)
        out = {"returns": r["returns"], "lengths": r["lengths"], "energy_nj": r["energy_nj"]}
    else:
        from spikerl.cli import main
        out = {"code": main(["evaluate", bundle, "--video", "--episodes", str(episodes), "--quiet"])}
    out["heavy_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "stable_baselines3"))
    print(json.dumps(out))
""")


def without_torch(tmp_path: Path, mode: str, bundle: Path, episodes: int) -> dict:
    """Run CHILD where importing torch or stable_baselines3 raises ImportError; its JSON answer."""
    _, out = run_blocked(tmp_path, CHILD, mode, bundle, episodes, blocked=("torch", "stable_baselines3"), timeout=600)
    assert out.pop("heavy_modules") == []
    return out


def assert_replays(tmp_path: Path, bundle: Path) -> None:
    """The bundle, run where torch cannot be imported, plays its recorded episodes again: the same returns,
    lengths and energy per decision (the runtime and the env are deterministic for a given seed)."""
    recorded = json.loads((bundle / "evaluation.json").read_text())
    replay = without_torch(tmp_path, "replay", bundle, len(recorded["returns"]))
    assert replay == {"returns": recorded["returns"], "lengths": recorded["lengths"],
                      "energy_nj": recorded["energy_nj"]}


def _final(run_dir: Path) -> float:
    with (run_dir / "evaluations.csv").open() as fh:
        return float(list(csv.DictReader(fh))[-1]["mean_return"])


def _train(capsys, campaign: Path, preset: str, seed: int, has_proxy: bool) -> Path:
    run_dir = campaign / "lanes" / ENV / ENV / preset / f"s{seed}"
    code, _, err = run_cli(capsys, "train", preset, "--env", ENV, "--steps", STEPS, "--seed", str(seed),
                           "--run-dir", str(run_dir), "--quiet", "--set", *tiny(has_proxy))
    assert code == 0, err
    return run_dir


def test_build_zoo_end_to_end(tmp_path, capsys):
    campaign, zoo = tmp_path / "campaign", tmp_path / "zoo"
    proxies = [_train(capsys, campaign, "td3-proxy-lif", seed, True) for seed in (0, 1)]
    ann = _train(capsys, campaign, "td3-ann", 0, False)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_zoo.py"), "--campaign", str(campaign),
                          "--zoo", str(zoo), "--episodes", "3", "--calib-steps", "300", "--rounds", "2",
                          "--calls", "50"], capture_output=True, text=True, timeout=900,
                         env={**subprocess_env(), "MUJOCO_GL": "egl"})
    assert res.returncode == 0, res.stderr[-3000:]

    snn = zoo / ENV / "td3-proxy-lif"
    best = max(proxies, key=lambda d: (_final(d), -int(d.name[1:])))
    card = json.loads((snn / "zoo.json").read_text())
    assert card["source"]["run"] == str(best.relative_to(campaign))
    assert sorted(c["seed"] for c in card["source"]["chosen_among"]) == [0, 1]
    assert (snn / "training_config.yaml").read_bytes() == (best / "config.yaml").read_bytes()
    assert (snn / "curve.csv").read_bytes() == (best / "evaluations.csv").read_bytes()
    assert (snn / "curve.png").read_bytes()[:4] == b"\x89PNG"
    recorded = json.loads((snn / "evaluation.json").read_text())
    assert recorded["runtime"] == "spikerl.runtime" and recorded["seed"] == int(best.name[1:]) + 100
    assert len(recorded["returns"]) == 3 and recorded["energy_nj"] > 0
    # the bundle is the chosen run's actor: it plays that run's own evaluation episodes
    run_eval = evaluate_run(best, episodes=3)
    assert recorded["lengths"] == run_eval["lengths"]
    assert recorded["returns"] == pytest.approx(run_eval["returns"], rel=1e-6)

    converted = zoo / ENV / "td3-ann-dcgs32"
    card = json.loads((converted / "zoo.json").read_text())
    assert card["source"]["run"] == str(ann.relative_to(campaign))
    assert (card["conversion"]["method"], card["conversion"]["T"], card["conversion"]["carry"]) == ("dcgs", 32, None)
    manifest = json.loads((converted / "manifest.json").read_text())
    assert manifest["T"] == 32 and {layer["neuron"] for layer in manifest["layers"]} == {"diff-conv"}
    assert card["ann"]["returns"] == evaluate_run(ann, episodes=3)["returns"]
    for name in ("td3-proxy-lif", "td3-ann-dcgs32"):
        lat = json.loads((zoo / ENV / name / "zoo.json").read_text())["latency"]
        assert lat["median_us"] > 0 and len(lat["round_medians_us"]) == 2
        assert lat["protocol"]["measured_together"] == ["td3-ann", "td3-ann-dcgs32", "td3-proxy-lif"]
    assert card["ann"]["latency"]["median_us"] > 0
    for folder in (snn, converted):
        assert sum(p.stat().st_size for p in folder.iterdir()) < 1_000_000
        assert_replays(tmp_path, folder)

    readme = (zoo / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith(f"| {ENV} |")]
    assert [r.split(" | ")[1] for r in rows] == [f"[`td3-proxy-lif`]({ENV}/td3-proxy-lif)",
                                                 f"[`td3-ann-dcgs32`]({ENV}/td3-ann-dcgs32)", "`td3-ann` (not shipped)"]
    assert f"| {recorded['mean_return']:.1f} ± {recorded['std_return']:.1f} | {recorded['energy_nj']:.2f} |" in rows[0]
    # the README's and the docs' zoo block (scripts/gen_docs.py): the same rows, policies named by folder
    block = load_script("gen_docs").fill_blocks("<!-- zoo:start -->\n<!-- zoo:end -->\n", tmp_path)
    shown = [line for line in block.splitlines() if line.startswith(f"| {ENV} |")]
    assert [r.split(" | ")[1] for r in shown] == [f"`{ENV}/td3-proxy-lif`", f"`{ENV}/td3-ann-dcgs32`",
                                                  "`td3-ann` (not shipped)"]
    assert [r.split(" | ")[2:] for r in shown] == [r.split(" | ")[2:] for r in rows]

    # spikerl evaluate BUNDLE --video where torch cannot be imported
    assert without_torch(tmp_path, "video", snn, 1) == {"code": 0}
    assert sorted(p.name for p in (snn / "videos").iterdir()) == ["eval-episode-0.mp4"]

    # the campaign folder lost the shipped policy's run (started again): the rebuild keeps that policy, since the
    # run left ends no higher, lists it among the candidates, and times it again beside the rebuilt converted SNN
    shutil.rmtree(snn / "videos")
    shipped = {f: (snn / f).read_bytes() for f in ("manifest.json", "weights.npz", "evaluation.json")}
    before = json.loads((snn / "zoo.json").read_text())
    shutil.rmtree(best)
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_zoo.py"), "--campaign", str(campaign),
                          "--zoo", str(zoo), "--episodes", "3", "--calib-steps", "300", "--rounds", "2",
                          "--calls", "50"], capture_output=True, text=True, timeout=900,
                         env={**subprocess_env(), "MUJOCO_GL": "egl"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "the shipped td3-proxy-lif (seed" in res.stdout
    assert {f: (snn / f).read_bytes() for f in shipped} == shipped
    after = json.loads((snn / "zoo.json").read_text())
    assert after["source"]["run"] == before["source"]["run"]
    assert {(c["seed"], c.get("shipped", False)) for c in after["source"]["chosen_among"]} == {
        (int(best.name[1:]), True), (1 - int(best.name[1:]), False)}
    assert after["latency"]["protocol"]["measured_together"] == ["td3-ann", "td3-ann-dcgs32", "td3-proxy-lif"]
    assert after["latency"]["round_medians_us"] != before["latency"]["round_medians_us"]  # timed again


@pytest.mark.parametrize("bundle", COMMITTED, ids=[str(p.relative_to(ROOT / "zoo")) for p in COMMITTED])
def test_committed_zoo_bundle_replays_its_returns_without_torch(tmp_path, bundle):
    card = json.loads((bundle / "zoo.json").read_text())
    assert card["bundle_bytes"] < 1_000_000 and sum(p.stat().st_size for p in bundle.iterdir()) < 1_000_000
    assert len(json.loads((bundle / "evaluation.json").read_text())["returns"]) == 10
    assert_replays(tmp_path, bundle)


def test_a_shipped_policy_whose_run_was_lost_stays_until_a_run_ends_higher():
    keep_shipped = load_script("build_zoo").keep_shipped
    shipped = {"seed": 0, "steps": 300_000, "final_return": 2000.0}
    lower, higher = {"seed": 1, "steps": 300_000, "final_return": 1500.0}, {"seed": 2, "steps": 300_000,
                                                                           "final_return": 2500.0}
    entry = {**shipped, "shipped": True}
    assert keep_shipped([], shipped) == (True, [entry])
    assert keep_shipped([lower], shipped) == (True, [entry, lower])
    assert keep_shipped([higher, lower], shipped) == (False, [higher, entry, lower])
    # its run is still in the folder: chosen among the folder's runs as usual
    assert keep_shipped([lower, {**shipped}], shipped) == (False, [lower, shipped])
    assert keep_shipped([lower], None) == (False, [lower])
