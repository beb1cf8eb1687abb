"""File helpers shared by every writer: output checks and atomic writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError, FileFormatError

__all__ = [
    "atomic_path",
    "check_format",
    "check_writable",
    "is_format",
    "make_output_folder",
    "open_format",
    "read_attrs",
]


def check_writable(path: Path) -> None:
    """Fail early, with a one-line message, if ``path`` cannot be written."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise CaloptInputError(f"output folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise CaloptInputError(f"output folder {str(parent)!r} is not writable")
    if path.is_dir():
        raise CaloptInputError(f"output {str(path)!r} is a folder, expected a file name")


def make_output_folder(path: Path, what: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents), or fail with one line."""
    if path.exists() and not path.is_dir():
        raise CaloptInputError(f"{what} {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaloptInputError(f"{what} {str(path)!r}: cannot create the folder ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise CaloptInputError(f"{what} {str(path)!r} is not writable")
    return path


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


def _format_of(f: Any) -> tuple[Any, int]:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    return fmt, int(f.attrs.get("format_version", -1))


def check_format(path: Path, f: Any, fmt: str, version: int, error: type[FileFormatError] = FileFormatError) -> None:
    """Raise ``error`` naming what was found if the open HDF5 file ``f`` is not ``fmt`` v``version``."""
    found, found_version = _format_of(f)
    if found != fmt:
        raise error(f"{str(path)!r} is not a {fmt} file (format attribute: {found!r})")
    if found_version != version:
        raise error(f"{str(path)!r} has {fmt} format_version {found_version}; this calopt reads version {version}")


def is_format(path: str | os.PathLike[str], fmt: str, version: int) -> bool:
    """True if ``path`` is a readable HDF5 file of ``fmt`` v``version``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            check_format(Path(path), f, fmt, version)
        return True
    except (OSError, FileFormatError):
        return False


def open_format(path: Path, fmt: str, version: int, error: type[FileFormatError] = FileFormatError) -> Any:
    """Open an HDF5 file of ``fmt`` v``version`` for reading, refusing anything else clearly."""
    import h5py

    if not path.is_file():
        raise CaloptInputError(f"{fmt} file {str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise error(f"{str(path)!r} is not an HDF5 file, expected a {fmt} file") from None
    try:
        check_format(path, f, fmt, version, error)
    except BaseException:
        f.close()
        raise
    return f


def read_attrs(f: Any) -> dict[str, Any]:
    """File attributes without the format keys, byte strings decoded."""
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    for k in ("format", "format_version"):
        attrs.pop(k, None)
    return attrs
