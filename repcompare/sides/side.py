"""One side of a comparison: an activation file, a Gram store, or a model captured on the fly."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from repcompare.capture.layout import Layout
from repcompare.capture.reduce import token_positions
from repcompare.capture.select import selection_items
from repcompare.data.sources import source_exists
from repcompare.errors import InputError
from repcompare.results.provenance import Provenance
from repcompare.sides.batches import CaptureTarget
from repcompare.sides.plan import InputPlan
from repcompare.store.reader import ActivationFile


@dataclass
class Side:
    """Where one side's activations come from, and which of its layers are compared."""

    label: str
    layers: list[str]
    file: ActivationFile | None = None
    target: CaptureTarget | None = None
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        return self.file is not None

    @property
    def is_grams(self) -> bool:
        """Whether this side is a Gram store: per-batch Grams, no features."""
        return self.file is not None and self.file.settings.store == "grams"

    def widths(self) -> list[int]:
        """Feature width of each selected layer."""
        if self.file is not None:
            return [self.file.widths[n] for n in self.layers]
        return self.target.widths()

    @property
    def reduction(self) -> str:
        return self.file.settings.reduction if self.file is not None else self.target.reduction

    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Per-example output shape of each selected layer, before reduction."""
        if self.file is not None:
            shapes = json.loads(self.file.attrs.get("layer_shapes", "{}"))
            return [tuple(shapes[n]) for n in self.layers]
        return [tuple(self.target.graph.point(n).shape) for n in self.layers]

    def layer_layouts(self) -> list[Layout | None]:
        """Layout of each selected layer's output; None for a file written before layouts
        were stored (see ``repcompare.capture.reduce.pool``)."""
        if self.file is not None:
            stored = json.loads(self.file.attrs.get("layer_layouts", "{}"))
            return [Layout.from_json(stored[n]) if n in stored else None for n in self.layers]
        return [self.target.graph.point(n).layout for n in self.layers]

    def provenance(self) -> Provenance:
        """Where this side's activations came from."""
        if self.file is not None:
            attrs = self.file.attrs
            return Provenance(
                model_spec=str(attrs.get("model_spec", "")),
                checkpoint_sha256=str(attrs.get("checkpoint_sha256", "")),
                reduction=str(attrs.get("reduction", "")),
                file=str(self.file.path),
                data_source=str(attrs.get("data_source", "")),
                data_fingerprint=str(attrs.get("data_fingerprint", "")),
                transform=str(attrs.get("transform", "")),
            )
        loaded = self.target.loaded
        return Provenance(
            model_spec=str(loaded.spec),
            checkpoint_sha256=loaded.checkpoint_sha256 or "",
            reduction=self.target.reduction,
            pretrained=loaded.pretrained,
            tracer=self.target.graph.mode,
        )


def side_files(sides: Sequence[Side]) -> list[ActivationFile]:
    """The files among ``sides``, Gram stores first: a store fixes the batches of a run."""
    files = [s.file for s in sides if s.file is not None]
    return sorted(files, key=lambda file: file.settings.store != "grams")


def looks_like_file(text: str) -> bool:
    """An argument names an activation file when it ends in .h5/.hdf5 or is an existing file."""
    path = Path(text)
    return path.suffix in (".h5", ".hdf5") or (path.is_file() and "@" not in text)


def select_stored_layers(file: ActivationFile, selection: Sequence[str] | None) -> list[str]:
    """Names or glob patterns among a file's stored layers, in the file's (depth) order; the
    ``--layers`` the file was extracted with (a preset such as ``paper``) selects them all."""
    if not selection or list(selection) == ["all"]:
        return list(file.layers)
    items = selection_items(selection)
    recorded = json.loads(file.attrs.get("layer_selection", "[]"))
    if items == recorded:
        return list(file.layers)
    chosen = set()
    for item in items:
        matches = [n for n in file.layers if fnmatch.fnmatchcase(n, item)]
        if not matches:
            extracted = f" (extracted with --layers {','.join(recorded)})" if recorded else ""
            raise InputError(
                f"{file.path} stores no layer matching {item!r}{extracted}; it has "
                f"{', '.join(file.layers[:8])}{', ...' if len(file.layers) > 8 else ''}"
            )
        chosen.update(matches)
    return [n for n in file.layers if n in chosen]


def plan_from_file(file: ActivationFile, plan: InputPlan) -> InputPlan:
    """``plan`` changed to reproduce a file's images, order, views and batches.

    The model's own preprocessing overrides and the loader settings of ``plan``
    are kept: only the model-independent choice of inputs comes from the file.
    An explicit ``--data`` (``plan.data``) wins over the file's recorded data set
    (the images moved); every batch is then checked against the file's input
    fingerprint, so other images are an error, never a silent mix.
    """
    s = file.settings
    recorded = str(file.attrs.get("data_spec", "builtin"))
    if plan.data is None and not source_exists(recorded):
        raise InputError(
            f"{file.path} was extracted from {recorded}, which is not there any more; "
            "pass --data pointing at the same images"
        )
    inputs = replace(
        plan.inputs,
        data=recorded if plan.data is None else plan.data,
        num_samples=s.num_samples,
        order=s.order,
        seed=s.seed,
    )
    return replace(
        plan,
        inputs=inputs,
        views=s.views,
        augment=s.augment if s.view_size else None,
        view_size=s.view_size or None,
        batch_size=s.batch_size,
    )


def check_files_aligned(a: ActivationFile, b: ActivationFile) -> None:
    """Both files hold the same images in the same order with the same views, in the same
    batches."""
    if a.settings.num_samples != b.settings.num_samples:
        raise InputError(
            f"{a.path} holds {a.settings.num_samples} samples and {b.path} "
            f"{b.settings.num_samples}; extract both with the same --data and --num-samples"
        )
    if not np.array_equal(a.sample_index, b.sample_index):
        raise InputError(
            f"{a.path} and {b.path} hold the samples in a different order; extract both with "
            "the same --data, --num-samples, --order and --seed"
        )
    if a.settings.views != b.settings.views:
        raise InputError(
            f"{a.path} has {a.settings.views} view(s) and {b.path} {b.settings.views}; "
            "extract both with the same --views and --augment"
        )
    if a.settings.batch_size != b.settings.batch_size:
        raise InputError(
            f"{a.path} was extracted in batches of {a.settings.batch_size} and {b.path} in "
            f"batches of {b.settings.batch_size}, so their recorded inputs cannot be matched "
            "batch by batch; extract both with the same --batch-size"
        )
    if a.attrs.get("data_fingerprint") != b.attrs.get("data_fingerprint"):
        raise InputError(
            f"{a.path} and {b.path} were extracted from different input images (data "
            "fingerprints differ); extract both with the same --data, --seed and --augment"
        )


def _named(layers: list[str]) -> str:
    return ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")


def check_token_sides(sides: list[Side]) -> None:
    """With ``--reduce tokens`` on any side, every side is a model reduced to tokens and every
    selected layer has the same number P of patch positions, so that the rows of all sides
    are the same (image, position) pairs."""
    if all(s.reduction != "tokens" for s in sides):
        return
    for side in sides:
        if side.is_file:
            raise InputError(
                f"{side.file.path} holds one row per image, which cannot be compared with the "
                "token rows of --reduce tokens; give the MODEL spec instead of the file"
            )
        if side.reduction != "tokens":
            raise InputError(
                f"{side.label} is reduced with {side.reduction!r} but another side with "
                "'tokens' (one row per patch token); use --reduce tokens for every model"
            )
    by_positions: dict[int, list[str]] = {}
    for side in sides:
        for name, shape, layout in zip(
            side.layers, side.layer_shapes(), side.layer_layouts(), strict=True
        ):
            by_positions.setdefault(token_positions(shape, layout, name), []).append(
                f"{side.label} {name}"
            )
    if len(by_positions) > 1:
        groups = "; ".join(f"P={p}: {_named(n)}" for p, n in sorted(by_positions.items()))
        raise InputError(
            "--reduce tokens needs the same number of patch positions P in every selected "
            f"layer of every model, but they differ ({groups}); select layers of one token "
            "grid with --layers (or --layers-a/--layers-b), or set --image-size so the grids "
            "match"
        )
