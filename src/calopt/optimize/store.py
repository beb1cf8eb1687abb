"""The campaign database: one SQLite file per campaign, every trial stored as soon as it is
asked and again as soon as it finishes.

Tables:

* ``campaign`` (key, value): the campaign settings (JSON), their hash, the calopt version and
  the creation time;
* ``trials``: one row per evaluation of a design -- ``id``, ``optimizer`` (name),
  ``optimizer_index`` (its position in the campaign file; the confirmation stage comes after
  the last), ``batch`` and ``position`` (the ask it came from), ``design_key`` (:meth:`Space.key`
  of the parameters), ``params`` (JSON), ``status`` (``pending``, ``done`` or ``failed``),
  ``objectives`` (JSON list, minimised), ``objective_errors`` (JSON list of their statistical
  errors, each a number >= 0 or null when unknown), ``metrics`` (the JSON of ``evaluate``),
  ``cost``, ``channels``, ``seed`` (of the evaluation), ``events`` (crossings evaluated),
  ``replicate`` (0, 1, ...: evaluations of one asked design with seeds seed, seed + 1, ...),
  ``stage`` (``search``: asked by an optimiser; ``confirm``: the final re-evaluation of the best
  designs with more crossings), ``cached`` (1 when the result was copied from an earlier trial
  of the same design, seed and crossings), ``attempts``, ``started_at``, ``finished_at``,
  ``seconds``, ``error``.

Schema 2 added ``objective_errors``, ``events``, ``replicate`` and ``stage``; a schema-1
database is read as one with no errors, one replicate and no confirmation (and upgraded in
place when a campaign resumes in it).

Every change is one transaction in WAL mode, so killing the process at any moment leaves the
database consistent: a trial is either finished with its result or still pending (and is
evaluated again by ``--resume``).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calopt.errors import CaloptInputError
from calopt.files import connect_read_only

__all__ = ["SCHEMA_VERSION", "CampaignStore", "Trial", "check_errors"]

SCHEMA_VERSION = 2
READABLE_SCHEMAS = ("1", "2")

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
    objective_errors TEXT,
    events INTEGER,
    replicate INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'search' CHECK (stage IN ('search', 'confirm')),
    UNIQUE (optimizer_index, batch, position)
);
CREATE INDEX IF NOT EXISTS trials_key ON trials (design_key, status);
"""


_COLUMNS_V1 = ("id", "optimizer", "optimizer_index", "batch", "position", "design_key", "params", "status",
               "objectives", "metrics", "cost", "channels", "seed", "cached", "attempts", "started_at",
               "finished_at", "seconds", "error")  # fmt: skip
_ADDED_V2 = {"objective_errors": "TEXT", "events": "INTEGER", "replicate": "INTEGER NOT NULL DEFAULT 0",
             "stage": "TEXT NOT NULL DEFAULT 'search' CHECK (stage IN ('search', 'confirm'))"}  # fmt: skip
_COLUMNS = (*_COLUMNS_V1, *_ADDED_V2)
_V1_DEFAULTS = {"objective_errors": "NULL", "events": "NULL", "replicate": "0", "stage": "'search'"}


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
    objective_errors: list[float | None] | None = None
    events: int | None = None
    replicate: int = 0
    stage: str = "search"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        d = dict(d)
        d["params"] = json.loads(d["params"])
        d["objectives"] = json.loads(d["objectives"]) if d["objectives"] else None
        d["metrics"] = json.loads(d["metrics"]) if d["metrics"] else None
        d["cached"] = bool(d["cached"])
        errors = json.loads(d["objective_errors"]) if d.get("objective_errors") else None
        try:
            d["objective_errors"] = None if errors is None else check_errors(errors)
        except ValueError as exc:
            raise CaloptInputError(f"campaign database: trial {d['id']}: {exc}") from None
        return cls(**d)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


def check_errors(errors: Any, n: int | None = None) -> list[float | None]:
    """``errors`` as a list of statistical errors (each a finite number >= 0, or None when
    unknown), of length ``n`` when given; a ValueError naming the bad entry otherwise."""
    if not isinstance(errors, list | tuple) or (n is not None and len(errors) != n):
        raise ValueError(f"objective errors must be a list of {n if n is not None else 'the'} numbers, got {errors!r}")
    out: list[float | None] = []
    for e in errors:
        if e is None:
            out.append(None)
            continue
        if isinstance(e, bool) or not isinstance(e, int | float) or not math.isfinite(e) or e < 0:
            raise ValueError(f"an objective error must be a finite number >= 0 or null, got {e!r}")
        out.append(float(e))
    return out


class CampaignStore:
    """A campaign database (module docstring). Opening a file that is not a calopt campaign
    database is refused without touching it (:func:`_check_database`). ``read_only`` opens an
    existing database for reading only (:func:`~calopt.files.connect_read_only`): nothing is created or
    changed, not even a journal file beside it (``calopt report``)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            _check_database(self.path)
            self._db = connect_read_only(self.path)
            self._db.row_factory = sqlite3.Row
            present = {r[1] for r in self._db.execute("PRAGMA table_info(trials)")}
            self._columns = {c: c if c in present else f"{_V1_DEFAULTS[c]} AS {c}" for c in _COLUMNS}
            return
        self._columns = {c: c for c in _COLUMNS}
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
        if self.get_meta("schema_version") == "1":  # add schema 2's columns, in one transaction
            with self._transaction() as db:
                for column, decl in _ADDED_V2.items():
                    db.execute(f"ALTER TABLE trials ADD COLUMN {column} {decl}")
                db.execute("UPDATE campaign SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _select(self, metrics: bool = True) -> str:
        """The trial columns to select (a schema-1 database's missing ones as their defaults;
        ``metrics=False``: the large metrics as NULL)."""
        cols = self._columns if metrics else {**self._columns, "metrics": "NULL AS metrics"}
        return ", ".join(cols.values())

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
                  seed: int | list[int], *, events: int | None = None, replicates: int = 1,
                  stage: str = "search") -> list[list[int]]:  # fmt: skip
        """Insert the asked points of one batch as pending trials (one transaction): each point
        ``replicates`` times, replicate r with seed ``seed + r`` (``seed``: one for all points, or
        one per point); per point, the ids of its rows."""
        seeds = [seed] * len(points) if isinstance(seed, int) else list(seed)
        if replicates < 1:
            raise CaloptInputError(f"replicates must be at least 1, got {replicates}")
        if stage not in ("search", "confirm"):
            raise ValueError(f"add_batch: stage must be search or confirm, got {stage!r}")
        ids: list[list[int]] = []
        with self._transaction() as db:
            for i, (key, params) in enumerate(points):
                rows = []
                for r in range(replicates):
                    cur = db.execute(
                        "INSERT INTO trials (optimizer, optimizer_index, batch, position, design_key, params, status,"
                        " seed, events, replicate, stage) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                        (optimizer, optimizer_index, batch, i * replicates + r, key,
                         json.dumps(params, sort_keys=True), seeds[i] + r, events, r, stage),
                    )  # fmt: skip
                    rows.append(int(cur.lastrowid or 0))
                ids.append(rows)
        return ids

    def fill_events(self, events: int) -> None:
        """Give the rows of a schema-1 database (which has no ``events``) the campaign's crossings."""
        with self._transaction() as db:
            db.execute("UPDATE trials SET events = ? WHERE events IS NULL", (events,))

    def start(self, trial_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE trials SET attempts = attempts + 1, started_at = ? WHERE id = ?",
                       (time.time(), trial_id))  # fmt: skip

    def finish(self, trial_id: int, *, status: str, objectives: list[float] | None, metrics: dict[str, Any] | None,
               cost: float | None, channels: int | None, seconds: float, error: str | None = None,
               cached: bool = False, objective_errors: list[float | None] | None = None) -> None:  # fmt: skip
        """Store the result of a trial; errors that are negative or NaN are refused (one-line
        :class:`CaloptInputError`) before anything is written."""
        if status not in ("done", "failed"):
            raise ValueError(f"finish: status must be done or failed, got {status!r}")
        if objective_errors is not None:
            try:
                objective_errors = check_errors(objective_errors, None if objectives is None else len(objectives))
            except ValueError as exc:
                raise CaloptInputError(f"trial {trial_id}: {exc}") from None
        with self._transaction() as db:
            db.execute(
                "UPDATE trials SET status = ?, objectives = ?, metrics = ?, cost = ?, channels = ?, seconds = ?,"
                " error = ?, cached = ?, finished_at = ?, objective_errors = ? WHERE id = ?",
                (status, json.dumps(objectives) if objectives is not None else None,
                 json.dumps(metrics, default=float) if metrics is not None else None, cost, channels, seconds, error,
                 int(cached), time.time(),
                 json.dumps(objective_errors) if objective_errors is not None else None, trial_id),
            )  # fmt: skip

    def trials(self, optimizer_index: int | None = None, *, batch: int | None = None, ids: list[int] | None = None,
               metrics: bool = True, stage: str | None = None) -> list[Trial]:  # fmt: skip
        """Trials in asking order (per optimiser: by batch, then position), optionally of one
        optimiser, one of its batches, one stage or given ids; ``metrics=False`` skips the
        (large) metrics."""
        where, args = [], []
        for column, value in (("optimizer_index", optimizer_index), ("batch", batch), ("stage", stage)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if ids is not None:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            args.extend(ids)
        columns = self._select(metrics)
        sql = f"SELECT {columns} FROM trials" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self._db.execute(sql + " ORDER BY optimizer_index, batch, position", args).fetchall()
        return [Trial.from_dict(dict(r)) for r in rows]

    def finished_result(self, design_key: str, seed: int, events: int) -> Trial | None:
        """A finished trial of this design with this seed and number of crossings (any optimiser,
        either stage): the same evaluation, whose result is reused."""
        row = self._db.execute(
            f"SELECT {self._select()} FROM trials WHERE design_key = ? AND seed = ? AND events = ?"
            " AND status IN ('done', 'failed') ORDER BY id LIMIT 1",
            (design_key, seed, events),
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
    if row[0] not in READABLE_SCHEMAS:
        raise CaloptInputError(f"{what} has schema version {row[0]}; this calopt reads versions "
                               f"{', '.join(READABLE_SCHEMAS)}")  # fmt: skip
    needed = _COLUMNS_V1 if row[0] == "1" else _COLUMNS
    if not set(needed) <= columns:
        missing = ", ".join(c for c in needed if c not in columns)
        raise CaloptInputError(f"{what} is damaged: its trials table lacks the columns {missing}")
    if check is None or check[0] != "ok":
        raise CaloptInputError(f"{what} is damaged (SQLite's check: {check[0] if check else 'no answer'})")
