"""Transformer sub-layers, read off the traced graph (Shekhar et al. 2023).

A *transformer block* is a block with exactly two residual adds in a row (the
second adds to the stream the first produced): attention, then the MLP. For
each add, from the graph:

- the branch (the add's operand with the longer path from the input, followed
  back through identity-in-eval ops) ends in an optional *layer scale*: a
  multiplication of the branch by an input-independent tensor (timm's
  ``LayerScale``, BEiT's ``gamma_1 * x``);
- behind it is the sub-layer itself (``attn``, ``mlp``);
- its *norm* is the first op of the branch that reads the residual stream
  (the add's other operand): ``norm1``, ``norm2``.

Per block, in depth order: norm1, attn, ls1 (if any), the residual stream
after attention (the first add), norm2, mlp, ls2 (if any), the block output.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch

MUL_TARGETS = (operator.mul, operator.imul, torch.mul)


@dataclass(frozen=True)
class ResidualAdd:
    """One residual add: its node, the stream operand, and the branch chain back from the
    other operand through identity-in-eval ops."""

    add: torch.fx.Node
    stream: torch.fx.Node
    chain: list[torch.fx.Node]


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


def _reads_stream(add: ResidualAdd, main: torch.fx.Node, order: dict, dependent: set):
    """The first op (in graph order) that reads the stream and leads to ``main``."""
    ancestors, stack = set(), [main]
    while stack:
        node = stack.pop()
        if node in ancestors or node not in dependent or order[node] <= order[add.stream]:
            continue
        ancestors.add(node)
        stack += node.all_input_nodes
    readers = [u for u in add.stream.users if u in ancestors]
    return min(readers, key=order.__getitem__) if readers else None


def is_transformer_block(
    adds: list[ResidualAdd], order: dict[torch.fx.Node, int], dependent: set[torch.fx.Node]
) -> bool:
    """Two residual adds in a row: the second's stream is the first add's output (followed
    back through ops with one data input, such as a reshape); rotary embeddings' two adds
    are not."""
    if len(adds) != 2:
        return False
    node = adds[1].stream
    while node is not adds[0].add and order[node] > order[adds[0].add]:
        data = [p for p in node.all_input_nodes if p in dependent]
        if len(data) != 1:
            return False
        node = data[0]
    return node is adds[0].add


def block_sublayers(
    adds: list[ResidualAdd],
    name_of: Callable[[list[torch.fx.Node]], str | None],
    passes: Callable[[torch.fx.Node], list[torch.fx.Node]],
    order: dict[torch.fx.Node, int],
    dependent: set[torch.fx.Node],
) -> list[str]:
    """norm1, attn, ls1, stream after attention, norm2, mlp, ls2 of a two-add block.

    ``name_of(chain)`` names a value given its chain of identity-in-eval ops
    (None: nothing selectable); ``passes(node)`` is that chain from ``node``.
    """
    names: list[str | None] = []
    for k, add in enumerate(adds):
        scaled = _layer_scale(add.chain[-1], dependent)
        main = passes(scaled) if scaled is not None else add.chain
        norm = _reads_stream(add, main[-1], order, dependent)
        names += [name_of(passes(norm)) if norm is not None else None, name_of(main)]
        names += [name_of(add.chain) if scaled is not None else None]
        names += [name_of([add.add])] if k == 0 else []
    return [n for n in names if n is not None]
