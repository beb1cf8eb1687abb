"""Helpers shared by the commands: JSON output, progress bars, seeds."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from calopt.arrays import finite_json
from calopt.jobs import MAX_SEED

SEED_OPTION = typer.Option(
    0, "--seed", min=0, max=MAX_SEED, help="Random seed in [0, 2^63 - 1]; the same seed reproduces the result exactly."
)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else.")


def dumps_json(obj: Any, **kw: Any) -> str:
    """Strict JSON of ``obj`` (:func:`finite_json`): never ``NaN`` or ``Infinity``."""
    return json.dumps(finite_json(obj), allow_nan=False, **kw)


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj) + "\n")


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (stdout stays clean for --json); yields update(completed)."""
    if not enabled:
        yield lambda completed: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda completed: prog.update(task, completed=completed)
