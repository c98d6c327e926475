"""Measures of every layer pair beyond streamed CKA, fed batch by batch like the CKA
estimators (``update``, ``result``):

- ``FixedSampleMeasure``: any registered measure on a fixed sample, the first ``sample``
  examples given. Each layer is kept as the smallest matrix that gives the measure exactly
  (``fixed_sample_form``): for a measure unchanged by orthogonal maps of the features, the
  rows rotated onto at most ``sample`` columns; for RSA the dissimilarity matrix.
- ``StreamedShapeMetric``: the Procrustes distance or angular shape metric over every
  example, from streamed cross- and self-covariances (``p x q`` floats per pair).

Layers for which a measure is undefined (constant over the sample) are reported as
degenerate, their values NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repcompare.limits import DEFAULT_SAMPLE
from repcompare.similarity.checks import DegenerateRepresentationError, check_sides
from repcompare.similarity.measures import MeasureSpec
from repcompare.similarity.procrustes import rotate_to_rows
from repcompare.similarity.procrustes_stream import StreamingProcrustes, procrustes_stream_bytes
from repcompare.similarity.result import SimilarityMatrix
from repcompare.similarity.rsa import rdm, rsa_from_rdms

SHAPE_METRICS = ("procrustes", "angular")


def fixed_sample_form(spec: MeasureSpec, x: torch.Tensor) -> torch.Tensor:
    """The smallest matrix that gives ``spec`` on ``x`` (m examples) exactly: ``x`` rotated
    onto at most m columns when the measure is unchanged by orthogonal maps of the features
    (inner products of examples are kept); the dissimilarity matrix for RSA; else ``x``."""
    x = x.reshape(len(x), -1).to(torch.float64)
    if spec.name == "rsa":
        return rdm(x)
    if spec.invariances.orthogonal:
        return rotate_to_rows(x)
    return x


def form_columns(spec: MeasureSpec, width: int, sample: int) -> int:
    """Columns of ``fixed_sample_form`` for a layer of ``width`` features."""
    if spec.name == "rsa":
        return sample
    return min(width, sample) if spec.invariances.orthogonal else width


def fixed_sample_bytes(spec: MeasureSpec, widths: Sequence[int], sample: int) -> int:
    """Memory of a fixed sample: the rows of every layer (float32) while they are gathered,
    plus their forms (float64)."""
    forms = sum(form_columns(spec, w, sample) for w in widths)
    return 4 * sample * sum(widths) + 8 * sample * forms


def _pair_value(spec: MeasureSpec, x: torch.Tensor, y: torch.Tensor) -> float:
    try:
        if spec.name == "rsa":
            return float(rsa_from_rdms(x, y))
        return float(spec.compute(x, y))
    except DegenerateRepresentationError:
        return np.nan


class FixedSampleMeasure:
    """``spec`` of every pair (layer of A, layer of B) on the first ``sample`` examples;
    ``names_b=None`` compares A with itself (each unordered pair computed once when the
    measure is symmetric)."""

    def __init__(
        self,
        spec: MeasureSpec,
        names_a: Sequence[str],
        names_b: Sequence[str] | None = None,
        sample: int = DEFAULT_SAMPLE,
    ):
        self.spec, self.sample = spec, sample
        self.names_a = tuple(names_a)
        self.names_b = None if names_b is None else tuple(names_b)
        self._rows_a: list[list[torch.Tensor]] = [[] for _ in self.names_a]
        self._rows_b: list[list[torch.Tensor]] = [[] for _ in self.names_b or ()]
        self.n_examples = 0

    @property
    def symmetric(self) -> bool:
        return self.names_b is None

    def update(
        self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor] | None = None
    ) -> None:
        """Keep the batch's rows until the sample is complete; later batches are ignored."""
        check_sides(self.symmetric, feats_a, feats_b)
        keep = min(self.sample - self.n_examples, len(feats_a[0]))
        if keep <= 0:
            return
        for kept, x in zip(self._rows_a + self._rows_b, [*feats_a, *(feats_b or ())], strict=True):
            kept.append(x[:keep].reshape(keep, -1).to("cpu", torch.float32))
        self.n_examples += keep

    def _forms(self, rows: list[list[torch.Tensor]]) -> list[torch.Tensor | None]:
        forms = []
        for kept in rows:
            try:
                forms.append(fixed_sample_form(self.spec, torch.cat(kept)))
            except DegenerateRepresentationError:
                forms.append(None)
        return forms

    def result(self) -> SimilarityMatrix:
        """The measure of every pair over the sample (rows: A, columns: B)."""
        forms_a = self._forms(self._rows_a)
        forms_b = forms_a if self.symmetric else self._forms(self._rows_b)
        self._rows_a, self._rows_b = [], []
        values = np.full((len(forms_a), len(forms_b)), np.nan)
        once = self.symmetric and self.spec.name != "pwcca"
        for i, x in enumerate(forms_a):
            for j in range(i if once else 0, len(forms_b)):
                y = forms_b[j]
                if x is not None and y is not None:
                    values[i, j] = _pair_value(self.spec, x, y)
                    if once:
                        values[j, i] = values[i, j]
        names_b = self.names_a if self.symmetric else self.names_b
        return SimilarityMatrix(
            self.names_a,
            names_b,
            values,
            tuple(n for n, f in zip(self.names_a, forms_a, strict=True) if f is None),
            tuple(n for n, f in zip(names_b, forms_b, strict=True) if f is None),
            self.n_examples,
        )


class StreamedShapeMetric:
    """The Procrustes distance (``procrustes``) or angular shape metric (``angular``) of every
    pair over every example, one ``StreamingProcrustes`` per pair; ``names_b=None`` compares
    A with itself."""

    def __init__(
        self, spec: MeasureSpec, names_a: Sequence[str], names_b: Sequence[str] | None = None
    ):
        if spec.name not in SHAPE_METRICS:
            raise ValueError(f"{spec.name} is not a shape metric; use {' or '.join(SHAPE_METRICS)}")
        self.spec, self.symmetric = spec, names_b is None
        self.names_a = tuple(names_a)
        self.names_b = self.names_a if names_b is None else tuple(names_b)
        self._pairs = [[StreamingProcrustes() for _ in self.names_b] for _ in self.names_a]
        self.n_examples = 0

    def update(
        self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor] | None = None
    ) -> None:
        """Add one batch of both sides (of A alone when symmetric)."""
        check_sides(self.symmetric, feats_a, feats_b)
        for row, x in zip(self._pairs, feats_a, strict=True):
            for pair, y in zip(row, feats_a if self.symmetric else feats_b, strict=True):
                pair.update(x, y)
        self.n_examples += len(feats_a[0])

    def result(self) -> SimilarityMatrix:
        """The metric of every pair over every example so far."""
        values = np.full((len(self.names_a), len(self.names_b)), np.nan)
        bad_a, bad_b = set(), set()
        for i, row in enumerate(self._pairs):
            for j, pair in enumerate(row):
                try:
                    metric = pair.distance() if self.spec.name == "procrustes" else pair.angle()
                    values[i, j] = float(metric)
                except DegenerateRepresentationError as error:  # names the constant side
                    if "representation X" in str(error):
                        bad_a.add(i)
                    else:
                        bad_b.add(j)
        return SimilarityMatrix(
            self.names_a,
            self.names_b,
            values,
            tuple(self.names_a[i] for i in sorted(bad_a)),
            tuple(self.names_b[j] for j in sorted(bad_b)),
            self.n_examples,
        )


def streamed_bytes(widths_a: Sequence[int], widths_b: Sequence[int]) -> int:
    """Memory of ``StreamedShapeMetric``: every pair's ``p x q`` cross-covariance."""
    return sum(procrustes_stream_bytes(p, q) for p in widths_a for q in widths_b)


def streamable(
    widths_a: Sequence[int], widths_b: Sequence[int], sample: int, max_bytes: float
) -> bool:
    """Whether to stream the shape metrics rather than use a fixed sample of ``sample``
    examples (as asked): when no layer is wider than that (a wider one makes each pair's
    ``p x q`` covariance and its SVD costlier than the sample's ``m x m`` forms) and every
    pair's cross-covariance fits in ``max_bytes``."""
    narrow = max([*widths_a, *widths_b]) <= sample
    return narrow and streamed_bytes(widths_a, widths_b) <= max_bytes


def measure_estimator(
    spec: MeasureSpec,
    names_a: Sequence[str],
    names_b: Sequence[str] | None,
    widths_a: Sequence[int],
    widths_b: Sequence[int] | None,
    sample: int,
    n_examples: int,
    max_bytes: float,
) -> tuple[FixedSampleMeasure | StreamedShapeMetric, str]:
    """How ``spec`` of every pair is computed over ``n_examples`` (``None`` for B: A with
    itself), and that way in words: a shape metric streamed when ``streamable``, else the
    fixed sample of the first ``sample`` examples."""
    if spec.name in SHAPE_METRICS and streamable(widths_a, widths_b or widths_a, sample, max_bytes):
        streamed = StreamedShapeMetric(spec, names_a, names_b)
        return streamed, f"streamed cross-covariances over all {n_examples} images"
    kept = min(sample, n_examples)
    fixed = FixedSampleMeasure(spec, names_a, names_b, kept)
    how = f"on a fixed sample: the first {kept} images of the seeded order"
    if spec.name in SHAPE_METRICS:  # not streamed over every image: say why
        widest = max([*widths_a, *(widths_b or ())])
        why = (
            f"a layer of {widest:,} features is wider than --sample {sample}"
            if widest > sample
            else "the cross-covariances would not fit in memory"
        )
        how = f"{how}, not all {n_examples} ({why})"
    return fixed, how
