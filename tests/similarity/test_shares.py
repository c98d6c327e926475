"""Accumulators fed shares of the batches and combined equal one fed every batch.

The processes of a torchrun job are played by threads here: ``Collectives`` gives each
its ``sum_across`` and ``gather``, which meet at a barrier like ``all_reduce`` and
``all_gather_object`` do (the real collectives run in tests/test_cli_torchrun.py).
"""

import threading

import numpy as np
import pytest
import torch

from repcompare.similarity import CrowdingStats, DebiasedCKA, ExactLinearCKA, MinibatchCKA
from repcompare.similarity.shares import Combinable
from tests.support.layers import layers


class Collectives:
    """``sum_across`` and ``gather`` for ``world`` threads, each calling them in the same order."""

    def __init__(self, world: int):
        self.world = world
        self.barrier = threading.Barrier(world)
        self.slots: list = [None] * world

    def exchange(self, rank: int, value) -> list:
        self.slots[rank] = value
        self.barrier.wait()
        values = list(self.slots)
        self.barrier.wait()  # everyone has read before the next exchange overwrites
        return values

    def of(self, rank: int):
        def sum_across(tensor: torch.Tensor) -> None:
            total = sum(t.clone() for t in self.exchange(rank, tensor.clone()))
            tensor.copy_(total)

        return sum_across, lambda value: self.exchange(rank, value)


def combined(build, batches: list, world: int):
    """``world`` accumulators, rank r fed the r-th contiguous share of ``batches``, combined;
    rank 0's accumulator."""
    shares = np.array_split(np.arange(len(batches)), world)
    accumulators = [build() for _ in range(world)]
    for accumulator, share in zip(accumulators, shares, strict=True):
        for i in share:
            accumulator.update(*batches[i])
    collectives = Collectives(world)
    errors: list[BaseException] = []

    def combine(rank: int) -> None:
        try:
            accumulators[rank].combine(*collectives.of(rank))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=combine, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return accumulators


def whole(build, batches: list):
    accumulator = build()
    for batch in batches:
        accumulator.update(*batch)
    return accumulator


def split(rng, n: int, size: int, symmetric: bool) -> list:
    a = [x.float() for x in layers(rng, n, [9, 20, 4])]
    b = None if symmetric else [x.float() for x in layers(rng, n, [6, 15])]
    starts = range(0, n, size)
    return [
        ([x[s : s + size] for x in a], None if b is None else [y[s : s + size] for y in b])
        for s in starts
    ]


ESTIMATORS = {
    "minibatch": lambda symmetric: MinibatchCKA(
        ["a0", "a1", "a2"], None if symmetric else ["b0", "b1"], keep_batch_terms=True
    ),
    "minibatch rbf": lambda symmetric: MinibatchCKA(
        ["a0", "a1", "a2"], None if symmetric else ["b0", "b1"], kernel="rbf"
    ),
    "exact": lambda symmetric: ExactLinearCKA(
        ["a0", "a1", "a2"], None if symmetric else ["b0", "b1"]
    ),
    "debiased": lambda symmetric: DebiasedCKA(
        ["a0", "a1", "a2"], None if symmetric else ["b0", "b1"]
    ),
}


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_combined_shares_equal_one_accumulator_of_every_batch(rng, name, symmetric, world):
    batches = split(rng, 7 * 16 + 5, 16, symmetric)  # 8 batches, the last of 5 rows
    build = lambda: ESTIMATORS[name](symmetric)  # noqa: E731
    reference = whole(build, batches).result()
    for accumulator in combined(build, batches, world):
        assert isinstance(accumulator, Combinable)
        result = accumulator.result()
        assert result.n_examples == reference.n_examples
        np.testing.assert_allclose(result.values, reference.values, rtol=0, atol=1e-12)
        assert result.degenerate_a == reference.degenerate_a


def test_the_bootstrap_of_combined_shares_is_the_one_process_bootstrap(rng):
    batches = split(rng, 10 * 16, 16, symmetric=False)

    def build():
        return ESTIMATORS["minibatch"](False)

    reference = whole(build, batches).bootstrap(50, seed=3)
    for accumulator in combined(build, batches, 3):
        low, high = accumulator.bootstrap(50, seed=3)
        np.testing.assert_array_equal(low, reference[0])
        np.testing.assert_array_equal(high, reference[1])


def test_combined_crowding_equals_one_pass(rng):
    x = torch.from_numpy(rng.normal(size=(96, 12)))
    labels = torch.from_numpy(rng.integers(0, 4, size=96))
    batches = [([x[s : s + 16]], labels[s : s + 16]) for s in range(0, 96, 16)]

    def build():
        return CrowdingStats(["l0"], 4)

    reference = whole(build, batches).result()
    for accumulator in combined(build, batches, 2):
        result = accumulator.result()
        for measure, value in reference.items():
            np.testing.assert_allclose(result[measure], value, rtol=1e-12, atol=0)
