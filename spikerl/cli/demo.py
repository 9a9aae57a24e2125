"""``spikerl demo``: a one-minute tour of the spiking core (no training)."""

from __future__ import annotations

import argparse
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a small demo of the spiking core (actor, spikes, Numba policy)",
                       description="Build a Proxy-Target-style spiking actor, run it in torch and as a "
                       "compiled Numba policy, and print spike counts and decision latency.")
    p.add_argument("--obs-dim", type=int, default=17, help="observation size (default 17, HalfCheetah)")
    p.add_argument("--act-dim", type=int, default=6, help="action size (default 6)")
    p.add_argument("--neuron", default="lif", help="neuron model name (default lif)")
    p.add_argument("--T", type=int, default=5, help="simulation steps per decision (default 5)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from spikerl import SpikingActor

    console = Console()
    torch.manual_seed(args.seed)
    actor = SpikingActor(args.obs_dim, args.act_dim, neuron=args.neuron, T=args.T).eval()
    obs = torch.randn(8, args.obs_dim)
    with torch.no_grad():
        action = actor(obs)
    counts = actor.spike_counts(obs)
    table = Table(title=f"SpikingActor({args.obs_dim}, {args.act_dim}) neuron={args.neuron} T={args.T}")
    table.add_column("layer")
    table.add_column("neurons", justify="right")
    table.add_column("spikes / decision", justify="right")
    table.add_column("firing rate", justify="right")
    for name, c in counts.items():
        table.add_row(name, str(c.shape[1]), f"{c.sum(1).mean():.1f}", f"{c.mean() / args.T:.3f}")
    console.print(table)
    console.print(f"actions for 8 random observations: shape {tuple(action.shape)}, "
                  f"range [{action.min():.3f}, {action.max():.3f}]")
    x = obs[0]
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(200):
            actor(x)
        torch_us = (time.perf_counter() - t0) / 200 * 1e6
    try:
        from spikerl.kernels import compile_policy
    except ImportError:  # pragma: no cover - the Numba policy arrives with spikerl.kernels.numba_policy
        console.print(f"torch eager decision latency: {torch_us:.0f} us")
        return 0
    policy = compile_policy(actor)
    xn = x.numpy().astype(np.float32)
    policy(xn)
    t0 = time.perf_counter()
    for _ in range(2000):
        policy(xn)
    numba_us = (time.perf_counter() - t0) / 2000 * 1e6
    diff = float(np.abs(policy(xn) - actor(x).detach().numpy()).max())
    console.print(f"decision latency (batch 1): torch eager {torch_us:.0f} us, Numba {numba_us:.1f} us "
                  f"({torch_us / numba_us:.1f}x); max |action difference| {diff:.2e}")
    return 0
