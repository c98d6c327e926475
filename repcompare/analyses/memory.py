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


def stream_bytes(widths: list[list[int]], batch: int, views: int, gram_first: bool) -> int:
    """Peak bytes of one aligned batch of sides with these layer ``widths`` (one list per
    side), in float32: every view of every side's activations at once; Gram-first, one view
    of the widest side's activations next to every layer's ``features_or_gram`` (at most
    ``batch x min(width, batch)`` values)."""
    if not gram_first:
        return 4 * batch * views * sum(map(sum, widths))
    kept = views * sum(batch * min(w, batch) for side in widths for w in side)
    return 4 * (batch * max(map(sum, widths)) + kept)


def minibatch_bytes(layers_a: int, layers_b: int | None, batch: int) -> int:
    """Bytes of a ``MinibatchCKA`` batch update (float64): the stacked U-centred Grams of
    both sides and the cross terms (``layers_b=None``: symmetric)."""
    stacked = layers_a + (layers_b or 0)
    return 8 * (stacked * batch * batch + 3 * layers_a * (layers_b or layers_a))
