"""Writing activations to HDF5 from a background thread, resumably.

The compute loop hands each batch (tensors still on their device) to
``submit``; a writer thread copies them to the host and writes them, so the
GPU never waits for the disk. The queue holds at most ``QUEUE_BATCHES``
batches, so memory stays flat whatever the data set size.

Crash safety: every dataset is created with all its chunks allocated up
front (HDF5 early allocation, no fill writes), then the file is flushed once.
From then on a batch only writes raw data into allocated chunks and, last,
bumps ``/rows_done`` and flushes. A process killed at any moment (SIGKILL
included) leaves a file whose metadata is intact and whose rows below
``rows_done`` are complete; resuming rewrites everything from ``rows_done``.
With compression the chunks are re-allocated as they are written, so this
guarantee needs the default ``--compression none``.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
import torch

from repcompare.errors import InputError
from repcompare.store.layout import (
    DIGEST_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    Layout,
    Settings,
    activation_path,
    data_fingerprint,
)

QUEUE_BATCHES = 3
PACKAGES = ("repcompare", "torch", "torchvision", "timm", "numpy", "h5py")


@dataclass
class Batch:
    """One batch for the writer: activations per view and layer, plus row metadata."""

    number: int
    activations: list[list[torch.Tensor]]
    labels: np.ndarray
    sample_index: np.ndarray
    digests: np.ndarray  # (views, DIGEST_BYTES) uint8


def package_versions() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def _early_allocation() -> h5py.h5p.PropDSCreateID:
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    plist.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return plist


def _create(path: Path, layout: Layout, provenance: dict[str, str]) -> None:
    s = layout.settings
    compression = None if s.compression == "none" else s.compression
    with h5py.File(path, "w") as f:
        for view in range(s.views):
            for layer, width in zip(s.layers, layout.widths, strict=True):
                f.create_dataset(
                    activation_path(view, layer),
                    shape=(s.num_samples, width),
                    dtype=s.dtype,
                    chunks=(min(s.batch_size, s.num_samples), width),
                    compression=compression,
                    dcpl=_early_allocation() if compression is None else None,
                )
        for name in ("labels", "sample_index"):
            f.create_dataset(name, shape=(s.num_samples,), dtype="int64", dcpl=_early_allocation())
        f.create_dataset(
            "input_digest",
            shape=(s.views, layout.num_batches, DIGEST_BYTES),
            dtype="uint8",
            dcpl=_early_allocation(),
        )
        f.create_dataset("rows_done", data=np.int64(0))
        f.attrs.update(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "complete": False,
                "settings": s.to_json(),
                "layers": json.dumps(list(s.layers)),
                "layer_shapes": json.dumps(layout.layer_shapes),
                "package_versions": json.dumps(package_versions()),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **provenance,
            }
        )


def prepare(path: Path, layout: Layout, provenance: dict[str, str], force: bool) -> int:
    """Create ``path`` or check it for resuming; return the number of rows already done.

    A complete file with the same settings is left as it is (all rows done); a
    file with other settings is refused unless ``force``.
    """
    if path.exists() and not force:
        try:
            with h5py.File(path, "r") as f:
                stored = Settings.from_json(f.attrs["settings"])
                rows_done, complete = int(f["rows_done"][()]), bool(f.attrs["complete"])
        except (OSError, KeyError, ValueError, TypeError):
            raise InputError(
                f"{path} exists but is not a readable repcompare activation file; "
                "pass --force to overwrite it or choose another --out"
            ) from None
        differences = layout.settings.differences(stored)
        if differences:
            state = "a complete" if complete else "an incomplete"
            raise InputError(
                f"{path} is {state} file made with other settings ({'; '.join(differences)}); "
                "pass --force to overwrite it or choose another --out"
            )
        return layout.settings.num_samples if complete else rows_done
    path.parent.mkdir(parents=True, exist_ok=True)
    _create(path, layout, provenance)
    return 0


class ActivationWriter:
    """Background writer of batches into a prepared file (see module docstring)."""

    def __init__(self, path: Path, layout: Layout):
        self.path = path
        self.layout = layout
        self.bytes_written = 0
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._error: BaseException | None = None
        self._file = h5py.File(path, "r+")
        self._thread = threading.Thread(target=self._run, name="repcompare-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue a batch (blocks while the queue is full); re-raises a writer failure."""
        self._raise_if_failed()
        self._queue.put(batch)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (batch := self._queue.get()) is not None:
                self._write(batch)
        except BaseException as error:  # handed to the compute thread
            self._error = error
            while self._queue.get() is not None:
                pass

    def _write(self, batch: Batch) -> None:
        s, f = self.layout.settings, self._file
        start, stop = self.layout.bounds[batch.number]
        for view, layers in enumerate(batch.activations):
            for layer, tensor in zip(s.layers, layers, strict=True):
                values = tensor.cpu().numpy()
                f[activation_path(view, layer)][start:stop] = values
                self.bytes_written += values.nbytes
        f["labels"][start:stop] = batch.labels
        f["sample_index"][start:stop] = batch.sample_index
        f["input_digest"][:, batch.number] = batch.digests
        f.flush()
        f["rows_done"][()] = stop
        f.flush()

    def close(self, complete: bool) -> None:
        """Drain the queue and close; when ``complete``, seal the file with its fingerprint."""
        self._queue.put(None)
        self._thread.join()
        try:
            self._raise_if_failed()
            if complete:
                digests = self._file["input_digest"][()]
                self._file.attrs["data_fingerprint"] = data_fingerprint(digests)
                self._file.attrs["complete"] = True
                self._file.flush()
        finally:
            self._file.close()
