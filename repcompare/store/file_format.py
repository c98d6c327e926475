"""The shapes of a repcompare activation file or Gram store (see docs/hdf5-format.md).

/activations/view{v}/{layer}   (N, D) float16|float32, one chunk = one batch of one layer
/grams/view{v}/{layer}         (B, G, G) float32 in a Gram store (``store: grams``) instead:
                               batch k's Gram Xc Xc^T of its column-centred features in
                               [k, :m_k, :m_k], zeros beyond; G is the longest batch; one
                               chunk = one batch of one layer
/labels                        (N,) int64, -1 when the data set has no labels
/sample_index                  (N,) int64, the data set index of each row
/input_digest                  (views, batches, 32) uint8, SHA-256 of each batch's inputs
/rows_done                     () int64, rows 0..rows_done-1 are complete
attributes of /                provenance, the settings that fixed the content (``settings``,
                               JSON), ``layer_widths`` (JSON), ``complete``,
                               ``data_fingerprint`` and ``completion_sha256`` (64 ASCII hex
                               digits each, fixed length; all zeros until complete)

``completion_sha256`` certifies the completion mark: the SHA-256 of the settings, the rows
done, the labels, the sample index and the input digests as they were when the file was
completed (``completion_digest``). A file marked complete by hand, or whose row count or
indices were edited afterwards, no longer matches it and is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from repcompare.data.batches import batch_bounds

FORMAT_NAME = "repcompare-activations"
FORMAT_VERSION = 2  # 2: completion_sha256
DIGEST_BYTES = 32
PENDING_FINGERPRINT = "0" * 64  # data_fingerprint and completion_sha256 of a file not complete


STORES = ("activations", "grams")


def activation_path(view: int, layer: str) -> str:
    """The dataset holding ``layer`` of augmented view ``view`` (0 without augmentation)."""
    return f"activations/view{view}/{layer}"


def gram_path(view: int, layer: str) -> str:
    """The dataset of a Gram store holding the per-batch Grams of ``layer`` in ``view``."""
    return f"grams/view{view}/{layer}"


def data_path(s: FileSettings, view: int, layer: str) -> str:
    """The dataset of ``layer`` in ``view`` of a file with settings ``s``."""
    return (gram_path if s.store == "grams" else activation_path)(view, layer)


def data_fingerprint(digests: np.ndarray) -> str:
    """SHA-256 of the ``(views, batches, 32)`` input digests: one hash for all the images seen."""
    return hashlib.sha256(np.ascontiguousarray(digests).tobytes()).hexdigest()


def dataset_names(s: FileSettings) -> list[str]:
    """Every dataset of a file with settings ``s``."""
    layers = [data_path(s, v, layer) for v in range(s.views) for layer in s.layers]
    return [*layers, "labels", "sample_index", "input_digest", "rows_done"]


def completion_digest(handle) -> str:
    """SHA-256 of what a completion mark certifies, read from the open h5py file ``handle``:
    the settings, the rows done, the labels, the sample index and the input digests."""
    digest = hashlib.sha256(str(handle.attrs["settings"]).encode())
    for name in ("rows_done", "labels", "sample_index", "input_digest"):
        digest.update(np.ascontiguousarray(handle[name][()]).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FileSettings:
    """Everything that determines a file's content; a resumed run must match it exactly."""

    model: str
    checkpoint_sha256: str
    pretrained: bool
    data: str
    num_samples: int
    order: str
    seed: int
    layers: tuple[str, ...]
    reduction: str
    views: int
    augment: str
    view_size: int
    transform: str
    batch_size: int
    dtype: str
    compression: str
    init_seed: int | None = None  # the random-init seed; None for checkpoint or published weights
    store: str = "activations"  # or "grams": per-batch Gram matrices instead of the features

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FileSettings:
        values = json.loads(text)
        values["layers"] = tuple(values["layers"])
        return cls(**values)

    def differences(self, other: FileSettings) -> list[str]:
        """``name: ours -> theirs`` for every setting that differs."""
        ours, theirs = asdict(self), asdict(other)
        return [f"{k}: {theirs[k]!r} -> {ours[k]!r}" for k in ours if ours[k] != theirs[k]]


@dataclass(frozen=True)
class FileShapes:
    """Shapes of a file: one (N, width) dataset per layer and view, or in a Gram store one
    (batches, gram_size, gram_size) dataset; ``gram_size`` is the longest batch of the whole
    plan (a shard keeps the whole's)."""

    settings: FileSettings
    widths: tuple[int, ...]
    layer_shapes: dict[str, list[int]] = field(default_factory=dict)
    gram_size: int = 0

    def data_shape(self, width: int) -> tuple[int, ...]:
        """The shape of the dataset of a layer of ``width``."""
        if self.settings.store == "grams":
            return (self.num_batches, self.gram_size, self.gram_size)
        return (self.settings.num_samples, width)

    def data_chunk(self, width: int) -> tuple[int, ...]:
        """One chunk: one batch of one layer."""
        if self.settings.store == "grams":
            return (1, self.gram_size, self.gram_size)
        return (min(self.settings.batch_size, self.settings.num_samples), width)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """The ``(start, stop)`` rows of each batch (see ``batch_bounds``)."""
        return batch_bounds(self.settings.num_samples, self.settings.batch_size)

    @property
    def num_batches(self) -> int:
        return len(self.bounds)

    def first_batch(self, rows_done: int) -> int:
        """The batch a run resumes at when rows ``0..rows_done-1`` are done."""
        return [start for start, _ in self.bounds].index(rows_done)
