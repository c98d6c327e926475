"""Accumulators fed by several processes, each with its share of the batches, combined.

A job of K processes (``repcompare.distributed``) gives rank r consecutive
batches, ranks in batch order. Each process feeds its accumulator its share;
``combine(sum_across, gather)`` then makes every process's accumulator hold all
batches: ``sum_across(t)`` replaces the float64 tensor ``t`` by its sum over the
processes (``all_reduce``), ``gather(v)`` returns every process's ``v`` in rank
order. Sums combine to the one-process sums up to float64 rounding; gathered
per-batch terms (the bootstrap's) are the one-process terms exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

SumAcross = Callable[[torch.Tensor], None]
Gather = Callable[[object], list]


@runtime_checkable
class Combinable(Protocol):
    """An accumulator whose shares of the batches can be combined (see module docstring)."""

    def combine(self, sum_across: SumAcross, gather: Gather) -> None: ...
