"""Reading activation files and Gram stores: checks, metadata, chunk-aligned batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from repcompare.data.batches import batch_bounds
from repcompare.errors import InputError
from repcompare.store.file_format import (
    FORMAT_NAME,
    FileSettings,
    completion_digest,
    data_path,
    dataset_names,
)
from repcompare.store.lock import FileLock, lock_for_reading
from repcompare.store.shards import check_shards


@dataclass
class ActivationFile:
    """A complete activation file opened for reading."""

    path: Path
    settings: FileSettings
    attrs: dict
    labels: np.ndarray
    sample_index: np.ndarray
    handle: h5py.File
    lock: FileLock

    @property
    def layers(self) -> tuple[str, ...]:
        return self.settings.layers

    @property
    def widths(self) -> dict[str, int]:
        """Each layer's feature width (a Gram store records them; it holds no features)."""
        if "layer_widths" in self.attrs:
            return json.loads(self.attrs["layer_widths"])
        return {n: self.handle[data_path(self.settings, 0, n)].shape[1] for n in self.layers}

    def read(self, view: int, layer: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``layer`` in ``view`` (in a Gram store, batches, each a
        ``(gram_size, gram_size)`` block); a damaged dataset is an InputError naming the file
        and the dataset."""
        name = data_path(self.settings, view, layer)
        try:
            return self.handle[name][start:stop]
        except (OSError, KeyError) as error:
            raise damaged(self.path, f"its dataset /{name} cannot be read ({error})") from None

    def grams(self, view: int, layers: list[str], share: range | None = None) -> Iterator:
        """A Gram store's ``(m, m)`` Gram of each of ``layers`` in ``view``, batch by batch of
        its plan; only those numbered in ``share`` when given."""
        bounds = batch_bounds(self.settings.num_samples, self.settings.batch_size)
        for number in range(len(bounds)) if share is None else share:
            start, stop = bounds[number]
            m = stop - start
            yield [self.read(view, layer, number, number + 1)[0, :m, :m] for layer in layers]

    def batches(
        self, view: int, layers: list[str], size: int | None = None, share: range | None = None
    ) -> Iterator[list[np.ndarray]]:
        """The ``batch_bounds`` batches of ``size`` rows (default: the file's batch size, so
        chunk-aligned), a short last batch merged into the one before; only those numbered
        in ``share`` when given."""
        if self.settings.store == "grams":
            raise InputError(f"{self.path} is a Gram store: it holds per-batch Grams, not rows")
        bounds = batch_bounds(self.settings.num_samples, size or self.settings.batch_size)
        for start, stop in bounds if share is None else bounds[share.start : share.stop]:
            yield [self.read(view, layer, start, stop) for layer in layers]

    def close(self) -> None:
        self.handle.close()
        self.lock.release()

    def __enter__(self) -> ActivationFile:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def open_activations(path: Path) -> ActivationFile:
    """Open a complete activation file, holding its read lock until ``close``; an incomplete,
    foreign or in-progress file is an InputError."""
    if not path.is_file():
        raise InputError(f"activation file {str(path)!r} does not exist; run 'repcompare extract'")
    lock = lock_for_reading(path)
    try:
        return _open(path, lock)
    except BaseException:
        lock.release()
        raise


def damaged(path: Path, what: str) -> InputError:
    """The sentence for an activation file whose content was damaged or edited."""
    return InputError(
        f"{path} is damaged or was edited: {what}; re-run 'repcompare extract' with --force "
        "to write it again"
    )


def _open(path: Path, lock: FileLock) -> ActivationFile:
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(
            f"{path} is not a readable HDF5 file; re-run 'repcompare extract'"
        ) from None
    try:
        return _checked(path, handle, lock)
    except BaseException:
        handle.close()
        raise


def _checked(path: Path, handle: h5py.File, lock: FileLock) -> ActivationFile:
    """The open file ``handle`` as an ActivationFile once every check passes."""
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in handle.attrs.items()}
    if attrs.get("format") != FORMAT_NAME:
        raise InputError(f"{path} is not a repcompare activation file (no '{FORMAT_NAME}' format)")
    try:
        settings = FileSettings.from_json(attrs["settings"])
    except (KeyError, ValueError, TypeError, AttributeError):
        raise damaged(path, "its 'settings' attribute is missing or not valid") from None
    _check_datasets(path, handle, settings)
    if not attrs.get("complete"):
        done = int(handle["rows_done"][()])
        raise InputError(
            f"{path} is incomplete ({done} of {settings.num_samples} samples); rerun the same "
            "'repcompare extract' command to finish it"
        )
    check_shards(path)
    certified = int(attrs.get("format_version", 1)) >= 2  # version 1 files predate the checksum
    if certified and attrs.get("completion_sha256") != completion_digest(handle):
        raise damaged(path, "its completion mark does not match its rows, labels or inputs")
    return ActivationFile(
        path=path,
        settings=settings,
        attrs=attrs,
        labels=handle["labels"][()],
        sample_index=handle["sample_index"][()],
        handle=handle,
        lock=lock,
    )


def _check_datasets(path: Path, handle: h5py.File, s: FileSettings) -> None:
    """Every dataset the settings call for is there, one row per sample."""
    batches = len(batch_bounds(s.num_samples, s.batch_size))
    for name in dataset_names(s):
        if not isinstance(handle.get(name), h5py.Dataset):
            raise damaged(path, f"it has no dataset /{name}")
        rows = handle[name].shape[:1]
        expected = batches if name.startswith("grams/") else s.num_samples
        if name not in ("rows_done", "input_digest") and rows != (expected,):
            raise damaged(
                path, f"its dataset /{name} has {rows[0] if rows else 0} rows, not {expected}"
            )
