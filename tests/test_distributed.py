"""The division of a torchrun job's work (the job itself runs in tests/test_cli_torchrun.py)."""

import itertools
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from repcompare import distributed
from repcompare.cli import main
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


def test_the_progress_of_rank_0_counts_every_process(tmp_path, monkeypatch):
    """Two ranks' counters played in one process, through a real process group's store."""
    rendezvous = f"file://{tmp_path / 'rendezvous'}"
    dist.init_process_group("gloo", init_method=rendezvous, rank=0, world_size=1)
    try:
        seen: list[tuple[int, int]] = []
        monkeypatch.setattr(distributed, "_progress_keys", itertools.count())
        on_rank_0 = Job(0, 2).progress(lambda done, total: seen.append((done, total)))
        monkeypatch.setattr(distributed, "_progress_keys", itertools.count())  # the same key
        on_rank_1 = Job(1, 2).progress(None)
        on_rank_0(16, 96)
        on_rank_1(16, 96)
        on_rank_1(16, 96)
        on_rank_0(16, 96)
        assert seen == [(16, 96), (48, 96)]
    finally:
        dist.destroy_process_group()


def test_the_demo_says_it_runs_in_one_process_under_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["demo", "--out", "never-written"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: repcompare demo runs in one process; launch it without torchrun "
        "(extract, cka, invariance, class-fit, atlas and study run across processes)"
    )
    assert not Path("never-written").exists()


def test_a_machine_with_fewer_gpus_than_processes_is_one_sentence(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match=r"process 1 of this machine has no GPU of its own"):
        Job(1, 2, local_rank=1).device(torch.device("cuda"))
