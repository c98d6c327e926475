"""Where one side's activations came from, as every result records it."""

from __future__ import annotations

from dataclasses import dataclass

from repcompare.results.fields import set_fields


@dataclass(frozen=True)
class Provenance:
    """Where one side's activations came from: its model, weights and reduction; for an
    activation file also the file, its data set, input fingerprint and transform; for a
    model captured on the fly whether the weights were published ones, and the tracer."""

    model_spec: str
    checkpoint_sha256: str
    reduction: str
    file: str | None = None
    data_source: str | None = None
    data_fingerprint: str | None = None
    transform: str | None = None
    pretrained: bool | None = None
    tracer: str | None = None

    def to_dict(self) -> dict:
        """The fields that apply to this side (a file's or a model's)."""
        return set_fields(self)
