"""The ``--out`` folder of an analysis command: checked before any work, held by one run,
filled all at once, and only ever changed where repcompare wrote.

``check_out_dir`` runs before the first batch, so a file where a folder is
expected, or a folder that cannot be written, is one sentence and not a
failure after the whole computation.

``out_dir_lock`` holds the folder for one run (an advisory lock on its manifest,
see ``repcompare.store.lock``): a second run into the same folder is refused
with a sentence naming the first run's process, instead of both reporting
success while one's results are lost.

``staged_outputs`` hands out a hidden staging folder inside ``--out``; only when
every result file is written there are they moved into place (one atomic
rename each). An interrupted or failed run therefore leaves the previous
results as they were, never a half set. The manifest ``.repcompare-manifest.json``
records, per command, the files each run wrote (paths relative to ``--out``);
files an earlier run of the same command wrote that this run does not (a
heatmap of another preset, a plot of another measure) are removed, so nothing
stale sits beside the new results. Files not recorded there, a user's own
notes or pictures, are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repcompare.errors import InputError, RunError
from repcompare.store.lock import lock_for_writing

STAGING_PREFIX = ".repcompare-staging-"
MANIFEST = ".repcompare-manifest.json"


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
def out_dir_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for this run (checked and created first); an InputError names the
    process of another run holding it. A folder this run created is removed again when the
    run fails before putting anything in it."""
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    check_out_dir(out)
    try:
        with lock_for_writing(out / MANIFEST, named=f"--out {out}"):
            yield
    except BaseException:
        with contextlib.suppress(OSError):
            for folder in made:  # innermost first; each only when still empty
                folder.rmdir()
        raise


def recorded_files(out: Path) -> dict[str, list[str]]:
    """The manifest of ``out``: per command, the files its last run wrote (none when the
    manifest is missing or unreadable)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict):
        return {}
    return {
        command: [p for p in paths if isinstance(p, str) and _inside(p)]
        for command, paths in manifest.items()
        if isinstance(paths, list)
    }


def _inside(relative: str) -> bool:
    """Whether a recorded path stays inside ``--out`` (a hand-edited manifest cannot make
    repcompare remove anything elsewhere)."""
    path = Path(relative)
    return not path.is_absolute() and ".." not in path.parts


def _files_under(folder: Path) -> list[str]:
    """Every file under ``folder``, as sorted paths relative to it."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def _remove(out: Path, relative: str) -> None:
    """Remove the recorded file ``relative`` of ``out``, then its folders left empty."""
    path = out / relative
    if path.is_dir() and not path.is_symlink():
        return  # a folder now stands where a recorded file was: not ours
    path.unlink(missing_ok=True)
    for parent in path.parents:
        if parent == out:
            break
        with contextlib.suppress(OSError):  # not empty: someone else's files are in it
            parent.rmdir()


def _write_manifest(out: Path, manifest: dict[str, list[str]]) -> None:
    """Replace the manifest whole (written beside it, then renamed)."""
    partial = out / f"{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(partial, out / MANIFEST)


@contextmanager
def staged_outputs(out: Path, command: str) -> Iterator[Path]:
    """A staging folder to write into; on success its files replace those of ``out``, and
    the files the last run of ``command`` recorded but this one did not write are removed."""
    check_out_dir(out)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        yield staging
        manifest = recorded_files(out)
        written = _files_under(staging)
        for stale in set(manifest.get(command, ())) - set(written):
            _remove(out, stale)
        for relative in written:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).replace(target)
        _write_manifest(out, manifest | {command: written})
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise RunError(
                f"disk full while writing results to {out}; free space and rerun the command"
            ) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
