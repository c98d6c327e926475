"""Capturing the selected layers of a model for a batch of images."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch

from repcompare.capture.graph import CallNames, LayerGraph, fx_tracer
from repcompare.capture.reduce import reduce, sample_token_rows, token_positions
from repcompare.errors import RunError
from repcompare.limits import DEFAULT_TOKEN_CAP

Capture = Callable[..., list[torch.Tensor]]


def _fx_capture(model: torch.nn.Module, graph: LayerGraph, names: Sequence[str]) -> Capture:
    """A traced copy of ``model`` that returns a clone of each selected node.

    Like torchvision's ``create_feature_extractor`` (same tracer, same node
    names), but each selected output is cloned the moment it is computed: a
    later in-place op (``nn.ReLU(inplace=True)`` after a residual add, ``x +=
    shortcut``) would otherwise overwrite it before it is returned. Nodes no
    output depends on are removed, so capture stops at the deepest layer asked.
    """
    tracer = fx_tracer()
    fx_graph = tracer.trace(model)
    nodes = {tracer.node_to_qualname[n]: n for n in fx_graph.nodes if n in tracer.node_to_qualname}
    clones = []
    for name in names:
        node = nodes[graph.point(name).name]
        with fx_graph.inserting_after(node):
            clones.append(fx_graph.call_method("clone", (node,)))
    for node in [n for n in fx_graph.nodes if n.op == "output"]:
        fx_graph.erase_node(node)
    fx_graph.output(tuple(clones))
    extractor = torch.fx.GraphModule(tracer.root, fx_graph).eval()
    extractor.graph.eliminate_dead_code()
    extractor.recompile()
    return lambda images: list(extractor(images))


@contextmanager
def _hook_capture(model: torch.nn.Module, names: Sequence[str]) -> Iterator[Capture]:
    wanted = set(names)
    store: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    call_names = CallNames({n for n, _ in model.named_modules()})  # as discover_hooks names

    def hook_for(module_name: str):
        def hook(_module, _inputs, output):
            call = calls.get(module_name, 0)
            calls[module_name] = call + 1
            base = call_names.name(module_name, call)
            items = (
                [("", output)]
                if torch.is_tensor(output)
                else [(f"[{i}]", v) for i, v in enumerate(output) if torch.is_tensor(v)]
            )
            for suffix, tensor in items:
                if base + suffix in wanted:  # cloned: a later in-place op must not change it
                    store[base + suffix] = tensor.clone()

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]

    def run(images: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of one forward pass; nothing here keeps them once returned."""
        calls.clear()
        try:
            model(images)
            missing = [n for n in names if n not in store]
            if missing:
                raise RunError(f"layers {missing} produced no output in this forward pass")
            return [store[n] for n in names]
        finally:
            store.clear()

    try:
        yield run
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_layers(
    model: torch.nn.Module,
    graph: LayerGraph,
    names: Sequence[str],
    reduction: str = "flatten",
    token_cap: int = DEFAULT_TOKEN_CAP,
    seed: int = 0,
) -> Iterator[Capture]:
    """Context manager yielding ``capture(images, batch=0) -> [activation per layer]``.

    Each layer is reduced with ``reduction`` as its capture point's layout
    says (prefix tokens, class token, channel axis). ``tokens`` keeps the
    token rows ``sample_token_rows(m, P, token_cap, seed, batch)``: the same
    rows for every layer with P positions, and for every model and view
    captured with the same batch number.

    Inside, the model is in eval mode and every forward runs under
    ``torch.inference_mode``; activations come back reduced to ``(n, d)`` in
    the order of ``names``. On exit hooks are removed and the model's
    train/eval mode restored.
    """
    was_training = model.training
    model.eval()
    points = [graph.point(n).name for n in names]
    layouts = [graph.point(n).layout for n in names]
    runner = (
        _hook_capture(model, points)
        if graph.mode == "hooks"
        else nullcontext(_fx_capture(model, graph, names))
    )
    try:
        with runner as run:

            def rows(x: torch.Tensor, layout, name: str, batch: int) -> torch.Tensor | None:
                if reduction != "tokens":
                    return None
                positions = token_positions(tuple(x.shape[1:]), layout, name)
                return sample_token_rows(len(x), positions, token_cap, seed, batch)

            def capture(images: torch.Tensor, batch: int = 0) -> list[torch.Tensor]:
                with torch.inference_mode():
                    return [
                        reduce(x, reduction, layout, name, rows(x, layout, name, batch))
                        for x, layout, name in zip(run(images), layouts, names, strict=True)
                    ]

            yield capture
    finally:
        model.train(was_training)
