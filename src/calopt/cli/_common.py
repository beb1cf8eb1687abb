"""Helpers shared by the commands: JSON output, progress bars, seeds."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import typer

SEED_OPTION = typer.Option(0, "--seed", min=0, help="Random seed; the same seed reproduces the result bit for bit.")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout and nothing else.")


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_default) + "\n")


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
