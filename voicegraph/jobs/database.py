"""The job database: one SQLite file in the storage root, its schema, and
transactions.

Owned by the single StorageActor replica. Every state change that must not be
half done (a job failing and its error callback being queued; an upload
finishing, the job succeeding and its success callback being queued) is one
transaction, so a crash at any point leaves either the old state or the new
one, never a job without its callback.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SCHEMA = """
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
    lease_until REAL,
    result TEXT,
    upload TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    started_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (status, stage, lease_until);
CREATE TABLE IF NOT EXISTS uploads (
    key TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    job_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    delivery TEXT NOT NULL,
    sections TEXT NOT NULL,
    created_at REAL NOT NULL,
    streamed INTEGER NOT NULL DEFAULT 0
);
"""

# Columns added since the first release, added to databases made before them.
_ADDED_COLUMNS = {
    "jobs": {"started_at": "REAL"},
    # Sections already handed out by the serverless API's stream route.
    "runs": {"streamed": "INTEGER NOT NULL DEFAULT 0"},
}


class JobDatabase:
    """Thread-safe: the StorageActor calls it from worker threads."""

    def __init__(self, path: Path, clock=time.time):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL: readers never wait for the writer; FULL: a committed job state
        # survives a power cut, not only a process crash.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        self._lock = threading.Lock()
        self.clock = clock

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
