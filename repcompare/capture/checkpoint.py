"""Reading checkpoints safely and fitting their keys to a model.

Nothing here executes code from a checkpoint: ``.safetensors`` files hold only
tensors, and every other format goes through ``torch.load(weights_only=True)``,
which refuses pickles that would construct arbitrary objects. The one class
allowed beyond torch's own is ``argparse.Namespace`` (``SAFE_GLOBALS``): DINO and
MAE training checkpoints store their arguments in one, a plain attribute bag.

Loading a checkpoint into a model (``load_checkpoint_into``: ``unwrap``, then
``fit_state_dict``):

0. with ``key`` (``--key PREFIX``), descend the dict keys the prefix names and keep
   only the tensors under the rest of it;
1. unwrap containers: the first of ``CONTAINER_KEYS`` holding a dict, repeatedly
   (Lightning's ``state_dict``, ...); when a checkpoint holds several encoders
   (``ENCODERS``: DINO's ``teacher`` and ``student`` containers, MoCo's
   ``base_encoder.`` and ``momentum_encoder.`` key prefixes), take the one asked
   for (``--encoder``), else the default (teacher, base), and report it;
2. strip key prefixes (``STRIP_PREFIXES``, or the first one to three key
   components, e.g. ``module.base_encoder.``), the best one at a time, while
   stripping increases the number of keys the model has;
3. apply the model's own conversion (``filter_fn``: timm's ``checkpoint_filter_fn``
   of the model's module: official DINOv2 register layouts, position embeddings
   resampled to the model's input size, ...) and report what it changed;
4. drop head tensors (first key component in ``HEAD_PREFIXES``) that the model
   lacks or has in another shape: an SSL projector, a classifier for another
   number of classes. Model head weights the checkpoint lacks stay at their
   initialisation and are reported;
5. cast floating-point tensors (float16, bfloat16) to the model's dtype;
6. refuse the result if backbone weights are missing or it holds layers the
   model lacks inside modules the model has (a deeper variant of the
   architecture: ResNet-34 weights for a ResNet-18, a 12-block ViT for a 6-block
   one), unless allowed, or if any non-head tensor has the wrong shape: a
   silently random or silently truncated network would make every similarity
   meaningless. Tensors of modules the model has no trace of (an MAE decoder, a
   mask token, an SSL projector) are ignored and reported.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from repcompare.errors import InputError

CONTAINER_KEYS = ("state_dict", "model", "module", "net", "teacher", "student", "backbone")
STRIP_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "_orig_mod.")
HEAD_PREFIXES = ("projector", "head", "heads", "fc", "prototypes", "classifier")
IGNORED_MISSING = ("num_batches_tracked",)
MAX_PREFIX_DEPTH = 3
SAFE_GLOBALS = [argparse.Namespace]
ENCODERS = {
    "teacher": ("teacher",),
    "student": ("student",),
    "base": ("base_encoder", "encoder_q"),
    "momentum": ("momentum_encoder", "encoder_k"),
}
"""Encoder choices and the container keys or key components that hold them (MoCo v1/v2
call them ``encoder_q`` and ``encoder_k``); when several are present and none is chosen,
the first present in this order is taken: the DINO teacher, the MoCo base encoder."""


@dataclass
class LoadReport:
    """What happened to every tensor of a checkpoint on its way into a model."""

    source: str
    container: tuple[str, ...] = ()
    encoder: str = ""
    other_encoders: tuple[str, ...] = ()
    encoder_chosen: bool = False
    stripped: tuple[str, ...] = ()
    filtered_by: str = ""
    filter_changes: tuple[str, ...] = ()
    loaded: int = 0
    cast: dict[str, int] = field(default_factory=dict)
    dropped_head: tuple[str, ...] = ()
    head_left_at_init: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    extra_layers: tuple[str, ...] = ()
    wrong_shape: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """Human-readable summary, one fact a line."""
        where = "/".join(self.container) or "top level"
        out = [f"loaded {self.loaded} tensors from {self.source} ({where})"]
        if self.other_encoders:
            how = "as asked" if self.encoder_chosen else "the default; choose with --encoder"
            out.append(
                f"encoder: {self.encoder} ({how}); the checkpoint also holds "
                f"{', '.join(self.other_encoders)}, not loaded"
            )
        elif self.encoder:
            out.append(f"encoder: {self.encoder}")
        if self.stripped:
            out.append(f"stripped key prefixes: {', '.join(self.stripped)}")
        if self.filtered_by:
            changes = "; ".join(self.filter_changes) or "no changes"
            out.append(f"applied {self.filtered_by}: {changes}")
        if self.cast:
            out.append(
                "cast to the model's dtype: "
                + ", ".join(f"{n} {dtype}" for dtype, n in sorted(self.cast.items()))
            )
        for label, keys in (
            ("dropped head tensors", self.dropped_head),
            ("head left at initialisation", self.head_left_at_init),
            ("missing", self.missing),
            ("unexpected (ignored)", self.unexpected),
            ("wrong shape", self.wrong_shape),
        ):
            if keys:
                out.append(f"{label} ({len(keys)}): {_abbreviate(keys)}")
        return out


class CheckpointMismatchError(InputError):
    """The checkpoint does not fit the architecture; carries the full load report."""

    def __init__(self, report: LoadReport):
        self.report = report
        problems = []
        if report.missing:
            problems.append(
                f"{len(report.missing)} model tensors are missing from it "
                f"({_abbreviate(report.missing, 3)})"
            )
        if report.wrong_shape:
            problems.append(
                f"{len(report.wrong_shape)} have the wrong shape "
                f"({_abbreviate(report.wrong_shape, 2)})"
            )
        if report.extra_layers:
            problems.append(
                f"{len(report.extra_layers)} of its tensors belong to layers this model lacks "
                f"({_abbreviate(report.extra_layers, 3)}), as if it were a deeper variant"
            )
        elif report.unexpected:
            problems.append(
                f"{len(report.unexpected)} of its tensors are unknown to the model "
                f"({_abbreviate(report.unexpected, 3)})"
            )
        super().__init__(
            f"checkpoint {report.source} does not fit this architecture: "
            + "; ".join(problems)
            + "; check the model name, or pass --allow-missing to load only what fits"
        )


def _abbreviate(keys: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> object:
    """The raw object in a checkpoint file, read without executing any code from it."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise InputError(f"{path} is not a readable safetensors file ({error})") from None
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes); save the checkpoint again")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        forbidden = re.search(r"GLOBAL ([\w.]+)", str(error))
        if forbidden is None:
            raise InputError(f"{path} is not a readable PyTorch checkpoint") from None
        raise InputError(
            f"{path} needs arbitrary code to load (it pickles {forbidden.group(1)}, not only "
            "tensors and plain containers), so it was not loaded; re-save its state_dict with "
            "torch.save or safetensors in an environment you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise InputError(f"{path} is not a readable PyTorch checkpoint ({error})") from None


@dataclass(frozen=True)
class Unwrapped:
    """The state dict found in a checkpoint and where: containers descended, encoder taken."""

    state: dict[str, torch.Tensor]
    container: tuple[str, ...] = ()
    encoder: str = ""
    other_encoders: tuple[str, ...] = ()
    encoder_chosen: bool = False


def _encoder_of(name: str) -> str | None:
    return next((e for e, names in ENCODERS.items() if name in names), None)


def _pick_encoder(present: list[str], encoder: str | None, source: str) -> str:
    """The encoder to take among ``present`` (at least one): the one asked for, else the default."""
    present = [e for e in ENCODERS if e in present]
    if encoder is None:
        return next(e for e in ENCODERS if e in present)
    if encoder not in present:
        raise InputError(
            f"{source} holds no {encoder} encoder (it holds {', '.join(present)}); "
            "choose one of those with --encoder"
        )
    return encoder


def _descend(obj: object, key: str, path: list[str]) -> tuple[object, str]:
    """Walk the leading dotted components of ``key`` that name dict entries of ``obj``."""
    rest = key
    while isinstance(obj, dict) and rest:
        head, _, tail = rest.partition(".")
        if not isinstance(obj.get(head), dict):
            break
        path.append(head)
        obj, rest = obj[head], tail
    return obj, rest


def _encoders_in_keys(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Encoder -> the key prefix holding it (``module.base_encoder.``), from key components."""
    found: dict[str, str] = {}
    for key in state:
        parts = key.split(".")
        for depth, part in enumerate(parts[:MAX_PREFIX_DEPTH]):
            name = _encoder_of(part)
            if name is not None and depth < len(parts) - 1:
                found.setdefault(name, ".".join(parts[: depth + 1]) + ".")
                break
    return found


def unwrap(
    obj: object, source: str, *, encoder: str | None = None, key: str | None = None
) -> Unwrapped:
    """Descend to the state dict (see the module docstring, steps 0 and 1)."""
    if encoder is not None and encoder not in ENCODERS:
        raise InputError(f"unknown --encoder {encoder!r}; use {', '.join(ENCODERS)}")
    if encoder is not None and key is not None:
        raise InputError("--encoder and --key both choose an encoder; give one of them")
    path: list[str] = []
    prefix = ""
    if key is not None:
        obj, prefix = _descend(obj, key.strip("."), path)
    taken, others = "", ()
    tensors: dict[str, torch.Tensor] = {}
    while isinstance(obj, dict):
        found = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
        if found and len(found) >= len(obj) / 2:
            tensors = found
            break
        containers = [k for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)]
        held = {_encoder_of(k): k for k in obj if isinstance(obj[k], dict) and _encoder_of(k)}
        if len(held) > 1 and key is None:
            taken = _pick_encoder(list(held), encoder, source)
            others = tuple(e for e in ENCODERS if e in held and e != taken)
            containers = [held[taken]]
        if not containers:
            break
        path.append(containers[0])
        obj = obj[containers[0]]
    if not tensors:
        raise InputError(
            f"{source} holds no state dict of tensors (looked under {', '.join(CONTAINER_KEYS)}); "
            "save the model's state_dict() instead"
        )
    if key is not None:
        tensors = {k: v for k, v in tensors.items() if not prefix or k.startswith(prefix + ".")}
        if not tensors:
            raise InputError(
                f"{source} has no tensors under --key {key!r}; give a prefix of its keys"
            )
        return Unwrapped(tensors, tuple(path), f"--key {key}", (), True)
    if not taken:
        prefixes = _encoders_in_keys(tensors)
        present = list(prefixes) or [e for e in map(_encoder_of, path) if e][-1:]
        if not present and encoder is not None:
            raise InputError(f"{source} holds a single model, not several encoders; drop --encoder")
        if present:
            taken = _pick_encoder(present, encoder, source)
            others = tuple(e for e in ENCODERS if e in prefixes and e != taken)
        if len(prefixes) > 1:
            tensors = {k: v for k, v in tensors.items() if k.startswith(prefixes[taken])}
    return Unwrapped(tensors, tuple(path), taken, others, encoder is not None)


def _strip(keys: list[str], prefix: str) -> list[str]:
    return [k[len(prefix) :] if k.startswith(prefix) else k for k in keys]


def strip_prefixes(keys: list[str], target: set[str]) -> tuple[list[str], tuple[str, ...]]:
    """Strip prefixes while that makes more keys match ``target``; return keys and prefixes."""
    stripped: list[str] = []
    while True:
        matches = len(target.intersection(keys))
        leading = [
            ".".join(k.split(".")[:depth]) + "."
            for k in keys
            if k not in target
            for depth in range(1, min(k.count("."), MAX_PREFIX_DEPTH) + 1)
        ]
        candidates = list(STRIP_PREFIXES) + list(dict.fromkeys(leading))
        best, best_matches = None, matches
        for prefix in candidates:
            renamed = _strip(keys, prefix)
            if len(set(renamed)) < len(renamed):
                continue
            count = len(target.intersection(renamed))
            if count > best_matches:
                best, best_matches = prefix, count
        if best is None:
            return keys, tuple(stripped)
        keys = _strip(keys, best)
        stripped.append(best)


def _changes(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """What a checkpoint filter did: tensors it renamed or dropped, new ones, resized ones."""
    gone = [k for k in before if k not in after]
    new = [k for k in after if k not in before]
    resized = [
        f"{k} {tuple(before[k].shape)} -> {tuple(v.shape)}"
        for k, v in after.items()
        if k in before and torch.is_tensor(v) and v.shape != before[k].shape
    ]
    out = []
    if gone or new:
        out.append(f"replaced {len(gone)} tensors ({_abbreviate(tuple(gone), 3)}) by {len(new)}")
    if resized:
        out.append(f"resized {_abbreviate(tuple(resized), 3)}")
    return tuple(out)


def _is_head(key: str, head_prefixes: tuple[str, ...]) -> bool:
    return key.split(".", 1)[0] in head_prefixes


def fit_state_dict(
    state: dict[str, torch.Tensor],
    model: torch.nn.Module,
    *,
    source: str,
    container: tuple[str, ...] = (),
    head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
    allow_missing: bool = False,
    filter_fn: Callable | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename, convert, filter and cast ``state`` for ``model``; see the module docstring."""
    target = model.state_dict()
    keys, stripped = strip_prefixes(list(state), set(target))
    renamed = dict(zip(keys, state.values(), strict=True))
    filtered_by, filter_changes = "", ()
    if filter_fn is not None:
        filtered_by = f"timm's {filter_fn.__module__}.{filter_fn.__name__}"
        try:
            converted = filter_fn(dict(renamed), model)
        except Exception as error:  # a layout it does not know: fit the keys as they are
            filter_changes = (f"not applicable ({type(error).__name__}: {error})",)
        else:
            filter_changes = _changes(renamed, converted)
            renamed = converted
    fitted: dict[str, torch.Tensor] = {}
    dropped, unexpected, wrong_shape = [], [], []
    cast: Counter[str] = Counter()
    for key, tensor in renamed.items():
        want = target.get(key)
        if want is None or want.shape != tensor.shape:
            if _is_head(key, head_prefixes):
                dropped.append(key)
            elif want is None:
                unexpected.append(key)
            else:
                wrong_shape.append(f"{key} {tuple(tensor.shape)} vs model {tuple(want.shape)}")
            continue
        if tensor.is_floating_point() and tensor.dtype != want.dtype:
            cast[str(tensor.dtype).removeprefix("torch.")] += 1
            tensor = tensor.to(want.dtype)
        fitted[key] = tensor
    absent = [k for k in target if k not in fitted and not k.endswith(IGNORED_MISSING)]
    modules = {name for name, _ in model.named_modules()}
    report = LoadReport(
        source=source,
        container=container,
        stripped=stripped,
        filtered_by=filtered_by,
        filter_changes=filter_changes,
        loaded=len(fitted),
        cast=dict(cast),
        dropped_head=tuple(dropped),
        head_left_at_init=tuple(k for k in absent if _is_head(k, head_prefixes)),
        missing=tuple(k for k in absent if not _is_head(k, head_prefixes)),
        unexpected=tuple(unexpected),
        extra_layers=tuple(k for k in unexpected if _inside_a_lacked_layer(k, modules)),
        wrong_shape=tuple(wrong_shape),
    )
    if report.wrong_shape or ((report.missing or report.extra_layers) and not allow_missing):
        raise CheckpointMismatchError(report)
    return fitted, report


def _inside_a_lacked_layer(key: str, modules: set[str]) -> bool:
    """Whether tensor ``key`` belongs to a module the model lacks whose parent, or an
    ancestor below the root, the model has: ``layer1.2.conv1.weight`` for a model with
    ``layer1`` but no ``layer1.2``. A tensor of a module the model has (an extra buffer)
    or of one with no ancestor in the model (``decoder_blocks.0...``) is not."""
    path = key.rpartition(".")[0]
    if path in modules:
        return False
    while path:
        path = path.rpartition(".")[0]
        if path in modules:
            return bool(path)
    return False


def load_checkpoint_into(
    model: torch.nn.Module,
    path: Path,
    *,
    head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
    allow_missing: bool = False,
    encoder: str | None = None,
    key: str | None = None,
    filter_fn: Callable | None = None,
) -> LoadReport:
    """Read ``path`` safely, fit it to ``model`` and load it; return the load report.

    ``encoder`` (a name in ``ENCODERS``) or ``key`` (a prefix of dict keys and tensor
    names, e.g. ``student`` or ``module.momentum_encoder``) choose among several encoders.
    """
    found = unwrap(read_checkpoint(path), str(path), encoder=encoder, key=key)
    fitted, report = fit_state_dict(
        found.state,
        model,
        source=str(path),
        container=found.container,
        head_prefixes=head_prefixes,
        allow_missing=allow_missing,
        filter_fn=filter_fn,
    )
    report = replace(
        report,
        encoder=found.encoder,
        other_encoders=found.other_encoders,
        encoder_chosen=found.encoder_chosen,
    )
    model.load_state_dict(fitted, strict=False)
    return report
