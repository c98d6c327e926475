"""Reading checkpoints safely and fitting their keys to a model.

Nothing here executes code from a checkpoint: ``.safetensors`` files hold only
tensors, and every other format goes through ``torch.load(weights_only=True)``,
which refuses pickles that would construct arbitrary objects.

Fitting a state dict to a model (``fit_state_dict``):

1. unwrap containers: the first of ``CONTAINER_KEYS`` holding a dict, repeatedly
   (Lightning's ``state_dict``, DINO's ``teacher``, ...);
2. strip key prefixes (``STRIP_PREFIXES``, or the first one to three key
   components, e.g. ``module.base_encoder.``), the best one at a time, while
   stripping increases the number of keys the model has;
3. drop head tensors (first key component in ``HEAD_PREFIXES``) that the model
   lacks or has in another shape: an SSL projector, a classifier for another
   number of classes. Model head weights the checkpoint lacks stay at their
   initialisation and are reported;
4. cast floating-point tensors (float16, bfloat16) to the model's dtype;
5. refuse the result if backbone weights are missing (unless allowed) or any
   non-head tensor has the wrong shape: a silently random layer would make
   every similarity meaningless.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from repcompare.errors import InputError

CONTAINER_KEYS = ("state_dict", "model", "module", "net", "teacher", "student", "backbone")
STRIP_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "_orig_mod.")
HEAD_PREFIXES = ("projector", "head", "heads", "fc", "prototypes", "classifier")
IGNORED_MISSING = ("num_batches_tracked",)
MAX_PREFIX_DEPTH = 3


@dataclass
class LoadReport:
    """What happened to every tensor of a checkpoint on its way into a model."""

    source: str
    container: tuple[str, ...] = ()
    stripped: tuple[str, ...] = ()
    loaded: int = 0
    cast: dict[str, int] = field(default_factory=dict)
    dropped_head: tuple[str, ...] = ()
    head_left_at_init: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    wrong_shape: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """Human-readable summary, one fact a line."""
        where = "/".join(self.container) or "top level"
        out = [f"loaded {self.loaded} tensors from {self.source} ({where})"]
        if self.stripped:
            out.append(f"stripped key prefixes: {', '.join(self.stripped)}")
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
        if report.unexpected:
            problems.append(
                f"{len(report.unexpected)} of its tensors are unknown to the model "
                f"({_abbreviate(report.unexpected, 3)})"
            )
        super().__init__(
            f"checkpoint {report.source} does not fit this architecture: "
            + "; ".join(problems)
            + "; check the model name, or pass --allow-missing to keep missing layers random"
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
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        forbidden = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if forbidden is None:
            raise InputError(f"{path} is not a readable PyTorch checkpoint") from None
        raise InputError(
            f"{path} needs arbitrary code to load (it pickles {forbidden.group(1)}, not only "
            "tensors and plain containers), so it was not loaded; re-save its state_dict with "
            "torch.save or safetensors in an environment you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise InputError(f"{path} is not a readable PyTorch checkpoint ({error})") from None


def unwrap(obj: object, source: str) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Descend through ``CONTAINER_KEYS`` to the state dict; return it and the keys taken."""
    path: list[str] = []
    while isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
        if tensors and len(tensors) >= len(obj) / 2:
            return tensors, tuple(path)
        key = next((k for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is None:
            break
        path.append(key)
        obj = obj[key]
    raise InputError(
        f"{source} holds no state dict of tensors (looked under {', '.join(CONTAINER_KEYS)}); "
        "save the model's state_dict() instead"
    )


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
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Rename, filter and cast ``state`` for ``model``; see the module docstring."""
    target = model.state_dict()
    keys, stripped = strip_prefixes(list(state), set(target))
    renamed = dict(zip(keys, state.values(), strict=True))
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
    report = LoadReport(
        source=source,
        container=container,
        stripped=stripped,
        loaded=len(fitted),
        cast=dict(cast),
        dropped_head=tuple(dropped),
        head_left_at_init=tuple(k for k in absent if _is_head(k, head_prefixes)),
        missing=tuple(k for k in absent if not _is_head(k, head_prefixes)),
        unexpected=tuple(unexpected),
        wrong_shape=tuple(wrong_shape),
    )
    if report.wrong_shape or (report.missing and not allow_missing):
        raise CheckpointMismatchError(report)
    return fitted, report


def load_checkpoint_into(
    model: torch.nn.Module,
    path: Path,
    *,
    head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
    allow_missing: bool = False,
) -> LoadReport:
    """Read ``path`` safely, fit it to ``model`` and load it; return the load report."""
    state, container = unwrap(read_checkpoint(path), str(path))
    fitted, report = fit_state_dict(
        state,
        model,
        source=str(path),
        container=container,
        head_prefixes=head_prefixes,
        allow_missing=allow_missing,
    )
    model.load_state_dict(fitted, strict=False)
    return report
