"""The one batch plan: ``batch_bounds`` and everything that follows it."""

import numpy as np
import pytest

from repcompare.data.batches import InputsDataset, batch_bounds, make_loader
from repcompare.data.sources import open_source


@pytest.mark.parametrize(
    ("n", "size", "expected"),
    [
        (65, 64, [(0, 65)]),
        (67, 64, [(0, 67)]),
        (68, 64, [(0, 64), (64, 68)]),
        (64, 64, [(0, 64)]),
        (10, 4, [(0, 4), (4, 10)]),
        (12, 4, [(0, 4), (4, 8), (8, 12)]),
        (3, 64, [(0, 3)]),
        (0, 8, []),
    ],
)
def test_a_last_batch_under_four_rows_joins_the_one_before(n, size, expected):
    assert batch_bounds(n, size) == expected


@pytest.mark.parametrize("n", range(4, 40))
def test_bounds_cover_every_row_once_and_resume_at_any_batch(n):
    bounds = batch_bounds(n, 8)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(n))
    assert all(stop - start >= 4 for start, stop in bounds)
    for first, (start, _) in enumerate(bounds):
        tail = [(a - start, b - start) for a, b in bounds[first:]]
        assert batch_bounds(n - start, 8) == tail


def test_the_loader_yields_the_planned_batches():
    source = open_source("builtin:11:16")
    dataset = InputsDataset(source, np.arange(11), [], None, 1, 16, 0)
    loaded = [batch["index"].tolist() for batch in make_loader(dataset, 4, 0)]
    assert loaded == [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9, 10]]
