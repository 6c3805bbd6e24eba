"""Durable records of async jobs, their pending uploads and their callbacks.

One SQLite database in the storage root, owned by the single StorageActor
replica. Every state change that must not be half done (a job failing and its
error callback being queued; an upload finishing, the job succeeding and its
success callback being queued) is one transaction, so a crash at any point
leaves either the old state or the new one, never a job without its callback.

Job states: queued → running → succeeded | failed. A running job is leased by
one runner (an ingress replica), which renews the lease as it works; a lease
that runs out means the runner died, and the job is taken over by another
runner (it starts again) until `max_attempts` runs, then it fails.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from voicegraph.jobs.callbacks import ErrorCallback, SuccessCallback

JOB_ID_PREFIX, RUN_ID_PREFIX = "job_", "run_"
# What every id this store makes looks like: the HTTP layer refuses any other
# before it is looked up.
JOB_ID_PATTERN = rf"^{JOB_ID_PREFIX}[0-9a-f]{{32}}$"
RUN_ID_PATTERN = rf"^{RUN_ID_PREFIX}[0-9a-f]{{32}}$"

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# Where a running job is: making audio (leased by a runner), or waiting for
# its audio to reach the bucket (owned by the upload outbox, no lease).
JobStage = Literal["synthesizing", "uploading"]
CallbackKind = Literal["success", "error"]
CallbackState = Literal["pending", "delivered", "expired"]

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


@dataclass(frozen=True)
class NewJob:
    request: dict[str, Any]  # the TTS request, replayed by whichever runner runs the job
    voice_id: str | None = None
    story_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] | None = None
    callback_url: str | None = None
    error_callback_url: str | None = None


@dataclass(frozen=True)
class JobResult:
    path: str
    url: str
    format: str
    content_type: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    # Rendered as the job asked (WebVTT, SRT or a list of cues), else None.
    captions: str | list | None = None


@dataclass(frozen=True)
class CallbackRecord:
    id: str  # also the Idempotency-Key a receiver deduplicates on
    kind: CallbackKind
    url: str
    state: CallbackState
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    next_attempt_at: float
    expires_at: float


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: JobStatus
    stage: JobStage | None
    request: dict[str, Any]
    voice_id: str | None
    story_id: str | None
    user_id: str | None
    metadata: dict[str, Any] | None
    callback_url: str | None
    error_callback_url: str | None
    chunks_done: int
    chunks_total: int | None
    attempts: int
    owner: str | None
    result: JobResult | None
    upload: Literal["pending", "done"] | None
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    callbacks: tuple[CallbackRecord, ...] = field(default=())
    started_at: float | None = None  # when a runner first took it


RunMode = Literal["simple", "batch"]
AudioDelivery = Literal["base64", "url"]


@dataclass(frozen=True)
class RunSection:
    id: str | None  # the caller's section id; None in simple mode
    job: JobRecord


@dataclass(frozen=True)
class RunRecord:
    """A serverless-style run (`POST /run`): one job per section, in order."""

    id: str
    mode: RunMode
    delivery: AudioDelivery
    created_at: float
    sections: tuple[RunSection, ...]
    streamed: int = 0  # sections the stream route has handed out


@dataclass(frozen=True)
class PendingUpload:
    key: str
    content_type: str
    job_id: str | None
    attempts: int


@dataclass(frozen=True)
class DueCallback:
    id: str
    job_id: str
    kind: CallbackKind
    url: str
    body: bytes
    attempts: int


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class JobStore:
    """The database. Thread-safe: the StorageActor calls it from worker threads."""

    def __init__(self, path: Path, *, callback_expiry_s: float, clock=time.time):
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
        self._callback_expiry_s = callback_expiry_s
        self._clock = clock

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # Jobs

    def create(self, job: NewJob) -> JobRecord:
        with self._transaction() as db:
            job_id = self._insert(db, job, self._clock())
        return self.get(job_id)

    def _insert(self, db, job: NewJob, now: float) -> str:
        job_id = JOB_ID_PREFIX + uuid.uuid4().hex
        db.execute(
            "INSERT INTO jobs (id, status, request, voice_id, story_id, user_id, metadata,"
            " callback_url, error_callback_url, created_at, updated_at)"
            " VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id, _json(job.request), job.voice_id, job.story_id, job.user_id,
                _json(job.metadata), job.callback_url, job.error_callback_url, now, now,
            ),
        )
        return job_id

    def create_run(
        self, mode: RunMode, delivery: AudioDelivery, sections: list[tuple[str | None, NewJob]]
    ) -> RunRecord:
        """A run and its jobs, all or nothing: no half-queued batch."""
        run_id = RUN_ID_PREFIX + uuid.uuid4().hex
        now = self._clock()
        with self._transaction() as db:
            ids = [(section_id, self._insert(db, job, now)) for section_id, job in sections]
            db.execute(
                "INSERT INTO runs (id, mode, delivery, sections, created_at) VALUES (?, ?, ?, ?, ?)",
                (run_id, mode, delivery, _json(ids), now),
            )
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        sections = tuple(
            RunSection(section_id, self.get(job_id)) for section_id, job_id in _loads(row["sections"])
        )
        return RunRecord(row["id"], row["mode"], row["delivery"], row["created_at"], sections, row["streamed"])

    def advance_stream(self, run_id: str) -> tuple[RunRecord, int] | None:
        """The run, and where its unstreamed sections begin: those from there
        up to the first unfinished one are marked streamed, so each section is
        handed out once, in order."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            statuses = [
                db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()["status"]
                for _, job_id in _loads(row["sections"])
            ]
            finished = next((i for i, status in enumerate(statuses) if status not in FINISHED), len(statuses))
            db.execute("UPDATE runs SET streamed = MAX(streamed, ?) WHERE id = ?", (finished, run_id))
        return self.get_run(run_id), row["streamed"]

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            callbacks = self._db.execute(
                "SELECT * FROM callbacks WHERE job_id = ? ORDER BY created_at", (job_id,)
            ).fetchall()
        return _job_record(row, callbacks)

    def claim(
        self, owner: str, lease_s: float, max_attempts: int, job_id: str | None = None
    ) -> JobRecord | None:
        """Lease `job_id` (or the oldest claimable job) to `owner`.

        Claimable: queued, or running with a lease that ran out (its runner
        died). A job that has already had `max_attempts` runs is failed here
        instead, with its error callback, and the next one is tried.
        """
        while True:
            now = self._clock()
            with self._transaction() as db:
                query = (
                    "SELECT * FROM jobs WHERE (status = 'queued' OR (status = 'running'"
                    " AND stage = 'synthesizing' AND lease_until < ?))"
                )
                params: tuple = (now,)
                if job_id is not None:
                    query += " AND id = ?"
                    params += (job_id,)
                row = db.execute(query + " ORDER BY created_at LIMIT 1", params).fetchone()
                if row is None:
                    return None
                if row["attempts"] >= max_attempts:
                    self._give_up(db, row, now)
                    continue
                db.execute(
                    "UPDATE jobs SET status = 'running', stage = 'synthesizing', owner = ?,"
                    " lease_until = ?, attempts = attempts + 1, chunks_done = 0,"
                    " updated_at = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
                    (owner, now + lease_s, now, now, row["id"]),
                )
                claimed = row["id"]
            return self.get(claimed)

    def reap(self, max_attempts: int) -> int:
        """Fail jobs whose runner died on their last allowed run, even when no
        runner is polling to take them over; returns how many."""
        now = self._clock()
        with self._transaction() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status = 'running' AND stage = 'synthesizing'"
                " AND lease_until < ? AND attempts >= ?",
                (now, max_attempts),
            ).fetchall()
            for row in rows:
                self._give_up(db, row, now)
        return len(rows)

    def extend_leases(self, lease_s: float) -> int:
        """Give every running job a full lease from now. Called when the
        StorageActor starts: while it was down no runner could renew, and a
        live runner must not lose its job for that."""
        now = self._clock()
        with self._transaction() as db:
            return db.execute(
                "UPDATE jobs SET lease_until = MAX(lease_until, ?)"
                " WHERE status = 'running' AND stage = 'synthesizing'",
                (now + lease_s,),
            ).rowcount

    def heartbeat(
        self, job_id: str, owner: str, lease_s: float, chunks_done: int, chunks_total: int | None
    ) -> bool:
        """Renew the lease and record progress; False when `owner` no longer
        holds the job (it was taken over or finished), so the runner stops."""
        now = self._clock()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_until = ?, chunks_done = ?, chunks_total = ?, updated_at = ?"
                " WHERE id = ? AND owner = ? AND status = 'running' AND stage = 'synthesizing'",
                (now + lease_s, chunks_done, chunks_total, now, job_id, owner),
            )
            return cursor.rowcount == 1

    def release(self, job_id: str, owner: str) -> bool:
        """`owner` stops running the job on purpose (its replica is shutting
        down): back in the queue for another runner at once, without waiting
        out the lease, and the run not counted against max_attempts."""
        now = self._clock()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = 'queued', stage = NULL, owner = NULL, lease_until = NULL,"
                " attempts = attempts - 1, chunks_done = 0, updated_at = ?"
                " WHERE id = ? AND owner = ? AND status = 'running' AND stage = 'synthesizing'",
                (now, job_id, owner),
            )
            return cursor.rowcount == 1

    def audio_ready(
        self, job_id: str, result: JobResult, upload_content_type: str | None, chunks: int
    ) -> None:
        """The audio is stored: in the bucket (`upload_content_type` None, the
        job succeeds) or spooled locally (its upload is recorded in the same
        transaction, and the job succeeds when the upload does). Only the first
        report of a run counts: a retried one, or one from a runner whose job
        was taken over, changes nothing."""
        now = self._clock()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] != "running" or row["stage"] != "synthesizing":
                return
            db.execute(
                "UPDATE jobs SET result = ?, stage = 'uploading', upload = ?, owner = NULL,"
                " lease_until = NULL, chunks_done = ?, chunks_total = ?, updated_at = ? WHERE id = ?",
                (
                    _json(result.__dict__), "pending" if upload_content_type else "done",
                    chunks, chunks, now, job_id,
                ),
            )
            if upload_content_type:
                self._add_upload(db, result.path, upload_content_type, job_id, now)
            else:
                self._succeed(db, job_id, now)

    def fail(
        self, job_id: str, code: str, message: str, details: Any = None, owner: str | None = None
    ) -> JobRecord | None:
        """Fail a job that is not finished yet and queue its error callback.

        With `owner`, only while that runner still holds it: a runner whose
        job was taken over must not fail the run that replaced it.
        """
        now = self._clock()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] in FINISHED:
                return None
            if owner is not None and row["owner"] != owner:
                return None
            self._fail(db, row, code, message, now, details)
        return self.get(job_id)

    def cancel(self, job_ids: list[str] | None, message: str) -> list[str]:
        """Cancel the jobs among `job_ids` (None: every queued job) that have
        not made their audio yet, queueing their error callbacks; returns the
        ids cancelled. A running job's runner sees it at its next heartbeat,
        and nothing it reports afterwards changes the job."""
        now = self._clock()
        with self._transaction() as db:
            if job_ids is None:
                rows = db.execute("SELECT * FROM jobs WHERE status = 'queued'").fetchall()
            else:
                marks = ",".join("?" * len(job_ids))
                rows = db.execute(
                    f"SELECT * FROM jobs WHERE id IN ({marks}) AND (status = 'queued'"
                    " OR (status = 'running' AND stage = 'synthesizing'))",
                    tuple(job_ids),
                ).fetchall()
            for row in rows:
                self._fail(db, row, "cancelled", message, now, status="cancelled")
        return [row["id"] for row in rows]

    def counts(self) -> dict[str, int]:
        """Jobs by status, how many were run more than once, and how many
        replicas are running jobs now."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
            retried = self._db.execute("SELECT COUNT(*) FROM jobs WHERE attempts > 1").fetchone()[0]
            owners = self._db.execute("SELECT owner FROM jobs WHERE status = 'running' AND owner IS NOT NULL")
            # An owner is "<replica>:<run token>": count replicas, not runs.
            runners = len({owner.rsplit(":", 1)[0] for (owner,) in owners.fetchall()})
        return {**{status: count for status, count in rows}, "retried": retried, "runners": runners}

    def backlog(self) -> dict[str, int]:
        """What the outboxes still owe: callbacks pending and expired, uploads pending."""
        with self._lock:
            states = dict(self._db.execute("SELECT state, COUNT(*) FROM callbacks GROUP BY state").fetchall())
            uploads = self._db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0]
        return {
            "callbacks_pending": states.get("pending", 0),
            "callbacks_expired": states.get("expired", 0),
            "uploads_pending": uploads,
        }

    def _fail(
        self, db, row, code: str, message: str, now: float, details: Any = None, status: JobStatus = "failed"
    ) -> None:
        db.execute(
            "UPDATE jobs SET status = ?, stage = NULL, owner = NULL, lease_until = NULL,"
            " error_code = ?, error_message = ?, updated_at = ?, finished_at = ? WHERE id = ?",
            (status, code, message, now, now, row["id"]),
        )
        if row["error_callback_url"]:
            payload = ErrorCallback(
                story_id=row["story_id"],
                error=message,
                error_details={"code": code, **({"details": details} if details else {})},
                user_id=row["user_id"],
                voice_id=row["voice_id"],
                job_id=row["id"],
                metadata=_loads(row["metadata"]),
            )
            self._enqueue(db, row["id"], "error", row["error_callback_url"], payload, now)

    def _give_up(self, db, row, now: float) -> None:
        self._fail(
            db, row, "interrupted",
            f"the job was interrupted {row['attempts']} times (its runner stopped) "
            "and was given up; submit it again",
            now,
        )

    def _succeed(self, db, job_id: str, now: float) -> None:
        db.execute(
            "UPDATE jobs SET status = 'succeeded', stage = NULL, upload = 'done',"
            " updated_at = ?, finished_at = ? WHERE id = ?",
            (now, now, job_id),
        )
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row["callback_url"]:
            result = JobResult(**_loads(row["result"]))
            payload = SuccessCallback(
                job_id=job_id,
                status="succeeded",
                story_id=row["story_id"],
                user_id=row["user_id"],
                voice_id=row["voice_id"],
                audio_url=result.url,
                audio_path=result.path,
                content_type=result.content_type,
                format=result.format,
                duration_s=result.duration_s,
                size_bytes=result.size_bytes,
                metadata=_loads(row["metadata"]),
            )
            self._enqueue(db, job_id, "success", row["callback_url"], payload, now)

    # Uploads waiting for the bucket

    def add_upload(self, key: str, content_type: str, job_id: str | None) -> None:
        with self._transaction() as db:
            self._add_upload(db, key, content_type, job_id, self._clock())

    def _add_upload(self, db, key: str, content_type: str, job_id: str | None, now: float) -> None:
        db.execute(
            "INSERT OR IGNORE INTO uploads (key, content_type, job_id, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, content_type, job_id, now, now),
        )

    def due_uploads(self, limit: int = 16) -> list[PendingUpload]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM uploads WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (self._clock(), limit),
            ).fetchall()
        return [PendingUpload(r["key"], r["content_type"], r["job_id"], r["attempts"]) for r in rows]

    def pending_upload_keys(self) -> list[str]:
        with self._lock:
            return [r["key"] for r in self._db.execute("SELECT key FROM uploads").fetchall()]

    def upload_done(self, key: str, final_key: str, url: str) -> None:
        """The bucket has the file (under `final_key`, which differs from
        `key` only if the name was taken meanwhile): the job succeeds."""
        now = self._clock()
        with self._transaction() as db:
            row = db.execute("SELECT job_id FROM uploads WHERE key = ?", (key,)).fetchone()
            db.execute("DELETE FROM uploads WHERE key = ?", (key,))
            if row is None or row["job_id"] is None:
                return
            job = db.execute("SELECT * FROM jobs WHERE id = ?", (row["job_id"],)).fetchone()
            if job is None or job["stage"] != "uploading":
                return
            result = {**_loads(job["result"]), "path": final_key, "url": url}
            db.execute("UPDATE jobs SET result = ? WHERE id = ?", (_json(result), job["id"]))
            self._succeed(db, job["id"], now)

    def upload_failed(self, key: str, error: str, retry_in_s: float) -> None:
        now = self._clock()
        with self._transaction() as db:
            db.execute(
                "UPDATE uploads SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                " WHERE key = ?",
                (error, now + retry_in_s, key),
            )

    # Callback outbox

    def _enqueue(self, db, job_id: str, kind: CallbackKind, url: str, payload, now: float) -> None:
        body = payload.model_dump_json().encode()
        db.execute(
            "INSERT OR IGNORE INTO callbacks (id, job_id, kind, url, body, state, next_attempt_at,"
            " expires_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (f"{job_id}.{kind}", job_id, kind, url, body, now, now + self._callback_expiry_s, now),
        )

    def due_callbacks(self, limit: int, exclude: set[str] = frozenset()) -> list[DueCallback]:
        """Pending callbacks whose next attempt is due; expired ones are marked so first."""
        now = self._clock()
        with self._transaction() as db:
            db.execute(
                "UPDATE callbacks SET state = 'expired' WHERE state = 'pending' AND expires_at <= ?",
                (now,),
            )
            rows = db.execute(
                "SELECT * FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at LIMIT ?",
                (now, limit + len(exclude)),
            ).fetchall()
        due = [
            DueCallback(r["id"], r["job_id"], r["kind"], r["url"], bytes(r["body"]), r["attempts"])
            for r in rows
            if r["id"] not in exclude
        ]
        return due[:limit]

    def callback_attempted(
        self,
        callback_id: str,
        delivered: bool,
        status: int | None,
        error: str | None,
        retry_in_s: float,
    ) -> None:
        now = self._clock()
        with self._transaction() as db:
            if delivered:
                db.execute(
                    "UPDATE callbacks SET state = 'delivered', attempts = attempts + 1,"
                    " last_status = ?, last_error = NULL, delivered_at = ? WHERE id = ?",
                    (status, now, callback_id),
                )
            else:
                db.execute(
                    "UPDATE callbacks SET attempts = attempts + 1, last_status = ?, last_error = ?,"
                    " next_attempt_at = ? WHERE id = ? AND state = 'pending'",
                    (status, error, now + retry_in_s, callback_id),
                )


def _callback_record(row) -> CallbackRecord:
    return CallbackRecord(
        id=row["id"],
        kind=row["kind"],
        url=row["url"],
        state=row["state"],
        attempts=row["attempts"],
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        next_attempt_at=row["next_attempt_at"],
        expires_at=row["expires_at"],
    )


def _job_record(row, callbacks) -> JobRecord:
    result = _loads(row["result"])
    return JobRecord(
        id=row["id"],
        status=row["status"],
        stage=row["stage"],
        request=_loads(row["request"]),
        voice_id=row["voice_id"],
        story_id=row["story_id"],
        user_id=row["user_id"],
        metadata=_loads(row["metadata"]),
        callback_url=row["callback_url"],
        error_callback_url=row["error_callback_url"],
        chunks_done=row["chunks_done"],
        chunks_total=row["chunks_total"],
        attempts=row["attempts"],
        owner=row["owner"],
        result=JobResult(**result) if result else None,
        upload=row["upload"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        callbacks=tuple(_callback_record(c) for c in callbacks),
        started_at=row["started_at"],
    )
