"""Text in pictures that is never clipped: titles wrapped to the width they have."""

from __future__ import annotations

import textwrap

TITLE_POINTS = 11
EM_PER_CHARACTER = 0.55  # the mean width of a character of the default font, in em


def wrapped(title: str, inches: float, points: float = TITLE_POINTS) -> str:
    """``title`` with each of its lines wrapped to ``inches`` of text at ``points`` size."""
    width = max(20, int(inches * 72 / (EM_PER_CHARACTER * points)))
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))
