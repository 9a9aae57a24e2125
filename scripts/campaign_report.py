#!/usr/bin/env python
"""The training campaign's report: every trial's curve, and the variants compared at common budgets.

    python scripts/campaign_report.py [--campaign DIR] [--out DIR]

Reads every trial under the campaign folder (``DIR/lanes/<env>/<env>/<preset>/s<seed>``, ordinary run directories
written by ``bash scripts/campaign.sh``; default ``$SPIKERL_CAMPAIGN`` or ``~/spikerl-campaign``) and writes into
``--out`` (default ``benchmarks/``):

- ``campaign.json``: per trial its env, preset, seed, status, steps trained and whole evaluation curve (so nothing
  is lost when the folder is gone); per env and budget (50k, 100k, ..., 300k steps) the trials that reached it,
  per variant the return mean ± std and the IQM with its 95% bootstrap interval, and the probability that
  td3-proxy-lif beats td3-ann and td3-lif (:mod:`spikerl.compare_stats`).
- per trial also its diagnostics (:mod:`spikerl.agents.diagnostics`, from its TensorBoard log): the spiking
  actor's firing rate and surrogate-window occupancy per layer and the proxy, critic and actor losses, as last
  logged and as logged last before each budget, to investigate a variant that falls short (collapsed seeds,
  silent or saturated layers, a proxy that stopped following its actor).
- ``targets``: issue #16's targets as measured: td3-proxy-lif's IQM against td3-ann's and td3-lif's at the
  headline budget and at the largest one, this campaign's means beside the reference fork's (:data:`FORK`), and
  the stretch target (PT-LIF on Hopper at 300k reaching the fork's mean).
- ``campaign.md``: the same as tables, and ``campaign.png``: the curves (every trial thin, per variant the mean
  over seeds with its 95% bootstrap band on the steps all its trials reached).

A budget is compared over the trials that reached it, each read at exactly that step; the trials still short of
it are named. The headline budget of an env is the largest one every trial of that env reached.
The same folder gives the same files. When the folder is gone the files are left as they are; when it holds less
than campaign.json records (a restarted campaign), nothing is written unless ``--replace`` is given.
A completed trial that campaign.json records and the folder no longer holds at all (a folder lost and started
again) is carried over from the record, curve and diagnostics as published, and marked ``recorded`` (its model and
logs are gone); ``--todo`` tells ``scripts/campaign.sh`` not to train it again.
Then ``python scripts/gen_docs.py`` refreshes the campaign block of benchmarks/README.md.

    python scripts/campaign_report.py --todo ENV PRESETS SEEDS   # for campaign.sh: per seed, the presets to train
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (50_000, 100_000, 150_000, 200_000, 250_000, 300_000)
#: the comparisons the campaign is for: P(X > Y) for each (X, Y)
PAIRS = (("td3-proxy-lif", "td3-ann"), ("td3-proxy-lif", "td3-lif"))
VARIANT_ORDER = ("td3-proxy-lif", "td3-ann", "td3-lif")
STEM = "campaign"
#: TensorBoard scalars reported per trial (absent ones are skipped: an ANN actor has no snn/*, no proxy_loss)
DIAGNOSTIC_TAGS = ("snn/rate_hidden0", "snn/rate_hidden1", "snn/rate_output", "snn/window_hidden0",
                   "snn/window_hidden1", "snn/window_output", "train/proxy_loss", "train/critic_loss",
                   "train/actor_loss")
#: the reference fork's evaluation return, mean ± std over 5 seeds (Gymnasium v4, 10 deterministic episodes,
#: 25k random start steps; madao2333/Proxy-Target-with-PLIF, as quoted in issue #16), per env, variant and budget
FORK = {"Hopper-v5": {"td3-ann": {100_000: (559.0, 276.0), 300_000: (879.0, 541.0)},
                      "td3-proxy-lif": {100_000: (408.0, 95.0), 300_000: (1786.0, 733.0)}},
        "HalfCheetah-v5": {"td3-ann": {100_000: (4255.0, 556.0), 300_000: (7243.0, 406.0)},
                           "td3-proxy-lif": {100_000: (4479.0, 778.0), 300_000: (7341.0, 362.0)}}}
#: the issue's stretch target: PT-LIF's mean return on Hopper at 300k steps reaches the fork's
STRETCH = ("Hopper-v5", "td3-proxy-lif", 300_000)


def default_campaign() -> Path:
    return Path(os.environ.get("SPIKERL_CAMPAIGN") or Path.home() / "spikerl-campaign")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def scalar_series(tb_dir: Path, tags: tuple[str, ...] = DIAGNOSTIC_TAGS) -> dict[str, tuple[list[int], list[float]]]:
    """Per tag the (steps, values) a run logged to TensorBoard, over all its event files (one per start, named
    ``events.out.tfevents.<start time>.<host>.<pid>...``).

    A resumed run logs again from its checkpoint's step, so each later file replaces the earlier files' values from
    its own first step on: the series is the one of the run as it continued.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, dict[int, float]] = {}
    for path in sorted(tb_dir.glob("events.out.tfevents.*")):  # named by their start time: oldest first
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        logged = [t for t in acc.Tags()["scalars"] if t in tags]
        first = min((ev.step for t in logged for ev in acc.Scalars(t)), default=None)
        if first is None:
            continue
        for points in series.values():  # the earlier start's values past the resume point were redone
            for step in [st for st in points if st >= first]:
                del points[step]
        for tag in logged:
            series.setdefault(tag, {}).update({ev.step: float(ev.value) for ev in acc.Scalars(tag)})
    return {tag: (sorted(points), [points[k] for k in sorted(points)]) for tag, points in series.items() if points}


def diagnostics_record(run_path: Path) -> dict[str, Any] | None:
    """The trial's diagnostics as last logged (``last``, at ``step``) and as logged last before each budget."""
    tb = run_path / "tb"
    series = scalar_series(tb) if tb.is_dir() else {}
    if not series:
        return None
    step = max(steps[-1] for steps, _ in series.values())
    last = {tag: values[-1] for tag, (_, values) in series.items()}
    at = {}
    for budget in BUDGETS:
        if step < budget:
            break
        before = {tag: next(v for s, v in zip(reversed(steps), reversed(values), strict=True) if s <= budget)
                  for tag, (steps, values) in series.items() if steps[0] <= budget}
        at[str(budget)] = before
    return {"step": step, "last": last, "at": at}


def trial_record(run: Any, campaign: Path) -> dict[str, Any]:
    """One trial as JSON-ready data: what it is, how far it got, and its whole evaluation curve."""
    import yaml
    from spikerl.agents.callbacks import read_evaluations

    from spikerl.run_layout import RunLayout

    config = yaml.safe_load((run.path / "config.yaml").read_text()) or {}
    metrics = _read_json(run.path / "metrics.json")
    progress = _read_json(run.path / "progress.json")
    evals = read_evaluations(run.path / "evaluations.csv") if (run.path / "evaluations.csv").is_file() else []
    status = {"completed": "completed", "non_finite_loss": "stopped: non-finite loss"}.get(
        metrics.get("status"), "unfinished")
    # an unfinished trial got as far as its progress file says while it runs, or its newest checkpoint when it was
    # stopped (a stop writes the checkpoint of the step it reached after the last progress line)
    checkpoints = RunLayout(run.path).checkpoint_steps()
    steps = metrics.get("total_timesteps") if status == "completed" else max(
        progress.get("steps") or 0, checkpoints[-1] if checkpoints else 0) or None
    return {
        "env": run.env, "preset": run.variant, "seed": run.seed, "path": str(run.path.relative_to(campaign)),
        "status": status, "steps": steps if steps is not None else (evals[-1].step if evals else 0),
        "budget": config.get("total_timesteps"), "steps_per_s": metrics.get("steps_per_second"),
        "curve": {"step": [e.step for e in evals], "mean_return": [e.mean for e in evals],
                  "std_return": [e.std for e in evals]},
        "diagnostics": diagnostics_record(run.path),
    }


def _variant_key(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def budget_report(runs: list[Any], campaign: Path) -> dict[str, Any]:
    """Per env: its headline budget and, at each budget some trial reached, the statistics of spikerl.compare_stats."""
    from spikerl.compare_stats import group_stats, improvements, last_step, stats_json

    envs: dict[str, Any] = {}
    for env in sorted({r.env for r in runs}):
        members = [r for r in runs if r.env == env]
        reached = [last_step(r) or 0.0 for r in members]
        budgets = []
        for step in BUDGETS:
            if not any(s >= step for s in reached):
                continue
            groups = sorted(group_stats(members, at=step), key=lambda g: _variant_key(g.variant))
            data = stats_json(groups, improvements(groups, pairs=PAIRS), at=step, root=campaign)
            budgets.append({"step": step, "groups": data["groups"], "improvement": data["improvement"]})
        common = max((b for b in BUDGETS if all(s >= b for s in reached)), default=None)
        envs[env] = {"trials": len(members), "common_budget": common, "budgets": budgets}
    return envs


def _key(trial: dict[str, Any]) -> tuple[str, str, int]:
    return trial["env"], trial["preset"], trial["seed"]


def recorded_completed(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The completed trials of a published campaign.json."""
    return [t for t in record.get("trials", []) if t["status"] == "completed"]


def carried_run(trial: dict[str, Any], campaign: Path) -> Any:
    """A recorded trial as a ``spikerl.compare.RunRecord`` (its curve as published)."""
    import numpy as np

    from spikerl.compare import COMPLETED, RunRecord

    curve = trial["curve"]
    return RunRecord(path=campaign / trial["path"], env=trial["env"], variant=trial["preset"], seed=trial["seed"],
                     steps=np.asarray(curve["step"], dtype=float), means=np.asarray(curve["mean_return"], dtype=float),
                     steps_per_s=trial.get("steps_per_s"), status=COMPLETED)


def build_report(campaign: Path, record: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Any]]:
    """The report's data and the runs (``spikerl.compare.RunRecord``) it was built from: the folder's trials, and the
    completed trials of ``record`` (a published campaign.json) that the folder lacks."""
    from spikerl.compare import find_runs, load_run
    from spikerl.compare_stats import INTERVAL_NOTE

    lanes = campaign / "lanes"
    folder = [load_run(p) for p in find_runs([lanes])] if lanes.is_dir() else []
    trials = {(r.env, r.variant, r.seed): trial_record(r, campaign) | {"source": "folder"} for r in folder}
    runs = list(folder)
    for t in recorded_completed(record or {}):
        if _key(t) not in trials:
            trials[_key(t)] = t | {"source": "recorded"}
            runs.append(carried_run(t, campaign))

    def order(key: tuple[str, str, int | None]) -> tuple[str, tuple[int, str], int]:
        return key[0], _variant_key(key[1]), key[2] if key[2] is not None else -1

    runs.sort(key=lambda r: order((r.env, r.variant, r.seed)))
    return {
        "campaign": str(campaign), "budgets": list(BUDGETS), "pairs": [list(p) for p in PAIRS],
        "interval": INTERVAL_NOTE,
        "trials": [trials[k] for k in sorted(trials, key=order)],
        "envs": (envs := budget_report(runs, campaign)),
        "targets": targets(envs),
    }, runs


def _group(budget: dict[str, Any], variant: str) -> dict[str, Any] | None:
    return next((g for g in budget["groups"] if g["variant"] == variant and g["seeds"]), None)


def targets(envs: dict[str, Any]) -> dict[str, Any]:
    """Issue #16's targets as measured: per env, at the headline budget and at the largest budget (when beyond it),
    whether td3-proxy-lif's IQM is at least td3-ann's and td3-lif's; our mean ± std beside the fork's at its
    budgets; and the stretch target (PT-LIF's Hopper mean at 300k against the fork's)."""
    out: dict[str, Any] = {"comparisons": [], "fork": [], "stretch": None}
    for env, data in envs.items():
        at = {b["step"]: b for b in data["budgets"]}
        steps = [s for s in (data["common_budget"], data["budgets"][-1]["step"] if data["budgets"] else None)
                 if s is not None]
        for step in dict.fromkeys(steps):
            proxy = _group(at[step], PAIRS[0][0])
            for _, other in PAIRS:
                rival = _group(at[step], other)
                if proxy is None or rival is None:
                    continue
                out["comparisons"].append({
                    "env": env, "step": step, "headline": step == data["common_budget"], "x": proxy["variant"],
                    "y": other, "n_x": proxy["seeds"], "n_y": rival["seeds"], "iqm_x": proxy["iqm"]["value"],
                    "iqm_y": rival["iqm"]["value"], "met": proxy["iqm"]["value"] >= rival["iqm"]["value"]})
        for variant, budgets in FORK.get(env, {}).items():
            for step, (mean, std) in budgets.items():
                g = _group(at[step], variant) if step in at else None
                out["fork"].append({"env": env, "variant": variant, "step": step, "fork_mean": mean,
                                    "fork_std": std, "n": g["seeds"] if g else 0,
                                    "mean": g["return"]["mean"] if g else None,
                                    "std": g["return"]["std"] if g else None})
    env, variant, step = STRETCH
    row = next((f for f in out["fork"] if (f["env"], f["variant"], f["step"]) == STRETCH), None)
    if row is not None:
        out["stretch"] = {"env": env, "variant": variant, "step": step, "target": row["fork_mean"], "n": row["n"],
                          "mean": row["mean"], "met": None if row["mean"] is None else row["mean"] >= row["fork_mean"]}
    return out


def todo(record: dict[str, Any], env: str, presets: list[str], seeds: list[int]) -> list[tuple[int, list[str]]]:
    """Per seed, the presets whose trial on ``env`` the record does not hold as completed (in the order given)."""
    done = {_key(t) for t in recorded_completed(record)}
    plan = [(seed, [p for p in presets if (env, p, seed) not in done]) for seed in seeds]
    return [(seed, names) for seed, names in plan if names]


# -- markdown -----------------------------------------------------------------------------------------------------
def _num(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _interval(iv: dict[str, float] | None, digits: int = 0) -> str:
    return "–" if iv is None else f"{iv['value']:.{digits}f} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def _curve_at(curve: dict[str, list], step: int) -> float | None:
    import numpy as np

    steps = curve["step"]
    if not steps or step > max(steps):
        return None
    return float(np.interp(step, steps, curve["mean_return"]))


def trials_table(report: dict[str, Any]) -> str:
    rows = ["| env | preset | seed | status | steps | " + " | ".join(f"{b // 1000}k" for b in BUDGETS)
            + " | last | best |", "|---|---|---:|---|---:|" + "---:|" * (len(BUDGETS) + 2)]
    for t in report["trials"]:
        curve = t["curve"]
        last = curve["mean_return"][-1] if curve["mean_return"] else None
        best = max(curve["mean_return"]) if curve["mean_return"] else None
        at = " | ".join(_num(_curve_at(curve, b)) for b in BUDGETS)
        status = t["status"] + (" (recorded)" if t.get("source") == "recorded" else "")
        rows.append(f"| {t['env']} | {t['preset']} | {t['seed']} | {status} | {t['steps']} | {at} | "
                    f"{_num(last)} | {_num(best)} |")
    return "\n".join(rows)


def diagnostics_table(report: dict[str, Any]) -> str:
    """Each trial's diagnostics as last logged: firing rates and window occupancy per layer, losses."""
    short = {"snn/rate_hidden0": "rate h0", "snn/rate_hidden1": "rate h1", "snn/rate_output": "rate out",
             "snn/window_hidden0": "window h0", "snn/window_hidden1": "window h1", "snn/window_output": "window out",
             "train/proxy_loss": "proxy loss", "train/critic_loss": "critic loss", "train/actor_loss": "actor loss"}
    rows = ["| env | preset | seed | logged at | " + " | ".join(short[t] for t in DIAGNOSTIC_TAGS) + " |",
            "|---|---|---:|---:|" + "---:|" * len(DIAGNOSTIC_TAGS)]
    for t in report["trials"]:
        d = t.get("diagnostics")
        if not d:
            continue
        cells = [_num(d["last"].get(tag), 3 if tag.startswith("snn/") or tag == "train/proxy_loss" else 1)
                 for tag in DIAGNOSTIC_TAGS]
        rows.append(f"| {t['env']} | {t['preset']} | {t['seed']} | {d['step']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def budget_tables(env: str, data: dict[str, Any]) -> str:
    lines = [f"### {env}", ""]
    common = data["common_budget"]
    lines.append(f"Headline budget (every one of its {data['trials']} trials reached it): "
                 f"{'none yet' if common is None else f'{common // 1000}k steps'}.")
    lines.append("")
    lines += ["| budget | variant | trials | return (mean ± std) | IQM [95% CI] | short of the budget |",
              "|---:|---|---:|---:|---:|---|"]
    for b in data["budgets"]:
        mark = " (headline)" if b["step"] == common else ""
        for g in b["groups"]:
            n = g["seeds"]
            ret = g["return"]
            value = "–" if n == 0 else (f"{ret['mean']:.0f} ± {ret['std']:.0f}" if n > 1 else f"{ret['mean']:.0f}")
            short = ", ".join(f"s{r['seed']} ({_num(r['reached'])})" for r in g["left_out"]) or "–"
            lines.append(f"| {b['step'] // 1000}k{mark} | {g['variant']} | {n} | {value} | {_interval(g['iqm'])} | "
                         f"{short} |")
    pairs = [(b["step"], p) for b in data["budgets"] for p in b["improvement"]]
    if pairs:
        lines += ["", "| budget | P(X > Y) | value [95% CI] | trials X, Y |", "|---:|---|---:|---:|"]
        lines += [f"| {step // 1000}k | P({p['x']} > {p['y']}) | {_interval(p['probability'], 2)} | "
                  f"{p['n_x']}, {p['n_y']} |" for step, p in pairs]
    return "\n".join(lines)


def targets_section(t: dict[str, Any]) -> str:
    """Issue #16's targets as measured (campaign.json's ``targets``)."""
    lines = ["| env | budget | comparison (IQM over the trials that reached it) | trials | met |",
             "|---|---:|---|---:|---|"]
    for c in t["comparisons"]:
        mark = " (headline)" if c["headline"] else ""
        lines.append(f"| {c['env']} | {c['step'] // 1000}k{mark} | {c['x']} {c['iqm_x']:.0f} ≥ {c['y']} "
                     f"{c['iqm_y']:.0f} | {c['n_x']}, {c['n_y']} | {'yes' if c['met'] else 'no'} |")
    lines += ["", "Beside the reference fork's runs (Gymnasium v4, 5 seeds; issue #16):", "",
              "| env | variant | budget | this campaign (mean ± std) | trials | fork (mean ± std, 5 seeds) |",
              "|---|---|---:|---:|---:|---:|"]
    for f in t["fork"]:
        ours = "–" if f["mean"] is None else (f"{f['mean']:.0f} ± {f['std']:.0f}" if f["n"] > 1
                                                else f"{f['mean']:.0f}")
        lines.append(f"| {f['env']} | {f['variant']} | {f['step'] // 1000}k | {ours} | {f['n']} | "
                     f"{f['fork_mean']:.0f} ± {f['fork_std']:.0f} |")
    s = t.get("stretch")
    if s is not None:
        verdict = ("no trial reached it yet" if s["mean"] is None else
                   f"{s['mean']:.0f} over {s['n']} trial{'s' * (s['n'] != 1)}: {'met' if s['met'] else 'not met'}")
        lines += ["", f"Stretch: {s['variant']} on {s['env']} reaches the fork's mean of {s['target']:.0f} at "
                      f"{s['step'] // 1000}k steps: {verdict}."]
    return "\n".join(lines)


def markdown(report: dict[str, Any], png_name: str) -> str:
    n = len(report["trials"])
    done = sum(t["status"] == "completed" for t in report["trials"])
    parts = [
        "# Training campaign (scripts/campaign.sh)", "",
        f"Written by `python scripts/campaign_report.py` from {n} trials ({done} completed). Returns are the "
        "periodic deterministic evaluations of each trial (its preset's episodes, the run's seed + 100). Each budget "
        "compares the trials that reached it, every one read at exactly that step (linear between evaluations); "
        f"IQM = interquartile mean over seeds; intervals: {report['interval']}. P(X > Y): the probability that a "
        "trial of X beats one of Y (ties count 1/2).", "",
        "## Trials", "", "Every trial's evaluation return at each budget it reached (the whole curves are in "
        "campaign.json). (recorded): a completed trial whose folder was lost, carried over from the report that "
        "published it.", "", trials_table(report), "",
        "## Variants at common budgets", "",
    ]
    for env, data in report["envs"].items():
        parts += [budget_tables(env, data), ""]
    if "targets" in report:
        parts += ["## Targets (issue #16)", "", "td3-proxy-lif against td3-ann and td3-lif by IQM at the headline "
                  "budget (every trial of the env reached it) and at the largest budget any reached.", "",
                  targets_section(report["targets"]), ""]
    parts += ["## Diagnostics", "",
              "As each trial last logged them to TensorBoard (campaign.json also holds them as logged last before "
              "each budget). Rate: mean spikes per neuron and step of a layer of the spiking actor on a training "
              "batch; window: the fraction of (neuron, step) pairs whose membrane potential lies where the surrogate "
              "gradient is non-zero (near 0: the layer gets almost no gradient); losses of the last update.", "",
              diagnostics_table(report), "",
              "## Curves", "", f"![campaign learning curves]({png_name})", "",
              "Thin lines: single trials. Bold line and band: the mean over the variant's trials with its 95% "
              "bootstrap interval, on the steps all of them reached; dashed: the headline budget.", ""]
    return "\n".join(parts)


def plot(runs: list[Any], report: dict[str, Any], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikerl.compare_stats import mean_band, seed_curves

    envs = list(report["envs"])
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, env in zip(axes[0], envs, strict=True):
        variants = sorted({r.variant for r in runs if r.env == env}, key=_variant_key)
        for i, variant in enumerate(variants):
            color = colors[i % len(colors)]
            group = [r for r in runs if r.env == env and r.variant == variant]
            for r in group:
                ax.plot(r.steps, r.means, color=color, alpha=0.35, linewidth=0.7)
            x, curves = seed_curves(group)
            if len(x):
                mean, low, high = mean_band(curves)
                ax.plot(x, mean, color=color, linewidth=1.8, label=f"{variant} (n={len(group)})")
                ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
        common = report["envs"][env]["common_budget"]
        if common is not None:
            ax.axvline(common, color="0.4", linestyle="--", linewidth=0.8)
        ax.set_title(env)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110, metadata={"Software": None})
    plt.close(fig)


# -- main ---------------------------------------------------------------------------------------------------------
def shrinkage(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Trials that campaign.json records further than the folder holds them now (or that the folder lacks)."""
    now = {(t["env"], t["preset"], t["seed"]): t["steps"] or 0 for t in new["trials"]}
    lost = []
    for t in old.get("trials", []):
        key = (t["env"], t["preset"], t["seed"])
        if now.get(key, -1) < (t["steps"] or 0):
            lost.append(f"{'/'.join(map(str, key))}: {t['steps']} recorded, "
                        f"{'absent' if key not in now else now[key]} in the folder")
    return lost


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--campaign", type=Path, default=None,
                   help="the campaign folder (default: $SPIKERL_CAMPAIGN or ~/spikerl-campaign)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="where campaign.json/.md/.png go")
    p.add_argument("--replace", action="store_true",
                   help="write even if the folder holds less than the existing campaign.json records")
    p.add_argument("--todo", nargs=3, metavar=("ENV", "PRESETS", "SEEDS"),
                   help="print, one line per seed ('SEED PRESET,PRESET'), the trials of ENV among PRESETS "
                        "(comma-separated) x SEEDS (e.g. 1-2) that campaign.json does not record as completed; "
                        "write nothing")
    args = p.parse_args(argv)
    campaign = (args.campaign or default_campaign()).expanduser()
    out_json = args.out / f"{STEM}.json"
    record = json.loads(out_json.read_text()) if out_json.is_file() else {}
    if args.todo:
        from spikerl.sweep import parse_seeds

        env, presets, seeds = args.todo
        for seed, names in todo(record, env, [n for n in presets.split(",") if n], parse_seeds(seeds)):
            print(seed, ",".join(names))
        return 0
    lanes = campaign / "lanes"
    if not lanes.is_dir() or not any(lanes.rglob("config.yaml")):
        if out_json.is_file():
            print(f"campaign_report: {campaign} holds no trials (the folder is gone or was never started); "
                  f"{out_json} and its .md/.png are left as they are")
            return 0
        print(f"campaign_report: {campaign} holds no trials and there is no {out_json}; start the campaign with "
              "bash scripts/campaign.sh", file=sys.stderr)
        return 1
    report, runs = build_report(campaign, record)
    if out_json.is_file() and not args.replace:
        lost = shrinkage(record, report)
        if lost:
            print(f"campaign_report: {campaign} holds less than {out_json} records ({'; '.join(lost)}); nothing "
                  "written (pass --replace to write the folder's state anyway)", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"{STEM}.md").write_text(markdown(report, f"{STEM}.png"))
    plot(runs, report, args.out / f"{STEM}.png")
    print(f"campaign_report: {len(report['trials'])} trials -> {out_json}, {STEM}.md, {STEM}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
