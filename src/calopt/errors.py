"""Exceptions. A :class:`CaloptInputError` is a user mistake: the CLI prints its message on one
line and exits with code 2 (DESIGN.md, command line)."""

__all__ = ["CaloptError", "CaloptInputError", "FileFormatError", "ShowerFormatError"]


class CaloptError(Exception):
    """Base class of calopt's own errors."""


class CaloptInputError(CaloptError, ValueError):
    """Bad input from the user: a value out of range, an unknown name, an unusable file."""


class FileFormatError(CaloptInputError):
    """A file that is not of the expected calopt format, or of an unknown version."""


class ShowerFormatError(FileFormatError):
    """A file that is not a calopt-showers file of a known version."""
