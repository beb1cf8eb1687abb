"""Exceptions. A :class:`CaloptInputError` is a user mistake: the CLI prints its message on one
line and exits with code 2 (docs/cli.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

__all__ = ["CaloptError", "CaloptInputError", "FileFormatError", "ShowerFormatError", "format_validation_error"]


class CaloptError(Exception):
    """Base class of calopt's own errors."""


class CaloptInputError(CaloptError, ValueError):
    """Bad input from the user: a value out of range, an unknown name, an unusable file."""


class FileFormatError(CaloptInputError):
    """A file that is not of the expected calopt format, or of an unknown version."""


class ShowerFormatError(FileFormatError):
    """A file that is not a calopt-showers file of a known version."""


def format_validation_error(exc: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """The message of a :class:`CaloptInputError` for the first error of a pydantic validation:
    one line saying where (``source``, then the key's path), what was expected and what was given.

    ``model`` (the validated model) lets an unknown key of its own table list the keys it has."""
    errors = exc.errors()
    # the first error in the file's order that is not a missing key: a misspelt key also makes the
    # intended one missing, so its unknown key (pydantic lists those last) is told, not the
    # missing one; a bad value before an unknown key is told first, as written
    err = next((e for e in errors if e["type"] != "missing"), errors[0])
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        known = f" (expected {', '.join(model.model_fields)})" if model is not None and len(err["loc"]) == 1 else ""
        return f"{source}: unknown key {loc!r}{known}"
    where = f"{source}: {loc}" if loc else source
    if err["type"] == "value_error":  # a validator's own message, which names what it refuses
        return f"{where}: {err['ctx']['error']}"
    if err["type"] == "missing":
        return f"{where}: {err['msg']}"
    return f"{where}: {err['msg']}, got {err['input']!r}"
