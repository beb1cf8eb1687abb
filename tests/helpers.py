"""Helpers shared by the tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from calopt.cli.main import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``calopt argv`` as the shell would: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def edited_h5(src: Path, dst: Path, edit: Callable[[Any], None]) -> Path:
    """A copy ``dst`` of the HDF5 file ``src``, changed by ``edit(open h5py file)``."""
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def replace_dataset(name: str, value: Any) -> Callable[[Any], None]:
    """An ``edit`` for :func:`edited_h5` that replaces dataset ``name`` by ``value``."""

    def edit(f: Any) -> None:
        del f[name]
        f[name] = value

    return edit
