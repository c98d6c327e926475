"""From what a user names to what a run needs: model specs, activation files and
``nn.Module``s become comparison sides (``Side``), the shared options an input plan.

This is the run assembly behind every command of the Python API (and so of the CLI).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from repcompare.capture.graph import LayerGraph, discover
from repcompare.capture.models import LoadedModel, load_model, load_module
from repcompare.capture.select import select_layers, selection_items
from repcompare.capture.spec import parse_spec
from repcompare.capture.weights import same_weights, zero_initialised_norms
from repcompare.data.transforms import TransformOverrides, resolve_config
from repcompare.errors import InputError, RepcompareWarning
from repcompare.limits import DEFAULT_BATCH_SIZE
from repcompare.options import DataOptions, ModelOptions
from repcompare.progress import Feedback
from repcompare.sides.batches import CaptureTarget
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side, looks_like_file, select_stored_layers, side_files
from repcompare.store.reader import ActivationFile, open_activations

DEFAULT_PRESET = "blocks"


def model_text(model: Any) -> str:
    """How a model argument is named to the user: its spec or path, or a module's class."""
    return type(model).__name__ if isinstance(model, torch.nn.Module) else str(model)


def input_size(loaded: LoadedModel, image_size: int | None) -> tuple[int, int, int]:
    """The (C, H, W) input size: the model's own, or N x N when given."""
    return resolve_config(loaded.data_config, TransformOverrides(image_size=image_size)).input_size


def open_model(
    model: str | Path | torch.nn.Module, options: ModelOptions, feedback: Feedback
) -> tuple[LoadedModel, LayerGraph]:
    """Build a spec's model (or take a module: anything else is refused) and trace it,
    noting what was loaded and how."""
    if not isinstance(model, (str, Path)):
        loaded = load_module(model)
    else:
        spec = replace(
            parse_spec(str(model)),
            kwargs=options.constructor_kwargs(),
            encoder=options.encoder,
            key=options.key,
        )
        loaded = load_model(
            spec,
            pretrained=options.pretrained,
            allow_missing=options.allow_missing,
            init_seed=options.init_seed,
            image_size=options.image_size,
        )
    if loaded.init_seed is not None:
        _note_zero_init(loaded)
    graph = discover(loaded.module, input_size(loaded, options.image_size), options.tracer)
    for line in [*loaded.notes, *(loaded.load_report.lines() if loaded.load_report else [])]:
        feedback.note(line)
    if graph.fallback_reason:
        feedback.note(f"{graph.fallback_reason}; using module hooks", "yellow")
    return loaded, graph


def _note_zero_init(loaded: LoadedModel) -> None:
    """Say once, with the model's notes, that its random init starts normalisation layers at
    zero (timm's ResNets), which makes their residual branches constant."""
    zeros = zero_initialised_norms(loaded.module)
    if zeros:
        loaded.notes.append(
            f"{loaded.spec}: {len(zeros)} normalisation layer(s) start at zero in this random "
            f"init ({', '.join(zeros[:2])}{', ...' if len(zeros) > 2 else ''}; timm's "
            "zero_init_last), so their residual branches are constant (undefined) and "
            "consecutive block outputs are equal; load trained weights to compare them"
        )


def warn_one_network(sides: list[Side]) -> None:
    """Warn, and note in both models' provenance, when two model sides hold bit-identical
    weights: one network under two names (timm's vit_tiny and deit_tiny at one init seed)."""
    models = [s for s in sides if s.target is not None]
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            if a.target.loaded is b.target.loaded or not same_weights(
                a.target.loaded.module, b.target.loaded.module
            ):
                continue
            sentence = (
                f"{a.label} and {b.label} have bit-identical weights: they are one network (any "
                "difference is their preprocessing's); load a checkpoint for one of them"
            )
            warnings.warn(sentence, RepcompareWarning, stacklevel=3)
            a.target.loaded.notes.append(sentence)
            b.target.loaded.notes.append(sentence)


def capture_target(
    model: str | torch.nn.Module,
    selection: Sequence[str] | None,
    reduction: str,
    options: ModelOptions,
    feedback: Feedback,
) -> CaptureTarget:
    """A model ready to capture ``selection`` (default: the block outputs) reduced by
    ``reduction``."""
    loaded, graph = open_model(model, options, feedback)
    items = selection_items(selection or [DEFAULT_PRESET])
    return CaptureTarget(loaded, graph, select_layers(graph, items), reduction, tuple(items))


def check_file_reduction(file: ActivationFile, reduction: str | None) -> None:
    """A reduction asked of an activation file must be the one it was extracted with."""
    if reduction not in (None, file.settings.reduction):
        raise InputError(
            f"{file.path} holds activations reduced with {file.settings.reduction!r}, which a "
            f"file cannot change to {reduction!r}; extract it again with --reduce {reduction}, "
            "or drop the option"
        )


def _is_file(model: Any) -> bool:
    return isinstance(model, (str, Path)) and looks_like_file(str(model))


_opened: ContextVar[list[ActivationFile] | None] = ContextVar("opened_files", default=None)


@contextmanager
def files_closed_after() -> Iterator[None]:
    """Close every activation file or Gram store that ``build_side`` opens inside this block
    (its handle and read lock) when the block ends, whether it succeeded or failed, so that a
    refused call keeps no lock on a file."""
    token = _opened.set([])
    try:
        yield
    finally:
        for file in _opened.get() or []:
            file.close()
        _opened.reset(token)


def build_side(
    model: str | Path | torch.nn.Module,
    selection: Sequence[str] | None,
    reduction: str,
    options: ModelOptions,
    feedback: Feedback,
    file_reduction: str | None = None,
) -> Side:
    """A comparison side from an activation file or Gram store, a MODEL spec or a module. A
    file keeps the
    reduction it was extracted with; ``file_reduction``, when given, must equal it."""
    if _is_file(model):
        file = open_activations(Path(model))
        opened = _opened.get()
        if opened is not None:
            opened.append(file)
        check_file_reduction(file, file_reduction)
        roles = json.loads(file.attrs.get("layer_roles", "{}"))
        return Side(file.path.stem, select_stored_layers(file, selection), file=file, roles=roles)
    target = capture_target(model, selection, reduction, options, feedback)
    label = target.loaded.spec.short_name
    roles = target.graph.layer_roles()
    return Side(label, target.layers, target=target, roles=roles)


def reselect_side(
    side: Side, selection: Sequence[str] | None, reduction: str, file_reduction: str | None
) -> Side:
    """The same file or loaded model as ``side`` with other layers or another reduction."""
    if side.is_file:
        check_file_reduction(side.file, file_reduction)
        return replace(side, layers=select_stored_layers(side.file, selection))
    chosen = select_layers(side.target.graph, selection) if selection else side.layers
    return replace(
        side, layers=chosen, target=replace(side.target, layers=chosen, reduction=reduction)
    )


def distinct_labels(sides: list[Side], models: list[Any]) -> None:
    """Give sides that share a label (same architecture) the argument they came from
    instead, and letters when even those agree."""
    if len({s.label for s in sides}) == len(sides):
        return
    labels = [model_text(m).split("@")[0] for m in models]
    if len(set(labels)) < len(labels):
        labels = [f"{chr(ord('A') + i)}: {label}" for i, label in enumerate(labels)]
    for side, label in zip(sides, labels, strict=True):
        side.label = label


def _same(a: Any, b: Any) -> bool:
    """The same model argument: the same module object, or the same spec or path text."""
    if isinstance(a, torch.nn.Module) or isinstance(b, torch.nn.Module):
        return a is b
    return str(a) == str(b)


def cka_sides(
    a: Any,
    b: Any,
    layers_a: Sequence[str] | None,
    layers_b: Sequence[str] | None,
    reductions: tuple[str | None, str | None, str],
    options: ModelOptions,
    feedback: Feedback,
) -> tuple[Side, Side, bool]:
    """Sides A and B of a CKA run, and whether the run is symmetric (B is A: the same model
    argument with the same layers and reduction, computed once).

    ``reductions`` are (A's, B's, the default): a side without its own takes the default.
    """
    reduce_a, reduce_b, default = reductions
    side_a = build_side(a, layers_a, reduce_a or default, options, feedback, reduce_a)
    same_source = _same(a, b)
    symmetric = (
        same_source
        and (not layers_b or layers_b == layers_a)
        and (reduce_a or default) == (reduce_b or default)
    )
    if symmetric:
        return side_a, side_a, True
    if same_source:
        side_b = reselect_side(side_a, layers_b or layers_a, reduce_b or default, reduce_b)
    else:
        side_b = build_side(b, layers_b, reduce_b or default, options, feedback, reduce_b)
    distinct_labels([side_a, side_b], [a, b])
    if not same_source:
        warn_one_network([side_a, side_b])
    return side_a, side_b, False


def build_sides(
    models: tuple[Any, ...],
    selection: Sequence[str] | None,
    reduction: str,
    options: ModelOptions,
    feedback: Feedback,
) -> list[Side]:
    """One side per model argument (files, specs or modules), each named distinctly."""
    if not models:
        raise InputError(
            "give at least one model: an activation file, a Gram store or a MODEL spec"
        )
    texts = [model_text(m) for m in models]
    repeated = sorted({t for i, t in enumerate(texts) if _same_twice(models, i)})
    if repeated:
        raise InputError(f"{repeated[0]} is given more than once; give each model once")
    sides = [build_side(m, selection, reduction, options, feedback) for m in models]
    distinct_labels(sides, list(models))
    warn_one_network(sides)
    return sides


def untrained_sides(
    sides: Sequence[Side], options: ModelOptions, feedback: Feedback
) -> dict[str, Side]:
    """The untrained baseline of each model side, by the side's label: its architecture
    (library, name, constructor arguments) with random weights seeded by
    ``options.init_seed``, capturing the same layers with the same reduction, labelled
    ``untrained NAME``. Sides of one architecture share one baseline; activation files and
    modules given in Python have none (there is no spec to build it from)."""
    untrained = replace(options, pretrained=False, encoder=None, key=None, allow_missing=False)
    built: dict[str, Side] = {}
    baselines = {}
    for side in sides:
        if side.is_file or side.target.loaded.spec.library not in ("timm", "torchvision"):
            continue
        spec = side.target.loaded.spec
        architecture = f"{spec.library}:{spec.name}"
        key = f"{architecture} {spec.kwargs} {side.layers} {side.reduction}"
        if key not in built:
            model_options = replace(untrained, model_kwargs=dict(spec.kwargs))
            target = capture_target(
                architecture, side.layers, side.reduction, model_options, feedback
            )
            roles = target.graph.layer_roles()
            built[key] = Side(f"untrained {spec.name}", target.layers, target=target, roles=roles)
        baselines[side.label] = built[key]
    if len({b.label for b in built.values()}) < len(built):
        for number, baseline in enumerate(built.values(), start=1):
            baseline.label = f"{baseline.label} ({number})"
    return baselines


def distinct_sides(sides_by_model: dict[str, Side]) -> list[Side]:
    """Each side of ``sides_by_model`` once (models of one architecture share a baseline)."""
    return list({id(side): side for side in sides_by_model.values()}.values())


def _same_twice(models: tuple[Any, ...], i: int) -> bool:
    return any(_same(models[i], other) for j, other in enumerate(models) if j != i)


def input_plan(
    data: DataOptions,
    image_size: int | None,
    batch_size: int | None,
    sides: Sequence[Side] = (),
    views: int = 1,
    augment: str | None = None,
    view_size: int | None = None,
) -> InputPlan:
    """The plan of a run's inputs: ``batch_size``, else a Gram store's or the first activation
    file's, else ``DEFAULT_BATCH_SIZE``; ``views`` views per image augmented with ``augment``
    at ``view_size``. A Gram store's batches are fixed: another ``batch_size`` is refused."""
    files = side_files(sides)
    store = files[0] if files and files[0].settings.store == "grams" else None
    if store is not None and batch_size not in (None, store.settings.batch_size):
        raise InputError(
            f"{store.path} holds the Grams of batches of {store.settings.batch_size}, which "
            f"cannot be cut into batches of {batch_size}; drop --batch-size"
        )
    if batch_size is None:
        batch_size = files[0].settings.batch_size if files else DEFAULT_BATCH_SIZE
    return InputPlan(data, image_size, batch_size, views, augment, view_size)
