"""Plain-data description of a model's capture points (for tables and JSON)."""

from __future__ import annotations

from repcompare.capture.graph import LayerGraph
from repcompare.capture.reduce import reduced_width
from repcompare.errors import InputError


def layer_rows(graph: LayerGraph, names: list[str], reduction: str) -> list[dict]:
    """One dict per selected layer: name, kind, shape, layout, reduced width (None where the
    reduction does not apply), presets it belongs to."""
    blocks, residual, sublayers = set(graph.blocks), set(graph.residual), set(graph.sublayers)
    rows = []
    for name in names:
        point = graph.point(name)
        try:
            width: int | None = reduced_width(point.shape, reduction, point.layout, name)
        except InputError:
            width = None
        presets = [
            label
            for label, members in (
                ("block", blocks),
                ("residual", residual),
                ("sublayer", sublayers),
            )
            if name in members
        ]
        rows.append(
            {
                "name": name,
                "node": point.name,
                "kind": point.kind,
                "shape": list(point.shape),
                "layout": str(point.layout),
                "width": width,
                "presets": presets,
            }
        )
    return rows
