"""Advisory locks that keep a writer and other users of one activation file apart.

Every user of ``a.h5`` first takes a non-blocking ``flock`` on the sidecar
``.a.h5.lock`` beside the file's real path (symbolic links and ``..`` resolved,
so every name of one path shares one sidecar): exclusive for a writer (which
records its PID in it), shared for readers. A file that exists is also locked
by its inode, in ``repcompare-locks/DEV-INODE.lock`` of the temporary folder, so
that its hard links share a lock too; a writer that creates the file takes that
lock once it exists (``FileLock.hold_inode``). The locks are taken before the
activation file is opened or truncated, so a file in use is never overwritten.
The last holder removes a sidecar while still holding it; whoever locked a
sidecar that was removed meanwhile (its path no longer names the locked inode)
retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from repcompare.errors import InputError


def lock_path(path: Path) -> Path:
    """The sidecar lock file of ``path``, beside its real path."""
    real = path.resolve()
    return real.with_name(f".{real.name}.lock")


def inode_lock_path(path: Path) -> Path | None:
    """The lock file of the inode ``path`` names (None when there is no such file)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return Path(tempfile.gettempdir(), "repcompare-locks", f"{status.st_dev}-{status.st_ino}.lock")


class FileLock:
    """A held lock on an activation file; ``release`` (or leaving the ``with``) frees it."""

    def __init__(
        self, path: Path, sidecar: Path, fd: int | None, exclusive: bool, named: str | None = None
    ):
        self.path, self.sidecar, self.exclusive, self.named = path, sidecar, exclusive, named
        self._held = [] if fd is None else [(sidecar, fd)]

    def hold_inode(self) -> None:
        """Also lock the file's inode (shared by its hard links); an InputError names the
        other user when it is held elsewhere. Without a usable lock folder, nothing."""
        sidecar = inode_lock_path(self.path)
        if sidecar is None or any(held == sidecar for held, _ in self._held):
            return
        try:
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            fd = _acquire(sidecar, self.exclusive)
        except OSError:
            return
        if fd is None:
            self.release()
            raise _in_use(self.named or self.path, sidecar, self.exclusive)
        self._held.append((sidecar, fd))
        if self.exclusive:
            _record(fd, f"{os.getpid()}\n")

    def release(self) -> None:
        """Free the locks, removing each sidecar when no one else holds it."""
        while self._held:
            sidecar, fd = self._held.pop()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                sidecar.unlink(missing_ok=True)
            except BlockingIOError:
                pass  # another reader still holds it and will remove it
            finally:
                os.close(fd)

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


def _in_use(path: Path | str, sidecar: Path, exclusive: bool) -> InputError:
    """The sentence for a lock held by someone else, naming the writer's process."""
    pid = _writer_pid(sidecar)
    if not exclusive:
        writer = f"process {pid}" if pid else "another process"
        return InputError(f"{path} is being written by {writer}; wait for it to finish")
    use = f"written by process {pid}" if pid else "read by another process"
    return InputError(f"{path} is being {use}; wait for it to finish or choose another --out")


def lock_for_writing(path: Path, named: str | None = None) -> FileLock:
    """Take ``path``'s lock for writing (its real path, and its inode when it exists); an
    InputError names the process using it (and ``path``, or ``named`` where given). Call
    ``hold_inode`` once the writer has created the file."""
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
        raise _in_use(named or path, sidecar, exclusive=True)
    _record(fd, f"{os.getpid()}\n")
    lock = FileLock(path, sidecar, fd, exclusive=True, named=named)
    lock.hold_inode()
    return lock


def lock_for_reading(path: Path) -> FileLock:
    """Take ``path``'s lock for reading (its real path and its inode); an InputError names
    the process writing it.

    Where no sidecar can be made (a read-only folder, file system or lock file) the
    file is read without a lock.
    """
    sidecar = lock_path(path)
    try:
        fd = _acquire(sidecar, exclusive=False)
    except OSError:
        return FileLock(path, sidecar, None, exclusive=False)
    if fd is None:
        raise _in_use(path, sidecar, exclusive=False)
    _record(fd, "")  # clear the PID of a writer that was killed
    lock = FileLock(path, sidecar, fd, exclusive=False)
    lock.hold_inode()
    return lock


def _record(fd: int, text: str) -> None:
    """Replace the sidecar's text; best effort (on a full disk the writer says so itself)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
