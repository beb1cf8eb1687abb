"""File helpers shared by every writer: output checks and atomic writes."""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calopt.errors import CaloptInputError, FileFormatError

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "atomic_path",
    "check_format",
    "check_output_file",
    "check_unlocked",
    "check_writable",
    "connect_read_only",
    "describe_file",
    "is_format",
    "make_output_folder",
    "open_format",
    "output_lock",
    "read_attrs",
    "remove_temporary_files",
]


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "a name in it is longer than the file system allows"
    return exc.strerror or type(exc).__name__


def _stat_kind(p: Path) -> str:
    """ "dir", "file", "other" or "" (missing, or a name the system refuses, e.g. too long)."""
    import stat

    try:
        mode = os.stat(p).st_mode
    except OSError:
        return ""
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _not_a_folder(path: Path) -> Path | None:
    """The nearest existing one of ``path`` and its parents when it is not a folder (a file
    where a folder is needed), else None."""
    found = next((p for p in [path, *path.parents] if _stat_kind(p)), None)
    return found if found is not None and _stat_kind(found) != "dir" else None


def check_writable(path: Path, what: str = "output") -> None:
    """Fail early, with a one-line message, if the file ``path`` cannot be written.

    Tried, not asked: a file is created and removed beside it (``os.access`` says yes to root
    even under ``/proc`` or on a read-only mount), and a name that does not exist yet is
    created and removed itself, which catches a name longer than the file system allows."""
    path = Path(path)
    kind = _stat_kind(path)
    if kind == "dir":
        raise CaloptInputError(f"{what} {str(path)!r} is a folder, expected a file name")
    parent = path.absolute().parent
    if _stat_kind(parent) != "dir":
        found = _not_a_folder(parent)
        if found is not None:
            raise CaloptInputError(f"{what} {str(path)!r}: {str(found)!r} is a file, not a folder")
        raise CaloptInputError(f"{what} {str(path)!r}: the folder {str(parent)!r} does not exist")
    probe = path if not kind else parent / f".calopt-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # a concurrent probe or file: the folder takes files
    except OSError as exc:
        raise CaloptInputError(f"{what} {str(path)!r} cannot be written ({_os_reason(exc)})") from None
    os.close(fd)
    os.unlink(probe)


def make_output_folder(path: Path, what: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents) and check, by writing a file into
    it, that it takes files; or fail with one line."""
    path = Path(path)
    found = _not_a_folder(path)
    if found is not None:
        where = "exists and is not a folder" if found == path else f"cannot be made: {str(found)!r} is a file"
        raise CaloptInputError(f"{what} {str(path)!r} {where}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CaloptInputError(f"{what} {str(path)!r}: cannot create the folder ({_os_reason(exc)})") from None
    check_writable(path / f".calopt-probe-{os.getpid()}", what)
    return path


_TEMPORARY: set[str] = set()  # temporary files of writes under way, and lock files held


def remove_temporary_files() -> None:
    """Remove the temporary files of writes still under way and the lock files this process
    holds (called on an interrupt, before the process ends without unwinding)."""
    for tmp in list(_TEMPORARY):
        try:
            os.remove(tmp)
        except OSError:
            pass
        _TEMPORARY.discard(tmp)


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success it replaces ``path`` (with the
    usual permissions), on any error or an interrupt it is removed, so ``path`` is never
    half-written."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.absolute().parent)
    except OSError as exc:
        raise CaloptInputError(f"{str(path)!r} cannot be written ({_os_reason(exc)})") from None
    os.close(fd)
    _TEMPORARY.add(tmp)
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
    finally:
        _TEMPORARY.discard(tmp)


def describe_file(path: str | os.PathLike[str]) -> str:
    """What ``path`` holds, in a few words for a message ("a calopt-showers file", "an SQLite
    database", "a PyTorch file", "a text file", ...), read from its first bytes."""
    p = Path(path)
    kind = _stat_kind(p)
    if kind != "file":
        return {"dir": "a folder", "other": "not a regular file"}.get(kind, "nothing (it does not exist)")
    try:
        with open(p, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        return f"an unreadable file ({_os_reason(exc)})"
    if not head:
        return "an empty file"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        fmt = _hdf5_format(p)
        return f"a {fmt} file" if fmt else "an HDF5 file"
    if head.startswith(b"SQLite format 3\x00"):
        return "a calopt campaign database" if _is_campaign_database(p) else "an SQLite database"
    if head.startswith(b"PK\x03\x04"):
        kind = _torch_zip_kind(p)
        return {"checkpoint": "a calopt-surrogate checkpoint", "torch": "a PyTorch file (zip)"}.get(
            kind, "a zip archive"
        )
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "a PNG picture"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of unknown kind"
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    if start.startswith(("{", "[")) and p.suffix == ".json":
        return "a JSON file"
    if p.suffix == ".toml":
        return "a TOML file"
    return "a text file"


def _hdf5_format(p: Path) -> str | None:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            fmt = f.attrs.get("format")
    except (OSError, ValueError):
        return None
    return fmt.decode() if isinstance(fmt, bytes) else (str(fmt) if fmt is not None else None)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` and writes nothing, beside it either. SQLite opens a
    database in WAL mode (as calopt writes them) read-only only by creating its ``-wal`` and
    ``-shm`` files, and leaves them; so when there is no ``-wal`` file (no writer is running,
    everything is in the database file) it is opened ``immutable``, which reads the file alone;
    with one (a campaign is running, or a rollback journal is left) it is read as usual."""
    import sqlite3

    busy = any(path.with_name(path.name + end).exists() for end in ("-wal", "-journal"))
    flags = "mode=ro" if busy else "mode=ro&immutable=1"
    return sqlite3.connect(f"{path.absolute().as_uri()}?{flags}", uri=True, timeout=30.0)


def _is_campaign_database(p: Path) -> bool:
    import sqlite3

    try:
        db = connect_read_only(p)
        try:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return {"campaign", "trials"} <= names


def _torch_zip_kind(p: Path) -> str:
    """ "checkpoint" (a torch file holding calopt's format tag), "torch" (another torch file) or
    "" (not a torch zip): read from the pickle's bytes, without unpickling anything."""
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            pickles = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                return ""
            return "checkpoint" if b"calopt-surrogate" in z.read(pickles[0]) else "torch"
    except (OSError, zipfile.BadZipFile, ValueError):
        return ""


def check_output_file(path: Path, kind: str, is_ours: Callable[[Path], bool], overwrite: bool | None,
                      what: str = "output") -> None:  # fmt: skip
    """Refuse, without touching anything, an output file that cannot or must not be written:
    one that cannot be created (:func:`check_writable`), an existing file of another kind than
    ``kind`` (whatever ``overwrite`` says: a campaign database is never replaced by a
    checkpoint), or an existing ``kind`` file without ``overwrite`` (``None``: the writer always
    replaces its own kind, e.g. a report)."""
    path = Path(path)
    check_writable(path, what)
    if not _stat_kind(path):
        return
    if not is_ours(path):
        raise CaloptInputError(f"{what} {str(path)!r} is {describe_file(path)}, not a {kind}; refusing to overwrite it")
    if overwrite is False:
        raise CaloptInputError(f"{what} {str(path)!r} already exists; use --overwrite to replace it")


def _lock_file(path: Path) -> Path:
    # hidden, so that it does not clash with the cache's build lock NAME.lock
    # (:func:`calopt.cache.build_once`), which may be held on the same output
    return Path(path).with_name(f".{Path(path).name}.lock")


def _refuse_held(fd: int, path: Path, what: str) -> None:
    holder = os.read(fd, 400).decode(errors="replace").strip() or "another process"
    os.close(fd)
    raise CaloptInputError(f"{what} {str(path)!r} is in use by {holder}; wait for that run to end (or stop it) "
                           "and start again")  # fmt: skip


def check_unlocked(path: Path, what: str = "output") -> None:
    """Refuse early, before anything starts, an output that a running calopt holds with
    :func:`output_lock` (the lock is then taken for real by the run)."""
    import fcntl

    try:
        fd = os.open(_lock_file(path), os.O_RDONLY)
    except OSError:
        return  # no lock file: nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        _refuse_held(fd, path, what)
    os.close(fd)


@contextmanager
def output_lock(path: Path, what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock on the output ``path`` while a run writes it: the hidden file
    ``.NAME.lock`` beside it, locked with ``fcntl.flock`` (released by the kernel if the process
    dies) and holding who has it. A second run on the same output is refused with one line
    naming the holder. flock is advisory and local: on a network file system share nothing
    two hosts write (docs/cli.md)."""
    import fcntl
    import socket

    lock = _lock_file(path)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise CaloptInputError(f"{what} {str(path)!r}: cannot create its lock file ({_os_reason(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _refuse_held(fd, path, what)
        # the file may have been removed by its last holder between our open and our lock
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"calopt process {os.getpid()} on {socket.gethostname()} (since {since})\n".encode())
        _TEMPORARY.add(str(lock))
        yield
    finally:
        _TEMPORARY.discard(str(lock))
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


def _format_of(f: Any) -> tuple[Any, int]:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    return fmt, int(f.attrs.get("format_version", -1))


def check_format(path: Path, f: Any, fmt: str, version: int, error: type[FileFormatError] = FileFormatError) -> None:
    """Raise ``error`` naming what was found if the open HDF5 file ``f`` is not ``fmt`` v``version``."""
    try:
        found, found_version = _format_of(f)
    except (OSError, KeyError, TypeError, ValueError, RuntimeError):  # an unreadable or odd format attribute
        raise error(f"{str(path)!r} is an HDF5 file with an unreadable format attribute, not a {fmt} file") from None
    if found != fmt:
        if found is None:
            raise error(f"{str(path)!r} is an HDF5 file without a calopt format attribute, not a {fmt} file")
        if isinstance(found, str) and found.startswith("calopt-"):
            raise error(f"{str(path)!r} is a {found} file, not a {fmt} file")
        raise error(f"{str(path)!r} is not a {fmt} file (format attribute: {found!r})")
    if found_version != version:
        raise error(f"{str(path)!r} has {fmt} format_version {found_version}; this calopt reads version {version}")


def is_format(path: str | os.PathLike[str], fmt: str, version: int) -> bool:
    """True if ``path`` is a regular file that HDF5 opens and that says it is ``fmt``
    v``version`` (its format attributes; the insides are the reader's to check). Never raises
    for a file of another kind, a broken one, a folder or a pipe (which is not opened)."""
    import h5py

    if _stat_kind(Path(path)) != "file":
        return False
    try:
        with h5py.File(path, "r") as f:
            check_format(Path(path), f, fmt, version)
        return True
    except (OSError, ValueError, KeyError, RuntimeError):  # FileFormatError is a ValueError
        return False


def open_format(path: Path, fmt: str, version: int, error: type[FileFormatError] = FileFormatError) -> Any:
    """Open an HDF5 file of ``fmt`` v``version`` for reading, refusing anything else with one
    line that says what the file is (:func:`describe_file`) and that a ``fmt`` file was expected."""
    import h5py

    path = Path(path)
    kind = _stat_kind(path)
    if not kind:
        raise CaloptInputError(f"{fmt} file {str(path)!r} does not exist")
    if kind != "file":
        raise error(f"{str(path)!r} is {describe_file(path)}, expected a {fmt} file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        what = describe_file(path)
        if what == "an HDF5 file":  # HDF5's signature, but HDF5 cannot open it
            raise error(
                f"{str(path)!r} is not a readable HDF5 file (truncated or corrupt), expected a {fmt} file"
            ) from None
        if what == "a PyTorch file (zip)":
            what = "a PyTorch file (zip, a checkpoint?)"
        raise error(f"{str(path)!r} is {what}, not an HDF5 file; expected a {fmt} file") from None
    try:
        check_format(path, f, fmt, version, error)
    except BaseException:
        f.close()
        raise
    return f


def read_attrs(f: Any) -> dict[str, Any]:
    """File attributes without the format keys, byte strings decoded (bytes that are not UTF-8
    shown as replacement characters rather than failing)."""
    attrs = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    for k in ("format", "format_version"):
        attrs.pop(k, None)
    return attrs
