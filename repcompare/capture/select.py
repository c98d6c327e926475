"""Layer selection: names, glob patterns and presets, resolved to capture points in depth order.

A selection is one or more strings (``--layers`` given several times), each a
comma-separated list of items. An item is

- a preset: ``blocks`` (each residual block's output; a model without
  residual blocks gets its natural stages, see ``repcompare.capture.stages``), ``residual`` (each
  residual branch's output before the addition: the paper's block-interior
  layers), ``paper`` (both, interleaved in depth order), ``sublayers`` (per
  transformer block: norm1, attn, ls1, the stream after attention, norm2,
  mlp, ls2, the block output, norms after their branch in post-norm blocks;
  refused where a block's roles cannot be found; see
  ``repcompare.capture.sublayers``), ``all``;
- an exact capture point or module name (taken as that name even when it
  holds glob characters, such as ``self_attention[0]``);
- a glob pattern (``layer3.*.bn?``), matched against every selectable name.

The result is de-duplicated (two names for the same point keep the first
given) and sorted by depth. Anything that selects nothing is an error.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence

from repcompare.capture.graph import LayerGraph
from repcompare.errors import InputError

PRESETS = ("blocks", "residual", "paper", "sublayers", "all")
GLOB_CHARS = set("*?[")


def selection_items(selection: Sequence[str]) -> list[str]:
    """The items of ``--layers`` values, each of which may be a comma list."""
    return [item.strip() for text in selection for item in text.split(",") if item.strip()]


def _preset(graph: LayerGraph, preset: str) -> list[str]:
    if preset == "all":
        return [p.name for p in graph.points]
    if preset in ("residual", "paper", "sublayers") and graph.mode != "fx":
        raise InputError(
            f"the '{preset}' preset reads residual branches off the traced graph, but this "
            f"model could not be traced ({graph.fallback_reason}); name the branch layers "
            "instead, e.g. --layers 'layer*.*.bn3'"
        )
    if preset == "sublayers" and graph.sublayers_refused:
        raise InputError(
            f"the 'sublayers' preset needs a norm, the attention and MLP branches and the "
            f"stream of every transformer block, but {graph.sublayers_refused}; select the "
            "layers by name instead (see 'repcompare layers MODEL')"
        )
    if preset == "sublayers" and not graph.sublayers:
        raise InputError(
            "this model has no transformer blocks (blocks with an attention and an MLP "
            "residual add), so the 'sublayers' preset selects nothing; use --layers blocks, "
            "all or names (see 'repcompare layers MODEL')"
        )
    if preset == "sublayers":
        return list(graph.sublayers)
    if preset == "blocks" and not graph.blocks and graph.stages:
        return list(graph.stages)
    chosen = {"blocks": graph.blocks, "residual": graph.residual}.get(
        preset, graph.blocks + graph.residual
    )
    if not chosen:
        raise InputError(
            f"this model has no residual blocks or stages, so the '{preset}' preset selects "
            "nothing; "
            "use --layers all or name the layers (see 'repcompare layers MODEL')"
        )
    return list(chosen)


def _close_names(graph: LayerGraph, item: str) -> str:
    close = difflib.get_close_matches(item, graph.names(), n=5, cutoff=0.5)
    return f"close names: {', '.join(close)}" if close else "see 'repcompare layers MODEL'"


def select_layers(graph: LayerGraph, selection: Sequence[str]) -> list[str]:
    """Resolve ``selection`` (see module docstring) to layer names in depth order."""
    chosen: list[str] = []
    for item in selection_items(selection):
        if item in PRESETS:
            chosen += _preset(graph, item)
        elif item in graph:
            chosen.append(item)
        elif GLOB_CHARS & set(item):
            matches = [n for n in graph.names() if fnmatch.fnmatchcase(n, item)]
            if not matches:
                raise InputError(f"pattern {item!r} matches no layer; {_close_names(graph, item)}")
            chosen += matches
        else:
            raise InputError(f"this model has no layer {item!r}; {_close_names(graph, item)}")
    if not chosen:
        raise InputError("no layers were selected; give --layers a preset, pattern or name")
    unique: dict[str, str] = {}
    for name in chosen:
        unique.setdefault(graph.point(name).name, name)
    return sorted(unique.values(), key=lambda name: graph.point(name).depth)
