"""Benchmark: ANN-to-SNN conversion of the spikerl vision backbones on scikit-learn's digits (8x8, offline).

Trains, on one CPU thread, a NatureCNN (images upsampled to 36x36) and a SmallResNet (8x8 as is), each with
ReLU, QCFS (L = 8) and clip-ReLU activations; converts them with every method for T in {1, 2, 4, 8, 16, 32}
and writes the test accuracies to benchmarks/convert_vision.{json,md,png}.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_convert_vision.py [--epochs 20] [--out benchmarks]

Methods per activation: ReLU nets -> max, percentile:99.9, max per channel, dcgs; QCFS nets -> qcfs, srp,
cos, parallel; clip-ReLU nets -> opi. SRP/COS latencies are T + 4 pre-simulation steps, DCGS T + 1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spikerl.backbones import NatureCNN, SmallResNet
from spikerl.conversion import ConversionSpec, convert

TS = (1, 2, 4, 8, 16, 32)
L = 8
METHODS = {
    "relu": [("max", {}), ("percentile:99.9", {}), ("max/channel", {"granularity": "channel"}), ("dcgs", {})],
    "qcfs": [("qcfs", {}), ("srp", {}), ("cos", {}), ("parallel", {})],
    "clip": [("opi", {})],
}


def load_digits_tensors(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=data.target)
    return x[idx_tr], y[idx_tr], x[idx_te], y[idx_te]


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, n_classes: int = 10, upsample: int | None = None) -> None:
        super().__init__()
        self.upsample = upsample
        self.backbone = backbone
        self.head = nn.Linear(backbone.features_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, size=(self.upsample, self.upsample), mode="nearest")
        return self.head(self.backbone(x))


def build(arch: str, act: str) -> Classifier:
    if arch == "nature":
        return Classifier(NatureCNN((1, 36, 36), features_dim=128, activation=act, L=L, lam_init=2.0), upsample=36)
    return Classifier(SmallResNet((1, 8, 8), features_dim=64, width=16, stages=2, blocks=1, activation=act, L=L,
                                  lam_init=2.0))


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean()) * 100


def train(model: nn.Module, x, y, epochs: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            b = perm[i:i + 64]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks")
    ap.add_argument("--render-only", action="store_true",
                    help="re-write the .md and .png from an existing convert_vision.json without training")
    args = ap.parse_args()
    out = Path(args.out)
    if args.render_only:
        results = json.loads((out / "convert_vision.json").read_text())
        results["models"] = {k: _int_keys(v) for k, v in results["models"].items()}
        write_markdown(results, out / "convert_vision.md")
        plot(results, out / "convert_vision.png")
        return
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0 = time.time()
    xtr, ytr, xte, yte = load_digits_tensors(args.seed)
    calib = xtr[:512]
    results: dict = {"dataset": "sklearn digits (1437 train / 360 test)", "L": L, "T": list(TS), "models": {}}
    for arch in ("nature", "resnet"):
        for act in ("relu", "qcfs", "clip"):
            name = f"{arch}-{act}"
            torch.manual_seed(args.seed)
            model = build(arch, act)
            t1 = time.time()
            train(model, xtr, ytr, args.epochs, args.seed)
            ann = accuracy(model, xte, yte)
            entry = {"ann_acc": ann, "train_s": round(time.time() - t1, 1), "methods": {}}
            for method, extra in METHODS[act]:
                spec_method = method.split("/")[0]
                accs, lat = {}, {}
                for T in TS:
                    snn = convert(model, ConversionSpec(T=T, method=spec_method, **extra), calib_data=calib)
                    accs[T] = accuracy(snn, xte, yte)
                    lat[T] = snn.latency
                entry["methods"][method] = {"acc": accs, "latency": lat}
            results["models"][name] = entry
            print(f"{name}: ANN {ann:.2f}%  " + "  ".join(
                f"{m}@8={e['acc'][8]:.2f}" for m, e in entry["methods"].items()), flush=True)
    results["wall_s"] = round(time.time() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "convert_vision.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, out / "convert_vision.md")
    plot(results, out / "convert_vision.png")
    print(f"wrote {out}/convert_vision.{{json,md,png}} in {results['wall_s']} s")


def _int_keys(entry: dict) -> dict:
    for m in entry["methods"].values():
        m["acc"] = {int(t): a for t, a in m["acc"].items()}
        m["latency"] = {int(t): a for t, a in m["latency"].items()}
    return entry


def targets(res: dict) -> list[str]:
    """The targets checked: QCFS at T = 8 within 1 point of the ANN; Parallel equal to the ANN at T = L."""
    lines = []
    for name, e in res["models"].items():
        ms = e["methods"]
        if "qcfs" in ms:
            gap = e["ann_acc"] - ms["qcfs"]["acc"][8]
            lines.append(f"- {name}: QCFS conversion at T = 8 is {gap:.2f} points below the ANN "
                         f"(target <= 1): {'met' if gap <= 1 else 'NOT met'}")
        if "parallel" in ms:
            par = ms["parallel"]["acc"][res["L"]]
            lines.append(f"- {name}: Parallel at T = L = {res['L']}: {par:.2f} vs ANN {e['ann_acc']:.2f}: "
                         f"{'equal' if abs(par - e['ann_acc']) < 1e-9 else 'NOT equal'}")
    return lines


def write_markdown(res: dict, path: Path) -> None:
    lines = [
        "# ANN-to-SNN conversion on scikit-learn digits",
        "",
        f"Test accuracy (%) of each trained ANN and of its converted SNN for T time steps ({res['dataset']}; "
        f"QCFS nets trained with L = {res['L']}; produced by `scripts/bench_convert_vision.py`, "
        f"{res['wall_s']} s on one CPU thread). SRP and COS add 4 pre-simulation steps, DCGS 1 bias step "
        "(latency = T + that).",
        "",
        "| model | ANN | method | " + " | ".join(f"T={t}" for t in res["T"]) + " |",
        "|---|---|---|" + "---|" * len(res["T"]),
    ]
    for name, e in res["models"].items():
        for method, m in e["methods"].items():
            accs = " | ".join(f"{m['acc'][t]:.2f}" for t in res["T"])
            lines.append(f"| {name} | {e['ann_acc']:.2f} | {method} | {accs} |")
    lines += ["", "Targets:", "", *targets(res)]
    path.write_text("\n".join(lines) + "\n")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["models"])
    cols = 3
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        e = res["models"][name]
        for method, m in e["methods"].items():
            ax.plot(res["T"], [m["acc"][t] for t in res["T"]], marker="o", ms=3, label=method)
        ax.axhline(e["ann_acc"], color="k", ls="--", lw=1, label="ANN")
        ax.set_xscale("log", base=2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("T")
        ax.legend(fontsize=6)
    for row in axes:
        row[0].set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
