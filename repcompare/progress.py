"""What a run tells its user while it works: notes about the models, warnings and a
progress bar on stderr, shown only when asked (the CLI always asks; the Python API when
``progress=True``). In a torchrun job only rank 0 tells anything, but a failure on any
rank is told."""

from __future__ import annotations

import os
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


ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Feedback:
    """Notes and progress of one run; silent unless ``shown``."""

    shown: bool = False

    @property
    def console(self) -> Console | None:
        """The stderr console to draw on, or None when silent."""
        return STDERR if self.shown else None

    def note(self, text: str, style: str = "dim") -> None:
        """One line of information (rich markup) about what is being loaded or done."""
        if self.shown:
            STDERR.print(f"[{style}]{text}[/]")

    @contextmanager
    def bar(self, description: str) -> Iterator[ProgressCallback | None]:
        """A transient progress bar; yields ``progress(done_now, total)`` (None when silent)."""
        if not self.shown:
            yield None
            return
        from rich.progress import Progress

        with Progress(console=STDERR, transient=True) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done, total: bar.update(task, advance=done, total=total)
