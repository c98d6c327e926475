"""Reductions of a layer's output ``(n, ...)`` to an ``(n, d)`` representation.

Each reduction reads the layer's ``Layout`` (what its axes mean, found from
the model's graph: see ``repcompare.capture.layout``), never its shape alone:

- ``flatten``: every value, ``(n, prod(shape))`` (the paper's choice); any layout;
- ``avgpool``: the mean over positions, one value per channel: NCHW and NHWC
  maps, NCL sequences, tokens (all tokens, prefix tokens included); a
  ``flat`` vector is kept as it is;
- ``cls``: the class token (token 0) of tokens whose model put one there;
- ``mean``: the mean over the patch tokens, excluding the prefix tokens (class,
  distillation, register) that the graph put in front of them at this point;
- ``tokens``: every patch position of every example is a row: the P patch
  tokens after the prefix tokens, or the P = H*W (NCHW, NHWC) or L (NCL)
  positions of a map in row-major order, as ``(m * P, C)``; row
  ``i * P + p`` is position p of example i. ``sample_token_rows`` keeps a
  seeded subset of a batch's rows.

A layout that is ``unknown`` (or the wrong kind) is an InputError naming the
layer, never a guess.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from repcompare.capture.layout import Layout
from repcompare.errors import InputError

REDUCTIONS = ("flatten", "avgpool", "cls", "mean", "tokens")
# per kind: the per-example axes averaged by avgpool, and the channel axis
POOLED_AXES = {"NCHW": ((1, 2), 0), "NHWC": ((0, 1), 2), "NCL": ((1,), 0), "tokens": ((0,), 1)}


def _unknown(how: str, layer: str, shape: tuple[int, ...]) -> InputError:
    instead = "leave it out of --layers" if how == "tokens" else "use --reduce flatten for it"
    return InputError(
        f"--reduce {how} needs to know which axes of layer {layer!r} (shape {shape}) are "
        "channels and which are positions, and repcompare could not tell from the model's "
        f"graph; {instead}"
    )


def reduced_width(shape: tuple[int, ...], how: str, layout: Layout, layer: str = "?") -> int:
    """Width ``d`` of the reduced representation of one example of ``shape`` and ``layout``."""
    if how == "flatten":
        return math.prod(shape)
    if how not in REDUCTIONS:
        raise InputError(f"unknown reduction {how!r}; use one of {', '.join(REDUCTIONS)}")
    if layout.kind == "flat" and how == "avgpool":
        return shape[0]
    if how == "avgpool" or (how == "tokens" and layout.kind != "tokens"):
        if layout.kind not in POOLED_AXES:
            if how == "tokens" and layout.kind == "flat":
                raise InputError(
                    f"--reduce tokens needs positions (tokens or a map) but layer {layer!r} is "
                    f"one vector per image (shape {shape}); leave it out of --layers"
                )
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
    if how in ("mean", "tokens") and shape[0] <= layout.prefix_tokens:
        instead = "leave it out of --layers" if how == "tokens" else "use --reduce flatten"
        raise InputError(f"layer {layer!r} has no patch tokens ({layout}); {instead}")
    return shape[1]


def token_positions(shape: tuple[int, ...], layout: Layout, layer: str = "?") -> int:
    """Number P of patch positions of one example of ``shape``: the tokens after the prefix
    tokens, the H*W positions of an NCHW or NHWC map, the L positions of an NCL sequence."""
    reduced_width(shape, "tokens", layout, layer)
    if layout.kind == "tokens":
        return shape[0] - layout.prefix_tokens
    return math.prod(shape[a] for a in POOLED_AXES[layout.kind][0])


def centre_position(shape: tuple[int, ...], layout: Layout, layer: str = "?") -> int:
    """The position (in ``token_grid`` order) of the centre patch: row H // 2, column W // 2 of
    a map's H x W grid; for P tokens a square grid of side g = sqrt(P) when P is a square
    (row and column g // 2), else position P // 2."""
    positions = token_positions(shape, layout, layer)
    if layout.kind in ("NCHW", "NHWC"):
        rows, columns = (shape[1], shape[2]) if layout.kind == "NCHW" else shape[:2]
        return rows // 2 * columns + columns // 2
    side = math.isqrt(positions)
    if layout.kind == "tokens" and side * side == positions:
        return side // 2 * side + side // 2
    return positions // 2


def token_grid(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """``(m, P, C)``: each example's patch tokens, or its map's positions in row-major order."""
    if layout.kind == "tokens":
        return x[:, layout.prefix_tokens :]
    if layout.kind == "NHWC":
        return x.flatten(1, 2)
    return x.flatten(2).transpose(1, 2)  # NCHW, NCL


def sample_token_rows(images: int, positions: int, cap: int, seed: int, batch: int) -> torch.Tensor:
    """Sorted rows ``image * positions + position`` of at most ``cap`` of a batch's
    ``images * positions`` token rows, drawn without replacement from (seed, batch) alone."""
    total = images * positions
    if total <= cap:
        return torch.arange(total)
    rng = np.random.default_rng([seed, batch])
    return torch.from_numpy(np.sort(rng.choice(total, size=cap, replace=False)))


def reduce(
    x: torch.Tensor,
    how: str,
    layout: Layout,
    layer: str = "?",
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a batch ``x`` of ``layer``'s outputs, of ``layout``, to ``(n, d)``.

    ``tokens`` gives the rows ``rows`` (all when None) of the ``(m * P, C)`` token rows.
    """
    reduced_width(tuple(x.shape[1:]), how, layout, layer)
    if how == "tokens":
        grid = token_grid(x, layout)
        if rows is None:
            return grid.reshape(-1, grid.shape[-1])
        rows = rows.to(x.device)
        return grid[rows // grid.shape[1], rows % grid.shape[1]]
    if how == "flatten" or layout.kind == "flat":
        return x.reshape(x.shape[0], -1)
    if how == "avgpool":
        axes = POOLED_AXES[layout.kind][0]
        return x.mean(dim=tuple(a + 1 for a in axes))
    if how == "cls":
        return x[:, 0].clone()  # a view would keep every token of the batch alive
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
