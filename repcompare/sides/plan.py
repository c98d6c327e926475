"""The input plan: which images, in which order, with which augmented views, in which
batches. Every side of a comparison is fed exactly these inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repcompare.data.transforms import TransformOverrides
from repcompare.errors import InputError
from repcompare.limits import DEFAULT_TOKEN_CAP, MAX_IMAGE_SIZE

MAX_VIEWS = 64


@dataclass(frozen=True)
class InputPlan:
    """Which images, in which order, how many views and how they are augmented; with
    ``--reduce tokens``, at most ``token_cap`` token rows per batch (drawn from seed, batch)."""

    data: Any = None  # a --data spec string, or a torch Dataset or DataLoader (None: builtin)
    num_samples: int | None = None
    order: str = "random"
    seed: int = 0
    views: int = 1
    augment: str | None = None
    view_size: int | None = None
    overrides: TransformOverrides = field(default_factory=TransformOverrides)
    batch_size: int = 64
    workers: int = 0
    token_cap: int = DEFAULT_TOKEN_CAP

    def __post_init__(self) -> None:
        if not 1 <= self.views <= MAX_VIEWS:
            raise InputError(
                f"--views {self.views} must lie between 1 and {MAX_VIEWS} (each view is one "
                "more forward pass of every image)"
            )
        if self.view_size is not None and not 0 < self.view_size <= MAX_IMAGE_SIZE:
            raise InputError(
                f"--view-size {self.view_size} must lie between 1 and {MAX_IMAGE_SIZE}"
            )
