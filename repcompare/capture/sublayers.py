"""Transformer sub-layers, read off the traced graph (Shekhar et al. 2023).

A *transformer block* is a block (``repcompare.capture.blocks``) with exactly
two residual adds in a row (the second adds to the stream the first
produced): attention (or another token mixer), then the MLP. For each add,
from the graph:

- the branch (the add's operand with the longer path from the input, followed
  back through identity-in-eval ops) ends in an optional *layer scale*: a
  multiplication of the branch by an input-independent tensor (timm's
  ``LayerScale``, BEiT's ``gamma_1 * x``);
- a *norm* is a call of a normalisation module (torch's batch, layer, group,
  instance and RMS norms and their subclasses, or a module that normalises,
  such as an RMS norm written out, with no convolution or linear layer in
  it);
- if what is behind the layer scale is a norm's output, the block is
  *post-norm* for this branch (Swin V2: ``x + norm1(attn(x))``): the norm is
  the branch's norm and the sub-layer is the norm's input;
- otherwise the sub-layer is that value itself (``attn``, ``mlp``) and its
  norm is the norm whose input is the residual stream (the block's input, or
  the stream after attention, through reshapes) and whose output the
  sub-layer is computed from: ``norm1``, ``norm2`` (pre-norm).

Roles per block, in depth order: ``norm1``, ``attn``, ``ls1`` (if any), the
stream after attention (``stream``), ``norm2``, ``mlp``, ``ls2`` (if any), the
block output (``block``); a post-norm's role is ``norm1 (post-norm)`` or
``norm2 (post-norm)`` and it comes after its sub-layer. A block where a role
cannot be found (no norm before or after a branch, as in LeViT or
EfficientFormer, or a role with no capturable output) makes the preset refuse
with a ``RolesNotFoundError`` reason, never a shifted list.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from repcompare.capture.blocks import (
    LAYER_FUNCTIONS,
    LAYOUT_FUNCTIONS,
    Block,
    Call,
    ResidualAdd,
    data_inputs,
    op_name,
)

MUL_TARGETS = (operator.mul, operator.imul, torch.mul)
NORM_MODULES = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)
NORMALISING = {
    "layer_norm",
    "group_norm",
    "batch_norm",
    "instance_norm",
    "rms_norm",
    "rsqrt",
    "normalize",
}
LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


class RolesNotFoundError(Exception):
    """Why a transformer block's roles cannot be found (a sentence fragment)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Calls:
    """The module calls of a traced graph: the nodes made in each, in graph order, and the
    name that selects each call's output."""

    members: dict[Call, list[torch.fx.Node]]
    label: Callable[[Call], str | None]
    modules: dict[str, nn.Module]

    def is_norm(self, call: Call) -> bool:
        module = self.modules.get(call[0])
        if isinstance(module, NORM_MODULES):
            return True
        ops = self.members[call]
        if any(n.op == "call_module" and isinstance(self.modules[n.target], LAYERS) for n in ops):
            return False
        names = {op_name(n) for n in ops if n.op != "call_module"}
        return bool(names & NORMALISING) and not names & LAYER_FUNCTIONS


def _layer_scale(node: torch.fx.Node, dependent: set) -> torch.fx.Node | None:
    """The scaled input of ``node`` when it multiplies it by an input-independent tensor."""
    is_mul = (node.op == "call_function" and node.target in MUL_TARGETS) or (
        node.op == "call_method" and node.target in ("mul", "mul_")
    )
    operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
    data = [a for a in operands if a in dependent]
    if is_mul and len(operands) == 2 and len(data) == 1:
        return data[0]
    return None


def is_transformer_block(
    adds: list[ResidualAdd],
    order: dict[torch.fx.Node, int],
    dependent: set[torch.fx.Node],
    stream_of: Callable[[torch.fx.Node], torch.fx.Node | None],
) -> bool:
    """Two residual adds in a row: the second's stream is the first add's output, followed
    back through ops with one data input (a reshape) and along the stream operand of adds
    that are not the block's (DaViT's convolutional position encoding ``x + conv(x)``);
    ``stream_of(add)`` is that operand (None for any other node)."""
    if len(adds) != 2:
        return False
    node = adds[1].stream
    while node is not adds[0].add and order[node] > order[adds[0].add]:
        data = data_inputs(node, dependent)
        if len(data) == 1:
            node = data[0]
        elif (stream := stream_of(node)) is not None:
            node = stream
        else:
            return False
    return node is adds[0].add


def _inner_calls(block: Block, node_calls: dict) -> list[Call]:
    """The module calls made inside ``block``'s call, in the order they start."""
    calls: dict[Call, None] = {}
    for node in block.members:
        stack = node_calls.get(node, ())
        if block.call in stack:
            for call in stack[stack.index(block.call) + 1 :]:
                calls.setdefault(call, None)
    return list(calls)


def _post_norm(value, block, node_calls, calls: Calls) -> Call | None:
    """The norm call whose output ``value`` is, as the outermost call inside the block that
    ends at ``value``."""
    stack = node_calls.get(value, ())
    if block.call not in stack:
        return None
    for call in stack[stack.index(block.call) + 1 :]:
        if calls.members[call][-1] is value:
            return call if calls.is_norm(call) else None
    return None


def _entries(call: Call, calls: Calls, dependent: set) -> set[torch.fx.Node]:
    inside = set(calls.members[call])
    return {p for n in calls.members[call] for p in data_inputs(n, dependent) if p not in inside}


def _reads_stream(call, calls: Calls, block: Block, dependent: set) -> bool:
    """The norm's data inputs are stream nodes, directly or through ops that only move
    values (a reshape; a ``cat`` of stream nodes, as CaiT's class token and patches)."""
    stack, seen = list(_entries(call, calls, dependent)), set()
    while stack:
        node = stack.pop()
        if node in seen or node in block.stream:
            seen.add(node)
            continue
        seen.add(node)
        data = data_inputs(node, dependent)
        if op_name(node) not in LAYOUT_FUNCTIONS or not data:
            return False
        stack += data
    return bool(seen)


def _pre_norm(value, block, inner: list[Call], calls: Calls, dependent, exclude) -> Call | None:
    """The last norm call inside the block that reads the stream and that ``value`` is
    computed from (walking back from ``value`` no further than the stream)."""
    reached, stack = set(), [value]
    inside = set(block.members)
    while stack:
        node = stack.pop()
        if node in reached or node not in inside:
            continue
        reached.add(node)
        if node not in block.stream:
            stack += data_inputs(node, dependent)
    norms = [
        call
        for call in inner
        if call != exclude
        and calls.members[call][-1] in reached
        and calls.is_norm(call)
        and _reads_stream(call, calls, block, dependent)
    ]
    return norms[-1] if norms else None


def block_roles(
    block: Block,
    name_of: Callable[[list[torch.fx.Node]], str | None],
    passes: Callable[[torch.fx.Node], list[torch.fx.Node]],
    node_calls: dict,
    calls: Calls,
    dependent: set[torch.fx.Node],
) -> list[tuple[str, str]]:
    """``(name, role)`` of a transformer block's sub-layers and its output (see module
    docstring); raises ``RolesNotFoundError`` when a role is missing.

    ``name_of(chain)`` names a value given its chain of identity-in-eval ops
    (None: nothing selectable); ``passes(node)`` is that chain from ``node``.
    """
    inner = _inner_calls(block, node_calls)
    block_name = calls.label(block.call) or block.call[0]

    def need(name: str | None, what: str) -> str:
        if name is None:
            raise RolesNotFoundError(f"the {what} of block '{block_name}' has no capture point")
        return name

    roles: list[tuple[str, str]] = []
    for k, add in enumerate(block.adds):
        sub_role, norm_role, scale_role = (
            ("attn", "norm1", "ls1") if k == 0 else ("mlp", "norm2", "ls2")
        )
        what = "attention" if k == 0 else "MLP"
        scaled = _layer_scale(add.chain[-1], dependent)
        main = passes(scaled) if scaled is not None else add.chain
        post = _post_norm(main[-1], block, node_calls, calls)
        if post is not None:
            entries = list(_entries(post, calls, dependent))
            if len(entries) != 1:
                raise RolesNotFoundError(
                    f"the norm ending the {what} branch of block '{block_name}' has several inputs"
                )
            main = passes(entries[0])
        pre = _pre_norm(main[-1], block, inner, calls, dependent, post)
        if pre is None and post is None:
            raise RolesNotFoundError(
                f"block '{block_name}' has no norm before or after its {what} branch"
            )
        if pre is not None:
            roles.append((need(calls.label(pre), f"norm before the {what} branch"), norm_role))
        roles.append((need(name_of(main), f"{what} branch"), sub_role))
        if post is not None:
            label = need(calls.label(post), f"norm after the {what} branch")
            roles.append((label, f"{norm_role} (post-norm)"))
        if scaled is not None and name_of(add.chain) is not None:
            roles.append((name_of(add.chain), scale_role))
        if k == 0:
            roles.append((need(name_of([add.add]), "stream after attention"), "stream"))
    roles.append((need(calls.label(block.call), "output"), "block"))
    return roles
