"""The division of a torchrun job's work (the job itself runs in tests/test_cli_torchrun.py)."""

import pytest

from repcompare.distributed import Job, current_job
from repcompare.errors import InputError


def test_shares_are_contiguous_balanced_and_in_rank_order():
    for batches_, world in [(4, 2), (5, 2), (7, 3), (3, 3), (100, 8)]:
        shares = [Job(rank, world).share(batches_) for rank in range(world)]
        assert [b for share in shares for b in share] == list(range(batches_))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(InputError, match="2 batches cannot be shared by 3 processes"):
        Job(0, 3).share(2)


def test_a_process_without_torchrun_is_the_whole_job(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    job = current_job()
    assert (job.rank, job.world, job.main, job.distributed) == (0, 1, True, False)
    assert job.share(3) == range(3)
    assert job.gather("x") == ["x"]
