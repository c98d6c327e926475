"""The built-in procedural data set: ten labelled shape and texture classes, no download.

Image ``i`` of ``ProceduralShapes(count, size, seed)`` is drawn by
``np.random.default_rng([seed, i])`` alone: its class is ``i % 10`` (balanced),
and its colours, position, scale and pixel noise are random. Shapes are signed
distance functions on the unit square rendered with a one-pixel soft edge, so
the same image can be drawn at any size. The foreground is always brighter than
the background, which keeps the classes linearly separable on coarse pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from repcompare.errors import InputError

CLASSES = [
    "circle",
    "square",
    "triangle",
    "horizontal stripes",
    "vertical stripes",
    "checkerboard",
    "ring",
    "cross",
    "dots",
    "diagonal gradient",
]

NOISE_STD = 0.03

Coordinates = tuple[np.ndarray, np.ndarray]


def _rotated(x: np.ndarray, y: np.ndarray, angle: float) -> Coordinates:
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * x + sin * y, -sin * x + cos * y


def _box(x: np.ndarray, y: np.ndarray, half_w: float, half_h: float) -> np.ndarray:
    """Signed Chebyshev distance to an axis-aligned box centred at the origin."""
    return np.maximum(np.abs(x) - half_w, np.abs(y) - half_h)


def _to_line(t: np.ndarray, period: float) -> np.ndarray:
    """Distance of ``t`` to the nearest multiple of ``period``."""
    return period / 2 - np.abs(np.mod(t, period) - period / 2)


def _circle(x, y, rng):
    return np.hypot(x, y) - rng.uniform(0.22, 0.34)


def _square(x, y, rng):
    half = rng.uniform(0.18, 0.28)
    return _box(*_rotated(x, y, rng.uniform(-0.15, 0.15)), half, half)


def _triangle(x, y, rng):
    x, y = _rotated(x, y, rng.uniform(-0.25, 0.25))
    inner = rng.uniform(0.12, 0.17)
    normals = [(0.0, -1.0), (np.sqrt(3) / 2, 0.5), (-np.sqrt(3) / 2, 0.5)]
    return np.max([nx * x + ny * y for nx, ny in normals], axis=0) - inner


def _horizontal_stripes(x, y, rng):
    period = rng.uniform(0.3, 0.36)
    return _to_line(y, period) - period / 4


def _vertical_stripes(x, y, rng):
    return _horizontal_stripes(y, x, rng)


def _checkerboard(x, y, rng):
    period = rng.uniform(0.23, 0.27)
    parity = (np.floor(x / period) + np.floor(y / period)) % 2
    edge = np.minimum(_to_line(x, period), _to_line(y, period))
    return np.where(parity == 0, -edge, edge)


def _ring(x, y, rng):
    width = rng.uniform(0.04, 0.07)
    return np.abs(np.hypot(x, y) - rng.uniform(0.24, 0.32)) - width


def _cross(x, y, rng):
    x, y = _rotated(x, y, rng.uniform(-0.2, 0.2))
    arm, width = rng.uniform(0.3, 0.38), rng.uniform(0.06, 0.09)
    return np.minimum(_box(x, y, arm, width), _box(x, y, width, arm))


def _dots(x, y, rng):
    period = rng.uniform(0.23, 0.27)
    dx, dy = _to_line(x + period / 2, period), _to_line(y + period / 2, period)
    return np.hypot(dx, dy) - period * rng.uniform(0.22, 0.3)


def _diagonal_gradient(x, y, rng):
    """Not a distance: a ramp across the image along a direction near the main diagonal."""
    u, _ = _rotated(x, y, np.pi / 4 + rng.uniform(-0.3, 0.3))
    return u * rng.uniform(0.85, 1.25)


_SHAPES: list[Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = [
    _circle,
    _square,
    _triangle,
    _horizontal_stripes,
    _vertical_stripes,
    _checkerboard,
    _ring,
    _cross,
    _dots,
    _diagonal_gradient,
]


def render(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of class ``label``; all draws come from ``rng``.

    The geometry and colours are drawn before the size-dependent noise, so the
    same ``rng`` seed gives the same picture at every size.
    """
    background = rng.uniform(0.0, 0.4, 3)
    foreground = rng.uniform(0.6, 1.0, 3)
    centre = 0.5 + rng.uniform(-0.06, 0.06, 2)
    grid = (np.arange(size) + 0.5) / size
    x, y = np.meshgrid(grid - centre[0], grid - centre[1])
    distance = _SHAPES[label](x, y, rng)
    if label == CLASSES.index("diagonal gradient"):
        mask = np.clip(0.5 - distance, 0.0, 1.0)
    else:
        mask = np.clip(0.5 - distance * size, 0.0, 1.0)
    image = background + mask[..., None] * (foreground - background)
    image = image + rng.normal(0.0, NOISE_STD, image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


class ProceduralShapes:
    """``count`` deterministic RGB images of ``size`` x ``size`` pixels in ten balanced classes.

    ``load(i)`` depends only on ``(seed, i, size)``; the label is ``i % 10``.
    """

    classes: list[str] = CLASSES
    has_labels = True

    def __init__(self, count: int = 1000, size: int = 64, seed: int = 0) -> None:
        if count < 1 or size < 1:
            raise InputError(
                f"the built-in data needs at least 1 image of at least 1 pixel, got {count} "
                f"images of {size} pixels; use builtin:N:SIZE with positive N and SIZE"
            )
        self.count, self.size, self.seed = count, size, seed

    @property
    def native_size(self) -> int:
        """Every image is ``size`` x ``size``."""
        return self.size

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> tuple[Image.Image, int]:
        """Image ``index`` and its label ``index % 10``."""
        if not 0 <= index < self.count:
            raise IndexError(f"image {index} is outside 0..{self.count - 1}")
        label = index % len(CLASSES)
        pixels = render(label, self.size, np.random.default_rng([self.seed, index]))
        return Image.fromarray(pixels), label

    def describe(self) -> str:
        """E.g. ``builtin:1000:64 (1000 procedural images, 10 classes)``."""
        return (
            f"builtin:{self.count}:{self.size} ({self.count} procedural images, "
            f"{len(CLASSES)} classes, seed {self.seed})"
        )
