"""A model's capture points as plain data (for tables, JSON and the Python API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from repcompare.capture.graph import LayerGraph
from repcompare.capture.reduce import reduced_width
from repcompare.errors import InputError


@dataclass(frozen=True)
class LayerInfo:
    """One capture point: its name, the graph node it was traced as, its kind (module type
    or function), per-example output shape and layout, its width after the reduction
    (None where the reduction does not apply) and the presets it belongs to."""

    name: str
    node: str
    kind: str
    shape: list[int]
    layout: str
    width: int | None
    presets: list[str]


@dataclass
class LayersResult:
    """The selected capture points of a model, in depth order."""

    model: str
    input_size: tuple[int, int, int]
    tracer: str
    reduction: str
    layers: list[LayerInfo]

    def records(self) -> list[dict]:
        """One dict per capture point."""
        return [asdict(layer) for layer in self.layers]

    def to_dict(self) -> dict:
        """What ``repcompare layers --json`` prints."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "tracer": self.tracer,
            "reduction": self.reduction,
            "layers": self.records(),
        }


def layer_infos(graph: LayerGraph, names: list[str], reduction: str) -> list[LayerInfo]:
    """The ``LayerInfo`` of each of ``names``."""
    blocks, residual, sublayers = set(graph.blocks), set(graph.residual), set(graph.sublayers)
    infos = []
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
            )
            if name in members
        ]
        if name in sublayers:
            presets.append(f"sublayer ({graph.roles[name]})")
        infos.append(
            LayerInfo(
                name, point.name, point.kind, list(point.shape), str(point.layout), width, presets
            )
        )
    return infos
