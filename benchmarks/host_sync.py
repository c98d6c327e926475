"""Benchmark: host-device synchronisations inside repcompare's on-the-fly CKA batch loop (issue 11).

Runs ``repcompare.api.cka`` on two random-init models (init seeds 0 and 1, built here
and handed over already on the device) over built-in images and watches the batch loop
of ``repcompare.analyses.cka.compare`` (``repcompare.analyses.run.run_pass``): each
batch's fetch (data loading, both models' forward and capture) and its ``CKARun.update``
(the ``MinibatchCKA`` accumulator) are marked with ``torch.profiler.record_function``
ranges (by wrapping ``aligned_batches`` and ``CKARun.update`` in this process; the
package is not changed). Three views of the same run:

1. ``torch.profiler`` (CPU, and CUDA on a GPU): per batch, the count of every event that
   makes the host wait or reads a value off the device (``cudaStreamSynchronize``,
   ``cudaDeviceSynchronize``, ``cudaEventSynchronize``, ``cudaMemcpy``, ``cudaMemcpyAsync``
   with its direction, ``cudaFree``, ``aten::item``, ``aten::_local_scalar_dense``,
   ``aten::is_nonzero``, ``aten::nonzero`` ...).
2. A ``TorchDispatchMode`` that sees every tensor op of the main thread and records, with
   the exact Python stack (file:line), each op that needs a value from the device
   (``item``, ``is_nonzero`` from ``if tensor:``, ``equal``, data-dependent shapes such as
   ``nonzero``) and each cross-device copy that is blocking or device-to-host. On a CPU
   run these are the places that would synchronise on CUDA.
3. On CUDA, ``torch.cuda.set_sync_debug_mode("warn")``: PyTorch's own warning for every
   synchronising CUDA call, with its Python stack.

Batch 0 also pays one-time costs (cuBLAS handles, allocator growth); the steady state is
the mean over the later batches.

    uv run python benchmarks/host_sync.py [--models torchvision:resnet18,torchvision:resnet18]
        [--layers paper] [--images 256] [--image-size 64] [--batch-size 64] [--device auto]
"""

from __future__ import annotations

import argparse
import collections
import linecache
import os
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from harness import (
    Stopwatch,
    Workload,
    add_workload_arguments,
    device_name,
    markdown_table,
    report,
)
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils._python_dispatch import TorchDispatchMode

import repcompare
import repcompare.analyses.cka as cka_analysis
import repcompare.analyses.run as run_analysis

PACKAGE = str(Path(repcompare.__file__).resolve().parent)
ROOT = str(Path(PACKAGE).parent)
THIS = str(Path(__file__).resolve())
RANGE = "host_sync/"
INFRA = (
    "torch/_dynamo/",
    "torch/_compile.py",
    "torch/utils/_python_dispatch",
    "torch/_ops.py",
    "/warnings.py",
)
# profiler events that make the host wait for the device or read a value off it; the CUDA
# allocations are listed too, since cudaFree and cudaHostAlloc can synchronise implicitly
RUNTIME_WAITS = (
    "cudaStreamSynchronize",
    "cudaDeviceSynchronize",
    "cudaEventSynchronize",
    "cudaMemcpy",
    "cudaMemcpyAsync",
    "cudaFree",
    "cudaFreeHost",
    "cudaHostAlloc",
    "cudaMalloc",
)
VALUE_OPS = (
    "aten::item",
    "aten::_local_scalar_dense",
    "aten::is_nonzero",
    "aten::equal",
    "aten::nonzero",
    "aten::masked_select",
    "aten::unique_dim",
    "aten::_unique2",
    "aten::unique_consecutive",
    "aten::repeat_interleave",
)
SCALAR_READS = {"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero", "aten::equal"}
DATA_DEPENDENT = set(VALUE_OPS) - SCALAR_READS
COPIES = {"aten::to", "aten::_to_copy", "aten::copy_"}


@dataclass
class LoopState:
    """Where the main thread is: a batch number and phase, or outside the loop."""

    batch: int | None = None
    phase: str = "setup"
    batches: int = 0

    def label(self) -> str:
        return self.phase if self.batch is None else f"batch{self.batch}"


@dataclass
class Site:
    """One synchronising call site, found by the dispatch mode or the sync debug mode."""

    where: str
    chain: str
    what: str
    per_label: collections.Counter = field(default_factory=collections.Counter)


def frames(stack: traceback.StackSummary) -> list[traceback.FrameSummary]:
    """The stack's frames inside the package, innermost first."""
    inside = [f for f in stack if f.filename.startswith(PACKAGE)]
    return list(reversed(inside))


def _short(path: str) -> str:
    """A path relative to site-packages or the repository, for the tables."""
    marker = "site-packages/"
    return path.split(marker, 1)[1] if marker in path else os.path.relpath(path, ROOT)


def describe(stack: traceback.StackSummary) -> tuple[str, str]:
    """(innermost package frame as ``file:line function: source``, the next frames out)."""
    inside = frames(stack)
    if not inside:
        outer = [f for f in stack if f.filename != THIS and "torch/utils" not in f.filename]
        last = outer[-1] if outer else stack[-1]
        return f"{last.filename}:{last.lineno} {last.name} (outside repcompare)", ""
    first = inside[0]
    source = (linecache.getline(first.filename, first.lineno) or "").strip()
    where = f"{os.path.relpath(first.filename, ROOT)}:{first.lineno} {first.name}: `{source}`"
    beyond = list(stack)
    while beyond and (beyond[-1].filename == THIS or any(m in beyond[-1].filename for m in INFRA)):
        beyond.pop()  # this script's hooks and torch's mode/warning machinery
    if beyond and not beyond[-1].filename.startswith(PACKAGE):
        last = beyond[-1]
        where += f" (inside {_short(last.filename)}:{last.lineno} {last.name})"
    chain = " <- ".join(
        f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} {f.name}" for f in inside[1:5]
    )
    return where, chain


class SyncSpy(TorchDispatchMode):
    """Records each tensor op of this process that needs a value from the device, or copies
    across devices blocking or to the host, with the Python stack that called it."""

    def __init__(self, state: LoopState, cuda: bool):
        super().__init__()
        self.state = state
        self.cuda = cuda
        self.pid = os.getpid()
        self.sites: dict[tuple[str, str], Site] = {}

    def classify(self, name: str, args, kwargs, out) -> str | None:
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        host_value = first is not None and not first.is_cuda
        if self.cuda and host_value and name in SCALAR_READS | DATA_DEPENDENT:
            return None  # a host tensor's value: no device involved
        if name in SCALAR_READS:
            return f"{name} (value read on the host)"
        if name in DATA_DEPENDENT:
            return f"{name} (output size depends on the data)"
        if name in COPIES and first is not None:
            if name == "aten::copy_":
                dst, src = args[0], args[1] if len(args) > 1 else kwargs.get("src")
                blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
            else:
                src, dst = first, out
                blocking = not kwargs.get("non_blocking", False)
            if not (isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor)):
                return None
            if src.device == dst.device:
                return None
            direction = f"{src.device.type}->{dst.device.type}"
            if blocking:
                return f"{name} blocking copy {direction}"
            if src.device.type != "cpu" and dst.device.type == "cpu":
                return f"{name} non-blocking copy {direction}"
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if os.getpid() != self.pid:  # a data-loader worker forked from this thread
            return out
        what = self.classify(func._schema.name, args, kwargs, out)
        if what is not None:
            where, chain = describe(traceback.extract_stack())
            site = self.sites.setdefault((where, what), Site(where, chain, what))
            site.per_label[self.state.label()] += 1
        return out


def normalised(name: str) -> str:
    for suffix in ("_v2", "_ptsz", "_ptds"):
        name = name.replace(suffix, "")
    return name


def memcpy_direction(event) -> str:
    """DtoH, HtoD, DtoD from the device copies launched by the op around a runtime call."""
    node = event
    for _ in range(3):
        node = node.cpu_parent
        if node is None:
            break
        kinds = {k.name for k in node.kernels if "Memcpy" in k.name or "memcpy" in k.name}
        for direction in ("DtoH", "HtoD", "DtoD"):
            if any(direction in kind for kind in kinds):
                return direction
    return "direction unknown"


def range_of(event, ranges: list) -> str:
    """The loop range an event lies in: by its profiler parents, else by time and thread."""
    node = event.cpu_parent
    while node is not None:
        if node.name.startswith(RANGE):
            return node.name[len(RANGE) :].split("/")[0]
        node = node.cpu_parent
    start = event.time_range.start
    for begin, end, thread, label in ranges:
        if begin <= start <= end and thread == event.thread:
            return label
    return "outside"


def profile_counts(prof) -> tuple[collections.defaultdict, int]:
    """``counts[event][label]`` for the events of interest; the number of events seen."""
    events = list(prof.events())
    ranges = [
        (e.time_range.start, e.time_range.end, e.thread, e.name[len(RANGE) :].split("/")[0])
        for e in events
        if e.name.startswith(RANGE)
    ]
    counts: collections.defaultdict = collections.defaultdict(collections.Counter)
    for event in events:
        name = normalised(event.name)
        if name in VALUE_OPS or name in RUNTIME_WAITS:
            if name == "cudaMemcpyAsync" or name == "cudaMemcpy":
                name = f"{name} ({memcpy_direction(event)})"
            counts[name][range_of(event, ranges)] += 1
        for kernel in getattr(event, "kernels", []):
            if kernel.name.startswith("Memcpy"):
                counts[f"GPU copy: {kernel.name}"][range_of(event, ranges)] += 1
    return counts, len(events)


def stats(per_label: collections.Counter, batches: int) -> tuple[int, str, str, int, int]:
    """(first batch, later batches mean, min-max, total in loop, outside)."""
    first = per_label.get("batch0", 0)
    later = [per_label.get(f"batch{i}", 0) for i in range(1, batches)]
    mean = f"{sum(later) / len(later):.1f}" if later else "n/a"
    spread = f"{min(later)}-{max(later)}" if later else "n/a"
    inside = sum(per_label.get(f"batch{i}", 0) for i in range(batches))
    outside = sum(v for k, v in per_label.items() if not k.startswith("batch"))
    return first, mean, spread, inside, outside


def instrument(state: LoopState):
    """Wrap the batch loop's two steps in named ranges; returns the undo function."""
    original_stream, original_update = run_analysis.aligned_batches, cka_analysis.CKARun.update

    def aligned_batches(*args, **kwargs):
        stream = original_stream(*args, **kwargs)
        batches = stream.batches

        def marked():
            number = 0
            while True:
                state.batch, state.phase = number, "fetch"
                with record_function(f"{RANGE}batch{number}/fetch"):
                    try:
                        item = next(batches)
                    except StopIteration:
                        break
                yield item
                number += 1
                state.batches = number
            state.batch, state.phase = None, "after the loop"

        stream.batches = marked()
        return stream

    def update(self, *args, **kwargs):
        state.phase = "update"
        with record_function(f"{RANGE}batch{state.batch}/update"):
            return original_update(self, *args, **kwargs)

    run_analysis.aligned_batches, cka_analysis.CKARun.update = aligned_batches, update

    def undo():
        run_analysis.aligned_batches, cka_analysis.CKARun.update = original_stream, original_update

    return undo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(parser)
    work = Workload.from_args(parser.parse_args())
    cuda = work.device.type == "cuda"
    modules = work.modules()
    state = LoopState()
    spy = SyncSpy(state, cuda)
    debug_sites: dict[tuple[str, str], Site] = {}
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if "synchroniz" not in text:
            return shown(message, category, filename, lineno, file, line)
        where, chain = describe(traceback.extract_stack())
        what = text.split("\n")[0][:80]
        site = debug_sites.setdefault((where, what), Site(where, chain, what))
        site.per_label[state.label()] += 1
        return None

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    undo = instrument(state)
    try:
        with warnings.catch_warnings(), Stopwatch() as watch:
            warnings.simplefilter("always")
            warnings.showwarning = showwarning
            if cuda:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                with profile(activities=activities, record_shapes=False) as prof, spy:
                    result = work.cka(modules)
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode("default")
    finally:
        undo()
    batches = state.batches
    counts, seen = profile_counts(prof)
    title = (
        f"{','.join(work.models)} (random init, seeds 0 and 1, on {work.device.type}), "
        f"{len(result.matrix.names_a)} x {len(result.matrix.names_b)} layers ({work.layers}, "
        f"--reduce {work.reduce}), {work.images} built-in images at {work.image_size}px, "
        f"batch {work.batch_size}: {batches} batches; {device_name(work.device)}, torch "
        f"{torch.__version__}; {watch.seconds:.1f} s with the profiler ({seen} events)\n\n"
        "**Profiler events in the batch loop** (fetch + capture + update of each batch): "
        "waits, device-to-host reads, copies by direction, CUDA allocations"
    )
    if not cuda:
        title += "\n\nCUDA sync events (cudaStreamSynchronize, cudaMemcpy*, ...): n/a on CPU."
    columns = ("event", "batch 0", "each later batch (mean)", "min-max", "total in loop", "outside")
    rows = [(event, *stats(counts[event], batches)) for event in sorted(counts)]
    if not rows:
        rows = [("(none of the watched events)", 0, 0, "", 0, 0)]
    report(rows, title, columns=columns)
    print(
        "\nThe profiler counts nested events at every level (``aten::item`` holds an "
        "``aten::_local_scalar_dense``, which on CUDA holds a ``cudaMemcpyAsync`` and a "
        "``cudaStreamSynchronize``; some ops call themselves once more), so these counts "
        "are not additive; the call-site table below counts each Python-level call once."
    )
    kind = "synchronise" if cuda else "would synchronise on CUDA"
    print(
        f"\n**Call sites in the batch loop that {kind}** (dispatch mode: every tensor op of "
        "the main thread; innermost repcompare frame, then the frames it was reached from)\n"
    )
    columns = (
        "#",
        "call site",
        "reached from",
        "op",
        "batch 0",
        "each later batch",
        "total in loop",
    )
    rows = []
    steady = 0.0
    listed = sorted(spy.sites.values(), key=lambda s: -sum(s.per_label.values()))
    for site in listed:
        first, mean, _, inside, _ = stats(site.per_label, batches)
        if not inside:
            continue
        steady += float(mean) if mean != "n/a" else first
        rows.append((len(rows) + 1, site.where, site.chain, site.what, first, mean, inside))
    sites = len(rows)
    if not rows:
        rows = [("", "none", "", "", 0, 0, 0)]
    print(markdown_table(rows, columns, align="rlllrrr"))
    outside_sites = [s for s in listed if stats(s.per_label, batches)[4]]
    if outside_sites:
        print("\nOutside the batch loop (setup and result; once per run):\n")
        for site in outside_sites:
            labels = ", ".join(
                f"{k} {v}" for k, v in site.per_label.items() if not k.startswith("batch")
            )
            print(f"- {site.where} ({site.what}): {labels}")
    if cuda:
        print("\n**torch.cuda.set_sync_debug_mode('warn')**: synchronising CUDA calls\n")
        columns = (
            "call site",
            "reached from",
            "warning",
            "batch 0",
            "each later batch",
            "total in loop",
        )
        rows = []
        for site in sorted(debug_sites.values(), key=lambda s: -sum(s.per_label.values())):
            first, mean, _, inside, outside = stats(site.per_label, batches)
            total = f"{inside} (+{outside} outside)"
            rows.append((site.where, site.chain, site.what, first, mean, total))
        if not rows:
            rows = [("none", "", "", 0, 0, 0)]
        print(markdown_table(rows, columns, align="lllrrr"))
    else:
        print("\nset_sync_debug_mode: n/a on CPU.")
    print(
        f"\nVERDICT: {steady:.1f} host synchronisations per steady-state batch "
        f"({'measured on CUDA' if cuda else 'would-be, seen on CPU'}) at {sites} call sites "
        "(aim: 0)"
    )


if __name__ == "__main__":
    main()
