"""The options every command shares, typed: how models are built (``ModelOptions``) and
which images they see, how prepared and loaded (``DataOptions``).

The Python API takes them as keyword arguments named like the CLI's options
(``image_size=32``, ``data="builtin:256:32"``); ``split_options`` sorts them into
the two dataclasses and refuses a name that is neither.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from repcompare.capture.models import DEFAULT_INIT_SEED
from repcompare.capture.reduce import DEFAULT_TOKEN_CAP
from repcompare.capture.spec import parse_model_kwargs
from repcompare.data.transforms import MAX_IMAGE_SIZE
from repcompare.errors import InputError

TRACERS = ("auto", "fx", "hooks")
MAX_DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class ModelOptions:
    """How a model spec becomes a network: published weights (``pretrained``) or a
    checkpoint's (``encoder``/``key`` pick one inside it, ``allow_missing`` accepts a
    partial one), the random init's seed, constructor ``model_kwargs`` (a mapping or the
    CLI's ``key=value,...`` text), the input size ``image_size`` (N x N; None: the model's
    own) and the ``tracer`` that finds its capture points (auto, fx or hooks)."""

    pretrained: bool = False
    init_seed: int = DEFAULT_INIT_SEED
    encoder: str | None = None
    key: str | None = None
    model_kwargs: str | Mapping[str, Any] | None = None
    allow_missing: bool = False
    image_size: int | None = None
    tracer: str = "auto"

    def __post_init__(self) -> None:
        if self.tracer not in TRACERS:
            raise InputError(f"unknown tracer {self.tracer!r}; use auto, fx or hooks")
        if self.init_seed < 0:
            raise InputError(f"--init-seed {self.init_seed} must be 0 or more")
        if self.image_size is not None and not 0 < self.image_size <= MAX_IMAGE_SIZE:
            raise InputError(
                f"--image-size {self.image_size} must lie between 1 and {MAX_IMAGE_SIZE} pixels; "
                "omit it for the model's own input size"
            )

    def constructor_kwargs(self) -> tuple[tuple[str, object], ...]:
        """``model_kwargs`` as (name, value) pairs in the order given."""
        if isinstance(self.model_kwargs, Mapping):
            return tuple(self.model_kwargs.items())
        return parse_model_kwargs(self.model_kwargs)


@dataclass(frozen=True)
class DataOptions:
    """Which images (``data``: a spec string, a path, or a torch Dataset/DataLoader
    yielding ``(image, label)``; None: the built-in set), how many (``num_samples``) in
    which ``order`` (random with ``seed``, or stored), each model's preprocessing changed by
    ``crop_pct``, ``mean``, ``std`` (three numbers, or the CLI's ``R,G,B`` text) and
    ``interpolation``, loaded by ``workers`` processes (None: cores - 1, at most 8) onto
    ``device`` (auto, cpu or cuda); with ``reduce="tokens"`` at most ``token_cap`` token
    rows per batch."""

    data: Any = None
    num_samples: int | None = None
    order: str = "random"
    seed: int = 0
    crop_pct: float | None = None
    mean: str | Sequence[float] | None = None
    std: str | Sequence[float] | None = None
    interpolation: str | None = None
    workers: int | None = None
    device: str = "auto"
    token_cap: int = DEFAULT_TOKEN_CAP

    def __post_init__(self) -> None:
        if isinstance(self.data, Path):
            object.__setattr__(self, "data", str(self.data))
        for name in ("mean", "std"):
            object.__setattr__(self, name, _triple(getattr(self, name), f"--{name}"))
        if self.std is not None and min(self.std) <= 0:
            raise InputError(
                f"--std {','.join(map(str, self.std))} must be positive for every channel "
                "(the images are divided by it)"
            )
        if self.seed < 0:
            raise InputError(f"--seed {self.seed} must be 0 or more")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers {self.workers} must be 0 (load in this process) or more")
        if self.token_cap < 1:
            raise InputError(f"--token-cap {self.token_cap} must be 1 or more")

    def loader_workers(self) -> int:
        """``workers``, else one fewer than the CPU cores (at most 8)."""
        if self.workers is not None:
            return self.workers
        return max(0, min(MAX_DEFAULT_WORKERS, (os.cpu_count() or 1) - 1))


def _triple(value: str | Sequence[float] | None, option: str) -> tuple[float, ...] | None:
    """Three numbers from ``R,G,B`` text or a sequence; None stays None."""
    if value is None:
        return None
    try:
        values = tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3:
        raise InputError(f"{option} takes three comma-separated numbers, e.g. 0.485,0.456,0.406")
    return values


MODEL_OPTIONS = tuple(f.name for f in fields(ModelOptions))
DATA_OPTIONS = tuple(f.name for f in fields(DataOptions))


def split_options(command: str, options: Mapping[str, Any]) -> tuple[ModelOptions, DataOptions]:
    """The shared keyword arguments of ``command`` as typed options; an unknown name is a
    TypeError, as for any Python function."""
    unknown = sorted(set(options) - set(MODEL_OPTIONS) - set(DATA_OPTIONS))
    if unknown:
        raise TypeError(
            f"{command}() got an unexpected keyword argument {unknown[0]!r}; the shared options "
            f"are {', '.join(MODEL_OPTIONS + DATA_OPTIONS)}"
        )
    model = ModelOptions(**{k: v for k, v in options.items() if k in MODEL_OPTIONS})
    data = DataOptions(**{k: v for k, v in options.items() if k in DATA_OPTIONS})
    return model, data
