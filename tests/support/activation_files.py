"""Small activation files written batch by batch with known values, for the store's tests."""

import numpy as np
import torch

from repcompare.data.batches import batch_bounds
from repcompare.store.file_format import FileSettings, FileShapes
from repcompare.store.writer import ActivationWriter, Batch, prepare


def settings(**changes) -> FileSettings:
    values = dict(
        model="timm:resnet18",
        checkpoint_sha256="",
        pretrained=False,
        data="builtin (12 images)",
        num_samples=10,
        order="random",
        seed=0,
        layers=("layer1.0", "fc"),
        reduction="avgpool",
        views=2,
        augment="flip",
        view_size=32,
        transform="Resize(32)",
        batch_size=4,
        dtype="float32",
        compression="none",
    )
    return FileSettings(**(values | changes))


def shapes(s: FileSettings) -> FileShapes:
    return FileShapes(s, (3, 5), {"layer1.0": [3, 2, 2], "fc": [5]})


def batches(s: FileSettings):
    gen = torch.Generator().manual_seed(0)
    for number, (start, stop) in enumerate(batch_bounds(s.num_samples, s.batch_size)):
        rows = stop - start
        acts = [[torch.randn(rows, w, generator=gen) for w in (3, 5)] for _ in range(s.views)]
        yield Batch(
            number,
            acts,
            np.arange(start, start + rows) % 3,
            np.arange(start, start + rows) * 7,
            np.full((s.views, 32), number, np.uint8),
        )


def write(path, s: FileSettings, stop_after: int | None = None) -> list[Batch]:
    first = shapes(s).first_batch(prepare(path, shapes(s), {"model_spec": s.model}, force=False))
    written = list(batches(s))
    writer = ActivationWriter(path, shapes(s))
    for batch in written[first:stop_after]:
        writer.submit(batch)
    writer.close(complete=stop_after is None)
    return written
