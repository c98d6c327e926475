"""Results as plain JSON: typed settings as dictionaries, numbers with NaN as null, and
back (``json_array``)."""

from __future__ import annotations

import math
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


def is_number(value: Any) -> bool:
    """A real number (float or int, numpy ones too), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_undefined(value: Any) -> bool:
    """None, or a NaN number: a value that does not exist (a constant layer, no token)."""
    return value is None or (is_number(value) and math.isnan(value))


def json_number(value: float | None) -> float | None:
    """JSON has no NaN: an undefined value is null."""
    return None if is_undefined(value) else float(value)


def json_matrix(values: np.ndarray | None) -> list[list[float | None]] | None:
    """A matrix as nested lists, NaN as null."""
    return None if values is None else [[json_number(v) for v in row] for row in values]


def json_records(records: list[dict]) -> list[dict]:
    """``records`` with every float JSON-ready (NaN as null)."""
    return [
        {k: json_number(v) if isinstance(v, float) else v for k, v in r.items()} for r in records
    ]


def records_document(records: list[dict], result, **context) -> dict:
    """The JSON document of a per-layer command: the records (NaN as null), ``context``
    (fingerprints), the result's settings, each model's provenance and the seconds taken."""
    return {
        "records": json_records(records),
        **context,
        "settings": result.settings.to_dict(),
        "provenance": {label: p.to_dict() for label, p in result.provenance.items()},
        "seconds": result.seconds,
    }


# where a value and its 95% interval stand in a result's JSON document: one path (a list
# of keys and indices) each, the interval's None when there is none
ValuePaths = tuple[list, list | None, list | None]


def record_paths(
    records: list[dict], key: str, interval: tuple[str, str] | None, **match: Any
) -> ValuePaths | None:
    """The paths of ``key`` (and of the ``interval`` keys, when the record holds them) in
    the first of the document's ``records`` with the ``match``ing fields; None if none."""
    for k, record in enumerate(records):
        if all(record[name] == value for name, value in match.items()):
            if interval is None or is_undefined(record.get(interval[0])):
                return ["records", k, key], None, None
            low, high = interval
            return ["records", k, key], ["records", k, low], ["records", k, high]
    return None
