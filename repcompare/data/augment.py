"""Seeded augmentation presets, applied to the image before any model-specific step.

A view depends only on (seed, sample index, view number): every model
compared sees the identical augmented images, in any process or worker.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from repcompare.errors import InputError

AUGMENTATIONS = ("simclr", "crop", "flip", "color", "grayscale", "blur", "none")


def _blur(size: int) -> transforms.GaussianBlur:
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    return transforms.GaussianBlur(kernel, sigma=(0.1, 2.0))


def augmentation(name: str, size: int) -> transforms.Compose:
    """The preset ``name`` producing ``size`` x ``size`` PIL images (SimCLR's parameters)."""
    crop = transforms.RandomResizedCrop(size, scale=(0.08, 1.0))
    fixed = [transforms.Resize(size), transforms.CenterCrop(size)]
    jitter = transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)
    gray = transforms.RandomGrayscale(p=0.2)
    blur = transforms.RandomApply([_blur(size)], p=0.5)
    presets = {
        "simclr": [crop, transforms.RandomHorizontalFlip(), jitter, gray, blur],
        "crop": [crop],
        "flip": [*fixed, transforms.RandomHorizontalFlip()],
        "color": [*fixed, jitter],
        "grayscale": [*fixed, gray],
        "blur": [*fixed, blur],
        "none": fixed,
    }
    if name not in presets:
        raise InputError(f"unknown augmentation {name!r}; use one of {', '.join(AUGMENTATIONS)}")
    return transforms.Compose(presets[name])


def view_seed(seed: int, index: int, view: int) -> int:
    """A 63-bit seed derived from (seed, sample index, view) alone."""
    return int(np.random.SeedSequence([seed, index, view]).generate_state(1, np.uint64)[0] >> 1)


def augmented_view(image: Image.Image, pipeline, seed: int, index: int, view: int) -> Image.Image:
    """View ``view`` of sample ``index``: the pipeline run under its own derived seed."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(view_seed(seed, index, view))
        return pipeline(image)
