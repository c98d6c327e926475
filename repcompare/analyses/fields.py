"""Typed settings and provenance as plain dictionaries (for JSON and ``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any


def set_fields(record: Any) -> dict:
    """``asdict(record)`` without the optional fields left at None (they do not apply)."""
    return {k: v for k, v in asdict(record).items() if v is not None}
