"""Facts about a model's weights that change what a comparison means: two sides that are
one network, and normalisation layers a random init starts at zero."""

from __future__ import annotations

import torch

from repcompare.capture.models import state_dict_sha256
from repcompare.capture.sublayers import NORM_MODULES


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two modules hold bit-identical state (same names, shapes and bytes, in
    order): one network, whatever their specs say. Shapes are compared first, so models
    of other architectures cost no hashing."""
    shapes_a = [(k, v.shape) for k, v in a.state_dict().items()]
    shapes_b = [(k, v.shape) for k, v in b.state_dict().items()]
    return shapes_a == shapes_b and state_dict_sha256(a) == state_dict_sha256(b)


def zero_initialised_norms(module: torch.nn.Module) -> list[str]:
    """The normalisation layers whose scale (``weight``) is all zeros: timm's
    ``zero_init_last`` makes each residual branch of a random-init ResNet output a
    constant, so consecutive block outputs are equal and the branches are undefined."""
    return [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, NORM_MODULES)
        and isinstance(getattr(layer, "weight", None), torch.Tensor)
        and not bool(layer.weight.detach().any())
    ]
