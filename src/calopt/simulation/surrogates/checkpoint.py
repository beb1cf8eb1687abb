"""The ``calopt-surrogate`` checkpoint (format version 3): one ``torch.save`` file of plain containers and
tensors, read back with ``torch.load(..., weights_only=True)`` (no pickled code).

Keys: ``format`` (``"calopt-surrogate"``), ``format_version`` (3), ``model_type`` (a type of
:mod:`calopt.simulation.surrogates.registry`: ``wgan``, ``flow`` or ``adagan``),
``technology``, ``calopt_version``, ``conditions`` (the training
range, :class:`~calopt.simulation.surrogates.conditions.ConditionSpace`), ``representation``
(grid, crop, sections, pitch, section edges, sampling fraction, energy fraction outside the
crop), ``normalisation`` (mean and std of ln(E_vis/E) and of ln E_vis), ``time_model``
(per species and section coefficients a, b [ns]), ``architecture`` (what rebuilds the
networks), ``training`` (settings, seed, files, timings, summary), ``state`` (state dict of
the sampling network(s)), for ``adagan``, ``mixture_weights`` (beta of each component), and
optionally ``hit_model`` (mean and shape of single-hit deposits, the cell energy below which
they apply; :mod:`calopt.simulation.surrogates.hits`) and ``response_calibration``
(:mod:`calopt.simulation.surrogates.calibration`).
Written atomically.

Versions: 2 added the aligned frame (``representation["axis_depths_mm"]``, null for showers on
the grid; the networks then take the axis offsets as more conditions) and the flow's profile
variables (``architecture["sections"]``, buffers ``prof_mean`` and ``prof_std``); 3 stores a
flow's networks as pairs of coupling transforms (:func:`calopt.simulation.surrogates.flow.
coupling_flow`) instead of masked autoregressive ones. Versions 1 and 2 are still read (a
flow's state is converted on loading, exactly).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError, FileFormatError
from calopt.files import atomic_path

__all__ = ["FORMAT", "FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT = "calopt-surrogate"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


def save_checkpoint(path: str | os.PathLike[str], ck: dict[str, Any]) -> Path:
    import torch

    from calopt.simulation.surrogates.registry import MODEL_TYPES

    path = Path(path)
    ck = {**ck, "format": FORMAT, "format_version": FORMAT_VERSION}
    if ck.get("model_type") not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {ck.get('model_type')!r}")
    _check_plain(ck, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(ck, tmp)
    return path


def _check_plain(x: Any, where: str) -> None:
    """Only what ``torch.load(weights_only=True)`` reads back: tensors and plain containers."""
    import torch

    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}/{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            _check_plain(v, f"{where}[{i}]")
    elif not (x is None or type(x) in (bool, int, float, str) or isinstance(x, torch.Tensor)):
        raise TypeError(f"{where}: {type(x).__name__} cannot be stored in a {FORMAT} checkpoint")


_UNKNOWN_KINDS = ("a text file", "an empty file", "a binary file of unknown kind")
"""What :func:`~calopt.files.describe_file` says of a file it cannot name: told as "not a readable checkpoint"."""
_REQUIRED_KEYS = {"technology": str, "conditions": dict, "representation": dict, "normalisation": dict,
                  "time_model": dict, "architecture": dict, "training": dict, "state": dict}  # fmt: skip


def _check_file(path: Path) -> None:
    """Refuse, before ``torch.load`` sees it, a file that is not a PyTorch zip archive (what
    ``torch.save`` writes), with one line saying what it is; torch's own errors on such files
    speak of pickles and ``weights_only``, not of the file the user gave."""
    import zipfile

    from calopt.files import describe_file

    if not path.exists():
        raise CaloptInputError(f"surrogate checkpoint {str(path)!r} does not exist")
    what = describe_file(path)
    if not path.is_file():
        raise FileFormatError(f"{str(path)!r} is {what}, expected a {FORMAT} checkpoint")
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise CaloptInputError(f"surrogate checkpoint {str(path)!r} cannot be read ({exc.strerror})") from None
    if head != b"PK\x03\x04":
        if what in _UNKNOWN_KINDS:
            raise FileFormatError(f"{str(path)!r} is not a readable {FORMAT} checkpoint ({what})")
        raise FileFormatError(f"{str(path)!r} is {what}, expected a {FORMAT} checkpoint")
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        raise FileFormatError(f"{str(path)!r} is not a readable {FORMAT} checkpoint (truncated or corrupt)") from None
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise FileFormatError(f"{str(path)!r} is a zip archive, not a PyTorch file; expected a {FORMAT} checkpoint")


def load_checkpoint(path: str | os.PathLike[str], model_type: str | None = None) -> dict[str, Any]:
    """Read a checkpoint, refusing another kind of file (:func:`_check_file`), a truncated or
    corrupt one, another format, another version, one without the keys every checkpoint has or
    (when given) another model type with a one-line :class:`~calopt.errors.FileFormatError`."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickles before refusing them
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a pickled class or function: torch refuses to run its code
            raise FileFormatError(
                f"{str(path)!r} is a PyTorch file holding Python objects other than tensors and plain containers "
                f"(e.g. a whole model), not a {FORMAT} checkpoint"
            ) from None
        raise FileFormatError(f"{str(path)!r} is not a readable {FORMAT} checkpoint (truncated or corrupt)") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError, MemoryError):  # fmt: skip
        raise FileFormatError(f"{str(path)!r} is not a readable {FORMAT} checkpoint (truncated or corrupt)") from None
    if not isinstance(ck, dict):
        raise FileFormatError(f"{str(path)!r} is not a {FORMAT} checkpoint (found a {type(ck).__name__})")
    if ck.get("format") != FORMAT:
        raise FileFormatError(f"{str(path)!r} is not a {FORMAT} checkpoint (format: {ck.get('format')!r})")
    if ck.get("format_version") not in READABLE_VERSIONS:
        raise FileFormatError(
            f"{str(path)!r} has {FORMAT} format_version {ck.get('format_version')!r}; "
            f"this calopt reads versions {', '.join(str(v) for v in READABLE_VERSIONS)}"
        )
    for key, kind in _REQUIRED_KEYS.items():
        if not isinstance(ck.get(key), kind):
            problem = "is missing" if key not in ck else f"is a {type(ck[key]).__name__}, expected a {kind.__name__}"
            raise FileFormatError(f"{str(path)!r} is a broken {FORMAT} checkpoint: its key {key!r} {problem}")
    from calopt.simulation.surrogates.registry import MODEL_TYPES

    found = ck.get("model_type")
    if found not in MODEL_TYPES:
        raise FileFormatError(
            f"{str(path)!r} has unknown model_type {found!r}; expected one of {', '.join(MODEL_TYPES)}"
        )
    if model_type is not None and found != model_type:
        raise FileFormatError(f"{str(path)!r} holds a {found!r} model, expected {model_type!r}")
    return ck
