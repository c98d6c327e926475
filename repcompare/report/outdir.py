"""The ``--out`` folder of an analysis command: checked before any work, filled all at once.

``check_out_dir`` runs before the first batch, so a file where a folder is
expected, or a folder that cannot be written, is one sentence and not a
failure after the whole computation.

``staged_outputs`` hands out a hidden staging folder inside ``--out``; only when
every result file is written there are they moved into place (one atomic
rename each). An interrupted or failed run therefore leaves the previous
results as they were, never a half set; and files an earlier run of the same
command wrote that this run does not (a heatmap of another preset, a plot of
another measure), matched by the command's ``owned`` patterns, are removed so
nothing stale sits beside the new results. Other files are never touched.
"""

from __future__ import annotations

import errno
import fnmatch
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repcompare.errors import InputError, RunError

STAGING_PREFIX = ".repcompare-staging-"


def check_out_dir(out: Path) -> None:
    """Create ``out`` if needed and prove it writable; an InputError naming it otherwise."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, but results need a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InputError(
            f"cannot write results to {out} ({reason.lower()}); choose another --out"
        ) from None


@contextmanager
def staged_outputs(out: Path, owned: tuple[str, ...]) -> Iterator[Path]:
    """A staging folder to write into; on success its files (and folders) replace the
    ``owned`` files and folders in ``out``."""
    check_out_dir(out)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        yield staging
        for old in out.iterdir():
            if not any(fnmatch.fnmatchcase(old.name, p) for p in owned):
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        for new in staging.iterdir():
            new.replace(out / new.name)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise RunError(
                f"disk full while writing results to {out}; free space and rerun the command"
            ) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
