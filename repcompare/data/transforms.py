"""Model-specific preprocessing: the model's own eval transform, every part overridable.

A model trained on 32 x 32 CIFAR images is analysed at its training
resolution with ``--image-size 32 --crop-pct 1.0``: resize to 32 (a no-op on
32 x 32 input) and a centre crop of the full image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

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


def eval_transform(config: DataConfig):
    """PIL image -> normalised tensor: resize, centre crop, normalise (timm's eval pipeline)."""
    from timm.data import create_transform

    return create_transform(
        input_size=config.input_size,
        interpolation=config.interpolation,
        mean=config.mean,
        std=config.std,
        crop_pct=config.crop_pct,
        is_training=False,
    )


def view_transform(config: DataConfig):
    """PIL view -> normalised tensor: resize to exactly the model's input size, no crop."""
    from torchvision import transforms

    _, height, width = config.input_size
    return transforms.Compose(
        [
            transforms.Resize(
                (height, width),
                interpolation=transforms.InterpolationMode(config.interpolation),
            ),
            transforms.ToTensor(),
            transforms.Normalize(config.mean, config.std),
        ]
    )


def describe_transform(transform) -> str:
    """The transform on one line, as printed and stored in activation files."""
    return re.sub(r"\s+", " ", str(transform)).replace("( ", "(").replace(" )", ")")
