"""The on-disk cache of design-independent results: shower libraries, photon regressors and
generated crossings, each built once and reused by every design (docs/architecture.md, "Reuse what is
design-independent").

Entries live in ``$CALOPT_CACHE`` (default ``~/.cache/calopt``), one folder per stage
(:data:`STAGES`), under a name that ends in their key. A key (:func:`cache_key`) is the hash of
everything the entry depends on: its settings, the version constant of every stage whose
output it contains (each defined next to the code it versions and bumped when that code's
output changes) and the content hash (:func:`file_digest`) of any file it was made from (a
surrogate checkpoint), so that an entry is never reused for other inputs. ``calopt cache
list|clear`` shows and removes the entries.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError

__all__ = ["STAGES", "build_once", "cache_dir", "cache_key", "file_digest", "stage_dir"]

STAGES = ("libraries", "regressors", "events", "reconstructions")  # the cache's folders, one per stage
# reconstructions: the design-conditioned regressors of module objectives (optimize/gradients/reconstruction.py)
KEY_LENGTH = 16  # hex digits of the sha256 kept in a key (64 bits)


def cache_dir() -> Path:
    """The cache folder: $CALOPT_CACHE, else ~/.cache/calopt."""
    return Path(os.environ.get("CALOPT_CACHE", Path.home() / ".cache" / "calopt"))


def stage_dir(stage: str) -> Path:
    """The folder of one stage's entries (not created here); an unknown stage is an input error."""
    if stage not in STAGES:
        raise CaloptInputError(f"unknown cache stage {stage!r}; expected one of {', '.join(STAGES)}")
    return cache_dir() / stage


def cache_key(stage: str, doc: Any) -> str:
    """The key of an entry of ``stage`` made from the inputs ``doc`` (JSON-serialisable: plain
    types, lists and tuples, dicts with string keys): the first :data:`KEY_LENGTH` hex digits of
    the sha256 of the stage name and the canonical JSON of ``doc`` (sorted keys, no spaces), so
    that equal inputs give equal keys whatever the order they were assembled in."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{stage}\n{text}".encode()).hexdigest()[:KEY_LENGTH]


_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_digest(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of the content of the file at ``path``: a file rewritten in place (a
    retrained checkpoint) gets a new one. Memoised on (path, inode, size, mtime_ns), so a large
    checkpoint is read once per process until it is rewritten (a rewrite that keeps inode and
    size within the file system's timestamp resolution would go unnoticed)."""
    p = Path(path).resolve()
    st = p.stat()
    memo = (str(p), st.st_ino, st.st_size, st.st_mtime_ns)
    if memo not in _DIGESTS:
        with open(p, "rb") as f:
            _DIGESTS[memo] = hashlib.file_digest(f, "sha256").hexdigest()
    return _DIGESTS[memo]


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
