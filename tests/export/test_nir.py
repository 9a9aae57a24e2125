"""NIR export: parameters read back equal the source (the forward-Euler mapping of ``spikerl.export.nir_graph``),
and a small discrete-time interpreter of the NIR graph reproduces the torch actor's output-layer spikes and
actions."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from spikerl.export import export_policy
from spikerl.export.nir_graph import NIR_DT

from .helpers import make_actor, observations, torch_action


def simulate(graph: nir.NIRGraph, x_seq: np.ndarray) -> np.ndarray:
    """Forward-Euler simulation (step dt) of a chain graph on input ``x_seq[T, B, n]``; returns output spikes.

    LIF: v += dt/tau (v_leak - v + r I); IF: v += dt r I; CubaLIF: i += dt/tau_syn (-i + w_in x), then the LIF
    update with I = i; spike z = [v > v_threshold], v <- v_reset where z (hard reset, as the metadata says).
    """
    dt = float(graph.metadata["dt"])
    nxt = dict(graph.edges)
    order, node = [], nxt["input"]
    while node != "output":
        order.append(node)
        node = nxt[node]
    state: dict[str, dict[str, np.ndarray]] = {}
    out = []
    for x in x_seq:
        for name in order:
            n = graph.nodes[name]
            if isinstance(n, nir.Affine):
                x = x @ n.weight.T + n.bias
                continue
            st = state.setdefault(name, {"v": np.zeros_like(x), "i": np.zeros_like(x)})
            if isinstance(n, nir.CubaLIF):
                st["i"] = st["i"] + dt / n.tau_syn * (-st["i"] + n.w_in * x)
                st["v"] = st["v"] + dt / n.tau_mem * (n.v_leak - st["v"] + n.r * st["i"])
            elif isinstance(n, nir.LIF):
                st["v"] = st["v"] + dt / n.tau * (n.v_leak - st["v"] + n.r * x)
            elif isinstance(n, nir.IF):
                st["v"] = st["v"] + dt * n.r * x
            else:
                raise AssertionError(f"unexpected node {type(n).__name__}")
            z = st["v"] > n.v_threshold
            st["v"] = np.where(z, n.v_reset, st["v"])
            x = z.astype(np.float64)
        out.append(x)
    return np.stack(out)


@pytest.mark.parametrize("neuron", ["lif", "plif", "clif", "if"])
def test_nir_parameters_equal_the_source(tmp_path, neuron):
    actor = make_actor(neuron, "hard")
    path = export_policy(actor, tmp_path / "policy.nir", "nir")
    graph = nir.read(str(path))
    kind = {"lif": nir.LIF, "plif": nir.LIF, "clif": nir.CubaLIF, "if": nir.IF}[neuron]
    assert graph.metadata["spikerl_reset"] == "hard" and float(graph.metadata["dt"]) == NIR_DT == 1e-4
    assert int(graph.metadata["T"]) == actor.T and "host" in graph.metadata
    assert len(graph.edges) == 2 * len(actor.snn.linears) + 1
    for i, (lin, neu) in enumerate(zip(actor.snn.linears, actor.snn.neurons, strict=True)):
        aff = graph.nodes[f"affine{i}"]
        np.testing.assert_array_equal(aff.weight, lin.weight.detach().numpy())
        np.testing.assert_array_equal(aff.bias, lin.bias.detach().numpy())
        node = graph.nodes[f"{kind.__name__.lower()}{i}"]
        assert type(node) is kind
        n_out = lin.out_features
        np.testing.assert_array_equal(node.v_threshold, np.full(n_out, neu.threshold))
        np.testing.assert_array_equal(node.v_reset, np.zeros(n_out))
        if neuron == "if":
            np.testing.assert_allclose(node.r, 1.0 / NIR_DT, rtol=1e-15)
            continue
        beta = float(neu.decay.detach()) if neuron == "plif" else neu.decay
        np.testing.assert_array_equal(node.v_leak, np.zeros(n_out))
        tau = node.tau_mem if neuron == "clif" else node.tau
        np.testing.assert_allclose(tau, NIR_DT / (1 - beta), rtol=1e-15)
        np.testing.assert_allclose(node.r, 1 / (1 - beta), rtol=1e-15)
        np.testing.assert_allclose(1 - NIR_DT / tau, beta, rtol=1e-12)  # Euler's decay is beta
        if neuron == "clif":
            alpha = neu.current_decay
            np.testing.assert_allclose(node.tau_syn, NIR_DT / (1 - alpha), rtol=1e-15)
            np.testing.assert_allclose(node.w_in, 1 / (1 - alpha), rtol=1e-15)
        if neuron == "plif":
            assert beta != 0.75


@pytest.mark.parametrize("neuron", ["lif", "plif", "clif", "if"])
def test_nir_graph_reproduces_torch_spikes_and_actions(tmp_path, neuron):
    actor = make_actor(neuron, "hard")
    graph = nir.read(str(export_policy(actor, tmp_path / "policy.nir", "nir")))
    obs = observations()
    record: list[torch.Tensor] = []
    with torch.no_grad():
        actor.decode(torch.from_numpy(obs), record)
    enc_spikes, out_spikes = record[0].numpy(), record[-1].numpy()
    got = simulate(graph, enc_spikes)
    np.testing.assert_array_equal(got, out_spikes)
    assert 0.05 < out_spikes.mean() < 0.95
    # host decoder from the metadata: rate -> grouped affine -> tanh
    md = graph.metadata
    rate = got.mean(0).reshape(len(obs), actor.act_dim, int(md["decoder_pop_dim"]))
    action = np.tanh((rate * md["host_decoder_weight"]).sum(-1) + md["host_decoder_bias"])
    np.testing.assert_allclose(action, torch_action(actor, obs), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("neuron", "reset", "message"), [
    ("lif", "soft", "reset='soft'.*hard reset.*Train with neuron_kwargs=\\{'reset': 'hard'\\}"),
    ("clif", "soft", "reset='soft'"),
    ("dn", "hard", "DN .*cannot express.*format='bundle'"),
    ("multi-threshold", "hard", "multi-threshold .*cannot express"),
])
def test_nir_rejects_what_it_cannot_express(tmp_path, neuron, reset, message):
    with pytest.raises(ValueError, match=f"cannot export to NIR: layer 0 .*{message}"):
        export_policy(make_actor(neuron, reset), tmp_path / "p.nir", "nir")
    assert not list(tmp_path.iterdir())
