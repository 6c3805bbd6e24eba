"""Audio waiting for its upload, kept in a shared job database.

With PostgreSQL, the StorageActor's spool (see `voicegraph.storage.service`)
is this table rather than a folder on its node: audio a job made is safe once
staged, whichever node goes down before the bucket has it.
"""

from __future__ import annotations

from voicegraph.core.errors import StorageError
from voicegraph.jobs.database import JobDatabase
from voicegraph.storage.layout import StoredObject, with_suffix


class StagedFiles:
    """The spool interface of `LocalStorage`, over the `staged_files` table."""

    def __init__(self, db: JobDatabase):
        self._db = db

    def write_new(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Write under `key`, or `key` with a `_N` suffix if taken."""
        with self._db.transaction() as tx:
            for attempt in range(1, 10_000):
                candidate = with_suffix(key, attempt)
                inserted = tx.execute(
                    "INSERT INTO staged_files (key, content_type, data, staged_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (candidate, content_type, data, self._db.clock()),
                ).rowcount
                if inserted:
                    return StoredObject(key=candidate, url="", size_bytes=len(data), content_type=content_type)
        raise StorageError(f"no free name for {key!r}")

    def get(self, key: str) -> bytes:
        with self._db.reading() as db:
            row = db.execute("SELECT data FROM staged_files WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise FileNotFoundError(key)
        return bytes(row["data"])

    def exists(self, key: str) -> bool:
        with self._db.reading() as db:
            return db.execute("SELECT 1 FROM staged_files WHERE key = ?", (key,)).fetchone() is not None

    def delete(self, key: str) -> bool:
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM staged_files WHERE key = ?", (key,)).rowcount == 1

    def list(self, prefix: str) -> list[str]:
        with self._db.reading() as db:
            rows = db.execute(
                "SELECT key FROM staged_files WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            ).fetchall()
        return [row["key"] for row in rows]

    def keys(self, staged_before: float) -> list[str]:
        with self._db.reading() as db:
            rows = db.execute("SELECT key FROM staged_files WHERE staged_at < ?", (staged_before,)).fetchall()
        return [row["key"] for row in rows]
