"""A/B: the proxy's imitation gradients by hand against plain autograd, timed as the WHOLE TD3 train step.

ProxyTD3 (PT-LIF, T=5, pop 10/10, hidden 256-256, proxy 512-512, K=3, batch 256) on Hopper-v5 with a
replay buffer of uniform-random transitions. Two models built with the same seed differ only in the
proxy's K imitation steps:

  (A) autograd:     F.mse_loss(proxy(s_k), y_k).backward(); optimizer.step()   (spikerl's ProxyTD3)
  (H) hand-written: the MLP's MSE gradients computed without a graph (``HandWrittenProxyTD3`` below:
      fewer, larger ops), assigned to ``.grad``; optimizer.step()

Both call ``model.train(gradient_steps=BLOCK)`` in alternating blocks (A H, then H A, ...) after a
warm-up; per round the ratio t_A / t_H of the two blocks is recorded, and the report gives its median
and range per torch thread count. The machine may be shared: interleaving the arms within each round
is what makes the ratio meaningful while the absolute times drift with the load. The hand-written
path is worth keeping only if the median whole-step gain t_A / t_H - 1 is at least 5%.

    python scripts/bench_proxy_grads.py                  # threads 1 and 2, 20 rounds of 10 steps
    python scripts/bench_proxy_grads.py --threads 1 --rounds 10

Writes ``benchmarks/proxy_grads.json`` and ``benchmarks/proxy_grads.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3
import torch
from benchlib import cpu_name  # noqa: E402  (scripts/ is on sys.path)
from spikerl.agents import NonFiniteLossError, ProxyActor, ProxyTD3
from spikerl.agents.cpu import flush_denormals, keep_freed_memory
from spikerl.envs import make_env

ROOT = Path(__file__).resolve().parents[1]
KEEP_THRESHOLD = 0.05  # keep the hand-written gradients only for a median whole-step gain of 5% or more


def imitation_grads(proxy: ProxyActor, obs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, list]:
    """``(L, grads)``: L = mean ||proxy(obs) - labels||^2 and dL/dp for ``proxy.parameters()`` in order.

    With h_0 = obs, z_l = h_{l-1} W_l^T + b_l, h_l = relu(z_l), y = tanh(z_out) (or z_out):
        g_out = 2 (y - labels) / numel  [* (1 - y^2)],   dW_l = g_l^T h_{l-1},  db_l = sum_rows g_l,
        g_{l-1} = (g_l W_l) * [h_{l-1} > 0]
    """
    linears = [m for m in proxy.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        h = obs.to(linears[0].weight.dtype)
        inputs = []
        for lin in linears[:-1]:
            inputs.append(h)
            h = torch.addmm(lin.bias, h, lin.weight.t()).clamp_min_(0.0)
        inputs.append(h)
        y = torch.addmm(linears[-1].bias, h, linears[-1].weight.t())
        if proxy.squash:
            y = y.tanh_()
        diff = y - labels
        loss = diff.square().mean()
        g = diff.mul_(2.0 / diff.numel())
        if proxy.squash:
            g = g.mul_(1.0 - y.square())
        grads: list[torch.Tensor] = []
        for i in range(len(linears) - 1, -1, -1):
            a = inputs[i]
            # for the narrow observation input, (a^T g)^T: the GEMM with the wide output is the faster one
            grad_w = torch.mm(a.t().contiguous(), g).t().contiguous() if a.shape[1] < 64 else torch.mm(g.t(), a)
            grads += [g.sum(0), grad_w]
            if i > 0:
                g = torch.mm(g, linears[i].weight).masked_fill_(a <= 0, 0.0)  # relu'
        grads.reverse()  # [W_1, b_1, W_2, b_2, ...] = parameters() order
    return loss, grads


class HandWrittenProxyTD3(ProxyTD3):
    """ProxyTD3 whose K imitation steps use ``imitation_grads`` instead of autograd (arm H)."""

    def _imitate_actor(self, obs_k: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        params = list(self.proxy.parameters())
        losses = []
        for k in range(obs_k.shape[0]):
            loss, grads = imitation_grads(self.proxy, obs_k[k], labels[k].detach())
            if not bool(torch.isfinite(loss)):
                raise NonFiniteLossError("proxy", self._n_updates, float(loss))
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad
            self.proxy.optimizer.step()
            losses.append(loss)
        return torch.stack(losses)


def build(cls: type[ProxyTD3], args: argparse.Namespace) -> ProxyTD3:
    return cls("SNNPolicy", make_env(args.env, seed=args.seed), target="proxy", proxy_hidden=(512, 512),
               proxy_lr=1e-3, proxy_iters=3, learning_rate=3e-4, buffer_size=args.transitions + 10,
               learning_starts=args.transitions, batch_size=256, seed=args.seed, verbose=0,
               policy_kwargs=dict(net_arch=[256, 256], neuron="lif", T=5))


def timed_block(model: ProxyTD3, steps: int) -> float:
    start = time.perf_counter()
    model.train(gradient_steps=steps, batch_size=256)
    return time.perf_counter() - start


def measure(models: dict[str, ProxyTD3], args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """Warm-up, then ``rounds`` rounds of one block per arm, the order alternating between rounds."""
    torch.set_num_threads(threads)
    for model in models.values():
        timed_block(model, args.warmup)
    load_before = os.getloadavg()
    seconds: dict[str, list[float]] = {"autograd": [], "hand": []}
    for r in range(args.rounds):
        for arm in (("autograd", "hand") if r % 2 == 0 else ("hand", "autograd")):
            seconds[arm].append(timed_block(models[arm], args.block))
    load_after = os.getloadavg()
    ratios = np.array(seconds["autograd"]) / np.array(seconds["hand"])
    return {"torch_threads": threads, "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "ms_per_step": {arm: round(1e3 * float(np.median(s)) / args.block, 2) for arm, s in seconds.items()},
            "round_ratios_autograd_over_hand": [round(float(x), 4) for x in ratios],
            "median_ratio": round(float(np.median(ratios)), 4),
            "range_ratio": [round(float(ratios.min()), 4), round(float(ratios.max()), 4)]}


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Proxy imitation gradients: hand-written vs autograd (whole ProxyTD3 train step)", "",
             f"{report['setup']}. {report['rounds']} rounds per thread count, one block of {report['block']} "
             f"train steps per arm and round, arm order alternating, after {report['warmup']} warm-up steps per "
             f"arm; {report['machine']['cores']} cores ({report['machine']['cpu']}); torch "
             f"{report['versions']['torch']}, SB3 {report['versions']['stable_baselines3']}.", "",
             "The machine may be shared with other work: the absolute ms drift with its load, so the measure is "
             "the per-round ratio t(autograd) / t(hand-written) of two blocks run back to back.", "",
             "| torch threads | ms/step autograd | ms/step hand-written | ratio median | ratio range | load avg |",
             "|---|---|---|---|---|---|"]
    for run in report["runs"]:
        lines.append(f"| {run['torch_threads']} | {run['ms_per_step']['autograd']} | {run['ms_per_step']['hand']} | "
                     f"{run['median_ratio']} | {run['range_ratio'][0]}-{run['range_ratio'][1]} | "
                     f"{run['loadavg_before'][0]:.2f} -> {run['loadavg_after'][0]:.2f} |")
    lines += ["", f"Decision rule: keep the hand-written gradients only if the median whole-step gain "
                  f"(ratio - 1) is at least {100 * KEEP_THRESHOLD:.0f}% at every thread count. "
                  f"Result: **{report['decision']}**.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--transitions", type=int, default=3000, help="uniform-random transitions in the buffer")
    parser.add_argument("--warmup", type=int, default=20, help="train steps per arm before timing")
    parser.add_argument("--block", type=int, default=10, help="train steps per arm and round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    denormals_flushed = flush_denormals()  # as ``spikerl train`` runs, before torch starts its threads
    malloc_tuned = keep_freed_memory()

    models: dict[str, ProxyTD3] = {"autograd": build(ProxyTD3, args), "hand": build(HandWrittenProxyTD3, args)}
    for model in models.values():  # fills the buffer with random actions (learning_starts); no training yet
        model.learn(args.transitions)
    models["hand"].replay_buffer = models["autograd"].replay_buffer  # the very same transitions for both arms
    runs = [measure(models, args, threads) for threads in args.threads]
    keep = all(run["median_ratio"] - 1 >= KEEP_THRESHOLD for run in runs)
    report = {
        "setup": (f"ProxyTD3 PT-LIF T=5 on {args.env}, hidden 256-256, proxy 512-512, K=3, batch 256, "
                  f"{args.transitions} uniform-random transitions in the buffer"),
        "warmup": args.warmup, "block": args.block, "rounds": args.rounds, "malloc_keep_freed_memory": malloc_tuned,
        "denormals_flushed": denormals_flushed,
        "runs": runs, "keep_threshold": KEEP_THRESHOLD,
        "decision": ("keep the hand-written gradients" if keep
                     else "plain autograd (the hand-written gradients gain less than the threshold)"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "versions": {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "proxy_grads.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "proxy_grads.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
