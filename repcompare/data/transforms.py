"""Model-specific preprocessing: the model's own eval transform, every part overridable.

A model trained on 32 x 32 CIFAR images is analysed at its training
resolution with ``--image-size 32 --crop-pct 1.0``: resize to 32 (a no-op on
32 x 32 input) and a centre crop of the full image.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace

import torch
from PIL import Image
from torchvision import transforms

from repcompare.capture.models import DataConfig
from repcompare.errors import InputError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class TransformOverrides:
    """Command-line overrides of a model's preprocessing (None keeps the model's own)."""

    image_size: int | None = None
    crop_pct: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None


def resolve_config(config: DataConfig, overrides: TransformOverrides) -> DataConfig:
    """``config`` with every given override applied."""
    if overrides.interpolation not in (None, *INTERPOLATIONS):
        raise InputError(
            f"unknown --interpolation {overrides.interpolation!r}; use {', '.join(INTERPOLATIONS)}"
        )
    if overrides.crop_pct is not None and not 0 < overrides.crop_pct <= 1:
        raise InputError(f"--crop-pct {overrides.crop_pct} must be in (0, 1]")
    if overrides.image_size is not None and overrides.image_size < 1:
        raise InputError(f"--image-size {overrides.image_size} must be positive")
    size = overrides.image_size
    changes = {
        "input_size": None if size is None else (config.input_size[0], size, size),
        "crop_pct": overrides.crop_pct,
        "mean": overrides.mean,
        "std": overrides.std,
        "interpolation": overrides.interpolation,
    }
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Preprocess:
    """A model's preprocessing in two parts, so that the float work happens in batches.

    ``geometry`` maps a PIL image to a uint8 ``(3, H, W)`` tensor (resize, crop) and
    runs in the loader workers; ``normalise`` maps a uint8 batch ``(n, 3, H, W)`` on any
    device to ``(x / 255 - mean) / std`` in float32, the same float32 operations as
    torchvision's ``ToTensor`` and ``Normalize``, so the result is bit for bit theirs.
    Calling it on one image runs both.
    """

    geometry: transforms.Compose
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        mean, std = (_per_channel(v, batch.device) for v in (self.mean, self.std))
        return batch.to(torch.float32).div_(255).sub_(mean).div_(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalise(self.geometry(image)[None])[0]

    def describe(self) -> str:
        """The whole pipeline on one line, as printed and stored in activation files."""
        steps = [
            *self.geometry.transforms,
            "ToDtype(float32, scale=True)",
            transforms.Normalize(self.mean, self.std),
        ]
        return re.sub(r"\s+", " ", f"Compose({' '.join(map(str, steps))})")


@functools.cache
def _per_channel(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """``values`` as a float32 ``(C, 1, 1)`` tensor on ``device``, made once per device (a
    copy to a GPU on every batch would make the host wait for it)."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1, 1)


def eval_transform(config: DataConfig) -> Preprocess:
    """timm's eval pipeline: resize the shorter side to ``floor(size / crop_pct)``, centre
    crop ``size``, normalise. Written with torchvision so that timm need not be imported;
    a non-square input size takes timm's own keep-ratio resize."""
    _, height, width = config.input_size
    scale = tuple(math.floor(side / config.crop_pct) for side in (height, width))
    if scale[0] == scale[1]:
        resize = transforms.Resize(scale[0], transforms.InterpolationMode(config.interpolation))
    else:
        from timm.data.transforms import ResizeKeepRatio

        resize = ResizeKeepRatio(scale, interpolation=config.interpolation)
    geometry = transforms.Compose(
        [resize, transforms.CenterCrop((height, width)), transforms.PILToTensor()]
    )
    return Preprocess(geometry, tuple(config.mean), tuple(config.std))


def view_transform(config: DataConfig) -> Preprocess:
    """An augmented view's pipeline: resize to exactly the model's input size, no crop,
    normalise."""
    _, height, width = config.input_size
    geometry = transforms.Compose(
        [
            transforms.Resize((height, width), transforms.InterpolationMode(config.interpolation)),
            transforms.PILToTensor(),
        ]
    )
    return Preprocess(geometry, tuple(config.mean), tuple(config.std))
