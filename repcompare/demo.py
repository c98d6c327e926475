"""``repcompare demo``: the paper's question on built-in data, end to end, on a CPU.

Two ResNet-18s are trained on built-in procedural images (seed 1), one with
labels (supervised) and one without (SimCLR), each by its ``RECIPES`` entry, and
saved as safetensors checkpoints with how they were trained in their metadata;
the demo then runs the real commands on other built-in images (seed 0) with
``repcompare study``: CKA within and between them on the ``paper`` layers, each
read against the untrained ResNet-18, invariance to SimCLR views, crops, colour
and flips, class fit, and the self-contained ``report.html``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from repcompare.data.procedural import CLASSES, ProceduralShapes

MODEL = "resnet18"
SIZE = 32
TRAINING_SEED = 1


@dataclass(frozen=True)
class Recipe:
    """How one demo model is trained: on ``images`` built-in images for ``epochs`` epochs
    in batches of ``batch_size``, SGD at learning rate ``lr`` (cosine schedule); SimCLR's
    NT-Xent at ``temperature``."""

    objective: str
    images: int
    epochs: int
    batch_size: int
    lr: float
    temperature: float = 0.5

    def metadata(self) -> dict[str, str]:
        """What a checkpoint trained by this recipe records, to be reused only by it."""
        values = {"model": MODEL, "size": SIZE, "seed": TRAINING_SEED, **self.__dict__}
        return {k: str(v) for k, v in values.items()}


# chosen so that in about two minutes of CPU training the SimCLR network's loss falls well
# below chance and its last block separates the classes better than the untrained network
RECIPES = {
    "supervised": Recipe("supervised", images=2000, epochs=8, batch_size=128, lr=0.1),
    "simclr": Recipe("simclr", 2000, epochs=15, batch_size=256, lr=0.3, temperature=0.2),
}


def _saved_with(path: Path, metadata: dict[str, str]) -> bool:
    """Whether ``path`` holds a checkpoint trained with exactly these settings."""
    from safetensors import safe_open

    if not path.is_file():
        return False
    with safe_open(str(path), "pt") as handle:
        saved = handle.metadata() or {}
    return all(saved.get(k) == v for k, v in metadata.items())


def train_demo_model(
    recipe: Recipe,
    path: Path,
    device: torch.device,
    progress: Callable[[int, float], None] | None = None,
) -> bool:
    """Train a model by ``recipe`` and save it to ``path`` (with the recipe and its final
    and chance losses in the metadata); False when one trained by it is there already."""
    import timm
    from safetensors.torch import save_file

    from repcompare.capture.checkpoint import TRAINING_KEY
    from repcompare.capture.models import DataConfig
    from repcompare.data.transforms import view_transform
    from repcompare.training import chance_loss, projector, train

    metadata = recipe.metadata()
    if _saved_with(path, metadata):
        return False
    torch.manual_seed(TRAINING_SEED)
    supervised = recipe.objective == "supervised"
    backbone = timm.create_model(MODEL, num_classes=len(CLASSES) if supervised else 0)
    head = torch.nn.Identity() if supervised else projector(backbone.num_features)
    config = backbone.pretrained_cfg
    transform = view_transform(
        DataConfig(input_size=(3, SIZE, SIZE), mean=config["mean"], std=config["std"])
    )
    source = ProceduralShapes(recipe.images, SIZE, TRAINING_SEED)
    batch_size = min(recipe.batch_size, recipe.images)
    losses = train(
        backbone,
        head,
        recipe.objective,
        source,
        transform,
        SIZE,
        recipe.epochs,
        batch_size,
        lr=recipe.lr,
        temperature=recipe.temperature,
        seed=TRAINING_SEED,
        device=device,
        progress=progress,
    )
    training = {
        "objective": recipe.objective,
        "epochs": recipe.epochs,
        "images": recipe.images,
        "batch_size": batch_size,
        "steps": recipe.epochs * (recipe.images // batch_size),
        "losses": losses,
        "final_loss": losses[-1],
        "chance_loss": chance_loss(recipe.objective, len(CLASSES), batch_size),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    state |= {f"projector.{k}": v.detach().cpu() for k, v in head.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata | {TRAINING_KEY: json.dumps(training)})
    return True


def demo_recipes(train_images: int | None, epochs: int | None) -> dict[str, Recipe]:
    """``RECIPES`` with the command line's changes (None: the recipe's own)."""
    changes = {"images": train_images, "epochs": epochs}
    chosen = {k: v for k, v in changes.items() if v is not None}
    return {name: replace(recipe, **chosen) for name, recipe in RECIPES.items()}


def demo_command(specs: dict[str, str], out: Path, images: int, device: str) -> list[str]:
    """The ``repcompare study`` command line the demo runs, given each objective's MODEL
    spec (supervised first): every analysis of the two models and the report, in ``out``."""
    batch = str(min(64, images // 4))  # at least 4 batches, for the bootstrap
    return [
        *("study", *specs.values(), "--out", str(out)),
        *("--data", f"builtin:{images}:{SIZE}", "--image-size", str(SIZE), "--crop-pct", "1.0"),
        *("--batch-size", batch, "--bootstrap", "100", "--device", device),
    ]
