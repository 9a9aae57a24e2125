"""Tracing and preparing an ANN for conversion (torch.fx).

``prepare(ann)`` traces a copy of the network and

1. folds every BatchNorm that directly follows a Linear/Conv into it (eval-mode statistics);
2. moves a MaxPool that directly follows an activation before it (max-pool commutes with the monotone
   ReLU/QCFS/clip activations, so the ANN is unchanged); if its input varies over time it then runs as an
   expectation-compensation unit (ECM): cumulative output t * maxpool(mean input so far);
3. finds the activation sites (``nn.ReLU``, ``QCFS``, ``ClipReLU``, ``F.relu``/``torch.relu``/``.relu()``)
   that become neurons, and splits the graph into the spiking part (everything that feeds an activation)
   and the readout (everything after the last activations: the last affine layer and any head such as
   tanh or a max-action scale, computed in floating point on time-averaged inputs);
4. checks that every operation on spikes in the spiking part is linear, else raises a ValueError that
   names the layer and lists what is supported.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from spikerl.conversion.activations import QCFS, ClipReLU

SITE_MODULES = (nn.ReLU, QCFS, ClipReLU)
SITE_FUNCTIONS = {F.relu, torch.relu}
LINEAR_MODULES = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity,
)
MAXPOOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
LINEAR_FUNCTIONS = {
    operator.add, operator.sub, operator.neg, operator.pos, operator.getitem, getattr, torch.add, torch.sub,
    torch.cat, torch.flatten, torch.reshape, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d, F.dropout, F.linear, F.conv1d, F.conv2d,
}
SCALING_FUNCTIONS = {operator.mul, operator.truediv, torch.mul, torch.div}
LINEAR_METHODS = {
    "view", "reshape", "flatten", "contiguous", "size", "dim", "float", "double", "to", "unsqueeze",
    "squeeze", "permute", "transpose", "add", "sub", "neg", "__add__", "__sub__", "__radd__",
}
SCALING_METHODS = {"mul", "div", "__mul__", "__rmul__", "__truediv__"}

SUPPORTED = (
    "activations converted to neurons: nn.ReLU, F.relu/torch.relu, spikerl QCFS, ClipReLU; "
    "linear layers on spikes: Linear, Conv1d/2d, BatchNorm1d/2d (folded), AvgPool, AdaptiveAvgPool, "
    "Flatten, Unflatten, Dropout, Identity, residual add/sub, cat, reshape/view/flatten, scaling by a "
    "constant; MaxPool directly after an activation; any layer before the first activation or after the "
    "last one (e.g. a Tanh head)"
)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (QCFS, ClipReLU)) or super().is_leaf_module(m, qualname)


@dataclass
class Prepared:
    gm: fx.GraphModule
    sites: dict[str, fx.Node]                                 # site name -> node
    readout: set[fx.Node] = field(default_factory=set)         # nodes computed on decoded values
    ecm: set[fx.Node] = field(default_factory=set)            # nodes run as ECM units


def _describe(node: fx.Node, gm: fx.GraphModule) -> str:
    if node.op == "call_module":
        return f"layer '{node.target}' ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_function":
        return f"function '{getattr(node.target, '__name__', node.target)}' (node {node.name})"
    return f"method '.{node.target}()' (node {node.name})"


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def is_site(node: fx.Node, gm: fx.GraphModule) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), SITE_MODULES)
    if node.op == "call_function":
        return node.target in SITE_FUNCTIONS
    return node.op == "call_method" and node.target == "relu"


def site_input(node: fx.Node) -> fx.Node:
    return node.args[0]


def fold_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """Return a copy of a Linear/Conv with the eval-mode BatchNorm after it folded in:
    W' = W g / sqrt(var + eps), b' = (b - mu) g / sqrt(var + eps) + beta (per output channel)."""
    fused = copy.deepcopy(conv)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else \
        1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.weight = nn.Parameter(w * scale.view(-1, *([1] * (w.dim() - 1))).to(w.dtype))
    fused.bias = nn.Parameter(((b - bn.running_mean) * scale + shift).to(w.dtype))
    return fused


def _fuse_batchnorms(gm: fx.GraphModule) -> None:
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    for node in list(gm.graph.nodes):
        bn = _module(gm, node)
        if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) or bn.running_var is None:
            continue
        prev = node.args[0]
        conv = _module(gm, prev) if isinstance(prev, fx.Node) else None
        if not isinstance(conv, (nn.Linear, nn.Conv1d, nn.Conv2d)) or len(prev.users) != 1 \
                or counts.get(prev.target) != 1 or counts.get(node.target) != 1:
            continue
        parent, _, name = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, fold_bn(conv, bn))
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)


def _is_maxpool(node: fx.Node, gm: fx.GraphModule) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), MAXPOOL_MODULES)
    return node.op == "call_function" and node.target in (F.max_pool1d, F.max_pool2d, torch.max_pool2d,
                                                          F.adaptive_max_pool2d)


def _swap_maxpools(gm: fx.GraphModule) -> list[fx.Node]:
    """act -> maxpool  becomes  maxpool -> act (exact for monotone activations)."""
    moved = []
    for node in list(gm.graph.nodes):
        if not _is_maxpool(node, gm):
            continue
        act = node.args[0]
        if not (isinstance(act, fx.Node) and is_site(act, gm) and len(act.users) == 1):
            continue
        with gm.graph.inserting_before(act):
            pool = gm.graph.create_node(node.op, node.target, (site_input(act), *node.args[1:]),
                                        dict(node.kwargs))
        act.args = (pool, *act.args[1:])
        node.replace_all_uses_with(act)
        gm.graph.erase_node(node)
        moved.append(pool)
    return moved


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.all_input_nodes]


def _is_linear(node: fx.Node, gm: fx.GraphModule, varying: set[fx.Node]) -> bool:
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), LINEAR_MODULES)
    if node.op == "call_function":
        if node.target in LINEAR_FUNCTIONS:
            return True
        if node.target in SCALING_FUNCTIONS:
            var = [a for a in _tensor_args(node) if a in varying]
            return len(var) <= 1 and not (node.target in (operator.truediv, torch.div) and len(node.args) > 1
                                          and node.args[1] in varying)
        return False
    if node.op == "call_method":
        if node.target in LINEAR_METHODS:
            return True
        if node.target in SCALING_METHODS:
            var = [a for a in _tensor_args(node) if a in varying]
            return len(var) <= 1 and not (node.target in ("div", "__truediv__") and len(node.args) > 1
                                          and node.args[1] in varying)
    return False


def prepare(ann: nn.Module, ecm: bool = False) -> Prepared:
    """Trace, fold BN, move max-pools, find sites and the readout, and validate (see module doc).

    With ``ecm=True`` any other operation on spikes (tanh, LayerNorm, GELU, a product of two spike trains,
    a max-pool, ...) runs as an expectation-compensation unit instead of raising."""
    if not isinstance(ann, nn.Module):
        raise ValueError(f"convert() needs a torch.nn.Module, got {type(ann).__name__}")
    model = copy.deepcopy(ann).eval()
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure gets one clear message
        raise ValueError(
            f"could not trace {type(ann).__name__} with torch.fx ({type(exc).__name__}: {exc}); the network's "
            "forward must be a data-independent chain of layers (no Python control flow on tensor values)"
        ) from exc
    gm = fx.GraphModule(model, graph)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValueError(f"convert() supports networks with exactly one input tensor; {type(ann).__name__}."
                         f"forward takes {len(placeholders)}: {[n.target for n in placeholders]}")
    _fuse_batchnorms(gm)
    moved = _swap_maxpools(gm)
    gm.graph.lint()
    gm.recompile()

    nodes = list(gm.graph.nodes)
    sites = {}
    for node in nodes:
        if is_site(node, gm):
            name = node.target if node.op == "call_module" else node.name
            sites[str(name)] = node
    if not sites:
        raise ValueError(f"{type(ann).__name__} has no activation to convert into spiking neurons; "
                         f"supported: {SUPPORTED}")
    site_nodes = set(sites.values())
    # spiking part: sites and their ancestors; readout: the rest
    feeds: set[fx.Node] = set()
    stack = [site_input(n) for n in site_nodes]
    while stack:
        n = stack.pop()
        if isinstance(n, fx.Node) and n not in feeds:
            feeds.add(n)
            stack.extend(n.all_input_nodes)
    spiking = feeds | site_nodes
    readout = {n for n in nodes if n not in spiking and n.op not in ("placeholder", "get_attr")}
    # varying: nodes downstream of a site
    varying: set[fx.Node] = set()
    for node in nodes:
        if node in site_nodes or any(a in varying for a in node.all_input_nodes):
            varying.add(node)
    ecm_nodes = {p for p in moved if p in varying}
    for node in nodes:
        if node in readout or node in site_nodes or node not in varying or node in ecm_nodes:
            continue
        if node.op in ("call_module", "call_function", "call_method") and not _is_linear(node, gm, varying):
            if ecm:
                ecm_nodes.add(node)
                continue
            if _is_maxpool(node, gm):
                raise ValueError(f"{_describe(node, gm)} acts on spikes; a max-pool is supported only directly "
                                 "after an activation (it is moved before it) - or use AvgPool2d, or "
                                 "ConversionSpec(ecm=True)")
            raise ValueError(f"unsupported {_describe(node, gm)} between spiking layers; supported: {SUPPORTED}; "
                             "or pass ConversionSpec(ecm=True) to run it as an expectation-compensation unit")
    return Prepared(gm=gm, sites=sites, readout=readout, ecm=ecm_nodes)
