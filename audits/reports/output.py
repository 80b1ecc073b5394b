"""Writing report and export files: refuse to overwrite unless forced, fail before any work on an
unwritable path, and write atomically (a temporary sibling renamed into place)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audits.errors import SpecError
from nla.files import share


def check_output(path: Path, *, force: bool) -> None:
    """Refuse an existing file (unless ``force``), a directory, or a folder that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"--out {path} is a directory; give a file name")
    if path.exists() and not force:
        raise SpecError(f"--out {path} already exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise SpecError(f"--out {path}: {parent} {problem}")
    if not os.access(parent, os.W_OK):
        raise SpecError(f"--out {path}: directory {parent} is not writable")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block succeeds (with the mode the user's
    umask gives new files, whatever wrote it); removed otherwise. An OSError on the way (the folder refuses
    the file, the disk fills) names ``path``, not the temporary."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}-")
        os.close(fd)
        try:
            yield Path(tmp)
            share(Path(tmp))  # mkstemp makes it owner-only; a report or export is meant to be shared
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
