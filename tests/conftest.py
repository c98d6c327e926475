"""Fixtures shared by test modules across the package's parts."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: beside other work on a 2-core machine, two OpenMP
    threads make a forward pass tens of times slower. Both sides of every comparison in
    the module run alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
