"""Model specs: the one string that names a model and, optionally, its checkpoint.

    timm:NAME[@PATH]          a timm model; NAME may carry a tag (vit_base_patch16_224.mae)
    torchvision:NAME[@PATH]   a torchvision classification model
    NAME[@PATH]               timm if it knows NAME, else torchvision (the choice is reported)
    timm:NAME#seed=N          the random init under seed N, this model's own (--init-seed
                              is every other model's): two seeds of one architecture

PATH is a local checkpoint (.safetensors, .pth, .pt, .bin, .ckpt).

Options given beside the string (``--model-kwargs``, ``--encoder``, ``--key``) are
part of the spec too, and of its text: ``timm:NAME@PATH [global_pool='avg', encoder=base]``,
so that files made with other options are told apart.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, replace
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
    kwargs: tuple[tuple[str, object], ...] = ()
    encoder: str | None = None
    key: str | None = None
    init_seed: int | None = None  # #seed=N: this model's own init seed

    def __str__(self) -> str:
        text = f"{self.library}:{self.name}{self.seed_suffix}"
        text = f"{text}@{self.checkpoint}" if self.checkpoint else text
        options = [f"{k}={v!r}" for k, v in self.kwargs]
        options += [f"{k}={v}" for k, v in (("encoder", self.encoder), ("key", self.key)) if v]
        return f"{text} [{', '.join(options)}]" if options else text

    @property
    def seed_suffix(self) -> str:
        """``#seed=N`` when the spec gives its own init seed, else empty."""
        return "" if self.init_seed is None else f"#seed={self.init_seed}"

    @property
    def short_name(self) -> str:
        """The model name (with its own seed) and the checkpoint's file stem, for titles and
        legends."""
        name = f"{self.name}{self.seed_suffix}"
        return f"{name}@{self.checkpoint.stem}" if self.checkpoint else name


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
    body, at, path = text.strip().partition("@")
    if at and not path.strip():
        raise InputError(
            f"the checkpoint path after '@' in {text!r} is empty (an unset shell variable?); "
            "give a checkpoint file after '@', or drop the '@' for random weights"
        )
    checkpoint = Path(path).expanduser() if path else None
    if checkpoint is not None and not checkpoint.is_file():
        raise InputError(f"checkpoint file {str(checkpoint)!r} does not exist; check the path")
    body, init_seed = _own_seed(body, text)
    return replace(_resolved(body, text, checkpoint), init_seed=init_seed)


def _own_seed(body: str, text: str) -> tuple[str, int | None]:
    """The spec without its ``#seed=N``, and N (None without one)."""
    body, hash_sign, option = body.partition("#")
    if not hash_sign:
        return body, None
    found = re.fullmatch(r"seed=(\d+)", option.strip())
    if found is None:
        raise InputError(
            f"{text!r} has {'#' + option!r}; a spec takes #seed=N (the model's own init seed, "
            "0 or more), e.g. timm:resnet18#seed=1"
        )
    return body, int(found.group(1))


def _resolved(body: str, text: str, checkpoint: Path | None) -> ModelSpec:
    """The library and name of ``body`` (``LIB:NAME`` or a bare ``NAME``)."""
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


def parse_model_kwargs(text: str | None) -> tuple[tuple[str, object], ...]:
    """``key=value,...`` as (key, value) pairs: values are Python literals, else strings.

    ``global_pool=avg,drop_path_rate=0.1,img_size=(64,96)`` ->
    ``(("global_pool", "avg"), ("drop_path_rate", 0.1), ("img_size", (64, 96)))``.
    """
    if not text:
        return ()
    pairs = []
    for item in re.split(r",\s*(?=[A-Za-z_]\w*\s*=)", text.strip()):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            raise InputError(
                f"--model-kwargs takes key=value pairs separated by commas, not {item!r}; "
                "e.g. global_pool=avg,drop_path_rate=0.0"
            )
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        pairs.append((name, parsed))
    return tuple(pairs)
