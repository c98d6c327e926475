"""``repcompare cka``: CKA between every selected layer of side A and of side B.

Sides are activation files or model specs captured on the fly (never written
to disk), in any combination. Batches of the two sides always hold the same
images in the same order: file pairs are checked before computing (sample
order, views, input fingerprint), and a model captured against a file is fed
the file's recorded images, batch by batch, with each batch's input digest
checked against the file's.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from repcompare.activations import InputPlan, prepare_inputs, stream_activations
from repcompare.analyses.sides import Side, check_files_aligned, plan_from_file
from repcompare.errors import InputError
from repcompare.similarity import ExactLinearCKA, MinibatchCKA, SimilarityMatrix
from repcompare.store.reader import ActivationFile

ESTIMATORS = ("minibatch", "exact", "debiased")
KERNELS = ("linear", "rbf")
MEMORY_FRACTION = 0.5
READ_AHEAD = 2


@dataclass(frozen=True)
class CKAOptions:
    kernel: str = "linear"
    rbf_fraction: float = 0.8
    estimator: str = "minibatch"
    bootstrap: int = 0
    seed: int = 0


@dataclass
class CKAResult:
    """A CKA matrix with its intervals, settings and where both sides came from."""

    side_a: str
    side_b: str
    matrix: SimilarityMatrix
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    settings: dict
    provenance_a: dict
    provenance_b: dict
    seconds: float


def _read_ahead(batches: Iterator) -> Iterator:
    """Produce the items of ``batches`` from a thread, up to ``READ_AHEAD`` in advance."""
    buffer: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
    done = object()

    def fill() -> None:
        try:
            for item in batches:
                buffer.put(item)
        except BaseException as error:
            buffer.put(error)
        buffer.put(done)

    threading.Thread(target=fill, daemon=True).start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _file_rows(file: ActivationFile, layers: list[str], batch_size: int) -> Iterator[list]:
    for batch in file.batches(0, layers, batch_size):
        yield [torch.from_numpy(x) for x in batch]


def _to(device: torch.device, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.to(device, non_blocking=True) for t in tensors]


def paired_batches(
    a: Side, b: Side, plan: InputPlan, device: torch.device, symmetric: bool
) -> tuple[Iterator[tuple[list, list | None]], int, int]:
    """Batches ``(feats_a, feats_b)`` of both sides over the same images; batch size; N."""
    if a.is_file and b.is_file:
        check_files_aligned(a.file, b.file)
        size = plan.batch_size
        rows_a = _read_ahead(_file_rows(a.file, a.layers, size))
        rows_b = None if symmetric else _read_ahead(_file_rows(b.file, b.layers, size))

        def files() -> Iterator:
            for feats_a in rows_a:
                feats_b = None if rows_b is None else _to(device, next(rows_b))
                yield _to(device, feats_a), feats_b

        return files(), size, a.file.settings.num_samples
    if not a.is_file and not b.is_file:
        targets = [a.target] if symmetric else [a.target, b.target]
        prepared = prepare_inputs(plan, targets)

        def models() -> Iterator:
            for streamed in stream_activations(targets, plan, prepared, device):
                feats = [per_model[0] for per_model in streamed.activations]
                yield feats[0], None if symmetric else feats[1]

        return models(), plan.batch_size, len(prepared.indices)
    file_side, model_side = (a, b) if a.is_file else (b, a)
    file = file_side.file
    size = file.settings.batch_size
    file_plan = plan_from_file(file, plan)
    prepared = prepare_inputs(file_plan, [model_side.target])
    if not np.array_equal(prepared.indices, file.sample_index):
        raise InputError(
            f"the data set behind {file.path} ({file.attrs.get('data_source')}) no longer yields "
            "the same samples; compare against a file extracted from the current data"
        )
    digests = file.handle["input_digest"]

    def mixed() -> Iterator:
        rows = _read_ahead(_file_rows(file, file_side.layers, size))
        for streamed in stream_activations([model_side.target], file_plan, prepared, device):
            if not np.array_equal(streamed.digests, digests[:, streamed.number]):
                raise InputError(
                    f"batch {streamed.number} of the images differs from those recorded in "
                    f"{file.path} (input fingerprints differ); check that --data points at the "
                    "same images and that the file's preprocessing matches"
                )
            from_file = _to(device, next(rows))
            from_model = streamed.activations[0][0]
            yield (from_file, from_model) if a.is_file else (from_model, from_file)

    return mixed(), size, file.settings.num_samples


def _available_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _check_memory(needed: int, what: str, fix: str) -> None:
    available = _available_memory()
    if needed > MEMORY_FRACTION * available:
        raise InputError(
            f"{what} needs about {needed / 1e9:.1f} GB, more than half of the "
            f"{available / 1e9:.1f} GB available; {fix}"
        )


def _accumulator(a: Side, b: Side, options: CKAOptions, symmetric: bool, n: int):
    names_b = None if symmetric else b.layers
    widths = (a.widths(), b.widths())
    if options.estimator == "exact":
        if options.kernel != "linear":
            raise InputError("--estimator exact computes linear CKA only; use --kernel linear")
        width_a, width_b = widths
        pairs = sum(width_a) * (sum(width_a) if symmetric else sum(width_b))
        _check_memory(
            8 * pairs,
            "exact CKA of these layers",
            "reduce them with --reduce avgpool or use --estimator minibatch",
        )
        return ExactLinearCKA(a.layers, names_b)
    if options.estimator == "debiased":
        layers = len(a.layers) + (0 if symmetric else len(b.layers))
        features = 4 * n * (sum(widths[0]) + (0 if symmetric else sum(widths[1])))
        _check_memory(
            8 * layers * n * n + features,
            f"debiased CKA on {n} samples",
            "use --estimator minibatch or fewer --num-samples",
        )
    return MinibatchCKA(a.layers, names_b, kernel=options.kernel, rbf_fraction=options.rbf_fraction)


def compare(
    a: Side,
    b: Side,
    options: CKAOptions,
    plan: InputPlan,
    device: torch.device,
    symmetric: bool = False,
    progress=None,
) -> CKAResult:
    """CKA between ``a.layers`` and ``b.layers`` over the planned (or recorded) images.

    ``progress(examples_done_now, total_examples)`` is called after each batch.
    """
    if options.estimator not in ESTIMATORS:
        raise InputError(f"unknown --estimator {options.estimator!r}; use {', '.join(ESTIMATORS)}")
    if options.kernel not in KERNELS:
        raise InputError(f"unknown --kernel {options.kernel!r}; use linear or rbf")
    started = time.perf_counter()
    batches, batch_size, n_samples = paired_batches(a, b, plan, device, symmetric)
    accumulator = _accumulator(a, b, options, symmetric, n_samples)
    if options.estimator == "debiased":
        gathered_a, gathered_b = [], []
        for feats_a, feats_b in batches:
            gathered_a.append(feats_a)
            gathered_b.append(feats_b)
            if progress:
                progress(len(feats_a[0]), n_samples)
        whole_a = [torch.cat(parts) for parts in zip(*gathered_a, strict=True)]
        whole_b = None if symmetric else [torch.cat(p) for p in zip(*gathered_b, strict=True)]
        accumulator.update(whole_a, whole_b)
    else:
        for feats_a, feats_b in batches:
            accumulator.update(feats_a, feats_b)
            if progress:
                progress(len(feats_a[0]), n_samples)
    matrix = accumulator.result()
    low = high = None
    if options.bootstrap:
        if options.estimator != "minibatch":
            raise InputError("--bootstrap resamples minibatches; use --estimator minibatch")
        low, high = accumulator.bootstrap(options.bootstrap, options.seed)
    settings = asdict(options) | {
        "batch_size": batch_size,
        "n_examples": matrix.n_examples,
        "device": str(device),
    }
    return CKAResult(
        a.label,
        b.label,
        matrix,
        low,
        high,
        settings,
        a.provenance(),
        b.provenance(),
        time.perf_counter() - started,
    )
