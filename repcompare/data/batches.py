"""The dataset the capture loop iterates: planned samples, preprocessed for each model.

Item i holds, for sample ``indices[i]``: the inputs of every model (one uint8
``(views, 3, H, W)`` tensor per model: the geometry of its ``Preprocess``, which
loader workers run; the float normalisation runs later, in batches on the
device), the label, the source index, and
the SHA-256 of each view's model-independent image (the source image, or the
augmented view, before any model-specific resize or normalisation): the
fingerprint that proves two models saw the same images.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from repcompare.data.augment import augmentation, augmented_view
from repcompare.data.sources import ImageSource
from repcompare.data.transforms import Preprocess

MIN_BATCH = 4  # the fewest rows a batch may hold: the minibatch CKA estimator needs 4


def image_digest(image) -> torch.Tensor:
    """SHA-256 of an RGB image's size and pixels, as 32 uint8."""
    digest = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).digest()
    return torch.frombuffer(bytearray(digest), dtype=torch.uint8)


def default_view_size(source: ImageSource) -> int:
    """Augmented views are made at the source's own size when it has one, else 224."""
    return source.native_size or 224


class InputsDataset(Dataset):
    """Planned samples with each model's preprocessing (see module docstring)."""

    def __init__(
        self,
        source: ImageSource,
        indices: np.ndarray,
        transforms: list[Preprocess],
        augment: str | None,
        views: int,
        view_size: int,
        seed: int,
    ):
        self.source, self.indices, self.transforms = source, indices, transforms
        self.views, self.seed = views, seed
        self.pipeline = None if augment is None else augmentation(augment, view_size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        index = int(self.indices[i])
        image, label = self.source.load(index)
        images = (
            [image]
            if self.pipeline is None
            else [
                augmented_view(image, self.pipeline, self.seed, index, v) for v in range(self.views)
            ]
        )
        return {
            "inputs": [torch.stack([t.geometry(view) for view in images]) for t in self.transforms],
            "label": label,
            "index": index,
            "digest": torch.stack([image_digest(view) for view in images]),
        }


def batch_bounds(num_samples: int, batch_size: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` rows of each batch: consecutive ``batch_size`` rows, except that
    a last batch of fewer than ``MIN_BATCH`` rows is merged into the one before it.

    The one batch plan of the package: the loader, the file layout, the writer's row
    offsets, the reader and resuming all use it, so batch ``b`` is the same rows everywhere.
    """
    starts = list(range(0, num_samples, batch_size))
    if len(starts) > 1 and num_samples - starts[-1] < MIN_BATCH:
        starts.pop()
    stops = [*starts[1:], num_samples] if starts else []
    return list(zip(starts, stops, strict=True))


def make_loader(dataset: InputsDataset, batch_size: int, workers: int) -> DataLoader:
    """The dataset's ``batch_bounds`` batches in order (no shuffling), loaded by ``workers``
    processes into pinned memory when there is a GPU to copy to. A dataset of the rows of
    consecutive batches of the whole (a resume, one process's share of a torchrun job) gets
    the same batches as the whole one, since only the last batch is ever merged."""
    bounds = batch_bounds(len(dataset), batch_size)
    return DataLoader(
        dataset,
        batch_sampler=[range(start, stop) for start, stop in bounds],
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
