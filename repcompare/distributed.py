"""One command run by several processes: a ``torchrun`` job (``torch.distributed``).

torchrun starts K processes with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a
rendezvous in their environment; each runs the same command. ``current_job()``
joins the process group (gloo for tensors on the CPU, NCCL for CUDA ones) and
says which process this is. The work divides by batches of the one seeded
sample order: of B batches, rank r takes the contiguous batches
``[r B // K, (r + 1) B // K)``, so every batch holds the images it holds in one
process and the shares, in rank order, are the batches in order. Each process
accumulates its share; ``Job.sum`` (``all_reduce`` of float64 sums) and
``Job.gather`` (every rank's list, in rank order) combine the shares.

No process waits for another while it works through its batches: collectives
come only before and after them. A process that fails prints its sentence and
exits non-zero; torchrun then stops the others, so the job exits non-zero and
nothing is marked complete. Each process records its host and PID in the job's
key-value store when it joins, and a process that fails records that it did
(``record_failure``), so that the others name the rank that stopped
(``stopped_ranks``) in their own sentence, whether a collective fails under them
or torchrun stops them.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from repcompare.errors import InputError, RunError
from repcompare.progress import Advance, torchrun_world
from repcompare.similarity.shares import Combinable


@dataclass(frozen=True)
class Job:
    """This process's place in the job: ``rank`` of ``world`` processes, ``local_rank`` on
    its machine. ``Job()`` is the one process of a run without torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process prints and writes the outputs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def share(self, num_batches: int) -> range:
        """This rank's contiguous batches of ``num_batches``; an InputError when there are
        fewer batches than processes."""
        if num_batches < self.world:
            raise InputError(
                f"{num_batches} batches cannot be shared by {self.world} processes; use more "
                "--num-samples, a smaller --batch-size or fewer processes"
            )
        return range(
            self.rank * num_batches // self.world, (self.rank + 1) * num_batches // self.world
        )

    def device(self, device: torch.device) -> torch.device:
        """``device`` for this process: a CUDA device becomes ``cuda:LOCAL_RANK``; an
        InputError when this machine has fewer GPUs than processes."""
        if not self.distributed or device.type != "cuda":
            return device
        if self.local_rank >= torch.cuda.device_count():
            raise InputError(
                f"process {self.local_rank} of this machine has no GPU of its own (there are "
                f"{torch.cuda.device_count()}); start at most that many with --nproc-per-node, "
                "or pass --device cpu"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def sum(self, tensor: torch.Tensor) -> None:
        """Replace ``tensor`` by its sum over every process, in place."""
        if self.distributed:
            with _peers_told():
                dist.all_reduce(tensor)

    def gather(self, value: object) -> list:
        """Every process's ``value`` (picklable), in rank order."""
        if not self.distributed:
            return [value]
        values: list = [None] * self.world
        with _peers_told():
            dist.all_gather_object(values, value)
        return values

    def combine(self, accumulator: Combinable) -> None:
        """Make ``accumulator``, fed this process's share, hold every process's batches (see
        ``similarity.shares``); nothing to do in a process that runs alone."""
        if self.distributed:
            accumulator.combine(self.sum, self.gather)

    def wait_for_all(self) -> None:
        """Return once every process has come here."""
        if self.distributed:
            with _peers_told():
                dist.barrier()

    def progress(self, callback: Advance | None) -> Advance | None:
        """``callback(done_now, total)`` counting every process's examples (through the job's
        key-value store, which no process waits on); give the callback on rank 0 and None
        on the others, which then only count."""
        if not self.distributed:
            return callback
        store = dist.distributed_c10d._get_default_store()
        key = f"repcompare/progress/{next(_progress_keys)}"
        shown = 0

        def counted(done_now: int, total: int) -> None:
            nonlocal shown
            done = store.add(key, done_now)
            if callback is not None:
                callback(done - shown, total)
                shown = done

        return counted


class PeerStoppedError(RunError):
    """Another process of the job failed or was stopped: this one's collective failed."""


@contextmanager
def _peers_told() -> Iterator[None]:
    """A collective that failed (gloo and NCCL raise RuntimeError when another process
    stopped) as a RunError; ``--debug`` shows the backend's own error."""
    try:
        yield
    except RuntimeError as error:
        stopped = stopped_ranks_text() or "another process"
        raise PeerStoppedError(
            f"{stopped} of this torchrun job failed or was stopped (its message says why); "
            "nothing was marked complete, rerun the same command to resume"
        ) from error


def _store():
    """The job's key-value store (None outside a joined job)."""
    if not dist.is_initialized():
        return None
    return dist.distributed_c10d._get_default_store()


def _running(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_failure() -> None:
    """Tell the other processes of the job that this one failed (best effort)."""
    store = _store()
    if store is not None:
        with contextlib.suppress(Exception):
            store.set(f"repcompare/failed/{dist.get_rank()}", "1")


def stopped_ranks() -> list[int]:
    """The other ranks of the job that recorded a failure, or whose process on this machine
    is gone (SIGKILL leaves no record); empty when none can be named."""
    store = _store()
    if store is None:
        return []
    here, me, stopped = socket.gethostname(), dist.get_rank(), []
    for rank in range(dist.get_world_size()):
        if rank == me:
            continue
        try:
            if store.check([f"repcompare/failed/{rank}"]):
                stopped.append(rank)
                continue
            host, _, pid = store.get(f"repcompare/pid/{rank}").decode().rpartition(":")
        except Exception:  # the store went with the job: nothing more to learn
            break
        if host == here and not _running(int(pid)):
            stopped.append(rank)
    return stopped


def stopped_ranks_text() -> str | None:
    """``rank 1`` (or ``ranks 1, 3``): the ranks that stopped; None when none can be named."""
    stopped = stopped_ranks()
    if not stopped:
        return None
    return f"rank{'s' if len(stopped) > 1 else ''} {', '.join(map(str, stopped))}"


ONE_PROCESS = Job()
_progress_keys = itertools.count()


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that torchrun (or SLURM's srun) started."""
    return torchrun_world() > 1


def current_job() -> Job:
    """This process's ``Job``, joining the process group on first use; ``Job()`` when the
    process runs alone."""
    if not launched_by_torchrun():
        return ONE_PROCESS
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        atexit.register(dist.destroy_process_group)
        _store().set(f"repcompare/pid/{dist.get_rank()}", f"{socket.gethostname()}:{os.getpid()}")
    return Job(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def one_process(command: str) -> None:
    """An InputError when ``command``, which runs in one process, was launched by torchrun."""
    if launched_by_torchrun():
        raise InputError(
            f"repcompare {command} runs in one process; launch it without torchrun (extract, "
            "cka, invariance, class-fit, atlas and study run across processes)"
        )
