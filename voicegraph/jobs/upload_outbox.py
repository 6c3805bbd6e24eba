"""The upload outbox: audio spooled on the local disk until the bucket has it.

An upload may belong to a job (which succeeds when its upload does: the job
store takes the row in its own transaction) or to none (audio saved by a
synchronous request).
"""

from __future__ import annotations

import sqlite3

from voicegraph.jobs.database import JobDatabase
from voicegraph.jobs.records import PendingUpload


class UploadOutbox:
    def __init__(self, db: JobDatabase):
        self._db = db

    def add(self, key: str, content_type: str, job_id: str | None) -> None:
        with self._db.transaction() as tx:
            self.add_in(tx, key, content_type, job_id, self._db.clock())

    def add_in(self, tx: sqlite3.Connection, key: str, content_type: str, job_id: str | None, now: float) -> None:
        tx.execute(
            "INSERT OR IGNORE INTO uploads (key, content_type, job_id, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, content_type, job_id, now, now),
        )

    def take(self, tx: sqlite3.Connection, key: str) -> str | None:
        """Remove a finished upload; returns the job it belonged to, if any."""
        row = tx.execute("SELECT job_id FROM uploads WHERE key = ?", (key,)).fetchone()
        tx.execute("DELETE FROM uploads WHERE key = ?", (key,))
        return None if row is None else row["job_id"]

    def due(self, limit: int = 16) -> list[PendingUpload]:
        with self._db.reading() as db:
            rows = db.execute(
                "SELECT * FROM uploads WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (self._db.clock(), limit),
            ).fetchall()
        return [PendingUpload(r["key"], r["content_type"], r["job_id"], r["attempts"]) for r in rows]

    def keys(self) -> list[str]:
        with self._db.reading() as db:
            return [r["key"] for r in db.execute("SELECT key FROM uploads").fetchall()]

    def failed(self, key: str, error: str, retry_in_s: float) -> None:
        now = self._db.clock()
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE uploads SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE key = ?",
                (error, now + retry_in_s, key),
            )

    def count(self) -> int:
        with self._db.reading() as db:
            return db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0]
