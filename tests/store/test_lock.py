"""Sidecar locks: one writer or many readers, the writer named by its PID."""

import os

import pytest

from repcompare.errors import InputError
from repcompare.store.lock import lock_for_reading, lock_for_writing, lock_path


def test_a_writer_excludes_writers_and_readers_and_is_named(tmp_path):
    path = tmp_path / "a.h5"
    with lock_for_writing(path):
        assert lock_path(path).read_text() == f"{os.getpid()}\n"
        with pytest.raises(InputError, match=rf"a.h5 is being written by process {os.getpid()}; "):
            lock_for_writing(path)
        with pytest.raises(InputError, match=rf"being written by process {os.getpid()}; wait"):
            lock_for_reading(path)
    assert not lock_path(path).exists()
    with lock_for_writing(path):
        pass


def test_readers_share_and_keep_writers_out_until_the_last_leaves(tmp_path):
    path = tmp_path / "a.h5"
    first, second = lock_for_reading(path), lock_for_reading(path)
    with pytest.raises(InputError, match="is being read by another process; wait for it"):
        lock_for_writing(path)
    first.release()
    assert lock_path(path).exists()
    with pytest.raises(InputError, match="being read"):
        lock_for_writing(path)
    second.release()
    assert not lock_path(path).exists()
    lock_for_writing(path).release()


def test_a_stale_pid_from_a_killed_writer_is_ignored_and_cleared(tmp_path):
    path = tmp_path / "a.h5"
    lock_path(path).write_text("999999\n")  # left by a writer killed with SIGKILL
    reader = lock_for_reading(path)
    assert lock_path(path).read_text() == ""
    with pytest.raises(InputError, match="being read by another process"):
        lock_for_writing(path)
    reader.release()


def test_a_sidecar_removed_while_being_locked_is_not_trusted(tmp_path, monkeypatch):
    path = tmp_path / "a.h5"
    sidecar = lock_path(path)
    real_open, removed = os.open, []

    def open_then_lose_the_race(name, flags, mode=0o777):
        fd = real_open(name, flags, mode)
        if not removed:  # the previous holder removes the sidecar just after our open
            removed.append(os.fstat(fd).st_ino)
            os.unlink(name)
        return fd

    monkeypatch.setattr(os, "open", open_then_lose_the_race)
    lock = lock_for_writing(path)
    monkeypatch.undo()
    assert removed and os.stat(sidecar).st_ino == os.fstat(lock._held[0][1]).st_ino
    lock.release()


def test_an_unwritable_place_is_an_input_error_and_reading_there_needs_no_lock(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        InputError, match=r"cannot write .*file/a.h5 \(its folder cannot be made or written: "
    ):
        lock_for_writing(blocker / "a.h5")
    lock = lock_for_reading(blocker / "a.h5")
    lock.release()


def test_a_lock_left_unreleased_is_freed_with_its_object(tmp_path):
    path = tmp_path / "a.h5"
    lock_for_reading(path)  # dropped at once, as by a caller that never closes its file
    lock_for_writing(path).release()
    assert not lock_path(path).exists()


@pytest.mark.parametrize("other_name", ["symlink", "dotdot", "hardlink"])
def test_every_name_of_one_file_shares_its_lock(tmp_path, other_name):
    path = tmp_path / "x.h5"
    path.write_bytes(b"data")
    (tmp_path / "sub").mkdir()
    other = {
        "symlink": tmp_path / "link.h5",
        "dotdot": tmp_path / "sub" / ".." / "x.h5",
        "hardlink": tmp_path / "sub" / "hard.h5",
    }[other_name]
    if other_name == "symlink":
        other.symlink_to(path)
    elif other_name == "hardlink":
        os.link(path, other)
    with lock_for_writing(path):
        with pytest.raises(InputError, match=f"being written by process {os.getpid()}"):
            lock_for_writing(other)
        with pytest.raises(InputError, match="being written"):
            lock_for_reading(other)
    with lock_for_reading(other), pytest.raises(InputError, match="being read"):
        lock_for_writing(path)
    assert path.read_bytes() == b"data"


def test_a_writer_that_creates_the_file_then_holds_it_under_its_hard_links(tmp_path):
    path = tmp_path / "x.h5"
    with lock_for_writing(path) as lock:
        path.write_bytes(b"new")
        lock.hold_inode()
        os.link(path, tmp_path / "hard.h5")
        with pytest.raises(InputError, match="being written"):
            lock_for_writing(tmp_path / "hard.h5")
    with lock_for_writing(tmp_path / "hard.h5"):
        pass
