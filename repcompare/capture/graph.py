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
  names the block output; a module called more than once has one alias per
  call (``cpe1``, ``cpe1_1``; see ``_module_aliases``).
- ``hooks`` (fallback when tracing fails): forward hooks on every submodule
  during one forward pass. A module called twice gives ``name`` and
  ``name_1``; a tuple output gives ``name[0]``, ``name[1]``, ...

Either way only *batch-major* outputs are capture points: the model runs on a
batch of 2 and, for shapes only, on a batch of 3, and an output is kept when
its first axis is the batch both times with the same shape per example (keys
and values stacked in front of the batch are not, see ``batch_major``).

Residual structure (fx only) is read off the graph, not guessed from names
(``repcompare.capture.blocks``): a *residual add* is an ``add`` whose two
operands both depend on the input; its *block* is the element of the model's
block container it is made in; its *branch* operand is the one with the
longer path from the input, traced back through value-preserving modules
(Identity, Dropout, DropPath, StochasticDepth). For a torchvision Bottleneck
that gives ``layerS.i`` and ``layerS.i.bn3``, for a BasicBlock
``layerS.i.bn2``, for a timm ViT block ``blocks.i`` with branches
``blocks.i.attn`` and ``blocks.i.mlp``. Transformer sub-layers and their
roles come from ``repcompare.capture.sublayers``.
"""

from __future__ import annotations

import operator
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from repcompare.capture.blocks import Block, Call, call_members, find_blocks, is_add
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
from repcompare.capture.sublayers import (
    Calls,
    RolesNotFoundError,
    block_roles,
    is_transformer_block,
)

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
    roles: dict[str, str] = field(default_factory=dict)
    sublayers_refused: str | None = None

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

    def layer_roles(self) -> dict[str, str]:
        """``{layer: "block" | "residual"}`` for the paper's two kinds of capture point."""
        return {n: "block" for n in self.blocks} | {n: "residual" for n in self.residual}


def _exact_module_tracer():
    """torchvision's ``NodePathTracer`` with module call nodes named exactly after the module,
    and every module call recorded.

    torchvision strips a trailing ``_<digits>`` from every node name (to undo
    torch.fx's global de-dup suffix) before adding its own per-module one, so
    a module whose own name ends in digits is misnamed: torchvision ViT's
    ``ln_1`` became ``ln`` and ``ln_2`` became ``ln_1``. Here a module's first
    call is its exact name; a repeated call gets ``name_1``, ``name_2``, ...
    (skipping any name that is taken or is another module's name). Other
    nodes keep torchvision's names.

    The tracer also counts the calls of every module, leaf or not
    (``module_calls``), and records for each node the module calls it was
    made in, outermost first (``node_calls``: ``((module, call), ...)``), so a
    module called more than once (a shared position encoding) has one output
    per call.
    """
    from torchvision.models.feature_extraction import NodePathTracer

    class ExactModuleTracer(NodePathTracer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.module_calls: dict[str, int] = {}
            self.node_calls: dict[torch.fx.Node, tuple[tuple[str, int], ...]] = {}
            self._stack: list[tuple[str, int]] = []

        def call_module(self, m, forward, args, kwargs):
            name = self.path_of_module(m)
            call = self.module_calls.get(name, 0)
            self.module_calls[name] = call + 1
            self._stack.append((name, call))
            try:
                return super().call_module(m, forward, args, kwargs)
            finally:
                self._stack.pop()

        def _get_node_qualname(self, module_qualname: str, node: torch.fx.Node) -> str:
            self.node_calls[node] = tuple(self._stack)
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


def _call_labels(graph, tracer, call_names: CallNames) -> dict[Call, str]:
    """The name of every module call: the module's name for its only call; for a module
    called k times, the name of each call's node for a leaf module (``act``, ``act_1``),
    else ``CallNames``' ``name``, ``name_1``, ..."""
    members = call_members(graph.nodes, tracer.node_calls)
    labels = {}
    for call, inside in members.items():
        module_name, k = call
        if tracer.module_calls.get(module_name, 0) == 1:
            labels[call] = module_name
        elif len(inside) == 1 and inside[0].op == "call_module":
            labels[call] = tracer.node_to_qualname[inside[0]]
        else:
            labels[call] = call_names.name(module_name, k)
    return labels


def _module_aliases(graph, tracer, modules, names, labels) -> dict[str, str]:
    """Module (call) name -> its output node; ``module[i]`` for tuple elements.

    A module called once: its name names the last node made in the call. A
    module called k times has one name per call (``labels``: ``name``,
    ``name_1``, ..., as a leaf module's nodes are named), each the last node
    of that call, so no call silently stands for another. A container that
    is never called itself (a ``ModuleList``) names the last node inside it
    when each of its elements ran at most once, and nothing otherwise.
    """
    qualname = tracer.node_to_qualname
    aliases: dict[str, str] = {}
    last_of_call: dict[Call, str] = {}
    last_inside: dict[str, str] = {}
    for node in graph.nodes:
        name = qualname.get(node)
        if name is None:
            continue
        for call in tracer.node_calls.get(node, ()):
            last_of_call[call] = name
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
            aliases[f"{qualname[source]}[{node.args[1]}]"] = name
    calls = tracer.module_calls
    for module_name, module in modules.items():
        if not module_name or calls.get(module_name, 0):
            continue
        children = (f"{module_name}.{child}" for child, _ in module.named_children())
        output = last_inside.get(module_name)
        if output in names and all(calls.get(child, 0) <= 1 for child in children):
            aliases[module_name] = output
    for call, label in labels.items():
        output = last_of_call.get(call)
        if output in names and label != output:
            aliases[label] = output
    return aliases


def _branch_name(chain, block, qualname, aliases, kinds, names, modules) -> str | None:
    """The outermost name inside module ``block`` for a residual branch's value.

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


def _other_batch(example: torch.Tensor) -> torch.Tensor:
    """A second probe batch, one image larger than ``example``."""
    generator = torch.Generator().manual_seed(1)
    other = torch.randn(example.shape[0] + 1, *example.shape[1:], generator=generator)
    return other.to(example.device)


def _shapes(module: torch.fx.GraphModule, example: torch.Tensor, keep) -> dict:
    """The shape of every tensor output of a node in ``keep`` when ``example`` runs through
    ``module`` (values are not kept)."""
    shapes: dict[torch.fx.Node, tuple[int, ...]] = {}

    class ShapeRecorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node):
            result = super().run_node(n)
            if n in keep and torch.is_tensor(result):
                shapes[n] = tuple(result.shape)
            return result

    with torch.inference_mode():
        ShapeRecorder(module).run(example)
    return shapes


def batch_major(value: object, other: tuple[int, ...] | None, batch: int) -> bool:
    """``value`` (from a batch of ``batch``) and ``other`` (the same output's shape from a
    batch one larger) have the batch as their first axis and the same shape per example:
    a tensor whose first axis is something else (keys and values stacked, heads, windows
    of several images) is not a capture point."""
    return (
        torch.is_tensor(value)
        and value.ndim >= 1
        and value.shape[0] == batch
        and other is not None
        and other[0] == batch + 1
        and tuple(other[1:]) == tuple(value.shape[1:])
    )


def _residual_structure(
    nodes, tracer, modules, dependent, path_length, kinds, names, aliases, labels
):
    """``(blocks, residual branches, {sub-layer: role}, why the roles were refused)``."""
    qualname = tracer.node_to_qualname
    # names of what a module call returned (not of a container that was never called)
    called = set(labels.values())
    outputs_of = {a: t for a, t in aliases.items() if a.partition("[")[0] in called}

    def selectable(call: Call) -> str | None:
        label = labels.get(call)
        return label if label in names or label in aliases else None

    def passes(node: torch.fx.Node) -> list[torch.fx.Node]:
        chain = [node]
        while kinds[chain[-1]] in PASS_THROUGH and chain[-1].all_input_nodes:
            chain.append(chain[-1].all_input_nodes[0])
        return chain

    def stream_of(node: torch.fx.Node) -> torch.fx.Node | None:
        """The shorter operand of an add of two data operands."""
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
        if not (is_add(node) and len(operands) == 2 and all(a in dependent for a in operands)):
            return None
        return min(operands, key=lambda a: path_length[a])

    order = {node: i for i, node in enumerate(nodes)}
    blocks: list[str] = []
    residual: list[str] = []
    transformer: list[tuple[Block, Callable]] = []
    for block in find_blocks(nodes, tracer.node_calls, modules, dependent, path_length, passes):
        block_name = selectable(block.call)
        if block_name is None:
            continue

        def name_of(chain, module_name=block.call[0]):
            return _branch_name(chain, module_name, qualname, outputs_of, kinds, names, modules)

        branches = [name_of(add.chain) for add in block.adds]
        if all(name is None for name in branches):
            continue
        blocks.append(block_name)
        residual += [name for name in branches if name is not None]
        if None not in branches and is_transformer_block(block.adds, order, dependent, stream_of):
            transformer.append((block, name_of))
    calls = Calls(call_members(nodes, tracer.node_calls), selectable, modules)
    roles: dict[str, str] = {}
    for block, name_of in transformer:
        try:
            roles |= dict(block_roles(block, name_of, passes, tracer.node_calls, calls, dependent))
        except RolesNotFoundError as error:
            return blocks, residual, {}, error.reason
    return blocks, residual, roles, None


def discover_fx(model: torch.nn.Module, example: torch.Tensor) -> LayerGraph:
    """Trace ``model`` and run ``example`` (a batch of 2) through it to find capture points;
    a second, shape-only run with one more image keeps only the batch-major outputs."""
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
    batch = example.shape[0]
    named = {n for n in qualname if torch.is_tensor(outputs.get(n))}
    other = _shapes(module, _other_batch(example), named)

    dependent: set[torch.fx.Node] = set()
    path_length: dict[torch.fx.Node, int] = {}
    axes_of: dict[torch.fx.Node, Axes | None] = {}
    backwards: dict[torch.fx.Node, str] = {}
    captured: list[torch.fx.Node] = []
    kinds = {n: _kind(n, modules) for n in graph.nodes if n.op != "output"}
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
        if node in named and batch_major(value, other.get(node), batch):
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
    labels = _call_labels(graph, tracer, CallNames(set(qualname.values()) | set(modules)))
    aliases = _module_aliases(graph, tracer, modules, names, labels)

    nodes = list(graph.nodes)
    blocks, residual, roles, refusal = _residual_structure(
        nodes, tracer, modules, dependent, path_length, kinds, names, aliases, labels
    )
    stages = (
        [] if blocks else natural_stages(nodes, captured, qualname, aliases, dependent, outputs)
    )
    return LayerGraph(
        "fx", points, aliases, blocks, residual, list(roles), stages, None, roles, refusal
    )


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


class CallNames:
    """Names of the calls of modules: ``name`` for the first, then ``name_1``, ``name_2``,
    ... skipping any name in ``reserved`` (other modules' names, node names), as the
    tracer names a leaf module's repeated calls."""

    def __init__(self, reserved: set[str] | frozenset[str] = frozenset()):
        self.reserved = reserved
        self._given: dict[str, list[str]] = {}
        self._suffix: dict[str, int] = {}

    def name(self, module_name: str, call: int) -> str:
        """Name of the ``call``-th call (0-based) of ``module_name``."""
        given = self._given.setdefault(module_name, [module_name])
        while len(given) <= call:
            suffix = self._suffix.get(module_name, 0) + 1
            while call_name(module_name, suffix) in self.reserved:
                suffix += 1
            self._suffix[module_name] = suffix
            given.append(call_name(module_name, suffix))
        return given[call]


def _hooked_points(model: torch.nn.Module, example: torch.Tensor) -> list[CapturePoint]:
    """Every tensor output of a submodule in one forward pass of ``example``, named by
    module call (``CallNames``) and tuple element, whose first axis is the batch."""
    points: list[CapturePoint] = []
    calls: dict[str, int] = {}
    call_names = CallNames({n for n, _ in model.named_modules()})
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
                            call_names.name(name, call) + suffix,
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
    return points


def discover_hooks(model: torch.nn.Module, example: torch.Tensor) -> LayerGraph:
    """Find capture points by hooking every submodule during a forward pass of ``example``;
    a second pass with one more image keeps only the outputs whose first axis is the
    batch (with the same shape per example)."""
    other = {p.name: p.shape for p in _hooked_points(model, _other_batch(example))}
    points = [p for p in _hooked_points(model, example) if other.get(p.name) == p.shape]
    points = [replace(p, depth=depth) for depth, p in enumerate(points)]
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
