"""``repcompare demo``: the paper's question on built-in data, end to end, on a CPU.

Two ResNet-18s are trained on built-in procedural images (seed 1), one with
labels (supervised) and one without (SimCLR), and saved as safetensors
checkpoints; the demo then runs the real commands on other built-in images
(seed 0) with ``repcompare study``: CKA within and between them on the ``paper``
layers, invariance to SimCLR views, crops, colour and flips, class fit, and the
self-contained ``report.html``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from repcompare.data.procedural import CLASSES, ProceduralShapes

MODEL = "resnet18"
SIZE = 32
TRAINING_SEED = 1
METADATA_KEYS = ("model", "objective", "images", "epochs", "size", "seed")


def _metadata(objective: str, images: int, epochs: int) -> dict[str, str]:
    values = (MODEL, objective, images, epochs, SIZE, TRAINING_SEED)
    return {k: str(v) for k, v in zip(METADATA_KEYS, values, strict=True)}


def _saved_with(path: Path, metadata: dict[str, str]) -> bool:
    """Whether ``path`` holds a checkpoint trained with exactly these settings."""
    from safetensors import safe_open

    if not path.is_file():
        return False
    with safe_open(str(path), "pt") as handle:
        saved = handle.metadata() or {}
    return all(saved.get(k) == v for k, v in metadata.items())


def train_demo_model(
    objective: str,
    path: Path,
    images: int,
    epochs: int,
    device: torch.device,
    progress: Callable[[int, float], None] | None = None,
) -> bool:
    """Train the ``objective`` model and save it to ``path``; False when an identical one
    is there already."""
    import timm
    from safetensors.torch import save_file

    from repcompare.capture.models import DataConfig
    from repcompare.data.transforms import view_transform
    from repcompare.training import projector, train

    metadata = _metadata(objective, images, epochs)
    if _saved_with(path, metadata):
        return False
    torch.manual_seed(TRAINING_SEED)
    supervised = objective == "supervised"
    backbone = timm.create_model(MODEL, num_classes=len(CLASSES) if supervised else 0)
    head = torch.nn.Identity() if supervised else projector(backbone.num_features)
    config = backbone.pretrained_cfg
    transform = view_transform(
        DataConfig(input_size=(3, SIZE, SIZE), mean=config["mean"], std=config["std"])
    )
    source = ProceduralShapes(images, SIZE, TRAINING_SEED)
    batch_size = min(128, images)
    train(
        backbone,
        head,
        objective,
        source,
        transform,
        SIZE,
        epochs,
        batch_size,
        seed=TRAINING_SEED,
        device=device,
        progress=progress,
    )
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    state |= {f"projector.{k}": v.detach().cpu() for k, v in head.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return True


def demo_command(specs: dict[str, str], out: Path, images: int, device: str) -> list[str]:
    """The ``repcompare study`` command line the demo runs, given each objective's MODEL
    spec (supervised first): every analysis of the two models and the report, in ``out``."""
    batch = str(min(64, images // 4))  # at least 4 batches, for the bootstrap
    return [
        *("study", *specs.values(), "--out", str(out)),
        *("--data", f"builtin:{images}:{SIZE}", "--image-size", str(SIZE), "--crop-pct", "1.0"),
        *("--batch-size", batch, "--bootstrap", "100", "--device", device),
    ]
