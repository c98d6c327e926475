"""Hand-made models with known representations, wrapped as comparison sides."""

import torch
from torch import nn

from repcompare.activations import CaptureTarget
from repcompare.analyses.sides import Side
from repcompare.capture.graph import discover
from repcompare.capture.models import DataConfig, LoadedModel
from repcompare.capture.spec import ModelSpec

CLASS_STEP = 20


def side_of(module: nn.Module, label: str, layers: list[str], size: int) -> Side:
    """A side capturing ``layers`` (flattened) of ``module`` on raw pixels in 0..1 at size^2."""
    config = DataConfig(input_size=(3, size, size), crop_pct=1.0, mean=(0, 0, 0), std=(1, 1, 1))
    loaded = LoadedModel(ModelSpec("custom", label), module, config)
    graph = discover(module, config.input_size, "fx")
    return Side(label, layers, target=CaptureTarget(loaded, graph, layers, "flatten"))


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
