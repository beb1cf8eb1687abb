"""The campaign database: one SQLite file per campaign, every trial stored as soon as it is
asked and again as soon as it finishes.

Tables:

* ``campaign`` (key, value): the campaign settings (JSON), their hash, the calopt version and
  the creation time;
* ``trials``: one row per evaluated design -- ``id``, ``optimizer`` (name), ``optimizer_index``
  (its position in the campaign file), ``batch`` and ``position`` (the ask it came from),
  ``design_key`` (:meth:`Space.key` of the parameters), ``params`` (JSON), ``status``
  (``pending``, ``done`` or ``failed``), ``objectives`` (JSON list, minimised), ``metrics``
  (the JSON of ``evaluate``), ``cost``, ``channels``, ``seed`` (of the evaluation), ``cached``
  (1 when the result was copied from an earlier trial of the same design), ``attempts``,
  ``started_at``, ``finished_at``, ``seconds``, ``error``.

Every change is one transaction in WAL mode, so killing the process at any moment leaves the
database consistent: a trial is either finished with its result or still pending (and is
evaluated again by ``--resume``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError
from calopt.files import connect_read_only

__all__ = ["SCHEMA_VERSION", "CampaignStore", "Trial"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaign (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    optimizer TEXT NOT NULL,
    optimizer_index INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    position INTEGER NOT NULL,
    design_key TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    objectives TEXT,
    metrics TEXT,
    cost REAL,
    channels INTEGER,
    seed INTEGER NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    seconds REAL,
    error TEXT,
    UNIQUE (optimizer_index, batch, position)
);
CREATE INDEX IF NOT EXISTS trials_key ON trials (design_key, status);
"""


_COLUMNS = ("id", "optimizer", "optimizer_index", "batch", "position", "design_key", "params", "status",
            "objectives", "metrics", "cost", "channels", "seed", "cached", "attempts", "started_at", "finished_at",
            "seconds", "error")  # fmt: skip


@dataclass
class Trial:
    """One row of ``trials``."""

    id: int
    optimizer: str
    optimizer_index: int
    batch: int
    position: int
    design_key: str
    params: dict[str, Any]
    status: str
    objectives: list[float] | None
    metrics: dict[str, Any] | None
    cost: float | None
    channels: int | None
    seed: int
    cached: bool
    attempts: int
    started_at: float | None
    finished_at: float | None
    seconds: float | None
    error: str | None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        d = dict(d)
        d["params"] = json.loads(d["params"])
        d["objectives"] = json.loads(d["objectives"]) if d["objectives"] else None
        d["metrics"] = json.loads(d["metrics"]) if d["metrics"] else None
        d["cached"] = bool(d["cached"])
        return cls(**d)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class CampaignStore:
    """A campaign database (module docstring). Opening a file that is not a calopt campaign
    database is refused without touching it (:func:`_check_database`). ``read_only`` opens an
    existing database for reading only (:func:`_connect_read_only`): nothing is created or
    changed, not even a journal file beside it (``calopt report``)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            _check_database(self.path)
            self._db = connect_read_only(self.path)
            self._db.row_factory = sqlite3.Row
            return
        if self.path.exists() and self.path.stat().st_size > 0:  # an empty file: a creation that was killed
            _check_database(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            f"BEGIN IMMEDIATE; {_SCHEMA} INSERT OR IGNORE INTO campaign VALUES ('schema_version', '{SCHEMA_VERSION}');"
            " COMMIT;"
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- campaign settings -----------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM campaign WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, **values: str) -> None:
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO campaign VALUES (?, ?)", list(values.items()))

    # -- trials ------------------------------------------------------------------------------------
    def add_batch(self, optimizer: str, optimizer_index: int, batch: int, points: list[tuple[str, dict[str, Any]]],
                  seed: int) -> list[int]:  # fmt: skip
        """Insert the asked points of one batch as pending trials (one transaction); their ids."""
        ids = []
        with self._transaction() as db:
            for position, (key, params) in enumerate(points):
                cur = db.execute(
                    "INSERT INTO trials (optimizer, optimizer_index, batch, position, design_key, params, status, seed)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (optimizer, optimizer_index, batch, position, key, json.dumps(params, sort_keys=True), seed),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def start(self, trial_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE trials SET attempts = attempts + 1, started_at = ? WHERE id = ?",
                       (time.time(), trial_id))  # fmt: skip

    def finish(self, trial_id: int, *, status: str, objectives: list[float] | None, metrics: dict[str, Any] | None,
               cost: float | None, channels: int | None, seconds: float, error: str | None = None,
               cached: bool = False) -> None:  # fmt: skip
        if status not in ("done", "failed"):
            raise ValueError(f"finish: status must be done or failed, got {status!r}")
        with self._transaction() as db:
            db.execute(
                "UPDATE trials SET status = ?, objectives = ?, metrics = ?, cost = ?, channels = ?, seconds = ?,"
                " error = ?, cached = ?, finished_at = ? WHERE id = ?",
                (status, json.dumps(objectives) if objectives is not None else None,
                 json.dumps(metrics, default=float) if metrics is not None else None, cost, channels, seconds, error,
                 int(cached), time.time(), trial_id),
            )  # fmt: skip

    def trials(self, optimizer_index: int | None = None, *, batch: int | None = None, ids: list[int] | None = None,
               metrics: bool = True) -> list[Trial]:  # fmt: skip
        """Trials in asking order (per optimiser: by batch, then position), optionally of one
        optimiser, one of its batches, or given ids; ``metrics=False`` skips the (large) metrics."""
        where, args = [], []
        for column, value in (("optimizer_index", optimizer_index), ("batch", batch)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if ids is not None:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            args.extend(ids)
        columns = "*" if metrics else ", ".join("NULL AS metrics" if c == "metrics" else c for c in _COLUMNS)
        sql = f"SELECT {columns} FROM trials" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self._db.execute(sql + " ORDER BY optimizer_index, batch, position", args).fetchall()
        return [Trial.from_dict(dict(r)) for r in rows]

    def finished_result(self, design_key: str) -> Trial | None:
        """A finished trial of this design (any optimiser), to reuse its result."""
        row = self._db.execute(
            "SELECT * FROM trials WHERE design_key = ? AND status IN ('done', 'failed') ORDER BY id LIMIT 1",
            (design_key,),
        ).fetchone()
        return None if row is None else Trial.from_dict(dict(row))


def _check_database(path: Path) -> None:
    """Refuse, with one line and without modifying it or creating anything beside it, a file
    that is not a calopt campaign database of this schema: another kind of file, another
    SQLite database, a damaged one (truncated: SQLite's quick check)."""
    from calopt.files import describe_file

    what = f"campaign database {str(path)!r}"
    if not path.exists():
        raise CaloptInputError(f"{what} does not exist")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CaloptInputError(f"{what} cannot be read ({exc.strerror})") from None
    if head != b"SQLite format 3\x00":
        raise CaloptInputError(f"{str(path)!r} is {describe_file(path)}, not a calopt campaign database")
    try:
        db = connect_read_only(path)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            columns = {r[1] for r in db.execute("PRAGMA table_info(trials)")}
            row = db.execute("SELECT value FROM campaign WHERE key = 'schema_version'").fetchone() if (
                "campaign" in tables) else None  # fmt: skip
            check = db.execute("PRAGMA quick_check").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CaloptInputError(f"{what} cannot be read, truncated or corrupt ({exc})") from None
    if not {"campaign", "trials"} <= tables:
        found = f"tables {', '.join(sorted(tables))}" if tables else "no tables"
        missing = next(t for t in ("campaign", "trials") if t not in tables)
        raise CaloptInputError(f"{str(path)!r} is an SQLite database with {found}, not a calopt campaign database "
                               f"(no {missing} table)")  # fmt: skip
    if row is None:
        raise CaloptInputError(f"{what}: no schema_version in its campaign table; not a calopt campaign database")
    if row[0] != str(SCHEMA_VERSION):
        raise CaloptInputError(f"{what} has schema version {row[0]}; this calopt reads version {SCHEMA_VERSION}")
    if not set(_COLUMNS) <= columns:
        missing = ", ".join(c for c in _COLUMNS if c not in columns)
        raise CaloptInputError(f"{what} is damaged: its trials table lacks the columns {missing}")
    if check is None or check[0] != "ok":
        raise CaloptInputError(f"{what} is damaged (SQLite's check: {check[0] if check else 'no answer'})")
