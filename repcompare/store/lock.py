"""Advisory locks that keep a writer and other users of one activation file apart.

Every user of ``a.h5`` first takes a non-blocking ``flock`` on the sidecar
``.a.h5.lock`` beside it: exclusive for a writer (which records its PID in
it), shared for readers. The lock is taken before the activation file is
opened or truncated, so a file in use is never overwritten. The last holder
removes the sidecar while still holding it; whoever locked a sidecar that
was removed meanwhile (its path no longer names the locked inode) retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from repcompare.errors import InputError


def lock_path(path: Path) -> Path:
    """The sidecar lock file of ``path``."""
    return path.with_name(f".{path.name}.lock")


class FileLock:
    """A held lock on an activation file; ``release`` (or leaving the ``with``) frees it."""

    def __init__(self, sidecar: Path, fd: int | None):
        self.sidecar, self._fd = sidecar, fd

    def release(self) -> None:
        """Free the lock, removing the sidecar when no one else holds it."""
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.sidecar.unlink(missing_ok=True)
        except BlockingIOError:
            pass  # another reader still holds it and will remove it
        finally:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        """A file never closed by its user frees its lock with it (quietly at exit)."""
        with contextlib.suppress(Exception):
            self.release()

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def _writer_pid(sidecar: Path) -> str | None:
    """The PID a writer recorded in ``sidecar`` (readers leave it empty)."""
    try:
        pid = sidecar.read_text().strip()
    except OSError:
        return None
    return pid if pid.isdigit() else None


def _acquire(sidecar: Path, exclusive: bool) -> int | None:
    """A descriptor of ``sidecar`` locked as asked, or None when it is held by someone else."""
    while True:
        fd = os.open(sidecar, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(sidecar).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed this sidecar after we opened it


def lock_for_writing(path: Path) -> FileLock:
    """Take ``path``'s lock for writing; an InputError names the process using it."""
    sidecar = lock_path(path)
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(sidecar, exclusive=True)
    except OSError as error:  # a read-only or missing folder, a file where a folder should be
        raise InputError(
            f"cannot write {path} (its folder cannot be made or written: {error.strerror}); "
            "choose a --out in a writable folder"
        ) from None
    if fd is None:
        pid = _writer_pid(sidecar)
        use = f"written by process {pid}" if pid else "read by another process"
        raise InputError(f"{path} is being {use}; wait for it to finish or choose another --out")
    _record(fd, f"{os.getpid()}\n")
    return FileLock(sidecar, fd)


def lock_for_reading(path: Path) -> FileLock:
    """Take ``path``'s lock for reading; an InputError names the process writing it.

    Where no sidecar can be made (a read-only folder, file system or lock file) the
    file is read without a lock.
    """
    sidecar = lock_path(path)
    try:
        fd = _acquire(sidecar, exclusive=False)
    except OSError:
        return FileLock(sidecar, None)
    if fd is None:
        pid = _writer_pid(sidecar)
        writer = f"process {pid}" if pid else "another process"
        raise InputError(f"{path} is being written by {writer}; wait for it to finish")
    _record(fd, "")  # clear the PID of a writer that was killed
    return FileLock(sidecar, fd)


def _record(fd: int, text: str) -> None:
    """Replace the sidecar's text; best effort (on a full disk the writer says so itself)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
