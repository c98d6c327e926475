"""Training a model with one of two objectives on a labelled image source (for ``demo``).

- ``supervised``: cross-entropy on the labels; each image randomly flipped.
- ``simclr``: NT-Xent (Chen et al. 2020) between two SimCLR views of every
  image, on the backbone's pooled features through a two-layer projector.

Both use SGD (momentum 0.9, weight decay 5e-4) with a cosine learning-rate
schedule; the views, the batch order and the initialisation are seeded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from repcompare.data.batches import InputsDataset
from repcompare.data.sources import ImageSource
from repcompare.data.transforms import Preprocess

OBJECTIVES = {"supervised": ("flip", 1), "simclr": ("simclr", 2)}
TEMPERATURE = 0.5
PROJECTION_WIDTH = 64


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """NT-Xent: for each of the 2n embeddings, cross-entropy of picking its other view among
    the 2n - 1 others by cosine similarity / temperature; mean over the 2n."""
    z = nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), -torch.inf)
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return nn.functional.cross_entropy(logits, partner)


def projector(width: int) -> nn.Module:
    """The SimCLR projection head: Linear, ReLU, Linear to PROJECTION_WIDTH."""
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, PROJECTION_WIDTH))


def train(
    backbone: nn.Module,
    head: nn.Module,
    objective: str,
    source: ImageSource,
    transform: Preprocess,
    size: int,
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.1,
    temperature: float = TEMPERATURE,
    seed: int = 0,
    device: torch.device | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``head(backbone(x))`` in place with ``objective``; the mean loss of each epoch.

    ``head`` maps the backbone's output to class logits (supervised) or to
    projections (simclr, NT-Xent at ``temperature``). ``progress(epoch, mean_loss)`` is
    called after each epoch.
    """
    preset, views = OBJECTIVES[objective]
    device = device or torch.device("cpu")
    model = nn.Sequential(backbone, head).to(device).train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=5e-4)
    steps = epochs * (len(source) // batch_size)  # the loader drops a last partial batch
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        everything = np.arange(len(source))
        dataset = InputsDataset(source, everything, [transform], preset, views, size, seed + epoch)
        loader = DataLoader(dataset, batch_size, shuffle=True, drop_last=True, generator=generator)
        total, batches = 0.0, 0
        for batch in loader:
            inputs = transform.normalise(batch["inputs"][0].to(device))
            labels = batch["label"].to(device)
            if objective == "supervised":
                loss = nn.functional.cross_entropy(model(inputs[:, 0]), labels)
            else:
                z1, z2 = model(torch.cat([inputs[:, 0], inputs[:, 1]])).chunk(2)
                loss = nt_xent(z1, z2, temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / max(batches, 1))
        if progress:
            progress(epoch + 1, losses[-1])
    model.eval()
    return losses


def chance_loss(objective: str, classes: int, batch_size: int) -> float:
    """The loss of a model that has learned nothing: ln(classes) for cross-entropy, ln(2b - 1)
    for NT-Xent over a batch of b images (each view's partner among 2b - 1 others)."""
    return float(np.log(classes if objective == "supervised" else 2 * batch_size - 1))
