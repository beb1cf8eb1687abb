"""File helpers shared by every writer: output checks and atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calopt.errors import CaloptInputError

__all__ = ["atomic_path", "check_writable"]


def check_writable(path: Path) -> None:
    """Fail early, with a one-line message, if ``path`` cannot be written."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise CaloptInputError(f"output folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise CaloptInputError(f"output folder {str(parent)!r} is not writable")
    if path.is_dir():
        raise CaloptInputError(f"output {str(path)!r} is a folder, expected a file name")


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success it replaces ``path`` (with the
    usual permissions), on any error it is removed, so ``path`` is never half-written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
