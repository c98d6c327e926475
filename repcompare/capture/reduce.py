"""Reductions of a layer's output ``(n, ...)`` to an ``(n, d)`` representation.

- ``flatten``: every value, ``(n, prod(shape))`` (the paper's choice);
- ``avgpool``: global spatial mean; ``(n, C, H, W) -> (n, C)`` (channels-first
  maps), ``(n, T, C) -> (n, C)`` (mean over tokens), ``(n, C)`` unchanged;
- ``cls``: the first token of ``(n, T, C)`` token sequences;
- ``mean``: the mean over the non-prefix tokens of ``(n, T, C)`` (the class and
  register tokens of a ViT are excluded, as timm's ``global_pool='avg'`` does).

``avgpool`` assumes channels-first 4-d maps; for channels-last tensors inside
some blocks (ConvNeXt's permuted MLP) use ``flatten``.
"""

from __future__ import annotations

import math

import torch

from repcompare.errors import InputError

REDUCTIONS = ("flatten", "avgpool", "cls", "mean")


def _needs_tokens(how: str, layer: str, shape: tuple[int, ...]) -> InputError:
    return InputError(
        f"reduction '{how}' needs token outputs (tokens, channels) but layer {layer!r} has "
        f"shape {shape}; use --reduce flatten or avgpool for this layer"
    )


def reduced_width(shape: tuple[int, ...], how: str, layer: str = "?") -> int:
    """Width ``d`` of the reduced representation of one example of ``shape``."""
    if how == "flatten":
        return math.prod(shape)
    if how == "avgpool":
        return shape[0] if len(shape) != 2 else shape[1]
    if how in ("cls", "mean"):
        if len(shape) != 2:
            raise _needs_tokens(how, layer, shape)
        return shape[1]
    raise InputError(f"unknown reduction {how!r}; use one of {', '.join(REDUCTIONS)}")


def reduce(x: torch.Tensor, how: str, layer: str = "?", prefix_tokens: int = 0) -> torch.Tensor:
    """Reduce a batch ``x`` of ``layer``'s outputs to ``(n, d)`` (see module docstring)."""
    reduced_width(tuple(x.shape[1:]), how, layer)
    if how == "flatten" or x.ndim == 2:
        return x.reshape(x.shape[0], -1)
    if how == "avgpool":
        return x.mean(dim=1) if x.ndim == 3 else x.flatten(2).mean(dim=2)
    if how == "cls":
        return x[:, 0]
    return x[:, prefix_tokens:].mean(dim=1)


def pooled_width(shape: tuple[int, ...], how: str, layer: str = "?") -> int:
    """Width of the spatially pooled features of a layer stored with reduction ``how``."""
    return reduced_width(shape, "avgpool" if how == "flatten" else how, layer)


def pool(x: torch.Tensor, shape: tuple[int, ...], how: str) -> torch.Tensor:
    """Spatially pooled ``(n, C)`` features from a batch ``x`` reduced with ``how``.

    Flattened maps are unflattened to ``shape`` and averaged over positions
    (tokens); the other reductions are pooled already.
    """
    return reduce(x.reshape(len(x), *shape), "avgpool") if how == "flatten" else x
