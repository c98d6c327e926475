"""Checks on what a data source hands over, whatever the source: labels that index classes,
and image pixels brought to 8-bit RGB without clipping."""

from __future__ import annotations

import numpy as np
from PIL import Image

from repcompare.errors import InputError

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841


def class_count(labels: np.ndarray, where: str) -> int:
    """K for labels that index classes 0..K-1 (K = max + 1), refused by name when a label
    is negative (other than -1, unlabelled) or K is past any real class list."""
    labels = np.asarray(labels, dtype=np.int64)
    labelled = labels[labels != -1]
    if len(labelled) and labelled.min() < 0:
        raise InputError(f"{where} has the negative label {labelled.min()}; use labels 0..K-1")
    count = int(labelled.max()) + 1 if len(labelled) else 0
    if count > MAX_CLASSES:
        raise InputError(
            f"{where} has the label {count - 1}, which would make {count:,} classes; "
            "use labels 0..K-1 (renumber the classes you have)"
        )
    return count


def eight_bit_rgb(image: Image.Image, where: str) -> Image.Image:
    """``image`` as 8-bit RGB: 16-bit greyscale scaled over its full range (v / 257), never
    clipped; 32-bit integer or float pixels, whose range is unknown, refused by name."""
    if image.mode.startswith("I;16"):
        wide = np.asarray(image, dtype=np.uint16).astype(np.float64)
        return Image.fromarray(np.round(wide / 257).astype(np.uint8)).convert("RGB")
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "floating-point"
        raise InputError(
            f"{where} holds {kind} pixels, whose range repcompare cannot know; "
            "save it as 8- or 16-bit"
        )
    return image.convert("RGB")
