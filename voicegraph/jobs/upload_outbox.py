"""The upload outbox: staged audio (voicegraph.storage's spool) until the bucket has it.

An upload may belong to a job (which succeeds when its upload does: the job
store takes the row in its own transaction) or to none (audio saved by a
synchronous request). A replica sending an upload holds it for a while, so
that no other replica sends it too; one that dies mid-send lets it go when
the hold runs out.
"""

from __future__ import annotations

from voicegraph.jobs.database import JobDatabase
from voicegraph.jobs.records import PendingUpload


class UploadOutbox:
    def __init__(self, db: JobDatabase):
        self._db = db

    def add(self, key: str, content_type: str, job_id: str | None, held_s: float = 0.0) -> None:
        with self._db.transaction() as tx:
            self.add_in(tx, key, content_type, job_id, self._db.clock(), held_s)

    def add_in(
        self, tx, key: str, content_type: str, job_id: str | None, now: float, held_s: float = 0.0
    ) -> None:
        """`held_s`: the caller sends it at once, and holds it that long."""
        tx.execute(
            "INSERT INTO uploads (key, content_type, job_id, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key, content_type, job_id, now + held_s, now),
        )

    def take(self, tx, key: str) -> str | None:
        """Remove a finished upload; returns the job it belonged to, if any."""
        row = tx.execute("SELECT job_id FROM uploads WHERE key = ?", (key,)).fetchone()
        tx.execute("DELETE FROM uploads WHERE key = ?", (key,))
        return None if row is None else row["job_id"]

    def due(self, limit: int = 16, held_s: float = 0.0) -> list[PendingUpload]:
        """Uploads whose next attempt is due, held for `held_s` by the caller."""
        now = self._db.clock()
        with self._db.transaction() as tx:
            rows = tx.execute(
                "SELECT * FROM uploads WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
                + self._db.skip_locked,
                (now, limit),
            ).fetchall()
            if held_s:
                for row in rows:
                    tx.execute("UPDATE uploads SET next_attempt_at = ? WHERE key = ?", (now + held_s, row["key"]))
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
            return db.execute("SELECT COUNT(*) AS n FROM uploads").fetchone()["n"]
