"""The input plan: which images, in which order, with which augmented views, in which
batches. Every side of a comparison is fed exactly these inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repcompare.data.transforms import TransformOverrides
from repcompare.errors import InputError
from repcompare.limits import MAX_IMAGE_SIZE
from repcompare.options import DataOptions

MAX_VIEWS = 64


@dataclass(frozen=True)
class InputPlan:
    """Which images, in which order, how each model prepares them (``inputs``: the data
    options as given, and ``image_size``), in batches of ``batch_size``, with ``views``
    views augmented by ``augment`` at ``view_size``; with ``--reduce tokens``, at most
    ``token_cap`` token rows per batch (drawn from seed, batch)."""

    inputs: DataOptions = field(default_factory=DataOptions)
    image_size: int | None = None
    batch_size: int = 64
    views: int = 1
    augment: str | None = None
    view_size: int | None = None

    @property
    def data(self) -> Any:
        """A --data spec string, or a torch Dataset or DataLoader (None: builtin)."""
        return self.inputs.data

    @property
    def num_samples(self) -> int | None:
        return self.inputs.num_samples

    @property
    def order(self) -> str:
        return self.inputs.order

    @property
    def seed(self) -> int:
        return self.inputs.seed

    @property
    def token_cap(self) -> int:
        return self.inputs.token_cap

    @property
    def workers(self) -> int:
        """Data-loading processes (``DataOptions.loader_workers``)."""
        return self.inputs.loader_workers()

    @property
    def overrides(self) -> TransformOverrides:
        """The changes to each model's own preprocessing."""
        d = self.inputs
        return TransformOverrides(self.image_size, d.crop_pct, d.mean, d.std, d.interpolation)

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
