"""Typed settings and provenance as plain dictionaries (for JSON and ``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np


def set_fields(record: Any) -> dict:
    """``asdict(record)`` without the optional fields left at None (they do not apply)."""
    return {k: v for k, v in asdict(record).items() if v is not None}


def json_array(values: Any) -> np.ndarray | None:
    """A JSON list (of lists) of numbers as a float64 array, null as NaN; None stays None."""
    if values is None:
        return None
    return np.array(values, dtype=object).astype(float)
