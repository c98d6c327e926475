"""A refusal before a computation that would not fit in memory."""

from __future__ import annotations

import os

from repcompare.errors import InputError

MEMORY_FRACTION = 0.5


def available_memory() -> int:
    """Bytes of physical memory free now."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse (InputError naming ``what`` and ``fix``) when ``needed`` bytes exceed half the free
    memory."""
    available = available_memory()
    if needed > MEMORY_FRACTION * available:
        raise InputError(
            f"{what} needs about {needed / 1e9:.1f} GB, more than half of the "
            f"{available / 1e9:.1f} GB available; {fix}"
        )
