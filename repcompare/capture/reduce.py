"""Reductions of a layer's output ``(n, ...)`` to an ``(n, d)`` representation.

Each reduction reads the layer's ``Layout`` (what its axes mean, found from
the model's graph: see ``repcompare.capture.layout``), never its shape alone:

- ``flatten``: every value, ``(n, prod(shape))`` (the paper's choice); any layout;
- ``avgpool``: the mean over positions, one value per channel: NCHW and NHWC
  maps, NCL sequences, tokens (all tokens, prefix tokens included); a
  ``flat`` vector is kept as it is;
- ``cls``: the class token (token 0) of tokens whose model put one there;
- ``mean``: the mean over the patch tokens, excluding the prefix tokens (class,
  distillation, register) that the graph put in front of them at this point.

A layout that is ``unknown`` (or the wrong kind) is an InputError naming the
layer, never a guess.
"""

from __future__ import annotations

import math

import torch

from repcompare.capture.layout import Layout
from repcompare.errors import InputError

REDUCTIONS = ("flatten", "avgpool", "cls", "mean")
# per kind: the per-example axes averaged by avgpool, and the channel axis
POOLED_AXES = {"NCHW": ((1, 2), 0), "NHWC": ((0, 1), 2), "NCL": ((1,), 0), "tokens": ((0,), 1)}


def _unknown(how: str, layer: str, shape: tuple[int, ...]) -> InputError:
    return InputError(
        f"--reduce {how} needs to know which axes of layer {layer!r} (shape {shape}) are "
        "channels and which are positions, and repcompare could not tell from the model's "
        "graph; use --reduce flatten for this layer"
    )


def reduced_width(shape: tuple[int, ...], how: str, layout: Layout, layer: str = "?") -> int:
    """Width ``d`` of the reduced representation of one example of ``shape`` and ``layout``."""
    if how == "flatten":
        return math.prod(shape)
    if how not in REDUCTIONS:
        raise InputError(f"unknown reduction {how!r}; use one of {', '.join(REDUCTIONS)}")
    if layout.kind == "flat" and how == "avgpool":
        return shape[0]
    if how == "avgpool":
        if layout.kind not in POOLED_AXES:
            raise _unknown(how, layer, shape)
        return shape[POOLED_AXES[layout.kind][1]]
    if layout.kind != "tokens":
        if layout.kind == "unknown" and len(shape) == 2:
            raise _unknown(how, layer, shape)
        raise InputError(
            f"--reduce {how} needs token outputs (tokens, channels) but layer {layer!r} is "
            f"{layout} with shape {shape}; use --reduce flatten or avgpool for this layer"
        )
    if how == "cls" and not layout.class_token:
        raise InputError(
            f"layer {layer!r} has no class token ({layout}); use --reduce mean (the patch "
            "tokens) or flatten for this layer"
        )
    if how == "mean" and shape[0] <= layout.prefix_tokens:
        raise InputError(f"layer {layer!r} has no patch tokens ({layout}); use --reduce flatten")
    return shape[1]


def reduce(x: torch.Tensor, how: str, layout: Layout, layer: str = "?") -> torch.Tensor:
    """Reduce a batch ``x`` of ``layer``'s outputs, of ``layout``, to ``(n, d)``."""
    reduced_width(tuple(x.shape[1:]), how, layout, layer)
    if how == "flatten" or layout.kind == "flat":
        return x.reshape(x.shape[0], -1)
    if how == "avgpool":
        axes = POOLED_AXES[layout.kind][0]
        return x.mean(dim=tuple(a + 1 for a in axes))
    if how == "cls":
        return x[:, 0]
    return x[:, layout.prefix_tokens :].mean(dim=1)


def _no_layout(layer: str) -> InputError:
    return InputError(
        f"layer {layer!r} was stored flattened by an older repcompare that did not record its "
        "layout, so its maps cannot be pooled; extract the file again"
    )


def pooled_width(shape: tuple[int, ...], how: str, layout: Layout | None, layer: str = "?") -> int:
    """Width of the spatially pooled features of a layer stored with reduction ``how``.

    ``layout`` is None for a file written before layouts were stored: enough
    for vectors and for the pooled reductions, not for flattened maps.
    """
    if how != "flatten" and layout is None:  # reduced as channels-first maps or tokens
        return shape[-1] if len(shape) == 2 else shape[0]
    if how != "flatten":
        return reduced_width(shape, how, layout, layer)
    if len(shape) == 1:
        return shape[0]
    if layout is None:
        raise _no_layout(layer)
    return reduced_width(shape, "avgpool", layout, layer)


def pool(
    x: torch.Tensor, shape: tuple[int, ...], how: str, layout: Layout | None, layer: str = "?"
) -> torch.Tensor:
    """Spatially pooled ``(n, C)`` features from a batch ``x`` reduced with ``how``.

    Flattened outputs are unflattened to ``shape`` and averaged over positions
    as their ``layout`` says; the other reductions are pooled already.
    """
    if how != "flatten" or len(shape) == 1:
        return x
    if layout is None:
        raise _no_layout(layer)
    return reduce(x.reshape(len(x), *shape), "avgpool", layout, layer)
