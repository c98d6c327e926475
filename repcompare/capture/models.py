"""Building a model from a spec: architecture, weights, and its own preprocessing config."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from repcompare.capture.checkpoint import (
    HEAD_PREFIXES,
    LoadReport,
    load_checkpoint_into,
    sha256,
)
from repcompare.capture.spec import ModelSpec
from repcompare.errors import InputError

DEFAULT_INIT_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataConfig:
    """The eval preprocessing a model expects (timm's ``resolve_data_config`` vocabulary)."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass
class LoadedModel:
    """A model in eval mode with everything the rest of repcompare needs to know about it."""

    spec: ModelSpec
    module: torch.nn.Module
    data_config: DataConfig
    prefix_tokens: int = 0
    pretrained: bool = False
    load_report: LoadReport | None = None
    checkpoint_sha256: str | None = None
    init_seed: int | None = None
    notes: list[str] = field(default_factory=list)


def _no_weights(spec: ModelSpec, error: Exception) -> InputError:
    return InputError(
        f"could not fetch the published weights of {spec} ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); connect to the "
        f"internet, or give a local checkpoint as {spec}@PATH"
    )


def _classifier_roots(pretrained_cfg: dict) -> list[str]:
    """First key components of a timm model's classifier(s): one name, or a tuple of them
    (distilled DeiT's ``head`` and ``head_dist``)."""
    names = pretrained_cfg.get("classifier") or ()
    return [n.split(".", 1)[0] for n in ((names,) if isinstance(names, str) else names)]


def _build_timm(spec: ModelSpec, pretrained: bool):
    import timm

    try:
        model = timm.create_model(spec.name, pretrained=pretrained)
    except (OSError, RuntimeError, ValueError) as error:
        if pretrained:
            raise _no_weights(spec, error) from None
        raise
    config = timm.data.resolve_data_config({}, model=model)
    data = DataConfig(
        input_size=tuple(config["input_size"]),
        crop_pct=float(config["crop_pct"]),
        interpolation=str(config["interpolation"]),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
    )
    heads = tuple(dict.fromkeys((*HEAD_PREFIXES, *_classifier_roots(model.pretrained_cfg))))
    return model, data, int(getattr(model, "num_prefix_tokens", 0)), heads


def _build_torchvision(spec: ModelSpec, pretrained: bool):
    import torchvision

    weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    try:
        model = torchvision.models.get_model(spec.name, weights=weights if pretrained else None)
    except (OSError, RuntimeError) as error:
        if pretrained:
            raise _no_weights(spec, error) from None
        raise
    preset = weights.transforms()
    crop, resize = preset.crop_size[0], preset.resize_size[0]
    data = DataConfig(
        input_size=(3, crop, crop),
        crop_pct=crop / resize,
        interpolation=preset.interpolation.value,
        mean=tuple(preset.mean),
        std=tuple(preset.std),
    )
    prefix_tokens = 1 if hasattr(model, "class_token") else 0
    return model, data, prefix_tokens, HEAD_PREFIXES


def load_model(
    spec: ModelSpec,
    *,
    pretrained: bool = False,
    allow_missing: bool = False,
    init_seed: int = DEFAULT_INIT_SEED,
) -> LoadedModel:
    """Build ``spec``'s architecture in eval mode with the requested weights.

    Weights come from the checkpoint in the spec, else from the library's
    published weights when ``pretrained``, else they are the random init.
    The architecture is always built under ``torch.manual_seed(init_seed)``
    inside ``torch.random.fork_rng``, so the random init (and any head a
    checkpoint lacks) is the same in every process and the caller's global
    RNG state is untouched. ``LoadedModel.init_seed`` is the seed when the
    weights are the random init, else None.
    """
    if pretrained and spec.checkpoint is not None:
        raise InputError(
            f"{spec} names a checkpoint and --pretrained asks for the published weights; "
            "give one or the other"
        )
    build = _build_timm if spec.library == "timm" else _build_torchvision
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        module, data, prefix_tokens, heads = build(spec, pretrained)
    loaded = LoadedModel(spec, module.eval(), data, prefix_tokens, pretrained)
    if spec.chosen_from_bare_name:
        loaded.notes.append(f"'{spec.name}' resolved to {spec.library}:{spec.name}")
    if spec.checkpoint is not None:
        loaded.load_report = load_checkpoint_into(
            module, spec.checkpoint, head_prefixes=heads, allow_missing=allow_missing
        )
        loaded.checkpoint_sha256 = sha256(spec.checkpoint)
    elif not pretrained:
        loaded.init_seed = init_seed
        loaded.notes.append(
            f"{spec} has random weights (init seed {init_seed}; no checkpoint, no --pretrained)"
        )
    return loaded
