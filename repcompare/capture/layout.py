"""Layouts: what the axes of each capture point's output mean, read off the traced graph.

A reduction needs to know which axes of an output are channels, which are
positions, and which leading tokens are not image patches. repcompare never
guesses this from the shape: it follows every axis from the input image
``(N, C, H, W)`` through the graph.

Axis labels: ``N`` batch, ``C`` channels, ``S`` a spatial axis of a map,
``s`` the position inside a patch (a spatial axis split by a reshape), ``T``
tokens (flattened positions, possibly preceded by prefix tokens), ``?``
anything else. The rules, per node:

- conv, pooling, padding and upsampling modules (and the functions
  ``conv2d``, ``*_pool2d``) take an NCHW map to an NCHW map; ``pad`` and
  ``interpolate`` keep every label;
- ``permute``, ``transpose``, ``movedim`` move labels; ``flatten``,
  ``reshape`` and ``view`` merge and split them (two merged ``S`` axes are
  ``T``; ``s`` axes merged into ``C`` are ``C``, as in a patch merge; ``T``
  split in two is ``S, S``);
- ``Linear`` keeps labels when the last axis is ``C``; reductions (``mean``,
  ``sum``, ...) remove their axes; indexing drops or slices axes (``x[:, 0]``
  leaves the tokens, ``x[:, k:]`` drops k prefix tokens);
- ``cat`` along ``C`` keeps labels (DenseNet); ``cat`` along ``T`` of
  input-independent tensors (``cls_token``,
  ``reg_token``, ``dist_token``, torchvision's ``class_token``) in front of
  the tokens adds prefix tokens; token 0 is a class token when the first of
  them is a parameter named ``cls_token`` or ``class_token``;
- any other op keeps the layout of the data operands whose shape it returns
  (elementwise ops, norms, activations, attention, residual adds); if none
  has that shape, or two such operands disagree, the layout is unknown;
- backwards, an operand of such an op with the result's shape and no layout
  of its own takes the result's, and so does the input of a ``Linear``
  (``x + proj(attn(x))`` gives the attention branch, whose heads were split
  and merged, the residual stream's layout).

The result per point is a ``Layout``: ``NCHW``, ``NHWC``, ``NCL`` (channels,
then positions), ``tokens`` (with its prefix tokens and whether token 0 is a
class token), ``flat`` (one vector per example) or ``unknown``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass

import torch

CLASS_TOKEN_NAMES = ("cls_token", "class_token")
MAP_MODULES = (
    torch.nn.modules.conv._ConvNd,
    torch.nn.modules.pooling._MaxPoolNd,
    torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.modules.pooling._AdaptiveAvgPoolNd,
    torch.nn.modules.pooling._AdaptiveMaxPoolNd,
    torch.nn.modules.padding._ConstantPadNd,
    torch.nn.modules.padding._ReflectionPadNd,
    torch.nn.modules.padding._ReplicationPadNd,
    torch.nn.Upsample,
)
# functions taking an NCHW map to an NCHW map
MAP_FUNCTIONS = {"conv2d", "avg_pool2d", "max_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"}
# functions that keep every axis's meaning while changing sizes (torchvision Swin's
# ``_patch_merging_pad`` is a wrapped leaf taking NHWC to NHWC)
KEEP_LABELS = {"pad", "interpolate", "_patch_merging_pad"}
REDUCING = {"mean", "sum", "amax", "amin", "std", "var", "logsumexp"}
TRANSPOSING = {"transpose", "swapaxes", "swapdims"}
# ops that move axes: never read by the same-shape rule, in either direction
MOVING = {"permute", "movedim", "flatten", "reshape", "view", "unflatten", "getitem", "cat"}
MOVING |= TRANSPOSING | REDUCING | {"unfold", "stack", "mT", "t"}


@dataclass(frozen=True)
class Layout:
    """What one capture point's per-example output axes mean (see module docstring)."""

    kind: str = "unknown"
    prefix_tokens: int = 0
    class_token: bool = False

    def __str__(self) -> str:
        if self.kind != "tokens":
            return self.kind
        cls = ", class token" if self.class_token else ""
        return f"tokens ({self.prefix_tokens} prefix{cls})"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Layout:
        return cls(str(data["kind"]), int(data["prefix_tokens"]), bool(data["class_token"]))


UNKNOWN = Layout()


@dataclass(frozen=True)
class Axes:
    """Labels of every axis of a batched tensor, batch first, and its prefix tokens."""

    labels: tuple[str, ...]
    prefix: int = 0
    cls: bool = False

    def layout(self) -> Layout:
        rest = self.labels[1:]
        if self.labels[:1] != ("N",):
            return UNKNOWN
        if len(rest) == 1:
            return Layout("flat")
        named = {("C", "S", "S"): "NCHW", ("S", "S", "C"): "NHWC", ("C", "T"): "NCL"}
        if rest in named and (rest != ("C", "T") or self.prefix == 0):
            return Layout(named[rest])
        if rest == ("T", "C"):
            return Layout("tokens", self.prefix, self.cls)
        return UNKNOWN


def input_axes(value: object) -> Axes | None:
    """Axes of the model's input: an image batch is NCHW."""
    return Axes(("N", "C", "S", "S")) if torch.is_tensor(value) and value.ndim == 4 else None


def _name(node: torch.fx.Node) -> str:
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


def _arg(node: torch.fx.Node, index: int, key: str, default=None):
    return node.args[index] if len(node.args) > index else node.kwargs.get(key, default)


def _dims(value, ndim: int) -> list[int] | None:
    values = value if isinstance(value, (tuple, list)) else [value]
    if not all(isinstance(v, int) for v in values):
        return None
    return [v % ndim for v in values]


def _group(labels: list[str], sizes: list[int], out: list[int], prefix: int) -> list[str] | None:
    """Labels of ``out`` axes that hold the same values as the ``labels`` axes (a reshape)."""
    kept = [label for label, size in zip(labels, sizes, strict=True) if size != 1] or labels[:1]
    if "N" in labels and (len(kept) > 1 or len(out) > 1):
        return None
    if len(kept) == 1 and len(out) == 1:
        return kept
    if len(out) == 1:
        if sorted(kept) == ["S", "S"]:
            return ["T"]
        if kept.count("C") == 1 and set(kept) <= {"C", "s"}:
            return ["C"]
        return ["?"]
    if len(kept) == 1 and kept[0] == "S":
        return ["S"] + ["s"] * (len(out) - 1)
    if len(kept) == 1 and kept[0] == "T" and len(out) == 2 and prefix == 0:
        return ["S", "S"]
    return ["?"] * len(out)


def _reshape(axes: Axes, shape: tuple[int, ...], out: tuple[int, ...]) -> Axes | None:
    labels: list[str] = []
    i = j = 0
    while i < len(shape) and j < len(out):
        group_in, group_out = [i], [j]
        size_in, size_out = shape[i], out[j]
        while size_in != size_out:
            if size_in < size_out and i + 1 < len(shape):
                i += 1
                group_in.append(i)
                size_in *= shape[i]
            elif size_out < size_in and j + 1 < len(out):
                j += 1
                group_out.append(j)
                size_out *= out[j]
            else:
                return None
        group = _group(
            [axes.labels[k] for k in group_in],
            [shape[k] for k in group_in],
            [out[k] for k in group_out],
            axes.prefix,
        )
        if group is None:
            return None
        labels += group
        i, j = i + 1, j + 1
    labels += ["?"] * (len(out) - len(labels))
    keep = "T" in labels and "T" in axes.labels
    return Axes(tuple(labels), axes.prefix if keep else 0, axes.cls and keep)


def _flatten(axes: Axes, shape: tuple[int, ...], start: int, end: int) -> Axes | None:
    start, end = start % len(shape), end % len(shape)
    out = (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])
    return _reshape(axes, shape, out)


def _index(axes: Axes, shape: tuple[int, ...], index) -> Axes | None:
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(item is Ellipsis for item in items) > 1 or any(item is None for item in items):
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    labels, prefix, cls = [], axes.prefix, axes.cls
    for k, label in enumerate(axes.labels):
        item = items[k] if k < len(items) else slice(None)
        if isinstance(item, int):
            if label == "N":
                return None
            continue
        if not isinstance(item, slice):
            return None
        if label == "T" and item != slice(None):
            start = item.start or 0
            if not isinstance(start, int) or item.stop is not None or item.step not in (None, 1):
                return None
            prefix, cls = max(0, prefix - start), cls and start == 0
        labels.append(label)
    return Axes(tuple(labels), prefix, cls)


def _parameter_names(node: torch.fx.Node, dependent: set) -> set[str]:
    """Last name components of the parameters an input-independent value is made of."""
    names, stack, seen = set(), [node], set()
    while stack:
        current = stack.pop()
        if current in seen or current in dependent:
            continue
        seen.add(current)
        if current.op == "get_attr":
            names.add(str(current.target).rpartition(".")[2])
        stack += current.all_input_nodes
    return names


def _cat(node, axes_of, dependent, outputs) -> Axes | None:
    pieces = _arg(node, 0, "tensors")
    dim = _arg(node, 1, "dim", 0)
    data = [p for p in pieces if isinstance(p, torch.fx.Node) and p in dependent]
    known = [axes_of.get(p) for p in data]
    if not data or None in known or any(k != known[0] for k in known):
        return None
    axes = known[0]
    dim = dim % len(axes.labels)
    label = axes.labels[dim]
    if len(data) > 1 or label == "C":
        return axes if label == "C" else None
    if label != "T":
        return None
    at = pieces.index(data[0])
    if at != len(pieces) - 1:
        return None
    if at == 0:
        return axes
    added = sum(outputs[p].shape[dim] for p in pieces[:at])
    first = _parameter_names(pieces[0], dependent)
    return Axes(axes.labels, axes.prefix + added, bool(first & set(CLASS_TOKEN_NAMES)))


def _same_shape(value, sources, axes_of, outputs) -> Axes | None:
    """The layout of the data operands with ``value``'s shape, if the known ones agree."""
    matches = {
        axes_of.get(s)
        for s in sources
        if torch.is_tensor(outputs.get(s)) and outputs[s].shape == value.shape
    } - {None}
    return matches.pop() if len(matches) == 1 else None


def infer_axes(
    node: torch.fx.Node,
    value: torch.Tensor,
    axes_of: dict[torch.fx.Node, Axes | None],
    dependent: set[torch.fx.Node],
    outputs: dict[torch.fx.Node, object],
    modules: dict[str, torch.nn.Module],
) -> tuple[Axes | None, str | None]:
    """Axes of ``node``'s tensor ``value`` from its data operands' (see module docstring),
    and the rule that also holds backwards: ``"same"`` (same shape), ``"linear"`` or None."""
    sources = [p for p in node.all_input_nodes if p in dependent]
    first = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
    axes = axes_of.get(first) if first in dependent else None
    shape = tuple(outputs[first].shape) if axes is not None else ()
    name = _name(node)
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, torch.nn.Flatten):
            return axes and _flatten(axes, shape, module.start_dim, module.end_dim), None
        if isinstance(module, MAP_MODULES):
            return (axes if _is_map(axes) and value.ndim == 4 else None), None
        if isinstance(module, torch.nn.Linear):
            return (axes if axes and axes.labels[-1] == "C" else None), "linear"
    elif name == "getitem" and first is not None and not torch.is_tensor(outputs.get(first)):
        inner = [p for p in first.all_input_nodes if p in dependent]
        return _same_shape(value, inner, axes_of, outputs), None
    elif name == "linear":
        return (axes if axes and axes.labels[-1] == "C" else None), "linear"
    elif name in ("cat", "concat", "concatenate"):
        return _cat(node, axes_of, dependent, outputs), None
    elif axes is not None:
        moved = _shape_op(node, name, axes, shape, tuple(value.shape))
        if moved is not NotImplemented:
            return moved, None
    elif name in MOVING:
        return None, None
    return _same_shape(value, sources, axes_of, outputs), "same"


def fill_backwards(
    nodes: list[torch.fx.Node],
    backwards: dict[torch.fx.Node, str],
    axes_of: dict[torch.fx.Node, Axes | None],
    dependent: set[torch.fx.Node],
    outputs: dict[torch.fx.Node, object],
) -> None:
    """Give unknown operands of ``backwards`` nodes (node -> rule) their result's layout,
    last node first.

    An elementwise op aligns its operands position by position, so an operand
    of the result's shape has the result's layout; a ``Linear`` keeps every
    axis but the last (channels), so its input has its output's layout. A
    transformer block's ``x + proj(attn(x))`` so gives the attention branch
    (whose heads were split and merged by reshapes) the residual stream's layout.
    """
    for node in reversed(nodes):
        axes = axes_of.get(node)
        rule = backwards.get(node)
        if rule is None or axes is None:
            continue
        for source in node.all_input_nodes:
            value = outputs.get(source)
            if source not in dependent or axes_of.get(source) is not None:
                continue
            if not torch.is_tensor(value) or value.ndim != outputs[node].ndim:
                continue
            if rule == "linear" or value.shape == outputs[node].shape:
                axes_of[source] = axes


def _is_map(axes: Axes | None) -> bool:
    return axes is not None and axes.layout().kind == "NCHW"


def _shape_op(node, name, axes: Axes, shape, out):
    """Axes after ops that move, merge, drop or slice axes; ``NotImplemented`` for others."""
    ndim = len(shape)
    if name == "permute":
        raw = node.args[1:] or (node.kwargs.get("dims"),)
        dims = _dims(raw[0] if len(raw) == 1 else list(raw), ndim)
        if dims is None or len(dims) != ndim:
            return None
        return Axes(tuple(axes.labels[d] for d in dims), axes.prefix, axes.cls)
    if name in TRANSPOSING or name == "movedim":
        dims = _dims([_arg(node, 1, "dim0"), _arg(node, 2, "dim1")], ndim)
        if dims is None:
            return None
        labels = list(axes.labels)
        if name == "movedim":
            labels.insert(dims[1], labels.pop(dims[0]))
        else:
            labels[dims[0]], labels[dims[1]] = labels[dims[1]], labels[dims[0]]
        return Axes(tuple(labels), axes.prefix, axes.cls)
    if name == "flatten":
        return _flatten(axes, shape, _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))
    if name in ("reshape", "view", "unflatten"):
        return _reshape(axes, shape, out)
    if name in REDUCING:
        dims = _dims(_arg(node, 1, "dim"), ndim)
        if dims is None or 0 in dims:
            return None
        if len(out) == ndim:
            reduced = any(axes.labels[d] == "T" for d in dims)
            return Axes(axes.labels, 0 if reduced else axes.prefix, axes.cls and not reduced)
        labels = tuple(label for k, label in enumerate(axes.labels) if k not in dims)
        return Axes(labels, axes.prefix, axes.cls)
    if node.target is operator.getitem:
        return _index(axes, shape, node.args[1])
    if name in MAP_FUNCTIONS | KEEP_LABELS:
        keeps = name in KEEP_LABELS or _is_map(axes)
        return axes if keeps and len(out) == ndim else None
    if name in MOVING:
        return None
    return NotImplemented


def hook_layout(module: torch.nn.Module, shape: tuple[int, ...]) -> Layout:
    """Layout of a module's output seen by a forward hook (no graph): vectors are ``flat``;
    the 4-d output of a conv, pooling, padding or 2-d batch-norm module is NCHW; anything
    else is ``unknown``."""
    if len(shape) == 1:
        return Layout("flat")
    maps = (*MAP_MODULES, torch.nn.BatchNorm2d)
    return Layout("NCHW") if isinstance(module, maps) and len(shape) == 3 else UNKNOWN
