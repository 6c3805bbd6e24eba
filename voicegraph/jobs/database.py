"""The job database: SQLite in the storage root, or PostgreSQL; its schema,
migrations and transactions.

Every state change that must not be half done (a job failing and its error
callback being queued; an upload finishing, the job succeeding and its
success callback being queued) is one transaction, so a crash at any point
leaves either the old state or the new one, never a job without its callback.

SQLite is a file on one node: one StorageActor replica owns it, and it is
gone with that node's disk. PostgreSQL outlives any node, and any number of
replicas share it: rows they compete for (a job to claim, a callback or an
upload to send) are taken with `FOR UPDATE SKIP LOCKED`, so no two replicas
take the same one. Queries are written once, with `?` placeholders and SQL
both dialects read (`ON CONFLICT DO NOTHING`, `GREATEST`).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from voicegraph.core.errors import ConfigError

# Each entry moves the schema one version up; a database records the version
# it is at, and on opening gets the entries after it, in one transaction.
# Never edit an entry that has shipped: add one.
_MIGRATIONS = (
    # 1: the first release's tables.
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        stage TEXT,
        request TEXT NOT NULL,
        voice_id TEXT,
        story_id TEXT,
        user_id TEXT,
        metadata TEXT,
        callback_url TEXT,
        error_callback_url TEXT,
        chunks_done INTEGER NOT NULL DEFAULT 0,
        chunks_total INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        lease_until DOUBLE PRECISION,
        result TEXT,
        upload TEXT,
        error_code TEXT,
        error_message TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        started_at DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (status, stage, lease_until);
    CREATE TABLE IF NOT EXISTS uploads (
        key TEXT PRIMARY KEY,
        content_type TEXT NOT NULL,
        job_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE IF NOT EXISTS callbacks (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        body {blob} NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (state, next_attempt_at);
    CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        delivery TEXT NOT NULL,
        sections TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        streamed INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: audio waiting for its upload, kept in a shared database rather than
    # on the disk of the node that made it (voicegraph.jobs.staged_files).
    """
    CREATE TABLE staged_files (
        key TEXT PRIMARY KEY,
        content_type TEXT NOT NULL,
        data {blob} NOT NULL,
        staged_at DOUBLE PRECISION NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

# Columns that SQLite files made before schema versions existed may lack.
_UNVERSIONED_COLUMNS = {
    "jobs": {"started_at": "REAL"},
    "runs": {"streamed": "INTEGER NOT NULL DEFAULT 0"},
}


def _statements(script: str, blob: str) -> list[str]:
    return [s.strip() for s in script.format(blob=blob).split(";") if s.strip()]


class JobDatabase:
    """Thread-safe: the StorageActor calls it from worker threads.

    `transaction()` and `reading()` yield a connection whose `execute(sql,
    params)` returns a cursor of rows read by column name. Inside a
    transaction, `locked` ends a SELECT of rows the transaction will change
    and `skip_locked` one of rows to take that another replica may hold.
    """

    clock: Any
    shared: bool  # the database outlives this node (other replicas see it)
    locked: str
    skip_locked: str

    def transaction(self):
        raise NotImplementedError

    def reading(self):
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _migrate(self, db, blob: str, unversioned: bool) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) AS version FROM schema_version").fetchone()
        version = row["version"] or 0
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"the job database is at schema version {version}, newer than this voicegraph "
                f"knows ({SCHEMA_VERSION}): run a release at least as new as the one that wrote it"
            )
        for target, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script, blob):
                db.execute(statement)
            if target == 1 and unversioned:
                self._add_unversioned_columns(db)
        if version < SCHEMA_VERSION:
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    def _add_unversioned_columns(self, db) -> None:
        for table, columns in _UNVERSIONED_COLUMNS.items():
            present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _greatest(*values):
    # PostgreSQL's GREATEST, which ignores NULLs; SQLite has only MAX.
    present = [v for v in values if v is not None]
    return max(present) if present else None


class SqliteDatabase(JobDatabase):
    shared = False
    locked = ""
    skip_locked = ""  # BEGIN IMMEDIATE already gives a transaction the whole file

    def __init__(self, path: Path, clock=time.time):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.create_function("GREATEST", -1, _greatest, deterministic=True)
        # WAL: readers never wait for the writer; FULL: a committed job state
        # survives a power cut, not only a process crash.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._lock = threading.Lock()
        self.clock = clock
        with self.transaction() as db:
            self._migrate(db, "BLOB", unversioned=True)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; what it does is committed whole or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Reads outside a transaction: the lock keeps other threads off the connection."""
        with self._lock:
            yield self._db


class _PostgresConnection:
    """A pooled connection that reads the `?` placeholders the queries use."""

    def __init__(self, connection):
        self._connection = connection

    def execute(self, sql: str, params: tuple | list = ()):
        return self._connection.execute(sql.replace("?", "%s"), params)


# An arbitrary constant: the advisory lock that lets one replica migrate at a time.
_MIGRATION_LOCK = 0x766F6963


class PostgresDatabase(JobDatabase):
    shared = True
    locked = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, clock=time.time, *, pool_size: int = 8, connect_timeout_s: float = 10.0):
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.clock = clock
        self.url = url
        # One connection first, so that a wrong URL or password fails here
        # with the server's own words, not as a pool timeout.
        try:
            with psycopg.connect(url, connect_timeout=max(1, round(connect_timeout_s)), autocommit=True):
                pass
        except (psycopg.Error, ValueError) as exc:
            raise ConfigError(
                f"jobs.database_url: cannot use {redacted(url)}: {_first_line(exc)}"
            ) from None
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=connect_timeout_s,
            kwargs={"autocommit": True, "row_factory": dict_row},
            # A connection the server dropped (a restart, a failover) is
            # replaced rather than handed out.
            check=ConnectionPool.check_connection,
            open=True,
            name="voicegraph-jobs",
        )
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            self._migrate(db, "BYTEA", unversioned=False)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def transaction(self) -> Iterator[_PostgresConnection]:
        with self._pool.connection() as connection, connection.transaction():
            yield _PostgresConnection(connection)

    @contextmanager
    def reading(self) -> Iterator[_PostgresConnection]:
        with self._pool.connection() as connection:
            yield _PostgresConnection(connection)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].removeprefix("connection failed: ")


def open_database(
    location: Path | str, clock=time.time, *, pool_size: int = 8, connect_timeout_s: float = 10.0
) -> JobDatabase:
    """A `postgresql://` URL opens PostgreSQL; anything else is a SQLite file path."""
    if isinstance(location, str) and location.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(location, clock, pool_size=pool_size, connect_timeout_s=connect_timeout_s)
    return SqliteDatabase(Path(location), clock)
