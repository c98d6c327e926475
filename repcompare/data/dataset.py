"""A torch ``Dataset`` (or a ``DataLoader``'s dataset) given in Python, as an image source.

Items are ``(image, label)``: the image a PIL image, an ``(H, W, 3)`` uint8 array or a
``(3, H, W)`` tensor (uint8, or float in [0, 1], as ``ToTensor`` makes it); the label
an integer, or -1/None when there is none. Each model's own preprocessing is applied
to the image, exactly as for ``--data`` sources, so a Dataset must not normalise.

A DataLoader contributes its dataset only: repcompare fixes the order and the
batches itself, so that every model sees the same images in the same batches.
Classes come from the dataset's ``classes`` attribute, else from ``targets``, else
from one pass over its labels.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from repcompare.data.pixels import class_count, eight_bit_rgb
from repcompare.errors import InputError

RANGE_SLACK = 1e-6  # float rounding of ToTensor's x / 255


def _pil(image, index: int) -> Image.Image:
    """A dataset item's image as an RGB PIL image (uint8 values kept exactly)."""
    if isinstance(image, Image.Image):
        return eight_bit_rgb(image, f"dataset item {index}")
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise InputError(
                f"dataset item {index} is a tensor of shape {tuple(image.shape)}; give images "
                "as (3, H, W) tensors, (H, W, 3) uint8 arrays or PIL images"
            )
        if image.is_floating_point():
            low, high = image.min().item(), image.max().item()
            if not bool(torch.isfinite(image).all()):
                raise InputError(f"dataset item {index} holds NaN or Inf pixels; fix the dataset")
            if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
                raise InputError(
                    f"dataset item {index} is a float image with values in [{low:.3g}, "
                    f"{high:.3g}], outside [0, 1]: it looks normalised already; drop Normalize "
                    "from the dataset's transform (each model's own normalisation is applied)"
                )
            image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        image = image.permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3):
        raise InputError(
            f"dataset item {index} is a {array.dtype} array of shape {array.shape}; give images "
            "as (3, H, W) tensors, (H, W, 3) uint8 arrays or PIL images"
        )
    return Image.fromarray(array.squeeze(2) if array.shape[2] == 1 else array).convert("RGB")


def _label(label) -> int:
    return -1 if label is None else int(label)


class DatasetSource:
    """An image source over a torch Dataset's ``(image, label)`` items."""

    def __init__(self, data: Dataset | DataLoader):
        self.dataset = data.dataset if isinstance(data, DataLoader) else data
        try:
            self._length = len(self.dataset)
        except TypeError:
            raise InputError(
                f"the {type(self.dataset).__name__} given as data has no length; give a map-style "
                "Dataset (with __len__ and __getitem__), not an iterable one"
            ) from None
        if self._length == 0:
            raise InputError(f"the {type(self.dataset).__name__} given as data holds no items")

    def __len__(self) -> int:
        return self._length

    def load(self, index: int) -> tuple[Image.Image, int]:
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InputError(
                f"dataset item {index} is not an (image, label) pair; make __getitem__ return "
                "(image, label), with label -1 or None when there is none"
            )
        return _pil(item[0], index), _label(item[1])

    @cached_property
    def classes(self) -> list[str] | None:
        """Class names: the dataset's own, else one per label value seen; None if unlabelled."""
        named = getattr(self.dataset, "classes", None)
        if named is not None:
            return [str(c) for c in named]
        labels = getattr(self.dataset, "targets", None)
        if labels is None:
            labels = [_label(self.dataset[i][1]) for i in range(self._length)]
        count = class_count(np.asarray(labels), f"the {type(self.dataset).__name__} given as data")
        return [str(c) for c in range(count)] if count else None

    @property
    def has_labels(self) -> bool:
        return self.classes is not None

    @cached_property
    def native_size(self) -> int | None:
        width, height = self.load(0)[0].size
        return height if height == width else None

    def describe(self) -> str:
        return f"{type(self.dataset).__name__} dataset ({self._length} images)"
