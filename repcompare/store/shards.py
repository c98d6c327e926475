"""Activation files written in shards by a torchrun job, and the file that stitches them.

Rank r of K processes takes the consecutive batches ``Job.share`` gives it and
writes their rows into ``<out>.shards/rank{r}-of-{K}.h5``: an ordinary,
resumable activation file of those rows (its ``shard`` attribute says which).
Once every shard is complete, rank 0 writes ``out`` with the attributes of a
one-process file and, for each dataset, an HDF5 virtual dataset that reads its
rows from the shards in order; ``/rows_done`` is stored. Any HDF5 reader sees
one ordinary file; the shards must stay beside it (the attribute ``shards``
lists them, relative to ``out``'s folder), and a missing shard reads as NaN
activations, which ``check_shards`` refuses.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from repcompare.errors import InputError
from repcompare.store.file_format import (
    FileShapes,
    completion_digest,
    data_fingerprint,
    dataset_names,
)

FILL = {"f": np.nan, "i": -1, "u": 0}  # what a row of a missing shard reads as, by dtype kind
STACKED_ALONG = {"input_digest": 1}  # the datasets not stacked along their first axis


def shard_path(out: Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of ``world`` writes its shard of ``out``."""
    return out.with_name(f"{out.name}.shards") / f"rank{rank}-of-{world}.h5"


def shard_shapes(shapes: FileShapes, batches: range) -> FileShapes:
    """The shapes of the file holding the rows of ``batches`` of ``shapes``."""
    start, stop = shapes.bounds[batches[0]][0], shapes.bounds[batches[-1]][1]
    return replace(shapes, settings=replace(shapes.settings, num_samples=stop - start))


def shard_attribute(shapes: FileShapes, batches: range, rank: int, world: int) -> str:
    """The ``shard`` attribute of a shard: its rank and its first row and batch in ``out``."""
    first_row = shapes.bounds[batches[0]][0]
    return json.dumps(
        {"rank": rank, "world": world, "first_row": first_row, "first_batch": batches[0]}
    )


def stitch(out: Path, shapes: FileShapes, shards: list[Path]) -> None:
    """Write ``out`` as the complete file of ``shapes`` whose datasets read the complete
    ``shards`` in order (see module docstring); ``out`` appears only once whole."""
    staging = out.with_name(f".{out.name}.stitching")
    relative = [str(shard.relative_to(out.parent)) for shard in shards]
    names = [n for n in dataset_names(shapes.settings) if n != "rows_done"]
    with ExitStack() as stack:  # each shard read once; closed before the virtual file reads it
        opened = [stack.enter_context(h5py.File(shard, "r")) for shard in shards]
        attrs = {k: v for k, v in opened[0].attrs.items() if k != "shard"}
        dataset_shapes = {name: [shard[name].shape for shard in opened] for name in names}
        dtypes = {name: opened[0][name].dtype for name in names}
    with h5py.File(staging, "w") as f:
        for name in names:
            virtual = _virtual_layout(name, dataset_shapes[name], dtypes[name], relative)
            f.create_virtual_dataset(name, virtual, fillvalue=FILL[virtual.dtype.kind])
        f.create_dataset("rows_done", data=np.int64(shapes.settings.num_samples))
        digests = f["input_digest"][()]
        f.attrs.update(attrs)
        f.attrs.update(
            {
                "settings": shapes.settings.to_json(),
                "data_fingerprint": np.bytes_(data_fingerprint(digests)),
                "shards": json.dumps(relative),
                "complete": True,
            }
        )
        f.attrs["completion_sha256"] = np.bytes_(completion_digest(f))
    os.replace(staging, out)


def _virtual_layout(
    name: str, shapes: list[tuple[int, ...]], dtype: np.dtype, files: list[str]
) -> h5py.VirtualLayout:
    """``name`` of every one of ``files`` (of ``shapes``), stacked in order, as a virtual
    layout."""
    axis = STACKED_ALONG.get(name, 0)
    total = list(shapes[0])
    total[axis] = sum(shape[axis] for shape in shapes)
    virtual = h5py.VirtualLayout(shape=tuple(total), dtype=dtype)
    start = 0
    for shape, file in zip(shapes, files, strict=True):
        where = [slice(None)] * len(shape)
        where[axis] = slice(start, start + shape[axis])
        virtual[tuple(where)] = h5py.VirtualSource(file, name, shape=shape)
        start += shape[axis]
    return virtual


def missing_shards(path: Path) -> list[Path]:
    """The shards that the stitched file ``path`` reads from but that are missing or
    incomplete (none for a one-process file)."""
    with h5py.File(path, "r") as f:
        names = json.loads(f.attrs.get("shards", "[]"))
    missing = []
    for shard in (path.parent / name for name in names):
        try:
            with h5py.File(shard, "r") as f:
                complete = bool(f.attrs.get("complete"))
        except OSError:
            complete = False
        if not complete:
            missing.append(shard)
    return missing


def check_shards(path: Path) -> None:
    """An InputError when the stitched file ``path`` misses a shard (see ``missing_shards``)."""
    missing = missing_shards(path)
    if missing:
        raise InputError(
            f"{path} reads its rows from the shard {missing[0]}, which is missing or "
            "incomplete; keep the shards folder beside the file, or rerun the same torchrun "
            "extract"
        )
