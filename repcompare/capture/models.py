"""Building a model from a spec: architecture, weights, and its own preprocessing config."""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import torch

from repcompare.capture.checkpoint import (
    HEAD_PREFIXES,
    LoadReport,
    load_checkpoint_into,
    sha256,
    training_summary,
)
from repcompare.capture.spec import ModelSpec
from repcompare.errors import InputError
from repcompare.limits import DEFAULT_INIT_SEED

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


@dataclass
class _Built:
    """A freshly built architecture and what loading a checkpoint into it needs."""

    model: torch.nn.Module
    data: DataConfig
    prefix_tokens: int
    heads: tuple[str, ...]
    filter_fn: Callable | None = None
    notes: list[str] = field(default_factory=list)


def _no_weights(spec: ModelSpec, error: Exception) -> InputError:
    return InputError(
        f"could not fetch the published weights of {spec} ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); connect to the "
        f"internet, or give a local checkpoint as {spec.library}:{spec.name}@PATH"
    )


REACH_SECONDS = 3.0  # to open a connection to the host of published weights


def _published_source(spec: ModelSpec) -> tuple[str | None, bool]:
    """The URL published weights of ``spec`` come from (None: the library decides, e.g.
    offline mode), and whether they are in the local cache already."""
    if spec.library == "torchvision":
        import torchvision

        url = torchvision.models.get_model_weights(spec.name).DEFAULT.url
        cached = Path(torch.hub.get_dir(), "checkpoints", Path(url).name).is_file()
        return url, cached
    import timm
    from huggingface_hub import constants, try_to_load_from_cache

    config = timm.models.get_pretrained_cfg(spec.name)
    if config is None:
        return None, False
    if config.hf_hub_id:
        if constants.HF_HUB_OFFLINE:
            return None, False
        files = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
        cached = any(isinstance(try_to_load_from_cache(config.hf_hub_id, f), str) for f in files)
        return constants.ENDPOINT, cached
    if config.url:
        return config.url, Path(torch.hub.get_dir(), "checkpoints", Path(config.url).name).is_file()
    return None, False


def check_reachable(spec: ModelSpec) -> None:
    """An InputError within seconds when the published weights of ``spec`` are neither
    cached nor reachable (offline), instead of a minute of the libraries' retries."""
    url, cached = _published_source(spec)
    if url is None or cached:
        return
    address = urlparse(url)
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname, port), timeout=REACH_SECONDS).close()
    except OSError as error:
        raise InputError(
            f"cannot reach {address.hostname} to fetch the published weights of {spec} "
            f"({error.strerror or type(error).__name__}); connect to the internet, or give a "
            f"local checkpoint as {spec.library}:{spec.name}@PATH"
        ) from None


def _classifier_roots(pretrained_cfg: dict) -> list[str]:
    """First key components of a timm model's classifier(s): one name, or a tuple of them
    (distilled DeiT's ``head`` and ``head_dist``)."""
    names = pretrained_cfg.get("classifier") or ()
    return [n.split(".", 1)[0] for n in ((names,) if isinstance(names, str) else names)]


def _bad_kwargs(spec: ModelSpec, error: TypeError) -> InputError:
    return InputError(
        f"{spec.library}:{spec.name} does not take these --model-kwargs ({error}); "
        "check the names against the model's constructor"
    )


def _timm_sizes(spec: ModelSpec, image_size: int | None) -> dict:
    """``img_size=N`` when ``image_size`` differs from the model's default and is not given."""
    import timm

    default = timm.models.get_pretrained_cfg_value(spec.name, "input_size")
    if image_size is None or "img_size" in dict(spec.kwargs) or default is None:
        return {}
    return {} if tuple(default[1:]) == (image_size, image_size) else {"img_size": image_size}


def _create_timm(spec: ModelSpec, pretrained: bool, sized: dict) -> tuple[torch.nn.Module, dict]:
    """``timm.create_model`` with the spec's kwargs and ``sized``; the sizes it took."""
    import timm

    try:
        return timm.create_model(
            spec.name, pretrained=pretrained, **dict(spec.kwargs), **sized
        ), sized
    except TypeError as error:
        if sized and "img_size" in str(error):  # no img_size (a CNN): any size as it is
            return _create_timm(spec, pretrained, {})
        if spec.kwargs:
            raise _bad_kwargs(spec, error) from None
        raise


def _timm_data_config(model: torch.nn.Module) -> DataConfig:
    """The eval preprocessing timm resolves for a model it built."""
    import timm

    config = timm.data.resolve_data_config({}, model=model)
    return DataConfig(
        input_size=tuple(config["input_size"]),
        crop_pct=float(config["crop_pct"]),
        interpolation=str(config["interpolation"]),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
    )


def _build_timm(spec: ModelSpec, pretrained: bool, image_size: int | None):
    """A timm model, built for ``image_size`` when it takes ``img_size`` (see ``load_model``)."""
    sized = _timm_sizes(spec, image_size)
    try:
        model, sized = _create_timm(spec, pretrained, sized)
    except (OSError, RuntimeError, ValueError, AssertionError) as error:
        if pretrained and not isinstance(error, AssertionError):
            raise _no_weights(spec, error) from None
        if sized:
            raise InputError(
                f"{spec.library}:{spec.name} cannot be built for {image_size}x{image_size} inputs "
                f"({type(error).__name__}: {error}); choose another --image-size"
            ) from None
        raise
    data = _timm_data_config(model)
    heads = tuple(dict.fromkeys((*HEAD_PREFIXES, *_classifier_roots(model.pretrained_cfg))))
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    notes = [f"built for {image_size}x{image_size} inputs (img_size={image_size})"] if sized else []
    return _Built(model, data, int(getattr(model, "num_prefix_tokens", 0)), heads, filter_fn, notes)


def _build_torchvision(spec: ModelSpec, pretrained: bool, image_size: int | None):
    """A torchvision model as its builder makes it; a ViT (``vit_*``) is built for
    ``image_size`` (its position embeddings are sized by it; published weights are not)."""
    import torchvision

    weights = torchvision.models.get_model_weights(spec.name).DEFAULT
    kwargs = dict(spec.kwargs)
    if image_size and spec.name.startswith("vit_") and "image_size" not in kwargs:
        if pretrained and image_size != weights.meta["min_size"][0]:
            raise InputError(
                f"the published weights of {spec} are for {weights.meta['min_size'][0]} px "
                f"images and torchvision cannot resize them to --image-size {image_size}; "
                "drop --image-size, or use the timm version of the model"
            )
        kwargs["image_size"] = image_size
    try:
        model = torchvision.models.get_model(
            spec.name, weights=weights if pretrained else None, **kwargs
        )
    except TypeError as error:
        raise _bad_kwargs(spec, error) from None
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
    return _Built(model, data, prefix_tokens, HEAD_PREFIXES)


def load_model(
    spec: ModelSpec,
    *,
    pretrained: bool = False,
    allow_missing: bool = False,
    init_seed: int = DEFAULT_INIT_SEED,
    image_size: int | None = None,
) -> LoadedModel:
    """Build ``spec``'s architecture in eval mode with the requested weights.

    Weights come from the checkpoint in the spec, else from the library's
    published weights when ``pretrained``, else they are the random init.
    The architecture is always built under ``torch.manual_seed(init_seed)``
    inside ``torch.random.fork_rng``, so the random init (and any head a
    checkpoint lacks) is the same in every process and the caller's global
    RNG state is untouched. ``LoadedModel.init_seed`` is the seed when the
    weights are the random init, else None.

    ``spec.kwargs`` go to the library's constructor. For an ``image_size`` other
    than a timm model's default, a model that takes ``img_size`` (ViTs) is built
    for it. A checkpoint goes through timm's ``checkpoint_filter_fn`` of the
    model's module (layout conversion, position embedding resampling) before it
    is fitted; both are said in the notes and the load report.
    """
    if pretrained and spec.checkpoint is not None:
        raise InputError(
            f"{spec} names a checkpoint and --pretrained asks for the published weights; "
            "give one or the other"
        )
    if (spec.encoder or spec.key) and spec.checkpoint is None:
        raise InputError(
            f"--encoder and --key choose weights inside a checkpoint, and {spec} names none; "
            "add @PATH to the model or drop the option"
        )
    if pretrained:
        check_reachable(spec)
    if spec.init_seed is not None:
        init_seed = spec.init_seed  # the spec's own seed before --init-seed
    build = _build_timm if spec.library == "timm" else _build_torchvision
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        built = build(spec, pretrained, image_size)
    module = built.model
    loaded = LoadedModel(spec, module.eval(), built.data, built.prefix_tokens, pretrained)
    loaded.notes.extend(built.notes)
    if spec.chosen_from_bare_name:
        loaded.notes.append(f"'{spec.name}' resolved to {spec.library}:{spec.name}")
    if spec.checkpoint is not None:
        report = load_checkpoint_into(
            module,
            spec.checkpoint,
            head_prefixes=built.heads,
            allow_missing=allow_missing,
            filter_fn=built.filter_fn,
            encoder=spec.encoder,
            key=spec.key,
        )
        if report.other_encoders:
            loaded.spec = replace(spec, encoder=report.encoder)
        loaded.load_report = report
        loaded.checkpoint_sha256 = sha256(spec.checkpoint)
        _check_finite_weights(module, f"the checkpoint {spec.checkpoint}")
        trained = training_summary(spec.checkpoint)
        if trained:
            loaded.notes.append(f"{spec.short_name}: {trained}")
    elif pretrained:
        _check_finite_weights(module, f"the published weights of {spec}")
    elif not pretrained:
        loaded.init_seed = init_seed
        loaded.notes.append(
            f"{spec} has random weights (init seed {init_seed}; no checkpoint, no --pretrained)"
        )
    return loaded


def _check_finite_weights(module: torch.nn.Module, source: str) -> None:
    """An InputError naming ``source`` when a weight it loaded is NaN or Inf: every
    activation after it would be too, whatever the storage dtype."""
    broken = [
        name
        for name, tensor in module.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        shown = ", ".join(broken[:3]) + (", ..." if len(broken) > 3 else "")
        raise InputError(
            f"{source} holds NaN or Inf in {len(broken)} tensor(s) ({shown}): it is broken "
            "(a diverged run or a damaged file); use another checkpoint"
        )


def state_dict_sha256(module: torch.nn.Module) -> str:
    """Hex SHA-256 of a module's state: every entry's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def load_module(module: torch.nn.Module) -> LoadedModel:
    """A network the caller built (put in eval mode), named ``module:CLASS``.

    Its preprocessing is timm's for a timm model (one with a ``pretrained_cfg``), else
    224 px ImageNet (change it with the image size, crop, mean and std options); its
    weights are identified by ``state_dict_sha256`` in place of a checkpoint's hash.
    """
    if not isinstance(module, torch.nn.Module):
        raise InputError(
            f"a model is a spec string, an activation file or a torch.nn.Module, not a "
            f"{type(module).__name__}"
        )
    timm_model = isinstance(getattr(module, "pretrained_cfg", None), dict)
    config = _timm_data_config(module) if timm_model else DataConfig()
    loaded = LoadedModel(
        ModelSpec("module", type(module).__name__),
        module.eval(),
        config,
        checkpoint_sha256=state_dict_sha256(module),
    )
    if not timm_model:
        loaded.notes.append(
            f"{loaded.spec} has no preprocessing config; using 224 px ImageNet preprocessing "
            "(set image_size, crop_pct, mean and std to change it)"
        )
    return loaded
