"""The batch journal: one SQLite file (stdlib ``sqlite3``, WAL) that outlives any crash.

One row per item, one transaction per change of state, committed with ``synchronous=FULL``
so that a commit survives a power cut too. The intent (``submitting``) is committed before a
generation is sent and the job ids right after the answer, which is what lets the next run
tell "sent, answer lost" from "never sent". Every statement runs on a worker thread, one at
a time, so the event loop never waits for the disk.

The journal file itself is locked (``flock`` on an open descriptor of it) while a run works
it, so the lock belongs to the file's identity (device and inode): a symlink, a hard link or
another spelling of the path meets the same lock. The operating system drops the lock when
its holder dies, so a crashed run never blocks the next one. A file that is not a journal
(an empty one included) is refused, never overwritten. Closing folds the write-ahead log
into the main file (a checkpoint), so a journal at rest is one file to copy or move.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from .._errors import ValidationError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

APPLICATION_ID = 0x54504A42  # "TPJB": marks the file as a tempolor batch journal
SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE items (
    key         TEXT PRIMARY KEY,
    stem        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    type        TEXT NOT NULL,
    params      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    reply_ref   TEXT NOT NULL,
    state       TEXT NOT NULL,
    job_ids     TEXT NOT NULL DEFAULT '[]',
    files       TEXT NOT NULL DEFAULT '[]',
    error       TEXT,
    failure     TEXT,
    generations INTEGER NOT NULL DEFAULT 0,
    intent_at   REAL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX items_state ON items (state);
"""
# Job ids seen running under a replyRef that is no item's: someone else's generations, which
# reconciliation must never adopt. Added to journals written before it existed, on open.
FOREIGN_JOBS = """
CREATE TABLE IF NOT EXISTS foreign_jobs (
    job_id   TEXT PRIMARY KEY,
    seen_at  REAL NOT NULL
)
"""

COLUMNS = (
    "key",
    "stem",
    "type",
    "params",
    "digest",
    "reply_ref",
    "state",
    "job_ids",
    "files",
    "error",
    "failure",
    "generations",
    "intent_at",
    "created_at",
    "updated_at",
)
UPSERT = (
    f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in COLUMNS if name != "key")
)


@attrs.define
class ItemRecord:
    """One journal row, as the runner keeps it in memory.

    ``failure`` says what failed: ``job`` (a job ended FAILED or is gone), ``refused`` (the
    service refused the generation), ``send`` (sent several times with no answer, and not
    found by reconciliation) or ``download``. ``generations`` counts the generations the
    service accepted for this key; ``intent_at`` is the wall clock of the last intent, which
    bounds where reconciliation looks.
    """

    key: str
    stem: str
    type: str
    params: dict[str, Any]
    digest: str
    reply_ref: str
    state: str = "pending"
    job_ids: list[str] = attrs.Factory(list)
    files: list[str] = attrs.Factory(list)
    error: str | None = None
    failure: str | None = None
    generations: int = 0
    intent_at: float | None = None
    created_at: float = attrs.Factory(time.time)
    updated_at: float = attrs.Factory(time.time)

    def row(self) -> tuple[Any, ...]:
        return (
            self.key,
            self.stem,
            self.type,
            json.dumps(self.params, ensure_ascii=False, sort_keys=True),
            self.digest,
            self.reply_ref,
            self.state,
            json.dumps(self.job_ids),
            json.dumps(self.files, ensure_ascii=False),
            self.error,
            self.failure,
            self.generations,
            self.intent_at,
            self.created_at,
            self.updated_at,
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ItemRecord:
        return cls(
            key=row["key"],
            stem=row["stem"],
            type=row["type"],
            params=json.loads(row["params"]),
            digest=row["digest"],
            reply_ref=row["reply_ref"],
            state=row["state"],
            job_ids=json.loads(row["job_ids"]),
            files=json.loads(row["files"]),
            error=row["error"],
            failure=row["failure"],
            generations=row["generations"],
            intent_at=row["intent_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class Journal:
    """An open journal: its rows in memory, and writes that go to disk one at a time."""

    def __init__(self, path: Path, connection: sqlite3.Connection, lock: int | None) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = connection
        self._lock = lock
        self._limiter = anyio.CapacityLimiter(1)
        self.records: dict[str, ItemRecord] = {}
        self.foreign: set[str] = set()
        self.identity: tuple[int, int] | None = None
        self.commits = 0
        self.commit_seconds = 0.0
        self.longest_commit = 0.0

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open (or create) the journal at ``path`` and take its lock; refuse a file that is
        not a journal, or one another running batch holds, with a ``ValidationError``."""
        journal = await anyio.to_thread.run_sync(_open, Path(path))
        journal._limiter = anyio.CapacityLimiter(1)
        return journal

    async def save(self, record: ItemRecord) -> None:
        """Commit one item's row (one transaction), then keep it as the current state."""
        record.updated_at = time.time()
        self.records[record.key] = record
        await anyio.to_thread.run_sync(self._write, record.row(), limiter=self._limiter)

    async def remember_foreign(self, job_ids: set[str]) -> None:
        """Record running jobs that are someone else's (see ``_reconcile``)."""
        new = sorted(job_ids - self.foreign)
        if not new:
            return
        self.foreign.update(new)
        now = time.time()
        rows = [(job_id, now) for job_id in new]
        await anyio.to_thread.run_sync(self._write_foreign, rows, limiter=self._limiter)

    def _write_foreign(self, rows: list[tuple[str, float]]) -> None:
        connection = self._open_connection()
        with connection:
            connection.executemany(
                "INSERT OR IGNORE INTO foreign_jobs (job_id, seen_at) VALUES (?, ?)", rows
            )

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise _refuse(self.path, "is closed")
        return self._connection

    def _write(self, row: tuple[Any, ...]) -> None:
        started = time.perf_counter()
        connection = self._open_connection()
        with connection:  # BEGIN ... COMMIT, or ROLLBACK on error
            connection.execute(UPSERT, row)
        elapsed = time.perf_counter() - started
        self.commits += 1
        self.commit_seconds += elapsed
        self.longest_commit = max(self.longest_commit, elapsed)

    def close(self) -> None:
        """Fold the write-ahead log into the main file, close the database and drop the lock.
        Synchronous: safe in cleanup after a cancellation. Closing twice does nothing."""
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                try:
                    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:
                    pass  # the commits are safe in the log; the next run folds it
                finally:
                    connection.close()
        finally:
            # Only after the connection: closing a descriptor of the file drops every POSIX
            # lock this process holds on it, SQLite's own included.
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None


def _refuse(path: Path, reason: str) -> ValidationError:
    return ValidationError("journal", f"{os.fspath(path)!r} {reason}")


def _open(path: Path) -> Journal:
    if path.is_dir():
        raise _refuse(path, "is a folder; give the path of a journal file")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock, created = _lock_file(path)
    connection: sqlite3.Connection | None = None
    try:
        if not created:
            _check_header(path, lock)
        identity = os.fstat(lock)
        # SQLite names its write-ahead log after the path it is given: the resolved one, so a
        # symlink finds the log a crashed run left beside the real file.
        real = Path(os.path.realpath(path))
        connection, fresh = _connect(real, path)  # recognised before anything is written
        _prepare(connection, path, fresh)
        journal = Journal(path, connection, lock)
        journal.identity = (identity.st_dev, identity.st_ino)
        rows = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM items ORDER BY rowid")
        for row in rows:
            record = ItemRecord.from_row(row)
            journal.records[record.key] = record
        journal.foreign = {row[0] for row in connection.execute("SELECT job_id FROM foreign_jobs")}
    except BaseException:
        if connection is not None:
            connection.close()
        os.close(lock)
        if created:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
    return journal


def _check_header(path: Path, descriptor: int) -> None:
    """A file that exists must already be a journal (an SQLite database): nothing is
    written to it before it has been recognised, and an empty file is no journal."""
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        header = os.read(descriptor, len(SQLITE_HEADER))
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror}") from None
    if not header:
        raise _refuse(path, "is an empty file, not a batch journal (remove it to start afresh)")
    if header != SQLITE_HEADER:
        raise _refuse(path, "is not a batch journal (not an SQLite database)")


def _lock_file(path: Path) -> tuple[int, bool]:
    """Open the journal file (creating it if missing) and lock it for this process: the
    lock follows the file, however its path is spelled. Returns the descriptor, and whether
    this call created the file."""
    created = False
    try:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            created = True
        except FileExistsError:
            descriptor = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise _refuse(path, f"cannot be opened: {exc.strerror}") from None
    if fcntl is None:  # pragma: no cover - no flock: no protection against a second process
        return descriptor, created
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise _refuse(
            path, "is in use by another running batch (two runs never share a journal)"
        ) from None
    return descriptor, created


def _connect(real: Path, path: Path) -> tuple[sqlite3.Connection, bool]:
    """Open the file and recognise it (a journal, or a database this run just created)
    without writing; also tells whether it is new."""
    try:
        connection = sqlite3.connect(real, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _refuse(path, f"cannot be opened: {exc}") from None
    try:
        connection.row_factory = sqlite3.Row
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application_id != APPLICATION_ID and (application_id or tables):
            raise _refuse(path, "is an SQLite database, but not a batch journal")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if application_id == APPLICATION_ID and version != SCHEMA_VERSION:
            raise _refuse(path, f"has journal format {version}; this version reads only 1")
        check = connection.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(check)
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise _refuse(path, f"is damaged or not a batch journal ({exc})") from None
    except BaseException:
        connection.close()
        raise
    return connection, application_id != APPLICATION_ID


def _prepare(connection: sqlite3.Connection, path: Path, fresh: bool) -> None:
    """WAL, commits that survive a power cut, and the schema of a new journal."""
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA busy_timeout = 5000")
        if fresh:
            connection.executescript(
                "BEGIN;"
                + SCHEMA
                + FOREIGN_JOBS
                + ";"
                + f"PRAGMA application_id = {APPLICATION_ID};"
                + f"PRAGMA user_version = {SCHEMA_VERSION};"
                + "COMMIT;"
            )
        else:
            connection.execute(FOREIGN_JOBS)
    except sqlite3.Error as exc:
        raise _refuse(path, f"cannot be written: {exc}") from None


def total_generations(records: dict[str, ItemRecord]) -> int:
    return sum(record.generations for record in records.values())
