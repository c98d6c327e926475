"""Layer discovery: every point of a model whose output can be captured, in depth order.

Two ways to see a model:

- ``fx`` (preferred): the model is traced with torch.fx through torchvision's
  ``NodePathTracer`` with timm's leaf modules (the tracer behind
  ``create_feature_extractor``). Every graph node whose output is a tensor
  computed from the input is a capture point, named by torchvision's stable
  node names: functional ops and the residual ``add`` are capturable, and a
  module called twice gives two nodes (``act``, ``act_1``). A leaf module's
  node is named exactly after the module (torchvision's own tracer renames
  ``ln_1`` to ``ln``; see ``fx_tracer``). A module's name is
  an alias for its output node (the last node inside it), so ``layer1.0``
  names the block output.
- ``hooks`` (fallback when tracing fails): forward hooks on every submodule
  during one forward pass. A module called twice gives ``name`` and
  ``name_1``; a tuple output gives ``name[0]``, ``name[1]``, ...

Residual structure (fx only) is read off the graph, not guessed from names: a
*residual add* is an ``add`` whose two operands both depend on the input (so
``x + pos_embed`` is not one); its enclosing module is a *block*; its
*branch* operand is the one with the longer path from the input, traced back
through value-preserving modules (Identity, Dropout, DropPath,
StochasticDepth). For a torchvision Bottleneck that gives ``layerS.i`` and
``layerS.i.bn3``, for a BasicBlock ``layerS.i.bn2``, for a timm ViT block
``blocks.i`` with branches ``blocks.i.attn`` and ``blocks.i.mlp``.
"""

from __future__ import annotations

import operator
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from repcompare.capture.layout import (
    UNKNOWN,
    Axes,
    Layout,
    fill_backwards,
    hook_layout,
    infer_axes,
    input_axes,
)
from repcompare.capture.stages import natural_stages
from repcompare.capture.sublayers import ResidualAdd, block_sublayers, is_transformer_block

FX_ADD_TARGETS = (operator.add, operator.iadd, torch.add)
# identity in eval mode: a residual branch is named past these
PASS_THROUGH = {
    "Identity",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "DropPath",
    "StochasticDepth",
    "dropout",
    "drop_path",
    "stochastic_depth",
}
HOOK_BLOCK_PATTERN = re.compile(
    r"^(layer\d+\.\d+|(stages\.\d+\.)?blocks\.\d+|encoder\.layers\.encoder_layer_\d+)$"
)


@dataclass(frozen=True)
class CapturePoint:
    """One capturable output: its name, what produces it, its per-example shape and the
    meaning of its axes (``Layout``, see ``repcompare.capture.layout``)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    depth: int
    layout: Layout = UNKNOWN


@dataclass
class LayerGraph:
    """All capture points of a model in depth order, with its residual structure."""

    mode: str
    points: list[CapturePoint]
    aliases: dict[str, str] = field(default_factory=dict)
    blocks: list[str] = field(default_factory=list)
    residual: list[str] = field(default_factory=list)
    sublayers: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    fallback_reason: str | None = None

    def __post_init__(self) -> None:
        self._by_name = {p.name: p for p in self.points}

    def point(self, name: str) -> CapturePoint:
        """The capture point a name (point name or module alias) refers to."""
        return self._by_name[self.aliases.get(name, name)]

    def names(self) -> list[str]:
        """Every name a user may select: point names, then module aliases."""
        return [p.name for p in self.points] + [a for a in self.aliases if a not in self._by_name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name or name in self.aliases


def _exact_module_tracer():
    """torchvision's ``NodePathTracer`` with module call nodes named exactly after the module.

    torchvision strips a trailing ``_<digits>`` from every node name (to undo
    torch.fx's global de-dup suffix) before adding its own per-module one, so
    a module whose own name ends in digits is misnamed: torchvision ViT's
    ``ln_1`` became ``ln`` and ``ln_2`` became ``ln_1``. Here a module's first
    call is its exact name; a repeated call gets ``name_1``, ``name_2``, ...
    (skipping any name that is taken or is another module's name). Other
    nodes keep torchvision's names.
    """
    from torchvision.models.feature_extraction import NodePathTracer

    class ExactModuleTracer(NodePathTracer):
        def _get_node_qualname(self, module_qualname: str, node: torch.fx.Node) -> str:
            if node.op != "call_module":
                return super()._get_node_qualname(module_qualname, node)
            if not hasattr(self, "_module_names"):
                self._module_names = {n for n, _ in self.root.named_modules()}
            taken = set(self.node_to_qualname.values())
            name, call = module_qualname, 0
            while name in taken or (call and name in self._module_names):
                call += 1
                name = call_name(module_qualname, call)
            return name

    return ExactModuleTracer


def fx_tracer():
    """The node-naming tracer (see ``_exact_module_tracer``), with timm's leaf modules and
    functions.

    timm's lists name timm layer classes only, so they matter only when timm
    is loaded (a timm model); a torchvision model is traced without importing
    timm, which costs seconds.
    """
    tracer = _exact_module_tracer()
    if "timm" not in sys.modules:
        return tracer()
    from timm.models._features_fx import get_notrace_functions, get_notrace_modules

    return tracer(
        leaf_modules=list(get_notrace_modules()),
        autowrap_functions=list(get_notrace_functions()),
    )


def _kind(node: torch.fx.Node, modules: dict[str, torch.nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


def _carries_data(value: object) -> bool:
    """A tensor, or a tuple/list holding one (shapes and other Python values are not data)."""
    if isinstance(value, (tuple, list)):
        return any(torch.is_tensor(v) for v in value)
    return torch.is_tensor(value)


def _is_add(node: torch.fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in FX_ADD_TARGETS
    return node.op == "call_method" and node.target in ("add", "add_")


def _module_aliases(graph, qualname, modules, names) -> dict[str, str]:
    """Module name -> its output node (the last node inside it); ``module[i]`` for tuples."""
    aliases: dict[str, str] = {}
    last_inside: dict[str, str] = {}
    for node in graph.nodes:
        name = qualname.get(node)
        if name is None:
            continue
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            last_inside[".".join(parts[:i])] = name
        source = node.args[0] if node.args else None
        if (
            node.target is operator.getitem
            and isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(node.args[1], int)
            and name in names
        ):
            aliases[f"{source.target}[{node.args[1]}]"] = name
    for module_name in modules:
        output = last_inside.get(module_name)
        if module_name and output in names and module_name != output:
            aliases[module_name] = output
    return aliases


def _branch_name(chain, block, qualname, aliases, kinds, names, modules) -> str | None:
    """The outermost name inside ``block`` for a residual branch's value.

    ``chain`` runs from the add's operand back through pass-through ops; any
    node of it, or any module whose output it is, names the same value. The
    shortest such name wins (a module alias over a node name on ties).
    """
    chain_names = {qualname[n] for n in chain if n in qualname}
    candidates = [
        qualname[n] for n in chain if qualname.get(n) in names and kinds[n] not in PASS_THROUGH
    ]
    for alias, target in aliases.items():
        module = modules.get(alias.partition("[")[0])
        if target in chain_names and type(module).__name__ not in PASS_THROUGH:
            candidates.append(alias)
    inside = [c for c in candidates if c.startswith(block + ".")]
    if not inside:
        return None
    return min(inside, key=lambda c: (c.count("."), c not in aliases))


def discover_fx(model: torch.nn.Module, example: torch.Tensor) -> LayerGraph:
    """Trace ``model`` and run ``example`` (a batch of 2) through it to find capture points."""
    tracer = fx_tracer()
    graph = tracer.trace(model)
    qualname = tracer.node_to_qualname
    module = torch.fx.GraphModule(tracer.root, graph)
    modules = dict(model.named_modules())
    outputs: dict[torch.fx.Node, object] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node):
            result = super().run_node(n)
            outputs[n] = result
            return result

    with torch.inference_mode():
        Recorder(module).run(example)

    dependent: set[torch.fx.Node] = set()
    path_length: dict[torch.fx.Node, int] = {}
    axes_of: dict[torch.fx.Node, Axes | None] = {}
    backwards: dict[torch.fx.Node, str] = {}
    captured: list[torch.fx.Node] = []
    kinds = {n: _kind(n, modules) for n in graph.nodes if n.op != "output"}
    batch = example.shape[0]
    for node in graph.nodes:
        value = outputs.get(node)
        if not _carries_data(value):
            continue
        parents = [p for p in node.all_input_nodes if p in dependent]
        if node.op == "placeholder" and not dependent:
            dependent.add(node)
            path_length[node] = 0
            axes_of[node] = input_axes(value)
            continue
        if not parents:
            continue
        dependent.add(node)
        path_length[node] = 1 + max(path_length[p] for p in parents)
        if torch.is_tensor(value):
            axes_of[node], rule = infer_axes(node, value, axes_of, dependent, outputs, modules)
            if rule is not None:
                backwards[node] = rule
        capturable = torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == batch
        if capturable and node in qualname:
            captured.append(node)
    fill_backwards(list(graph.nodes), backwards, axes_of, dependent, outputs)
    points = [
        CapturePoint(
            qualname[node],
            kinds[node],
            tuple(outputs[node].shape[1:]),
            depth,
            axes_of[node].layout() if axes_of[node] else UNKNOWN,
        )
        for depth, node in enumerate(captured)
    ]
    names = {p.name for p in points}
    aliases = _module_aliases(graph, qualname, modules, names)

    def passes(node: torch.fx.Node) -> list[torch.fx.Node]:
        chain = [node]
        while kinds[chain[-1]] in PASS_THROUGH and chain[-1].all_input_nodes:
            chain.append(chain[-1].all_input_nodes[0])
        return chain

    blocks: list[str] = []
    residual: list[str] = []
    adds: dict[str, list[ResidualAdd]] = {}
    for node in graph.nodes:
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        if not (_is_add(node) and len(operands) == 2 and all(a in dependent for a in operands)):
            continue
        block = qualname[node].rpartition(".")[0]
        if not block or block not in aliases:
            continue
        branch = max(operands, key=lambda a: path_length[a])
        chain = passes(branch)
        name = _branch_name(chain, block, qualname, aliases, kinds, names, modules)
        if name is not None:
            residual.append(name)
            if block not in blocks:
                blocks.append(block)
            stream = operands[1] if branch is operands[0] else operands[0]
            adds.setdefault(block, []).append(ResidualAdd(node, stream, chain))
    nodes = list(graph.nodes)
    order = {node: i for i, node in enumerate(nodes)}
    sublayers: list[str] = []
    for block, pair in adds.items():
        if is_transformer_block(pair, order, dependent):

            def name_of(chain, block=block):
                return _branch_name(chain, block, qualname, aliases, kinds, names, modules)

            sublayers += block_sublayers(pair, name_of, passes, order, dependent)
            sublayers.append(block)
    stages = (
        [] if blocks else natural_stages(nodes, captured, qualname, aliases, dependent, outputs)
    )
    return LayerGraph("fx", points, aliases, blocks, residual, sublayers, stages)


def _tensors(value: object) -> Iterator[tuple[str, torch.Tensor]]:
    """``("", t)`` for a tensor, ``("[i]", t_i)`` for the tensors of a tuple or list."""
    if torch.is_tensor(value):
        yield "", value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            if torch.is_tensor(item):
                yield f"[{i}]", item


def call_name(module_name: str, call: int) -> str:
    """Name of the ``call``-th call (0-based) of a module: ``name``, ``name_1``, ..."""
    return module_name if call == 0 else f"{module_name}_{call}"


def discover_hooks(model: torch.nn.Module, example: torch.Tensor) -> LayerGraph:
    """Find capture points by hooking every submodule during one forward pass."""
    points: list[CapturePoint] = []
    calls: dict[str, int] = {}
    batch = example.shape[0]

    def hook_for(name: str):
        def hook(mod, _inputs, output):
            call = calls.get(name, 0)
            calls[name] = call + 1
            for suffix, tensor in _tensors(output):
                if tensor.ndim >= 1 and tensor.shape[0] == batch:
                    shape = tuple(tensor.shape[1:])
                    points.append(
                        CapturePoint(
                            call_name(name, call) + suffix,
                            type(mod).__name__,
                            shape,
                            len(points),
                            hook_layout(mod, shape),
                        )
                    )

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    blocks = [p.name for p in points if HOOK_BLOCK_PATTERN.match(p.name)]
    return LayerGraph("hooks", points, {}, blocks, [], [], [])


def discover(model: torch.nn.Module, input_size: tuple[int, ...], mode: str = "auto"):
    """The model's ``LayerGraph`` at ``input_size`` (C, H, W): fx, else hooks when tracing fails.

    ``mode`` is ``"auto"``, ``"fx"`` or ``"hooks"``. The model is put in eval mode.
    """
    model.eval()
    example = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
    example = example.to(next(model.parameters(), torch.empty(0)).device)
    with reference_cpu_kernels():
        return _discover(model, example, mode)


@contextmanager
def reference_cpu_kernels() -> Iterator[None]:
    """oneDNN off: for the batch-of-2 probe it would build a kernel for every convolution
    shape (most of a second for a ResNet-34 on 2 cores), which the real batches, of
    another size, cannot reuse; torch's reference kernels give the same shapes at once."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def _discover(model: torch.nn.Module, example: torch.Tensor, mode: str) -> LayerGraph:
    if mode == "hooks":
        return discover_hooks(model, example)
    try:
        return discover_fx(model, example)
    except Exception as error:
        if mode == "fx":
            raise
        graph = discover_hooks(model, example)
        graph.fallback_reason = f"torch.fx tracing failed ({type(error).__name__}: {error})"
        return graph
