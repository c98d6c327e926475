"""Natural stages of a model without residual blocks (VGG, DenseNet, GoogLeNet, Inception).

Read off the traced graph:

- a *cut point* is a node every later value is computed through (no data edge
  jumps over it);
- a *stage* is a module spanning a stretch of the main path: its input and
  its output (a map) are cut points and it holds more than one capture
  point, with no smaller such module inside it (DenseNet's ``denseblockK`` and
  ``transitionK``, GoogLeNet's ``inception3a``, ...);
- a module that downsamples more than once (a plain chain of layers such as
  VGG's ``features``) is split where it downsamples: its stages are those
  points (VGG's max-pool outputs); so is a model with fewer than two stages.
"""

from __future__ import annotations

import torch


def _cut_points(nodes: list[torch.fx.Node], dependent: set[torch.fx.Node]) -> set[torch.fx.Node]:
    order = {node: i for i, node in enumerate(nodes)}
    cuts, reach = set(), -1
    for node in nodes:
        if node not in dependent:
            continue
        if reach <= order[node]:
            cuts.add(node)
        users = [order[u] for u in node.users if u in dependent]
        reach = max(reach, *users) if users else reach
    return cuts


def _downsamples(node: torch.fx.Node, outputs: dict, dependent: set) -> bool:
    value = outputs.get(node)
    inputs = [outputs[p] for p in node.all_input_nodes if p in dependent]
    return (
        torch.is_tensor(value)
        and value.ndim == 4
        and len(inputs) == 1
        and torch.is_tensor(inputs[0])
        and inputs[0].ndim == 4
        and value.shape[-1] < inputs[0].shape[-1]
    )


def natural_stages(
    nodes: list[torch.fx.Node],
    captured: list[torch.fx.Node],
    qualname: dict[torch.fx.Node, str],
    aliases: dict[str, str],
    dependent: set[torch.fx.Node],
    outputs: dict[torch.fx.Node, object],
) -> list[str]:
    """Stage names (modules, or points where a chain downsamples) in depth order."""
    cuts = _cut_points(nodes, dependent)
    depth = {qualname[n]: i for i, n in enumerate(captured)}
    inside: dict[str, list[torch.fx.Node]] = {}
    for node in nodes:
        parts = qualname.get(node, "").split(".")
        for i in range(1, len(parts)):
            inside.setdefault(".".join(parts[:i]), []).append(node)
    steps = [n for n in captured if n in cuts and _downsamples(n, outputs, dependent)]
    candidates: dict[str, list[torch.fx.Node]] = {}
    for module, members in inside.items():
        if module not in aliases or sum(qualname[n] in depth for n in members) < 2:
            continue
        data = [n for n in members if n in dependent]
        entries = {p for n in data for p in n.all_input_nodes if p in dependent} - set(data)
        output = outputs.get(data[-1])
        is_map = torch.is_tensor(output) and output.ndim == 4
        if len(entries) == 1 and entries <= cuts and data[-1] in cuts and is_map:
            candidates[module] = [n for n in steps if n in members]
    stages: list[str] = []
    for module, inner_steps in candidates.items():
        if any(c.startswith(module + ".") for c in candidates):
            continue
        chain = len(inner_steps) > 1  # a plain chain of layers: split where it downsamples
        stages += [qualname[n] for n in inner_steps] if chain else [module]
    if len(stages) < 2:
        stages = [qualname[n] for n in steps]
    return sorted(stages, key=lambda name: depth[aliases.get(name, name)])
