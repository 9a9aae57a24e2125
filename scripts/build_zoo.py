#!/usr/bin/env python
"""The policy zoo: per env, the best trained spiking policy and a converted ANN, as bundles that run without torch.

    python scripts/build_zoo.py --campaign DIR [--env ENV] [--zoo DIR]

For each env of the campaign (``DIR/lanes/...``, the run directories ``bash scripts/campaign.sh`` writes; or only
``--env``), among its completed trials:

- ``ZOO/<env>/td3-proxy-lif/``: the td3-proxy-lif run with the highest final evaluation return, exported as a
  bundle (``manifest.json``, ``weights.npz``), with ``evaluation.json`` (the deterministic episodes' returns and
  the energy per decision, measured on the bundle runtime, spikerl.runtime, on the run's evaluation seed),
  ``training_config.yaml`` (the run's resolved config), ``curve.csv`` / ``curve.png`` (its evaluations during
  training) and ``zoo.json`` (where it came from, which runs it was chosen among, its batch-1 latency);
- ``ZOO/<env>/td3-ann-dcgs32/``: the env's best td3-ann run converted to an SNN with DCGS at T = 32 (``spikerl
  convert --method dcgs --T 32``: differential coding, multi-threshold neurons, per-neuron thresholds calibrated on
  the ANN's own rollouts), exported and evaluated the same way; its ``zoo.json`` also holds the source ANN's
  evaluation (torch), energy per decision and latency.

A shipped policy whose run the campaign folder no longer holds (a folder lost and started again) stays unless a
completed run there ends higher; it is then timed again beside the rebuilt policies.

Latency: batch-1 decisions of the two bundles (spikerl.runtime) and the ANN actor (torch eager, one thread),
timed in one process in interleaved rounds on observations of one evaluation episode; the median of the round
medians is reported. Then ``ZOO/README.md`` is rewritten from every ``zoo.json`` / ``evaluation.json`` in the zoo.

``spikerl evaluate ZOO/<env>/td3-proxy-lif --out DIR`` replays the recorded episodes without torch (into DIR;
without --out it rewrites the zoo's evaluation.json with the same returns).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SNN_VARIANT = "td3-proxy-lif"
ANN_VARIANT = "td3-ann"
CONVERTED = "td3-ann-dcgs32"
#: spikerl convert's defaults with --method dcgs --T 32 (no carry, per-neuron thresholds)
CONVERSION = {"method": "dcgs", "T": 32, "carry": None, "granularity": "neuron"}
ZOO_FILE = "zoo.json"
EVALUATION_FILE = "evaluation.json"
LATENCY_OBSERVATIONS = 1000


# -- choosing runs ------------------------------------------------------------------------------------------------
def completed_runs(campaign: Path) -> list[Any]:
    """Every completed trial of the campaign (``metrics.json`` status ``completed``) as a ``RunRecord``."""
    from spikerl.compare import find_runs, load_run

    runs = []
    for path in find_runs([campaign / "lanes"]):
        try:
            status = json.loads((path / "metrics.json").read_text()).get("status")
        except (OSError, json.JSONDecodeError):
            continue
        if status == "completed":
            runs.append(load_run(path))
    return runs


def best_run(runs: Sequence[Any], env: str, variant: str) -> tuple[Any | None, list[dict[str, Any]]]:
    """The run of ``variant`` in ``env`` with the highest final evaluation return (ties: the lowest seed), and the
    candidates it was chosen among."""
    pool = sorted((r for r in runs if r.env == env and r.variant == variant and len(r.means)),
                  key=lambda r: (-r.final, r.seed if r.seed is not None else 0))
    candidates = [{"seed": r.seed, "steps": int(r.steps.max()), "final_return": r.final} for r in pool]
    return (pool[0] if pool else None), candidates


def shipped_card(folder: Path) -> dict[str, Any] | None:
    """The ``zoo.json`` of the policy the zoo ships at ``folder``, if any."""
    try:
        card = json.loads((folder / ZOO_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return card if "source" in card else None


def keep_shipped(candidates: list[dict[str, Any]], shipped: dict[str, Any] | None
                 ) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the shipped policy (its source record) stays: its run is no longer in the campaign folder (a folder
    lost and started again) and no completed run there ends higher; and the candidates with it among them."""
    if shipped is None or any(c["seed"] == shipped["seed"] for c in candidates):
        return False, candidates  # its run is in the folder: chosen among the others as usual
    entry = {"seed": shipped["seed"], "steps": shipped["steps"], "final_return": shipped["final_return"],
             "shipped": True}
    pool = sorted([*candidates, entry], key=lambda c: (-c["final_return"], c["seed"] if c["seed"] is not None else 0))
    return pool[0] is entry, pool


def source_record(run: Any, candidates: list[dict[str, Any]], campaign: Path) -> dict[str, Any]:
    path = run.path.relative_to(campaign) if run.path.is_relative_to(campaign) else run.path
    return {"run": str(path), "variant": run.variant, "seed": run.seed, "steps": int(run.steps.max()),
            "final_return": run.final, "chosen_among": candidates,
            "rule": "the highest final evaluation return among the env's completed runs of the variant"}


# -- files --------------------------------------------------------------------------------------------------------
def write_curve(run_dir: Path, folder: Path, title: str) -> None:
    """``curve.csv`` (the run's evaluations.csv) and ``curve.png`` (mean ± std of each evaluation's episodes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shutil.copyfile(run_dir / "evaluations.csv", folder / "curve.csv")
    with (run_dir / "evaluations.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    steps = np.array([float(r["step"]) for r in rows])
    mean = np.array([float(r["mean_return"]) for r in rows])
    std = np.array([float(r["std_return"]) for r in rows])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, mean, linewidth=1.4)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.25, linewidth=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "curve.png", dpi=90, metadata={"Software": None})
    plt.close(fig)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def publish(staged: Path, target: Path) -> None:
    """Put the staged folder at ``target``, replacing an older build of it."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def evaluate_staged(bundle: Path, name: str, episodes: int) -> dict[str, Any]:
    """Evaluate a bundle on the runtime and write its ``evaluation.json`` (``model``: the path inside the zoo)."""
    from spikerl.agents.deploy import evaluate_bundle

    result = evaluate_bundle(bundle, episodes=episodes, write=False)
    result["model"] = name
    (bundle / EVALUATION_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


# -- latency ------------------------------------------------------------------------------------------------------
def episode_observations(bundle: Path) -> np.ndarray:
    """The observations of one evaluation episode of the bundle (at most LATENCY_OBSERVATIONS)."""
    from spikerl.agents.deploy import BundleAgent
    from spikerl.agents.episodes import EVAL_SEED_OFFSET, make_policy_env, run_policy_episodes

    from spikerl.runtime import load_policy

    policy = load_policy(bundle)
    env = policy.manifest["env"]
    seed = int(env.get("seed", 0)) + EVAL_SEED_OFFSET
    seen: list[np.ndarray] = []
    run_policy_episodes(BundleAgent(policy), make_policy_env(env["id"], seed, env.get("kwargs") or {}, None), seed,
                        1, None, seen, LATENCY_OBSERVATIONS)
    return np.concatenate(seen)


def measure_latency(fns: dict[str, Callable[[np.ndarray], Any]], obs: np.ndarray, rounds: int, calls: int
                    ) -> dict[str, dict[str, Any]]:
    """Batch-1 decision latency of each function in µs: ``rounds`` rounds of ``calls`` decisions each, the order of
    the functions rotating from round to round; per function the median of its round medians and their range."""
    names = list(fns)
    for fn in fns.values():  # compile / warm up
        for o in obs[:20]:
            fn(o)
    medians: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, times = fns[name], np.empty(calls)
            for i in range(calls):
                o = obs[i % len(obs)]
                t0 = time.perf_counter_ns()
                fn(o)
                times[i] = time.perf_counter_ns() - t0
            medians[name].append(float(np.median(times)) / 1e3)
    return {n: {"median_us": float(np.median(m)), "round_medians_us": [round(x, 3) for x in m]}
            for n, m in medians.items()}


def machine() -> dict[str, Any]:
    import os
    import platform

    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}


# -- one env ------------------------------------------------------------------------------------------------------
def build_env(campaign: Path, env: str, zoo: Path, runs: Sequence[Any], episodes: int, calib_steps: int,
              rounds: int, calls: int) -> list[Path]:
    """Build ``zoo/<env>/td3-proxy-lif`` and ``zoo/<env>/td3-ann-dcgs32`` (each where its source run exists)."""
    import torch
    from spikerl.agents.conversion import convert_run, export_converted
    from spikerl.agents.deploy import export_run
    from spikerl.agents.training import evaluate_run, load_run_model

    from spikerl.conversion import ConversionSpec
    from spikerl.runtime import load_policy

    out_dir = zoo / env
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: dict[str, tuple[Path, dict[str, Any]]] = {}
    kept: dict[str, dict[str, Any]] = {}  # shipped policies that stay: their zoo.json, updated below

    def choose(variant: str, folder: str) -> tuple[Any | None, list[dict[str, Any]]]:
        run, pool = best_run(runs, env, variant)
        card = shipped_card(out_dir / folder)
        keep, pool = keep_shipped(pool, card and card["source"])
        if keep:
            card["source"]["chosen_among"] = pool
            kept[folder] = card
            print(f"build_zoo: {env}: the shipped {folder} (seed {card['source']['seed']}, final return "
                  f"{card['source']['final_return']:.1f}, its run no longer in the campaign folder) stays")
            return None, pool
        return run, pool

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        tmp = Path(tmp)
        snn_run, snn_pool = choose(SNN_VARIANT, SNN_VARIANT)
        if snn_run is not None:
            bundle = export_run(snn_run.path, "bundle", tmp / SNN_VARIANT)
            shutil.copyfile(snn_run.path / "config.yaml", bundle / "training_config.yaml")
            write_curve(snn_run.path, bundle, f"{env} {SNN_VARIANT} seed {snn_run.seed}")
            evaluate_staged(bundle, f"{env}/{SNN_VARIANT}", episodes)
            staged[SNN_VARIANT] = (bundle, {"kind": "directly trained SNN",
                                            "source": source_record(snn_run, snn_pool, campaign)})
        elif SNN_VARIANT not in kept:
            print(f"build_zoo: {env}: no completed {SNN_VARIANT} run; {out_dir / SNN_VARIANT} left as it is")

        ann_run, ann_pool = choose(ANN_VARIANT, CONVERTED)
        ann_actor = None
        if ann_run is not None:
            spec = ConversionSpec(**CONVERSION)
            converted, _ = convert_run(ann_run.path, spec, calib_steps=calib_steps, out=tmp / "converted")
            bundle = export_converted(converted, "bundle", tmp / CONVERTED)
            shutil.copyfile(ann_run.path / "config.yaml", bundle / "training_config.yaml")
            write_curve(ann_run.path, bundle, f"{env} {ANN_VARIANT} seed {ann_run.seed} (before conversion)")
            evaluate_staged(bundle, f"{env}/{CONVERTED}", episodes)
            calibration = json.loads((converted / "converted.json").read_text()).get("calibration")
            ann_eval = evaluate_run(ann_run.path, episodes=episodes)
            model, _cfg, _source = load_run_model(ann_run.path)
            ann_actor = model.actor.eval()
            staged[CONVERTED] = (bundle, {
                "kind": "converted SNN", "source": source_record(ann_run, ann_pool, campaign),
                "conversion": {**CONVERSION, "calibration": calibration,
                               "command": f"spikerl convert RUN --method dcgs --T 32 --calib-steps {calib_steps}"},
                "ann": {key: ann_eval.get(key) for key in ("episodes", "seed", "mean_return", "std_return",
                                                          "returns", "lengths", "energy_nj", "energy")},
            })
        elif CONVERTED not in kept:
            print(f"build_zoo: {env}: no completed {ANN_VARIANT} run; {out_dir / CONVERTED} left as it is")
        if not staged:  # nothing rebuilt: a kept policy's card only gains the candidates it was kept among
            for name, card in kept.items():
                (out_dir / name / ZOO_FILE).write_text(json.dumps(card, indent=2) + "\n")
            return []

        torch.set_num_threads(1)
        # the kept policies are timed again beside the rebuilt ones, so that one env's latencies compare
        policies = {name: load_policy(path) for name, (path, _) in staged.items()}
        policies |= {name: load_policy(out_dir / name) for name in kept}
        fns: dict[str, Callable[[np.ndarray], Any]] = {name: p.act for name, p in policies.items()}
        if ann_actor is not None:
            def ann(o: np.ndarray) -> Any:
                with torch.inference_mode():
                    return ann_actor(torch.from_numpy(o)[None])

            fns[ANN_VARIANT] = ann
        obs = episode_observations(next(iter(staged.values()))[0])
        latency = measure_latency(fns, obs, rounds, calls)
        protocol = {"rounds": rounds, "calls_per_round": calls, "observations": int(len(obs)), "threads": 1,
                    "machine": machine(), "measured_together": sorted(fns)}
        built = []
        for name, (path, record) in staged.items():
            record = {"env": env, "name": name, **record,
                      "latency": {"runtime": "spikerl.runtime", **latency[name], "protocol": protocol}}
            if name == CONVERTED and ANN_VARIANT in latency:
                record["ann"]["latency"] = {"runtime": "torch (eager, inference_mode)", **latency[ANN_VARIANT]}
            record["bundle_bytes"] = sum((path / f).stat().st_size for f in ("manifest.json", "weights.npz"))
            (path / ZOO_FILE).write_text(json.dumps(record, indent=2) + "\n")
            publish(path, out_dir / name)
            built.append(out_dir / name)
        for name, card in kept.items():
            card["latency"] = {"runtime": "spikerl.runtime", **latency[name], "protocol": protocol}
            (out_dir / name / ZOO_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return built


# -- README -------------------------------------------------------------------------------------------------------
def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}"


def _kib(n: int | None) -> str:
    return "–" if n is None else f"{n / 1024:.0f} KiB"


def zoo_rows(zoo: Path, links: bool = True) -> list[tuple[str, ...]]:
    """Per env: the trained SNN, the converted SNN and the ANN it was converted from (``links``: each policy's name
    links to its folder, relative to ``zoo``)."""
    rows = []
    order = {SNN_VARIANT: 0, CONVERTED: 1}
    for card in sorted(zoo.glob(f"*/*/{ZOO_FILE}"), key=lambda c: (c.parent.parent.name,
                                                                 order.get(c.parent.name, 2), c.parent.name)):
        z = json.loads(card.read_text())
        e = json.loads((card.parent / EVALUATION_FILE).read_text())
        rel = card.parent.relative_to(zoo).as_posix()
        what = (f"SNN trained directly (Proxy Target, LIF), seed {z['source']['seed']}" if z["name"] == SNN_VARIANT else
                f"seed {z['source']['seed']}'s ANN converted ({z['conversion']['method'].upper()}, "
                f"T = {z['conversion']['T']})")
        name = f"[`{z['name']}`]({rel})" if links else f"`{rel}`"
        rows.append((z["env"], name, what, _mean_std(e["mean_return"], e["std_return"]),
                     f"{e['energy_nj']:.2f}", f"{z['latency']['median_us']:.0f}", _kib(z.get("bundle_bytes"))))
        ann = z.get("ann")
        if ann:
            lat = ann.get("latency")
            rows.append((z["env"], f"`{ANN_VARIANT}` (not shipped)", f"the ANN TD3 actor, seed {z['source']['seed']}",
                         _mean_std(ann["mean_return"], ann["std_return"]),
                         "–" if ann.get("energy_nj") is None else f"{ann['energy_nj']:.2f}",
                         "–" if not lat else f"{lat['median_us']:.0f} (torch)", "–"))
    return rows


EMPTY = "No policies yet: run `python scripts/build_zoo.py --campaign DIR` after the campaign."


def zoo_table(zoo: Path, links: bool = True) -> str:
    """The zoo's table (markdown), or the line saying it is empty; shown by ZOO/README.md and, through
    ``scripts/gen_docs.py``, by the README and the docs."""
    rows = zoo_rows(zoo, links)
    if not rows:
        return EMPTY
    header = ("env", "policy", "what", "return (mean ± std)", "energy / decision (nJ)", "batch-1 latency (µs)",
              "size")
    table = ["| " + " | ".join(header) + " |", "|---|---|---|---:|---:|---:|---:|"]
    return "\n".join(table + ["| " + " | ".join(r) + " |" for r in rows])


def write_readme(zoo: Path) -> Path:
    protocols = sorted({json.dumps(json.loads(c.read_text())["latency"]["protocol"]["machine"], sort_keys=True)
                        for c in zoo.glob(f"*/*/{ZOO_FILE}")})
    machines = "; ".join(f"{m['cpu']} ({m['cores']} cores)" for m in map(json.loads, protocols)) or "–"
    text = f"""# Policy zoo

Trained spiking policies as bundles: `manifest.json` and `weights.npz`, run by `spikerl.runtime` with NumPy and
Numba, without torch. Per env, the best td3-proxy-lif run of the training campaign (directly trained SNN) and the
best td3-ann run converted to an SNN with DCGS at T = 32 (converted SNN); the ANN itself is listed for comparison.

{zoo_table(zoo)}

- Return: the deterministic evaluation episodes in `evaluation.json` (the run's evaluation seed, seed + 100),
  played on the bundle runtime; the ANN's (same seed, played by torch) are in `td3-ann-dcgs32/zoo.json`.
- Energy per decision: synaptic operations and MACs of the decisions of those episodes, with 45 nm figures
  (`spikerl.energy`, the "paper" model).
- Batch-1 latency: the median time of one decision, measured for the policies of one env in one process, in
  interleaved rounds, one thread ({machines}). Compare the rows of one env; absolute times depend on the machine.
- Each folder also holds the training config (`training_config.yaml`), the training curve (`curve.csv`,
  `curve.png`) and `zoo.json` (the source run, the runs it was chosen among, the conversion, the latency).

Replay a policy, with videos, without torch; `--out` keeps the zoo folder as it is (`evaluation.json` with the
same returns and energy, and the videos, go to `replay/`):

```bash
MUJOCO_GL=egl spikerl evaluate zoo/Hopper-v5/td3-proxy-lif --video --out replay/Hopper-v5
```

```python
from spikerl.runtime import load_policy

policy = load_policy("zoo/Hopper-v5/td3-proxy-lif")
action = policy.act(observation)
```

Rebuild (after `bash scripts/campaign.sh`): `python scripts/build_zoo.py --campaign ~/spikerl-campaign`.
"""
    path = zoo / "README.md"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--campaign", type=Path, required=True, help="the campaign folder (holds lanes/)")
    p.add_argument("--env", help="build this env only (default: every env of the campaign)")
    p.add_argument("--zoo", type=Path, default=ROOT / "zoo", help="the zoo folder (default: zoo/ in the repository)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per policy (default 10)")
    p.add_argument("--calib-steps", type=int, default=10000,
                   help="ANN rollout steps for the conversion's thresholds (default 10000, as spikerl convert)")
    p.add_argument("--rounds", type=int, default=7, help="latency: interleaved rounds (default 7)")
    p.add_argument("--calls", type=int, default=300, help="latency: decisions per policy per round (default 300)")
    args = p.parse_args(argv)
    campaign = args.campaign.expanduser()
    if not (campaign / "lanes").is_dir():
        print(f"build_zoo: {campaign} has no lanes/ folder; pass the folder bash scripts/campaign.sh writes",
              file=sys.stderr)
        return 1
    runs = completed_runs(campaign)
    envs = sorted({r.env for r in runs})
    if args.env:
        if args.env not in envs:
            print(f"build_zoo: {args.env} has no completed run in {campaign}; envs with one: "
                  f"{', '.join(envs) or 'none'}", file=sys.stderr)
            return 1
        envs = [args.env]
    if not envs:
        print(f"build_zoo: no completed run in {campaign} yet", file=sys.stderr)
        return 1
    built = []
    for env in envs:
        built += build_env(campaign, env, args.zoo, runs, args.episodes, args.calib_steps, args.rounds, args.calls)
    readme = write_readme(args.zoo)
    for path in built:
        e = json.loads((path / EVALUATION_FILE).read_text())
        print(f"build_zoo: {path}: return {e['mean_return']:.1f} ± {e['std_return']:.1f} over {e['episodes']} "
              f"episodes, {e['energy_nj']:.2f} nJ per decision, {folder_bytes(path) / 1024:.0f} KiB")
    print(f"build_zoo: wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
