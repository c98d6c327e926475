"""Residual blocks, read off the traced graph.

- A *residual add* is an ``add`` whose two operands both depend on the input
  (so ``x + pos_embed`` is not one). Its *branch* operand is the one with the
  longer path from the input, its *stream* operand the other.
- Its *block* is the module call it is made in that is an element of a
  container (``Sequential``, ``ModuleList``, ``ModuleDict``): the innermost
  such call, as the tracer recorded them (``layer1.0``, ``blocks.3``,
  ``stages.1.blocks.0``, ``encoder.layers.encoder_layer_0``). An add made in
  no container element belongs to the module whose forward makes it
  (RegNet's ``s1.b1``, NASNet's cells). A module called from inside a block
  (CoaT's shared ``cpe1``) is part of that block. An element that holds
  blocks (a stage) is not itself one: each of its own adds goes to the
  outermost call below it whose output the add is (LeViT's
  ``stages.1.downsample``, GCViT's ``stages.1.downsample.conv_block``), else to
  the call making it.
- An add counts for its block only when it is not inside the branch of
  another of the block's residual adds (computed from the branch and not from
  that add's stream): rotary position embeddings inside attention (EVA,
  DINOv3), ConvNeXt-V2's global response norm inside the MLP and FocalNet's
  modulation are parts of a branch, not residual connections of the block.
- And only when its branch is not *affine* in the stream: ``x + conv(x)``
  (Twins' ``PosConv``, CoaT's and DaViT's ``cpe``, iFormer's ``RepCPE``), the
  parallel convolutions and batch norms of a re-parameterisable block
  (RepVGG, MobileOne, FastViT's ``RepMixer``) or EfficientFormer's
  ``pool(x) - x`` token mixer is one affine layer (a single convolution once
  re-parameterised), not a residual block.

A block is one element of the model's block container: its name is the
module's (or, for a module called more than once, the call's) name, and its
residual adds are, in order, the attention and MLP adds of a transformer
block or the one add of a ResNet block.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

Call = tuple[str, int]  # (module name, 0-based call number)

FX_ADD_TARGETS = (operator.add, operator.iadd, torch.add)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# linear in their data input (batch norm: eval mode, which discovery uses)
AFFINE_MODULES = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.Identity,
    nn.modules.dropout._DropoutNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
    nn.Flatten,
    nn.Unflatten,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
)
# ops that only move values (a norm reads the stream through them too)
LAYOUT_FUNCTIONS = {
    "reshape",
    "view",
    "permute",
    "transpose",
    "flatten",
    "unflatten",
    "contiguous",
    "pad",
    "roll",
    "getitem",
    "squeeze",
    "unsqueeze",
    "cat",
    "concat",
}
AFFINE_FUNCTIONS = LAYOUT_FUNCTIONS | {
    "add",
    "iadd",
    "sub",
    "isub",
    "neg",
    "chunk",
    "split",
    "unbind",
    "expand",
    "expand_as",
    "narrow",
    "clone",
    "conv1d",
    "conv2d",
    "conv3d",
    "linear",
    "batch_norm",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "dropout",
    "drop_path",
}
# affine when only one operand depends on the input (a scale such as a layer scale)
SCALING_FUNCTIONS = {"mul", "imul", "truediv", "itruediv", "div"}


@dataclass(frozen=True)
class ResidualAdd:
    """One residual add: its node, the stream operand, and the branch chain back from the
    other operand through identity-in-eval ops."""

    add: torch.fx.Node
    stream: torch.fx.Node
    chain: list[torch.fx.Node]


@dataclass
class Block:
    """A residual block: its module call, the nodes made in that call (graph order), its
    residual stream (its data inputs from outside, the nodes of its main path, its
    residual adds and their stream operands) and its residual adds."""

    call: Call
    members: list[torch.fx.Node]
    stream: set[torch.fx.Node]
    adds: list[ResidualAdd]


def op_name(node: torch.fx.Node) -> str:
    """A node's function or method name (``add``, ``getitem``, ``layer_norm``, ...)."""
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


def is_add(node: torch.fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in FX_ADD_TARGETS
    return node.op == "call_method" and node.target in ("add", "add_")


def call_members(nodes, node_calls) -> dict[Call, list[torch.fx.Node]]:
    """The nodes made in each module call, in graph order."""
    members: dict[Call, list[torch.fx.Node]] = {}
    for node in nodes:
        for call in node_calls.get(node, ()):
            members.setdefault(call, []).append(node)
    return members


def block_call(calls: tuple[Call, ...], modules: dict[str, nn.Module]) -> Call | None:
    """The innermost of ``calls`` (outermost first) whose module is a container element,
    else the innermost call; None outside every module."""
    for call in reversed(calls):
        parent = call[0].rpartition(".")[0]
        if isinstance(modules.get(parent), CONTAINERS):
            return call
    return calls[-1] if calls else None


def data_inputs(node: torch.fx.Node, dependent: set[torch.fx.Node]) -> list[torch.fx.Node]:
    return [p for p in node.all_input_nodes if p in dependent]


def main_path(
    members: list[torch.fx.Node], order: dict[torch.fx.Node, int], dependent: set[torch.fx.Node]
) -> set[torch.fx.Node]:
    """The block's data inputs and the nodes of ``members`` no data edge inside it jumps
    over (an edge from an input or an earlier node to a later node)."""
    inside = set(members)
    data = [n for n in members if n in dependent]
    entries = {p for n in data for p in data_inputs(n, dependent) if p not in inside}
    reach = max((order[u] for e in entries for u in e.users if u in inside), default=-1)
    cuts = set(entries)
    for node in data:
        if reach <= order[node]:
            cuts.add(node)
        later = [order[u] for u in node.users if u in inside]
        reach = max(reach, *later) if later else reach
    return cuts


def is_affine(node: torch.fx.Node, dependent: set, modules: dict[str, nn.Module]) -> bool:
    """True when ``node`` is linear (plus a constant) in its data inputs."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.modules.batchnorm._BatchNorm):  # timm's BatchNormAct2d
            act = getattr(module, "act", None)
            return act is None or isinstance(act, nn.Identity)
        return isinstance(module, AFFINE_MODULES) or type(module).__name__ in (
            "DropPath",
            "StochasticDepth",
        )
    name = op_name(node)
    if name in SCALING_FUNCTIONS:
        return len(data_inputs(node, dependent)) <= 1
    return name in AFFINE_FUNCTIONS


def _frontier(start, inside, dependent, modules) -> set[torch.fx.Node]:
    """The first non-affine nodes (or nodes outside the block) behind ``start``."""
    seen, stack, frontier = set(), [start], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node not in inside or not is_affine(node, dependent, modules):
            frontier.add(node)
            continue
        stack += data_inputs(node, dependent)
    return frontier


def affine_branch(add: ResidualAdd, inside: set, dependent: set, modules: dict) -> bool:
    """True when the branch is an affine function of what the stream is made from."""
    branch = _frontier(add.chain[0], inside, dependent, modules)
    return branch <= _frontier(add.stream, inside, dependent, modules)


def _ancestors(node: torch.fx.Node, inside: set, dependent: set) -> set[torch.fx.Node]:
    """``node`` and the nodes of ``inside`` it is computed from."""
    seen, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current in seen or current not in inside:
            continue
        seen.add(current)
        stack += data_inputs(current, dependent)
    return seen


LAYER_FUNCTIONS = {"conv1d", "conv2d", "conv3d", "linear", "matmul", "bmm", "einsum"}


def _ends_with(last, add, dependent: set, modules: dict[str, nn.Module]) -> bool:
    """``last`` is ``add``, or computed from it alone by ops without weights (an
    activation, a reshape), not by a further layer (a downsampling convolution)."""
    node = last
    while node is not add:
        data = data_inputs(node, dependent)
        if len(data) != 1:
            return False
        if node.op == "call_module":
            if any(True for _ in modules[node.target].parameters()):
                return False
        elif op_name(node) in LAYER_FUNCTIONS:
            return False
        node = data[0]
    return True


def find_blocks(
    nodes: list[torch.fx.Node],
    node_calls: dict[torch.fx.Node, tuple[Call, ...]],
    modules: dict[str, nn.Module],
    dependent: set[torch.fx.Node],
    path_length: dict[torch.fx.Node, int],
    passes: Callable[[torch.fx.Node], list[torch.fx.Node]],
) -> list[Block]:
    """The residual blocks (see module docstring), in the order of their first add."""
    order = {node: i for i, node in enumerate(nodes)}
    members = call_members(nodes, node_calls)
    candidates: dict[Call, list[ResidualAdd]] = {}
    for node in nodes:
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        if not (is_add(node) and len(operands) == 2 and all(a in dependent for a in operands)):
            continue
        call = block_call(node_calls.get(node, ()), modules)
        if call is None:
            continue
        branch = max(operands, key=lambda a: path_length[a])
        stream = operands[1] if branch is operands[0] else operands[0]
        candidates.setdefault(call, []).append(ResidualAdd(node, stream, passes(branch)))

    def outer(call: Call, adds: list[ResidualAdd]) -> list[ResidualAdd]:
        """The adds of ``call`` with a branch that is not affine and inside no other's."""
        within = set(members[call])
        adds = [add for add in adds if not affine_branch(add, within, dependent, modules)]
        inner = set()
        for add in adds:
            inner |= _ancestors(add.chain[0], within, dependent) - _ancestors(
                add.stream, within, dependent
            )
        return [add for add in adds if add.add not in inner]

    def block_of(call: Call, adds: list[ResidualAdd]) -> Block | None:
        kept = outer(call, adds)
        if not kept:
            return None
        # the residual stream: the main path, the residual adds and their stream operands
        # (VOLO's class block adds to the class token while the patches pass it by)
        stream = main_path(members[call], order, dependent)
        stream |= {add.add for add in kept} | {add.stream for add in kept}
        return Block(call, members[call], stream, kept)

    blocks = {call: b for call, adds in candidates.items() if (b := block_of(call, adds))}
    for call in list(blocks):
        inner = {c for n in members[call] for c in node_calls[n][node_calls[n].index(call) + 1 :]}
        if not inner & (blocks.keys() - {call}):
            continue
        # an element holding blocks (a stage): each of its adds belongs to the outermost call
        # below it whose output the add is (through ops of one data input, such as an
        # activation), else to the call making it: LeViT's ``stages.1.downsample``, GCViT's
        # ``stages.1.downsample.conv_block``; one made in its own forward keeps it a block
        del blocks[call]
        moved: dict[Call, list[ResidualAdd]] = {}
        for add in outer(call, candidates[call]):
            stack = node_calls[add.add]
            below = stack[stack.index(call) + 1 :]
            ending = [c for c in below if _ends_with(members[c][-1], add.add, dependent, modules)]
            owner = ending[0] if ending else (below or [call])[-1]
            moved.setdefault(owner, []).append(add)
        for child, adds in moved.items():
            if child not in blocks and (block := block_of(child, adds)):
                blocks[child] = block
    return sorted(blocks.values(), key=lambda b: order[b.adds[0].add])
