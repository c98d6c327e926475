"""A fixed seeded subset of examples, for measures that need the whole sample at once."""

from __future__ import annotations

import numpy as np


def fixed_sample(n: int, m: int, seed: int = 0) -> np.ndarray:
    """Ascending indices of ``min(m, n)`` distinct examples out of ``n``, fixed by ``seed``.

    The first ``m`` of ``numpy.random.default_rng(seed).permutation(n)``, sorted:
    the same (n, m, seed) always gives the same subset, and a larger m with the
    same seed gives a superset.
    """
    if n < 0 or m < 0:
        raise ValueError(f"n and m must be non-negative, got n={n}, m={m}")
    chosen = np.random.default_rng(seed).permutation(n)[: min(m, n)]
    return np.sort(chosen).astype(np.int64)
