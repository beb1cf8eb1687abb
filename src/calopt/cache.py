"""The on-disk cache of design-independent results: shower libraries, photon regressors and
generated crossings, each built once and reused by every design (DESIGN.md, "Reuse what is
design-independent").

Entries live in ``$CALOPT_CACHE`` (default ``~/.cache/calopt``), one folder per stage, under a
name that ends in their key. A key is the hash of everything the entry depends on: its
settings, the version constant of every stage whose output it contains (bumped when that
stage's output changes) and the content hash of any file it was made from (a surrogate
checkpoint), so that an entry is never reused for other inputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["build_once", "cache_dir"]


def cache_dir() -> Path:
    """The cache folder: $CALOPT_CACHE, else ~/.cache/calopt."""
    return Path(os.environ.get("CALOPT_CACHE", Path.home() / ".cache" / "calopt"))


def build_once(path: Path, build: Callable[[], object]) -> Path:
    """Make sure the cache entry ``path`` exists: ``build()`` writes it (atomically) unless it
    is there. The build runs under an exclusive lock on ``path`` + ".lock" (``fcntl.flock``) and
    the entry is checked for again once the lock is held, so that parallel workers sharing a
    cache build it once: the others wait, then find it."""
    import fcntl

    if not path.is_file():
        with open(path.with_name(path.name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                if not path.is_file():
                    build()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    return path
