"""Model specs: the one string that names a model and, optionally, its checkpoint.

    timm:NAME[@PATH]          a timm model; NAME may carry a tag (vit_base_patch16_224.mae)
    torchvision:NAME[@PATH]   a torchvision classification model
    NAME[@PATH]               timm if it knows NAME, else torchvision (the choice is reported)

PATH is a local checkpoint (.safetensors, .pth, .pt, .bin, .ckpt).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from repcompare.errors import InputError

LIBRARIES = ("timm", "torchvision")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model spec: which library builds it, by what name, with which weights."""

    library: str
    name: str
    checkpoint: Path | None = None
    chosen_from_bare_name: bool = False

    def __str__(self) -> str:
        text = f"{self.library}:{self.name}"
        return f"{text}@{self.checkpoint}" if self.checkpoint else text

    @property
    def short_name(self) -> str:
        """The model name with the checkpoint's file stem, for titles and legends."""
        return f"{self.name}@{self.checkpoint.stem}" if self.checkpoint else self.name


def timm_names() -> list[str]:
    import timm

    return timm.list_models()


def torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _known(library: str, name: str) -> bool:
    if library == "timm":
        import timm

        return timm.is_model(name)
    return name in torchvision_names()


def _unknown_model(name: str, libraries: tuple[str, ...]) -> InputError:
    candidates = [
        f"{library}:{known}"
        for library in libraries
        for known in (timm_names() if library == "timm" else torchvision_names())
    ]
    bare: dict[str, str] = {}
    for candidate in candidates:
        bare.setdefault(candidate.split(":", 1)[1], candidate)
    close = [bare[m] for m in difflib.get_close_matches(name, list(bare), n=5, cutoff=0.6)]
    hint = f"did you mean {', '.join(close)}?" if close else "list them with timm.list_models()"
    where = " or ".join(libraries)
    return InputError(f"{where} has no model named {name!r}; {hint}")


def parse_spec(text: str) -> ModelSpec:
    """Parse and resolve a model spec string (see module docstring)."""
    body, _, path = text.strip().partition("@")
    checkpoint = Path(path).expanduser() if path else None
    if checkpoint is not None and not checkpoint.is_file():
        raise InputError(f"checkpoint file {str(checkpoint)!r} does not exist; check the path")
    library, sep, name = body.partition(":")
    if not sep:
        name = body
        if not name:
            raise InputError(
                "a model spec needs a name, e.g. timm:resnet50 or torchvision:vit_b_16"
            )
        for candidate in LIBRARIES:
            if _known(candidate, name):
                return ModelSpec(candidate, name, checkpoint, chosen_from_bare_name=True)
        raise _unknown_model(name, LIBRARIES)
    if library not in LIBRARIES:
        raise InputError(
            f"unknown model library {library!r} in {text!r}; use timm:NAME or torchvision:NAME"
        )
    if not _known(library, name):
        raise _unknown_model(name, (library,))
    return ModelSpec(library, name, checkpoint)
