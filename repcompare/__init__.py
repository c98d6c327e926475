"""repcompare: compare the layer representations of vision networks.

The Python API is one function per command (``repcompare.layers``, ``extract``,
``cka``, ``invariance``, ``class_fit``, ``study``, ``atlas``; see ``repcompare.api``).
They are imported on first use, so that ``import repcompare`` (and the CLI's ``--help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from repcompare.errors import InputError, RepcompareError, RepcompareWarning, RunError

if TYPE_CHECKING:
    from repcompare.api import atlas, cka, class_fit, extract, invariance, layers, study

API = ("layers", "extract", "cka", "invariance", "class_fit", "study", "atlas")

__all__ = [
    "InputError",
    "RepcompareError",
    "RepcompareWarning",
    "RunError",
    "atlas",
    "cka",
    "class_fit",
    "extract",
    "invariance",
    "layers",
    "study",
]


def __getattr__(name: str):
    if name in API:
        from repcompare import api

        return getattr(api, name)
    raise AttributeError(f"module 'repcompare' has no attribute {name!r}")
