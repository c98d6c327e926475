"""Hand-made models with known representations, wrapped as comparison sides."""

import numpy as np
import torch
from torch import nn

from repcompare.capture.graph import discover
from repcompare.capture.models import DataConfig, LoadedModel
from repcompare.capture.spec import ModelSpec
from repcompare.sides.batches import CaptureTarget
from repcompare.sides.side import Side

CLASS_STEP = 20


def side_of(
    module: nn.Module, label: str, layers: list[str], size: int, reduction: str = "flatten"
) -> Side:
    """A side capturing ``layers`` (reduced with ``reduction``) of ``module`` on raw pixels in
    0..1 at size^2."""
    config = DataConfig(input_size=(3, size, size), crop_pct=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    loaded = LoadedModel(ModelSpec("custom", label), module, config)
    graph = discover(module, config.input_size, "fx")
    return Side(label, layers, target=CaptureTarget(loaded, graph, layers, reduction))


class Pixels(nn.Module):
    """``input``: the image itself (an input-level identity layer), then a seeded convolution."""

    def __init__(self):
        super().__init__()
        self.input = nn.Identity()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(self.input(x))


class Coded(nn.Module):
    """Reads two codes from pixel (0, 0): red = CLASS_STEP x label, green = a random id.

    ``onehot`` is the one-hot label; ``noise`` a fixed Gaussian vector per random id,
    independent of the label.
    """

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes
        self.onehot = nn.Identity()
        self.noise = nn.Identity()
        table = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
        self.register_buffer("table", table)
        self.unused = nn.Linear(1, 1)

    def forward(self, x):
        codes = (x[:, :, 0, 0] * 255).round().long().clamp(0, 255)  # discovery feeds noise
        label = (codes[:, 0] // CLASS_STEP).clamp(max=self.classes - 1)
        onehot = self.onehot(nn.functional.one_hot(label, self.classes).float())
        noise = self.noise(self.table[codes[:, 1]])
        return onehot.sum(dim=1) + noise.sum(dim=1)


PATCH = 2


def patchify(images: np.ndarray) -> np.ndarray:
    """``(n, P, 3 * PATCH^2)`` float64 patch tokens of ``(n, 3, S, S)`` images: patches in
    row-major order, each holding pixels (channel, row, column) in that order."""
    n, c, size, _ = images.shape
    g = size // PATCH
    grid = images.reshape(n, c, g, PATCH, g, PATCH).transpose(0, 2, 4, 1, 3, 5)
    return grid.reshape(n, g * g, c * PATCH * PATCH).astype(np.float64)


class Patches(nn.Module):
    """ViT-like tokens of raw pixels: a class token (a parameter) in front of one token per
    PATCH x PATCH patch holding its pixels (``patchify``).

    ``embed`` is the NCHW map of patch tokens, ``tokens`` the ``(n, 1 + P, 12)`` tokens,
    ``rotated`` the tokens times 3 x a fixed orthogonal matrix, ``squared`` the tokens
    squared elementwise, ``pooled`` the map averaged over 2 x 2 patches (P / 4 positions).
    """

    def __init__(self):
        super().__init__()
        width = 3 * PATCH * PATCH
        self.embed = nn.Conv2d(3, width, PATCH, stride=PATCH, bias=False)
        with torch.no_grad():  # output channel k reads pixel k of the (channel, row, column) patch
            self.embed.weight.copy_(torch.eye(width).reshape(width, 3, PATCH, PATCH))
        generator = torch.Generator().manual_seed(0)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width, generator=generator))
        rotation, _ = torch.linalg.qr(torch.randn(width, width, generator=generator))
        self.register_buffer("rotation", 3 * rotation)
        self.tokens, self.rotated, self.squared = nn.Identity(), nn.Identity(), nn.Identity()
        self.pooled = nn.AvgPool2d(2)

    def forward(self, x):
        maps = self.embed(x)
        patches = maps.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        tokens = self.tokens(torch.cat([cls, patches], dim=1))
        return self.rotated(tokens @ self.rotation) + self.squared(tokens * tokens), self.pooled(
            maps
        )


class ClassToken(nn.Module):
    """Tokens where only the class token carries the label (red of pixel (0, 0) = CLASS_STEP
    x label): token 0 is the one-hot label; the patch tokens (``patches``, no class token)
    are a seeded convolution of each patch that ignores the patch's top-left pixel, so they
    never see pixel (0, 0). ``tokens`` is the whole ``(n, 1 + P, 16)`` output, ``first``
    its token 0 as a flat vector."""

    def __init__(self, classes: int, size: int, width: int = 16):
        super().__init__()
        self.classes = classes
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.embed = nn.Conv2d(3, width, PATCH, stride=PATCH)
        with torch.no_grad():
            self.embed.weight[:, :, 0, 0] = 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        first = torch.zeros(1, 1 + (size // PATCH) ** 2, 1)
        first[0, 0] = 1
        self.register_buffer("first", first)
        self.patches, self.tokens, self.first_token = nn.Identity(), nn.Identity(), nn.Identity()

    def forward(self, x):
        codes = (x[:, 0, 0, 0] * 255).round().long().clamp(0, 255)
        label = (codes // CLASS_STEP).clamp(max=self.classes - 1)
        onehot = nn.functional.one_hot(label, self.cls_token.shape[-1]).float()
        patches = self.patches(self.embed(x).flatten(2).transpose(1, 2))
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], dim=1)
        tokens = self.tokens(tokens + self.first * onehot[:, None, :])
        return self.first_token(tokens[:, 0])
