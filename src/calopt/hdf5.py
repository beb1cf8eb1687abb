"""Checks of the insides of calopt's HDF5 formats (``calopt-showers``, ``calopt-events``).

:func:`calopt.files.open_format` refuses a file of another format; a file of the right format
can still be broken inside (a dataset missing or of another shape or type, arrays of unequal
length, an attribute missing, data truncated). A reader describes its format's datasets with
:class:`Array` and checks them with :func:`check_datasets` and :func:`check_attrs` right after
opening, and reads under :func:`reading`, so that such a file is refused with one line naming
the file and the problem (:class:`~calopt.errors.FileFormatError`) instead of failing later,
somewhere else, with a traceback."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calopt.errors import FileFormatError

__all__ = ["Array", "check_attrs", "check_datasets", "reading"]

Dim = int | str
"""A fixed length, or a named length shared between datasets ("N"; "N+1": one more than N)."""

_KINDS = {"float": "f", "integer": "iu"}


@dataclass(frozen=True)
class Array:
    """What one dataset of a format must be: one of ``shapes`` (tuples of :data:`Dim`), numbers
    of ``kind`` ("float" or "integer"), and whether the file may lack it."""

    kind: str
    shapes: tuple[tuple[Dim, ...], ...]
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Array kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")


def _broken(path: Path, fmt: str, problem: str, error: type[FileFormatError]) -> FileFormatError:
    return error(f"{str(path)!r} is a broken {fmt} file: {problem}")


def _dtype_words(dtype: np.dtype[Any]) -> str:
    kind = dtype.kind
    if kind in "SUO":
        return "text"
    return {"b": "booleans", "V": "records", "c": "complex numbers", "f": "floats", "i": "integers",
            "u": "integers"}.get(kind, str(dtype))  # fmt: skip


def _split(dim: str) -> tuple[str, int]:
    name, _, plus = dim.partition("+")
    return name, int(plus or 0)


def _show(shape: tuple[Dim, ...], known: Mapping[str, tuple[int, str]]) -> str:
    """A shape as a tuple, the named lengths already known replaced by their values."""
    out = []
    for d in shape:
        if isinstance(d, str):
            name, plus = _split(d)
            out.append(str(known[name][0] + plus) if name in known else d)
        else:
            out.append(str(d))
    return "(" + ", ".join(out) + ("," if len(out) == 1 else "") + ")"


def _match(
    shape: tuple[int, ...], want: tuple[Dim, ...], known: Mapping[str, tuple[int, str]]
) -> dict[str, int] | None:
    """The named lengths ``shape`` gives if it fits ``want`` (and what is ``known``), else None."""
    if len(shape) != len(want):
        return None
    new: dict[str, int] = {}
    for n, d in zip(shape, want):
        if isinstance(d, int):
            if n != d:
                return None
            continue
        name, plus = _split(d)
        value = known[name][0] if name in known else new.get(name)
        if value is None:
            if n - plus < 0:
                return None
            new[name] = n - plus
        elif n != value + plus:
            return None
    return new


def check_datasets(path: Path, f: Any, layout: Mapping[str, Array], fmt: str,
                   error: type[FileFormatError] = FileFormatError) -> dict[str, int]:  # fmt: skip
    """Check the datasets of the open HDF5 file ``f`` against ``layout`` (name, which may hold a
    group ``g/name``, -> :class:`Array`), in its order: each present (unless optional), a dataset,
    of the kind of numbers and of one of the shapes asked, named lengths equal in all. Returns the
    named lengths; raises ``error`` naming ``path``, the dataset and what was expected."""
    import h5py

    known: dict[str, tuple[int, str]] = {}  # name -> (length, the dataset it was read from)
    for name, spec in layout.items():
        try:
            obj = f.get(name)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise _broken(path, fmt, f"{name!r} cannot be read ({_first_line(exc)})", error) from None
        if obj is None:
            if spec.optional:
                continue
            raise _broken(path, fmt, f"the dataset {name!r} is missing", error)
        if not isinstance(obj, h5py.Dataset):
            raise _broken(path, fmt, f"{name!r} is a group, expected a dataset", error)
        if obj.dtype.kind not in _KINDS[spec.kind]:
            raise _broken(path, fmt, f"the dataset {name!r} holds {_dtype_words(obj.dtype)}, expected {spec.kind}s",
                          error)  # fmt: skip
        shape = tuple(int(n) for n in obj.shape)
        for want in spec.shapes:
            new = _match(shape, want, known)
            if new is not None:
                known.update({k: (v, name) for k, v in new.items()})
                break
        else:
            expected = " or ".join(_show(s, known) for s in spec.shapes)
            used = sorted({_split(d)[0] for s in spec.shapes for d in s if isinstance(d, str)} & known.keys())
            source = "; ".join(f"{k} = {known[k][0]} from {known[k][1]!r}" for k in used)
            raise _broken(path, fmt, f"the dataset {name!r} has shape {shape}, expected {expected}"
                          + (f" ({source})" if source else ""), error)  # fmt: skip
    return {k: v for k, (v, _) in known.items()}


def check_attrs(path: Path, f: Any, required: Mapping[str, str], fmt: str,
                error: type[FileFormatError] = FileFormatError) -> None:  # fmt: skip
    """Check that the open HDF5 file ``f`` has the attributes ``required`` (name -> "text",
    "number" or "numbers", a 1-D array of them); raises ``error`` naming ``path`` and the attribute."""
    for name, kind in required.items():
        try:
            value = f.attrs[name] if name in f.attrs else None
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise _broken(path, fmt, f"the attribute {name!r} cannot be read ({_first_line(exc)})", error) from None
        if value is None:
            raise _broken(path, fmt, f"the attribute {name!r} is missing", error)
        arr = np.asarray(value)
        if kind == "text":
            ok = isinstance(value, str | bytes) or (arr.dtype.kind in "SUO" and arr.ndim == 0)
        elif kind == "number":
            ok = arr.ndim == 0 and arr.dtype.kind in "iuf"
        else:
            ok = arr.ndim == 1 and arr.dtype.kind in "iuf"
        if not ok:
            expected = {"text": "text", "number": "a number", "numbers": "a list of numbers"}[kind]
            raise _broken(path, fmt, f"the attribute {name!r} is {_short(value)}, expected {expected}", error)


@contextmanager
def reading(path: Path, fmt: str, error: type[FileFormatError] = FileFormatError) -> Iterator[None]:
    """Turn an error of HDF5 while reading the data of ``path`` (truncated or corrupt chunks, a
    compression filter missing) into one line: ``error`` naming the file."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise _broken(path, fmt, f"its data cannot be read, truncated or corrupt ({_first_line(exc)})",
                      error) from None  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200] if text else type(exc).__name__) or type(exc).__name__


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    elif isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
