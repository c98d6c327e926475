"""Writing activations to HDF5 from a background thread, resumably.

The compute loop hands each batch (tensors still on their device, in the
file's dtype) to ``submit``; a writer thread checks that they are finite,
copies them to the host and writes them, so the compute loop never waits for
the disk or the check. The queue holds at most ``QUEUE_BATCHES``
batches, so memory stays flat whatever the data set size.

Crash safety: every dataset is created with all its chunks allocated up
front (HDF5 early allocation, no fill writes), then the file is flushed once.
From then on a batch only writes raw data into allocated chunks and, last,
bumps ``/rows_done`` and flushes. A process killed at any moment (SIGKILL
included) leaves a file whose metadata is intact and whose rows below
``rows_done`` are complete; resuming rewrites everything from ``rows_done``.
With compression the chunks are re-allocated as they are written, so this
guarantee needs the default ``--compression none``.

A full disk: all the file's blocks are reserved with ``posix_fallocate``
before any work, so a disk too small is reported at once, naming the space
needed. After creation nothing in the file is ever allocated again: batches
overwrite reserved chunks and ``/rows_done``, and completing overwrites the
fixed-size ``complete`` and ``data_fingerprint`` attributes in place. Should a
write fail anyway (a file size limit, compression), the writer stops, the
compute loop stops at its next batch, the file is abandoned unmarked (HDF5
writes nothing more to it) and the error is a RunError that says to rerun
the same command, which resumes.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np
import torch

from repcompare.errors import InputError, RunError
from repcompare.store.file_format import (
    DIGEST_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    PENDING_FINGERPRINT,
    FileSettings,
    FileShapes,
    completion_digest,
    data_fingerprint,
    data_path,
    dataset_names,
)

QUEUE_BATCHES = 3
PACKAGES = ("repcompare", "torch", "torchvision", "timm", "numpy", "h5py")


@dataclass
class Batch:
    """One batch for the writer: activations per view and layer (in the file's dtype, on any
    device; in a Gram store, each layer's ``(m, m)`` float32 Gram), plus row metadata."""

    number: int
    activations: list[list[torch.Tensor]]
    labels: np.ndarray
    sample_index: np.ndarray
    digests: np.ndarray  # (views, DIGEST_BYTES) uint8


def _storable(stored: torch.Tensor, layer: str, what: str = "activations") -> np.ndarray:
    """``stored`` (in the file's dtype) on the host; an InputError when a value is not finite
    (float16 overflows beyond 65504)."""
    if not torch.isfinite(stored).all():
        dtype = str(stored.dtype).removeprefix("torch.")
        hint = "; use --dtype float32" if stored.dtype == torch.float16 else ""
        raise InputError(f"layer {layer!r} has NaN or Inf {what} in {dtype}{hint}")
    return stored.cpu().numpy()


def package_versions() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def _early_allocation() -> h5py.h5p.PropDSCreateID:
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    plist.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return plist


def write_failure(path: Path, error: Exception) -> RunError:
    """The sentence for a failed write of ``path``; h5py gives the errno only in its text."""
    found = re.search(r"errno = (\d+)", str(error))
    code = getattr(error, "errno", None) or (int(found.group(1)) if found else None)
    advice = "rerun the same command to resume"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return RunError(f"disk full while writing {path}; free space and {advice}")
    if code == errno.EFBIG:
        return RunError(
            f"the file size limit (ulimit -f) was reached while writing {path}; "
            f"raise it and {advice}"
        )
    return RunError(f"writing {path} failed ({error}); check the disk and {advice}")


def reserve(path: Path, size: int) -> None:
    """Allocate the blocks of ``path``'s first ``size`` bytes (creating it if need be), so
    that writes there cannot run out of space; a RunError names the megabytes needed."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        needed = (size - os.fstat(fd).st_blocks * 512) / 1e6
        disk = os.statvfs(path)
        free = disk.f_bavail * disk.f_frsize / 1e6
        limit = (
            " (or the file size limit, ulimit -f, is lower)" if error.errno == errno.EFBIG else ""
        )
        raise RunError(
            f"disk full while writing {path}: it needs {needed:.1f} MB more and {free:.1f} MB "
            f"are free{limit}; free space and rerun the same command to resume"
        ) from None
    finally:
        os.close(fd)


def _size_bound(shapes: FileShapes) -> int:
    """More bytes than the file of ``shapes`` will take: its data plus generous metadata."""
    s = shapes.settings
    itemsize = np.dtype(s.dtype).itemsize
    data = s.views * sum(np.prod(shapes.data_shape(w)) for w in shapes.widths) * itemsize
    data += 2 * 8 * s.num_samples
    datasets = s.views * len(s.layers) + 4
    chunks = datasets * shapes.num_batches * 2
    return (
        data
        + s.views * shapes.num_batches * DIGEST_BYTES
        + 16384 * datasets
        + 96 * chunks
        + (1 << 20)
    )


def _abandon(file: h5py.File) -> None:
    """Close ``file`` after a failed write without writing to it again.

    HDF5 cannot flush after a failed flush (and, left open, crashes the process at
    exit), so its descriptor is pointed at /dev/null first; what is on disk stays as
    the last successful flush left it.
    """
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, file.id.get_vfd_handle())
    finally:
        os.close(null)
    hook, sys.unraisablehook = sys.unraisablehook, lambda _unraisable: None
    try:
        file.close()
    except (OSError, RuntimeError):
        pass
    finally:
        sys.unraisablehook = hook


def _create(path: Path, shapes: FileShapes, provenance: dict[str, str]) -> None:
    """Write a new, empty file of ``shapes`` (truncating ``path``) and reserve its blocks."""
    reserve(path, _size_bound(shapes))  # the space check, before HDF5 writes anything
    s = shapes.settings
    compression = None if s.compression == "none" else s.compression
    f = h5py.File(path, "w")
    try:
        f.create_dataset("rows_done", data=np.int64(0))  # the small datasets first
        for name in ("labels", "sample_index"):
            f.create_dataset(name, shape=(s.num_samples,), dtype="int64", dcpl=_early_allocation())
        f.create_dataset(
            "input_digest",
            shape=(s.views, shapes.num_batches, DIGEST_BYTES),
            dtype="uint8",
            dcpl=_early_allocation(),
        )
        for view in range(s.views):
            for layer, width in zip(s.layers, shapes.widths, strict=True):
                f.create_dataset(
                    data_path(s, view, layer),
                    shape=shapes.data_shape(width),
                    dtype=s.dtype,
                    chunks=shapes.data_chunk(width),
                    compression=compression,
                    dcpl=_early_allocation() if compression is None else None,
                )
        f.attrs.update(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "complete": False,
                "data_fingerprint": np.bytes_(PENDING_FINGERPRINT),
                "completion_sha256": np.bytes_(PENDING_FINGERPRINT),
                "settings": s.to_json(),
                "layers": json.dumps(list(s.layers)),
                "layer_shapes": json.dumps(shapes.layer_shapes),
                "layer_widths": json.dumps(dict(zip(s.layers, shapes.widths, strict=True))),
                "package_versions": json.dumps(package_versions()),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **provenance,
            }
        )
        f.flush()
    except (OSError, RuntimeError) as error:
        _abandon(f)
        raise write_failure(path, error) from None
    f.close()
    reserve(path, path.stat().st_size)


def rows_done(path: Path, shapes: FileShapes) -> int:
    """The rows of the existing file ``path`` already done for ``shapes``: all of them when
    it is complete. A file that is not a repcompare activation file, or has other settings
    or an older batch plan, is an InputError that suggests ``--force``."""
    try:
        with h5py.File(path, "r") as f:
            stored = FileSettings.from_json(f.attrs["settings"])
            done, complete = int(f["rows_done"][()]), bool(f.attrs["complete"])
    except (OSError, KeyError, ValueError, TypeError):
        raise InputError(
            f"{path} exists but is not a readable repcompare activation file; "
            "pass --force to overwrite it or choose another --out"
        ) from None
    differences = shapes.settings.differences(stored)
    if differences:
        state = "a complete" if complete else "an incomplete"
        raise InputError(
            f"{path} is {state} file made with other settings ({'; '.join(differences)}); "
            "pass --force to overwrite it or choose another --out"
        )
    if complete:
        return shapes.settings.num_samples
    if done not in [start for start, _ in shapes.bounds]:
        raise InputError(
            f"{path} was begun with an older batch plan ({done} rows done); "
            "pass --force to recompute it or choose another --out"
        )
    return done


def prepare(path: Path, shapes: FileShapes, provenance: dict[str, str], force: bool) -> int:
    """Create ``path`` or check it for resuming; return the number of rows already done.

    A complete file with the same settings is left as it is (all rows done); a
    file with other settings is refused unless ``force`` (see ``rows_done``). The
    caller holds the file's write lock. A new file's blocks are reserved (see
    module docstring).
    """
    if path.exists() and not force:
        return rows_done(path, shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _create(path, shapes, provenance)
    except RunError:
        path.unlink(missing_ok=True)  # nothing was done yet: the rerun starts afresh
        raise
    return 0


class ActivationWriter:
    """Background writer of batches into a prepared file (see module docstring)."""

    def __init__(self, path: Path, shapes: FileShapes):
        self.path = path
        self.shapes = shapes
        self.bytes_written = 0
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._error: BaseException | None = None
        reserve(path, path.stat().st_size)  # a file from an older run may have holes
        self._file = h5py.File(path, "r+", rdcc_nbytes=0)  # writes go to disk at once
        # open once: a dataset closed after a failed write would complain as it goes
        self._datasets = {name: self._file[name] for name in dataset_names(shapes.settings)}
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
            failed = isinstance(error, (OSError, RuntimeError))
            self._error = write_failure(self.path, error) if failed else error
            while self._queue.get() is not None:
                pass

    def _write(self, batch: Batch) -> None:
        s, d = self.shapes.settings, self._datasets
        grams = s.store == "grams"
        start, stop = self.shapes.bounds[batch.number]
        for view, layers in enumerate(batch.activations):
            for layer, tensor in zip(s.layers, layers, strict=True):
                values = _storable(tensor, layer, "Gram entries" if grams else "activations")
                if grams:  # the whole chunk, zeros beyond the batch's m x m
                    size = self.shapes.gram_size
                    values = np.pad(values, [(0, size - len(values))] * 2)
                    d[data_path(s, view, layer)][batch.number] = values
                else:
                    d[data_path(s, view, layer)][start:stop] = values
                self.bytes_written += values.nbytes
        d["labels"][start:stop] = batch.labels
        d["sample_index"][start:stop] = batch.sample_index
        d["input_digest"][:, batch.number] = batch.digests
        self._file.flush()
        d["rows_done"][()] = stop
        self._file.flush()

    def close(self, complete: bool) -> None:
        """Drain the queue and close; when ``complete``, seal the file with its fingerprint.

        After a failed write the file is abandoned (see ``_abandon``), not marked
        complete, and the failure re-raised.
        """
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            _abandon(self._file)
            raise self._error
        try:
            if complete:
                digests = self._file["input_digest"][()]
                attrs = self._file.attrs  # overwritten in place: completing allocates nothing
                attrs.modify("data_fingerprint", np.bytes_(data_fingerprint(digests)))
                attrs.modify("completion_sha256", np.bytes_(completion_digest(self._file)))
                attrs.modify("complete", True)
            self._file.flush()
        except (OSError, RuntimeError) as error:
            _abandon(self._file)
            raise write_failure(self.path, error) from None
        self._file.close()
