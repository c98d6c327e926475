"""The options of the commands, typed and grouped: how models are built (``ModelOptions``),
which of their layers are captured and how reduced (``LayerOptions``), which images they
see, how prepared and loaded (``DataOptions``), the augmented views (``ViewOptions``), how a
run batches and resamples (``RunOptions``), and each analysis's own (``CKAOptions``,
``ClassFitOptions``, ``AtlasOptions``).

Each option is declared once, as a dataclass field made by ``option``: its default, its
command-line flag and its help text; a group's ``panel`` is its section of ``--help``. The
command line's parameters are generated from these fields (``repcompare.cli``), and the
Python API takes them as keyword arguments named like the fields (``image_size=32``,
``data="builtin:256:32"``); ``options_of`` sorts them into the groups and refuses a name
that is in none. Where a command's default differs from the field's (a study bootstraps
100 times), it is written once, in ``COMMAND_DEFAULTS``, which both read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from repcompare.capture.spec import parse_model_kwargs
from repcompare.errors import InputError
from repcompare.limits import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_INIT_SEED,
    DEFAULT_RBF_FRACTION,
    DEFAULT_RBF_MEDIAN,
    DEFAULT_SAMPLE,
    DEFAULT_TOKEN_CAP,
    MAX_IMAGE_SIZE,
)

TRACERS = ("auto", "fx", "hooks")
MAX_DEFAULT_WORKERS = 8


def option(
    default: Any, flag: str, help: str, cli_type: Any = None, shown: str | None = None
) -> Any:
    """A dataclass field that is also a command option: its ``default``, its ``flag`` and
    ``help`` text, the type the command line parses it as when the field's own type is
    wider (a Python object, or a mapping the CLI gives as text), and what ``--help`` says
    the default is when it is None (``shown``: the value None stands for)."""
    metadata = {"flag": flag, "help": help, "cli_type": cli_type, "shown": shown}
    return field(default=default, metadata=metadata)


def option_fields(group: type) -> list[Field]:
    """The fields of dataclass ``group`` that are command options, in declaration order."""
    return [f for f in fields(group) if "flag" in f.metadata]


def _names(given: str | Sequence[str] | None, flag: str) -> tuple[str, ...] | None:
    """Names given as one string or several, each maybe comma-separated, as one tuple in
    the order given without repeats (None when none were given)."""
    items = [given] if isinstance(given, str) else list(given or ())
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    if items and not names:
        raise InputError(f"{flag} {','.join(items)!r} names nothing; give one name or more")
    return tuple(dict.fromkeys(names)) or None


@dataclass(frozen=True)
class ModelOptions:
    """How a model spec becomes a network: published weights (``pretrained``) or a
    checkpoint's (``encoder``/``key`` pick one inside it, ``allow_missing`` accepts a
    partial one), the random init's seed, constructor ``model_kwargs`` (a mapping or the
    CLI's ``key=value,...`` text), the input size ``image_size`` (N x N; None: the model's
    own) and the ``tracer`` that finds its capture points (auto, fx or hooks)."""

    panel: ClassVar[str] = "Models"
    pretrained: bool = option(
        False, "--pretrained", "Use the library's published weights (online)."
    )
    init_seed: int = option(
        DEFAULT_INIT_SEED,
        "--init-seed",
        "Seed of the random initialisation (models built without weights).",
    )
    encoder: str | None = option(
        None,
        "--encoder",
        "Which encoder of a checkpoint holding several: teacher, student, base, momentum, "
        "online, target, model or ema. Default: the one each method evaluates (DINO teacher, "
        "MoCo base, BYOL online, I-JEPA/MSN target, the model rather than its EMA copy); the "
        "load report says which.",
    )
    key: str | None = option(
        None, "--key", "Load the checkpoint's weights under this key prefix (e.g. student)."
    )
    model_kwargs: str | Mapping[str, Any] | None = option(
        None,
        "--model-kwargs",
        "key=value,... for the model constructor (values are Python literals, else strings), "
        "e.g. global_pool=avg.",
        cli_type=str | None,
    )
    allow_missing: bool = option(
        False,
        "--allow-missing",
        "Load a checkpoint that does not cover the model exactly: weights it lacks stay "
        "random, layers the model lacks are ignored.",
    )
    image_size: int | None = option(
        None, "--image-size", "Input size N (NxN) instead of the model's."
    )
    tracer: str = option("auto", "--tracer", "auto (fx, else hooks), fx or hooks.")

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
class LayerOptions:
    """Which capture points of each model (``layers``: presets, glob patterns or names, one
    string or several; None: the command's default, the block outputs) and how each output
    becomes one row per image (``reduce``)."""

    panel: ClassVar[str] = "Layers"
    layers: tuple[str, ...] | None = option(
        None,
        "--layers",
        "Presets (blocks, residual, paper, all), glob patterns or names; comma-separated or "
        "repeated.",
        cli_type=list[str] | None,
        shown="blocks; files: every stored layer",
    )
    reduce: str = option(
        "flatten",
        "--reduce",
        "flatten, avgpool, cls (class token), mean (patch tokens), or tokens (cka and "
        "invariance on the fly: every patch token of every image is an example).",
    )

    def __post_init__(self) -> None:
        if self.layers is not None:  # names and patterns as given: select_layers reads them
            given = [self.layers] if isinstance(self.layers, str) else self.layers
            object.__setattr__(self, "layers", tuple(dict.fromkeys(given)) or None)


@dataclass(frozen=True)
class DataOptions:
    """Which images (``data``: a spec string, a path, or a torch Dataset/DataLoader
    yielding ``(image, label)``; None: the built-in set), how many (``num_samples``) in
    which ``order`` (random with ``seed``, or stored), each model's preprocessing changed by
    ``crop_pct``, ``mean``, ``std`` (three numbers, or the CLI's ``R,G,B`` text) and
    ``interpolation``, loaded by ``workers`` processes (None: cores - 1, at most 8) onto
    ``device`` (auto, cpu or cuda); with ``reduce="tokens"`` at most ``token_cap`` token
    rows per batch."""

    panel: ClassVar[str] = "Data"
    data: Any = option(
        None,
        "--data",
        "builtin[:N[:SIZE]] (default), an image folder, cifar10:PATH, cifar100:PATH, or a "
        ".npz with images and labels.",
        cli_type=str | None,
    )
    num_samples: int | None = option(
        None, "--num-samples", "Use this many images (a seeded subset)."
    )
    order: str = option(
        "random", "--order", "random (seeded permutation, default) or stored (source order)."
    )
    seed: int = option(0, "--seed", "Seed of the sample order and the views.")
    crop_pct: float | None = option(
        None, "--crop-pct", "Centre-crop fraction (1.0 = no crop margin)."
    )
    mean: str | Sequence[float] | None = option(
        None, "--mean", "Normalisation mean R,G,B.", cli_type=str | None
    )
    std: str | Sequence[float] | None = option(
        None, "--std", "Normalisation std R,G,B.", cli_type=str | None
    )
    interpolation: str | None = option(None, "--interpolation", "bilinear, bicubic or nearest.")
    workers: int | None = option(None, "--workers", "Data-loading processes (default: cores - 1).")
    device: str = option("auto", "--device", "auto, cpu or cuda.")
    token_cap: int = option(
        DEFAULT_TOKEN_CAP,
        "--token-cap",
        "With --reduce tokens: token rows kept per batch, a seeded random subset, the same "
        "for every layer, model and view.",
    )

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


@dataclass(frozen=True)
class ViewOptions:
    """The augmented views of each image: ``views`` of them (None: the command's default;
    activation files bring their own), made by each of ``augment`` (one name or several;
    None: the command's default) at ``view_size`` pixels (None: the data's own size, or
    224)."""

    panel: ClassVar[str] = "Data"
    augment: tuple[str, ...] | None = option(
        None,
        "--augment",
        "simclr, crop, flip, color, grayscale, blur or none; comma-separated or repeated, "
        "one measurement per augmentation.",
        cli_type=list[str] | None,
        shown="simclr; files: their own",
    )
    views: int | None = option(
        None, "--views", "Augmented views per image.", shown="2; files: their own"
    )
    view_size: int | None = option(
        None, "--view-size", "Size of augmented views.", shown="the data's own size, or 224"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", _names(self.augment, "--augment"))


@dataclass(frozen=True)
class RunOptions:
    """How a run streams the images: ``batch_size`` images per batch and CKA minibatch (None:
    a Gram store's or the first activation file's, else 64) and ``bootstrap`` resamples of
    the minibatches for 95% intervals."""

    panel: ClassVar[str] = "Analysis"
    batch_size: int | None = option(
        None,
        "--batch-size",
        "Images per batch and per CKA minibatch.",
        shown=f"a Gram store's or the first activation file's, else {DEFAULT_BATCH_SIZE}",
    )
    bootstrap: int = option(0, "--bootstrap", "Resamples of minibatches for 95% intervals.")

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size} must be 1 or more")
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap {self.bootstrap} must be 0 (none) or more")


BASELINES = ("untrained", "none")


@dataclass(frozen=True)
class BaselineOptions:
    """What each model's numbers are read against: ``untrained``, the same architecture with
    random weights (seeded by ``init_seed``, measured in the same passes), or ``none``."""

    panel: ClassVar[str] = "Analysis"
    baseline: str = option(
        "none",
        "--baseline",
        "untrained: also measure each architecture with random weights (seeded by "
        "--init-seed), the reference every number is shown against; none: no baseline.",
    )

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise InputError(f"unknown --baseline {self.baseline!r}; use {' or '.join(BASELINES)}")


def _sample_option() -> Any:
    """The ``--sample`` option of the measures beyond CKA (cka and atlas)."""
    return option(
        DEFAULT_SAMPLE, "--sample", "Images of the fixed sample for measures other than cka."
    )


def _check_sample(sample: int) -> None:
    if sample < 10:
        raise InputError(f"--sample {sample} is too small; use 10 images or more")


@dataclass(frozen=True)
class CKAOptions:
    """How ``cka`` (and a study's CKA) compares two sides: the CKA ``estimator`` with its
    ``kernel`` (RBF: bandwidth ``rbf_sigma`` times the median distance, over ``rbf_median``
    distances), or another ``measure`` on a fixed ``sample``; ``bootstrap`` resamples of
    the minibatches and their ``seed`` (the data's)."""

    panel: ClassVar[str] = "Analysis"
    kernel: str = option("linear", "--kernel", "linear or rbf.")
    rbf_sigma: float = option(
        DEFAULT_RBF_FRACTION,
        "--rbf-sigma",
        "RBF bandwidth as a fraction of the median distance.",
    )
    estimator: str = option(
        "minibatch", "--estimator", "minibatch (unbiased HSIC_1), exact or debiased."
    )
    bootstrap: int = 0
    seed: int = 0
    rbf_median: str = option(
        DEFAULT_RBF_MEDIAN,
        "--rbf-median",
        "RBF bandwidth median: all (n x n squared distances, Kornblith et al.'s reference, "
        "default) or distinct (pairs i < j).",
    )
    measure: str = option(
        "cka",
        "--measure",
        "cka (default) or another measure of the registry: procrustes, angular, ... "
        "(docs/cka.md; an unknown name lists them all).",
    )
    sample: int = _sample_option()

    def __post_init__(self) -> None:
        _check_sample(self.sample)
        if not self.rbf_sigma > 0:  # also refuses NaN
            raise InputError(
                f"--rbf-sigma {self.rbf_sigma} must be a positive fraction of the median "
                "distance; the usual value is 0.8"
            )
        if self.bootstrap < 0:
            raise InputError(f"--bootstrap {self.bootstrap} must be 0 (none) or more")
        if self.seed < 0:
            raise InputError(f"--seed {self.seed} must be 0 or more")


@dataclass(frozen=True)
class ClassFitOptions:
    """How ``class-fit`` (and a study's class fit) splits, votes and probes: the kNN vote of
    ``knn_k`` neighbours and the linear probe (L2 penalty ``probe_l2``) on a stratified
    split holding out ``test_fraction`` of each class; ``bootstrap`` resamples of the class
    CKA, ``seed`` (the data's) for the split; ``tokens``: also from token features."""

    panel: ClassVar[str] = "Analysis"
    knn_k: int = option(20, "--knn-k", "Neighbours of the kNN vote.")
    test_fraction: float = option(
        0.2, "--test-fraction", "Share of each class held out for kNN and probe."
    )
    probe_l2: float = option(1e-3, "--probe-l2", "L2 penalty of the linear probe.")
    bootstrap: int = 0
    seed: int = 0
    tokens: bool = option(
        False,
        "--tokens",
        "Also kNN and probe accuracy from the class token, the mean of the patch tokens and "
        "the centre patch token of each layer (ViTs; needs --reduce flatten).",
    )

    def __post_init__(self) -> None:
        if self.knn_k < 1:
            raise InputError(f"--knn-k {self.knn_k} must be at least 1")
        if not 0 < self.test_fraction < 1:
            raise InputError(f"--test-fraction {self.test_fraction} must lie between 0 and 1")
        if self.probe_l2 < 0:
            raise InputError(f"--probe-l2 {self.probe_l2} must not be negative")


@dataclass(frozen=True)
class AtlasOptions:
    """What an atlas measures: each ``measure`` (one name, several, or ``"cka,procrustes"``;
    cka streams over every image, the shape metrics too when their cross-covariances fit,
    the others use a fixed sample of ``sample`` images), and the model the reference curves
    compare with (``reference``: a label or a position from 1; None: none)."""

    panel: ClassVar[str] = "Analysis"
    measure: tuple[str, ...] = option(
        ("cka",),
        "--measure",
        "cka (default) or other measures of the registry: procrustes, angular, ... "
        "(docs/atlas.md; an unknown name lists them all); comma-separated or repeated.",
        cli_type=list[str] | None,
    )
    sample: int = _sample_option()
    reference: str | None = option(
        None, "--reference", "A model (label or position from 1) to draw curves to."
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", _names(self.measure, "--measure") or ("cka",))
        _check_sample(self.sample)


# options of the groups that a study does not take: it compares images by CKA (no other
# measure, the default median), pools every layer (no token probes, no token rows)
STUDY_EXCLUDES = ("measure", "sample", "rbf_median", "tokens", "token_cap")
STUDY_AUGMENTATIONS = ("simclr", "crop", "color", "flip")
STUDY_PRESET = "paper"  # block outputs and residual branches (Grigg et al. 2021)

# where a command's default differs from its option field's, by the API function's name
COMMAND_DEFAULTS: dict[str, dict[str, Any]] = {
    "layers": {"layers": ["all"]},
    "extract": {"views": 1},
    "study": {
        "layers": [STUDY_PRESET],
        "augment": list(STUDY_AUGMENTATIONS),
        "views": 2,
        "bootstrap": 100,
        "baseline": "untrained",
    },
}


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


def split_options(
    command: str,
    options: Mapping[str, Any],
    *groups: type,
    exclude: tuple[str, ...] = (),
) -> tuple[dict[str, Any], ...]:
    """The keyword arguments of ``command`` sorted by the option groups they belong to (the
    option fields of each dataclass in ``groups``, but ``exclude``): one dict per group. A
    name that is in none is a TypeError, as for any Python function."""
    names = [[f.name for f in option_fields(g) if f.name not in exclude] for g in groups]
    accepted = [name for group in names for name in group]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"{command}() got an unexpected keyword argument {unknown[0]!r}; the shared options "
            f"are {', '.join(accepted)}"
        )
    return tuple({k: v for k, v in options.items() if k in group} for group in names)


def options_of(
    command: str, options: Mapping[str, Any], *groups: type, exclude: tuple[str, ...] = ()
) -> tuple[Any, ...]:
    """The keyword arguments of ``command`` as one instance of each option group in
    ``groups`` (but the ``exclude`` fields); a field not given takes the command's default
    (``COMMAND_DEFAULTS``), else its own, and so does one given as None. A name that is in
    no group is a TypeError."""
    defaults = COMMAND_DEFAULTS.get(command, {})
    given = split_options(command, options, *groups, exclude=exclude)
    return tuple(
        group(
            **{f.name: defaults[f.name] for f in option_fields(group) if f.name in defaults}
            | {k: v for k, v in values.items() if v is not None}
        )
        for group, values in zip(groups, given, strict=True)
    )
