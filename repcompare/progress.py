"""What a run tells its user while it works: notes about the models, warnings and a
progress bar on stderr, shown only when asked (the CLI always asks; the Python API when
``progress=True``). In a torchrun job only rank 0 tells anything, but a failure on any
rank is told."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console


def torchrun_world() -> int:
    """How many processes torchrun (or SLURM's srun) started for this job (``WORLD_SIZE``);
    1 outside one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    """This process's rank in a torchrun job (``RANK``), 0 outside one."""
    return int(os.environ.get("RANK", "0")) if torchrun_world() > 1 else 0


STDERR = Console(stderr=True, highlight=False, soft_wrap=True, quiet=process_rank() != 0)


def failure_console() -> tuple[Console, str]:
    """Where a failure is told, and the prefix naming the rank that failed (none on rank 0)."""
    rank = process_rank()
    if rank == 0:
        return STDERR, ""
    return Console(stderr=True, highlight=False, soft_wrap=True), f"rank {rank}: "


# advance(done_now, total): what a progress bar is given after each batch
Advance = Callable[[int, int], None]


@dataclass(frozen=True)
class Feedback:
    """Notes and progress of one run; silent unless ``shown``."""

    shown: bool = False

    def note(self, text: str, style: str = "dim") -> None:
        """One line of information (rich markup) about what is being loaded or done."""
        if self.shown:
            STDERR.print(f"[{style}]{text}[/]")

    @contextmanager
    def bar(
        self, description: str, *, completed: int = 0, unit: str = "images"
    ) -> Iterator[Bar | None]:
        """Progress of one pass: a transient bar with the count, the rate and an ``info``
        text on a terminal, else (stderr piped to a log) one line every ``LOG_SECONDS`` and
        at the end; yields a ``Bar``, ``bar(done_now, total)`` (None when silent).
        ``completed``: done before."""
        if not self.shown:
            yield None
            return
        if not STDERR.is_terminal:
            yield LogLines(description, unit, completed)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn(f"[bold]{description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=STDERR, transient=True) as progress:
            task = progress.add_task(description, total=None, completed=completed, rate="", info="")
            yield TerminalBar(progress, task, unit)


LOG_SECONDS = 5.0  # a progress line to a log at most this often


class Bar:
    """Progress shown while a pass runs: ``bar(done_now, total)`` after each batch; ``info``
    is shown beside the rate (extract: the megabytes written)."""

    def __init__(self, unit: str):
        self.unit, self.info = unit, ""
        self.started, self.done = time.perf_counter(), 0

    def rate(self) -> float:
        """Items per second since the bar started (this run's items only)."""
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def __call__(self, done_now: int, total: int) -> None:
        self.done += done_now
        self.show(done_now, total)

    def show(self, done_now: int, total: int) -> None:
        """Show the progress after ``done_now`` more items of ``total``."""
        raise NotImplementedError


class TerminalBar(Bar):
    """A rich progress bar on a terminal."""

    def __init__(self, progress, task, unit: str):
        super().__init__(unit)
        self.progress, self.task = progress, task

    def show(self, done_now: int, total: int) -> None:
        self.progress.update(
            self.task, advance=done_now, total=total, rate=f"{self.rate():.0f}/s", info=self.info
        )


class LogLines(Bar):
    """Progress as plain lines, for a log: ``description: done/total unit, rate/s, info``,
    at most every ``LOG_SECONDS`` and when the pass ends."""

    def __init__(self, description: str, unit: str, completed: int = 0):
        super().__init__(unit)
        self.description, self.completed = description, completed
        self.shown_at = self.started

    def show(self, done_now: int, total: int) -> None:
        now = time.perf_counter()
        done = self.completed + self.done
        if now - self.shown_at < LOG_SECONDS and done < total:
            return
        self.shown_at = now
        info = f", {self.info}" if self.info else ""
        STDERR.print(
            f"{self.description}: {done}/{total} {self.unit}, {self.rate():.0f} {self.unit}/s"
            f"{info}",
            markup=False,
        )


SILENT = Feedback()
